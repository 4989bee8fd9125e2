"""Delta(tau), tau_half, tail rate and the DMFT Lyapunov exponent, each against an
independent method. phi = erf(sqrt(pi) x / 2) gives every reference in closed form:
[phi]_{0; D0, D} = (2/pi) arcsin(c D), c = (pi/2) / (1 + (pi/2) D0)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy import integrate, optimize

import mfrnn


def _c(d0):
    return (np.pi / 2) / (1 + (np.pi / 2) * d0)


def erf_corr(d0, d):
    return (2 / np.pi) * np.arcsin(np.clip(_c(d0) * d, -1, 1))


def erf_corr_dphi(d0, d):
    c = _c(d0)
    return (2 / np.pi) * c / np.sqrt(1 - (c * d) ** 2)


def erf_potential(d, d0, g, s):
    # V = -D^2/2 + g^2 [Phi] + s^2 D, [Phi] = int [phi] dD (Price), up to a constant.
    c = _c(d0)
    prim = (2 / np.pi) * (d * np.arcsin(c * d) + np.sqrt(1 - (c * d) ** 2) / c)
    return -0.5 * d * d + g * g * prim + s * s * d


def erf_reference(g, s):
    """Delta0, Delta_inf by scipy on the closed-form equations (energy condition)."""

    def eqs(x):
        d_inf, d0 = x
        return [
            d_inf - g * g * erf_corr(d0, d_inf) - s * s,
            erf_potential(d0, d0, g, s) - erf_potential(d_inf, d0, g, s),
        ]

    guess = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, 0.0, s, phi=mfrnn.Erf()))
    x0 = [float(guess.delta_inf) + 0.05, float(guess.delta0) * 1.05]
    d_inf, d0 = optimize.fsolve(eqs, x0, xtol=1e-14)
    return d0, d_inf


def fourier_delta(g, s, T=200.0, n=2**14, damping=0.3):
    """Second method: damped fixed-point iteration of (1 + w^2) Delta^ = FT[g^2 C + s^2]."""
    dt = 2 * T / n
    t = dt * np.arange(n)
    t = np.minimum(t, 2 * T - t)
    w = 2 * np.pi * np.fft.fftfreq(n, dt)
    delta = np.exp(-t / 3) + s * s + 0.5
    for _ in range(5000):
        rhs = g * g * erf_corr(delta[0], delta) + s * s
        new = np.real(np.fft.ifft(np.fft.fft(rhs) / (1 + w * w)))
        done = np.abs(new - delta).max() < 1e-13
        delta = (1 - damping) * delta + damping * new
        if done:
            break
    else:
        raise AssertionError("Fourier iteration did not converge")
    return t, delta


@pytest.mark.parametrize("g,s", [(2.0, 0.0), (3.0, 0.3)])
def test_delta0_against_fourier_iteration(g, s):
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, 0.0, s, phi=mfrnn.Erf()))
    t, delta = fourier_delta(g, s)
    np.testing.assert_allclose(sol.delta0, delta[0], rtol=1e-6)
    np.testing.assert_allclose(sol.delta_inf, delta[len(t) // 2], atol=1e-6)
    # The whole profile, not only its ends.
    ac = mfrnn.dmft_autocorrelation(mfrnn.GaussianEnsemble(g, 0.0, s, phi=mfrnn.Erf()), sol)
    keep = t < 40
    np.testing.assert_allclose(ac(jnp.asarray(t[keep])), delta[keep], atol=1e-6)


def test_profile_tau_half_and_tail_against_closed_form():
    g, s = 2.0, 0.5
    ens = mfrnn.GaussianEnsemble(g, 0.0, s, phi=mfrnn.Erf())
    d0, d_inf = erf_reference(g, s)
    ac = mfrnn.dmft_autocorrelation(ens)
    np.testing.assert_allclose([ac.delta0, ac.delta_inf], [d0, d_inf], rtol=1e-10)
    # tau(Delta) by adaptive quadrature of 1 / sqrt(2 (V(Delta0) - V(D))), D = Delta0 - r^2.
    v0 = erf_potential(d0, d0, g, s)
    half = d_inf + 0.5 * (d0 - d_inf)

    def integrand(r):
        w = v0 - erf_potential(d0 - r * r, d0, g, s)
        return 2 * r / np.sqrt(2 * w)

    tau_half, _ = integrate.quad(integrand, 1e-9, np.sqrt(d0 - half), epsrel=1e-11, limit=200)
    np.testing.assert_allclose(ac.tau_half, tau_half, rtol=1e-8)
    np.testing.assert_allclose(ac(tau_half), half, rtol=1e-9)
    k = np.sqrt(1 - g * g * erf_corr_dphi(d0, d_inf))
    np.testing.assert_allclose(ac.tail_rate, k, rtol=1e-9)
    # Deep in the tail, Delta - Delta_inf decays at exactly that rate.
    y = np.asarray(ac(jnp.array([60.0, 61.0]))) - d_inf
    np.testing.assert_allclose(np.log(y[0] / y[1]), k, rtol=1e-6)
    assert np.all(np.diff(np.asarray(ac(jnp.linspace(0, 80, 400)))) <= 0)


def test_profile_against_short_shooting():
    # Shooting Delta'' = -V'(Delta) from rest is reliable only up to ~2 tau_half
    # (docs/theory/pitfalls.md); there it must agree.
    g, s = 2.5, 0.0
    ens = mfrnn.GaussianEnsemble(g, 0.0, s, phi=mfrnn.Erf())
    ac = mfrnn.dmft_autocorrelation(ens)
    d0 = float(ac.delta0)

    def rhs(_, y):
        return [y[1], y[0] - g * g * erf_corr(d0, y[0]) - s * s]

    ts = np.linspace(0, 2 * float(ac.tau_half), 50)
    ode = integrate.solve_ivp(rhs, (0, ts[-1]), [d0, 0.0], t_eval=ts, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ac(jnp.asarray(ts)), ode.y[0], atol=1e-7)


def test_lyapunov_zero_mode_and_second_method():
    g = 2.0
    ens = mfrnn.GaussianEnsemble(g, phi=mfrnn.Erf())
    lyap = mfrnn.dmft_lyapunov(ens)
    assert abs(float(lyap.e1)) < 1e-7 * abs(float(lyap.e0))
    np.testing.assert_allclose(lyap.lyapunov, -1 + np.sqrt(1 - float(lyap.e0)), rtol=1e-14)
    # Second method: finite differences of H on a uniform tau grid, even states
    # (psi'(0) = 0), closed-form potential, Richardson-extrapolated in h.
    ac = mfrnn.dmft_autocorrelation(ens)
    d0 = float(ac.delta0)

    def ground_energy(h, T=80.0):
        tau = np.arange(0.0, T, h)
        pot = 1 - g * g * erf_corr_dphi(d0, np.asarray(ac(jnp.asarray(tau))))
        diag = pot + 2 / h**2
        off = -np.ones(len(tau) - 1) / h**2
        off[0] *= np.sqrt(2)  # Neumann at 0, symmetrised
        return scipy.linalg.eigh_tridiagonal(diag, off, select="i", select_range=(0, 0))[0][0]

    e_h, e_h2 = ground_energy(0.02), ground_energy(0.01)
    np.testing.assert_allclose(lyap.e0, (4 * e_h2 - e_h) / 3, rtol=1e-6)


def test_lyapunov_across_g_and_regimes():
    gs = jnp.array([0.5, 1.1, 1.5, 2.0, 3.0, 4.0])
    ens = mfrnn.GaussianEnsemble(gs, jnp.zeros(6), jnp.zeros(6))
    lyap = mfrnn.dmft_lyapunov(ens)
    lam = np.asarray(lyap.lyapunov)
    np.testing.assert_allclose(lam[0], -0.5, rtol=1e-12)  # -1 + g at the quiescent point
    assert np.all(lam[1:] > 0) and np.all(np.diff(lam) > 0)
    assert np.all(np.abs(np.asarray(lyap.e1[1:])) < 1e-7 * np.abs(np.asarray(lyap.e0[1:])))
    # Near onset lambda ~ 0.4 (g - 1)^2 (docs/theory/dmft.md, approximate).
    assert 0.3 < lam[1] / 0.01 < 0.6
    # Static input: chaotic branch with Delta_inf > 0.
    inp = mfrnn.dmft_lyapunov(mfrnn.GaussianEnsemble(2.5, 0.3, 0.5))
    assert abs(float(inp.e1)) < 1e-7 * abs(float(inp.e0))


def test_gradients_of_lyapunov_and_tau_half():
    # d/d(g, b, s_I) of (lambda_max, tau_half): one reverse-mode jacobian vs central
    # 5-point finite differences.
    def both(g, b, s):  # one solve gives lambda_max and tau_half
        lyap = mfrnn.dmft_lyapunov(mfrnn.GaussianEnsemble(g, b, s))
        return jnp.stack([lyap.lyapunov, lyap.tau_half])

    base, h = np.array([2.2, 0.2, 0.3]), 1e-3
    jac = jax.jacrev(both, argnums=(0, 1, 2))(*base)
    for i in range(3):
        step = lambda k: both(*(base + k * h * np.eye(3)[i]))
        fd = (8 * (step(1) - step(-1)) - (step(2) - step(-2))) / (12 * h)
        np.testing.assert_allclose(jac[i], fd, rtol=1e-6)


def test_failure_propagates_to_lyapunov():
    bad = mfrnn.GaussianEnsemble(2.0, phi=mfrnn.ReLU())
    lyap = mfrnn.dmft_lyapunov(bad, throw=False)
    assert lyap.result != mfrnn.RESULTS.successful
    # An under-resolved profile fails the zero-mode self-test and says so.
    coarse = mfrnn.dmft_lyapunov(mfrnn.GaussianEnsemble(2.0), order=6, steps=8, throw=False)
    assert coarse.result != mfrnn.RESULTS.successful


def test_benchmark_baseline_agrees():
    # The scipy loop of benchmarks/bench_dmft.py is a third, independent implementation.
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dmft.py"
    spec = importlib.util.spec_from_file_location("bench_dmft", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d0, lam, tau_half = bench.scipy_point(2.0)
    ens = mfrnn.GaussianEnsemble(2.0)
    lyap = mfrnn.dmft_lyapunov(ens)
    np.testing.assert_allclose(d0, mfrnn.solve_dmft(ens).delta0, rtol=1e-9)
    np.testing.assert_allclose(lam, lyap.lyapunov, rtol=1e-4)
    np.testing.assert_allclose(tau_half, lyap.tau_half, rtol=1e-4)


def test_float32_runs_without_nans():
    # The float64 call below repeats test_lyapunov_across_g_and_regimes (compile cache).
    gs = [0.5, 1.1, 1.5, 2.0, 3.0, 4.0]
    ref = mfrnn.dmft_lyapunov(mfrnn.GaussianEnsemble(jnp.array(gs), jnp.zeros(6), jnp.zeros(6)))
    with jax.enable_x64(False):  # as a user who never enables x64
        ens = mfrnn.GaussianEnsemble(jnp.array(gs), jnp.zeros(6), jnp.zeros(6))
        sol = mfrnn.solve_dmft(ens)  # throws unless every point converged
        lyap = mfrnn.dmft_lyapunov(ens, sol)
        assert sol.delta0.dtype == jnp.float32 and lyap.lyapunov.dtype == jnp.float32
        d0, lam, tau_half = (np.asarray(a) for a in (sol.delta0, lyap.lyapunov, lyap.tau_half))
    # float32 accuracy (relative): Delta0 ~1e-6, lambda ~1e-3, tau_half ~2e-5 at g >= 1.5
    # and 4e-4 near onset (g = 1.1), where Delta0 is small and tau_half long.
    np.testing.assert_allclose(d0[3], 1.92480541374, rtol=1e-5)  # scipy brentq, test_dmft
    np.testing.assert_allclose(d0[4], 5.44632608304, rtol=1e-5)
    np.testing.assert_allclose(lam, ref.lyapunov, rtol=2e-3)
    np.testing.assert_allclose(tau_half[2:], ref.tau_half[2:], rtol=1e-4)
    np.testing.assert_allclose(tau_half[1], ref.tau_half[1], rtol=1e-3)


def test_autocorrelation_carries_the_dmft_result_code():
    # ReLU at g = 3: no finite Delta0. The code travels with the profile and `throw`
    # raises, as for every other entry point.
    ens = mfrnn.GaussianEnsemble(jnp.array([1.2, 3.0]), phi=mfrnn.ReLU())
    ac = mfrnn.dmft_autocorrelation(ens, throw=False)
    assert list(mfrnn.result_names(ac)) == ["successful", "static_not_converged"]
    with pytest.raises(Exception, match="static"):
        mfrnn.dmft_autocorrelation(ens)
