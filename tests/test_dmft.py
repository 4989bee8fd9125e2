import logging
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pytest
from helpers import finite_difference
from scipy import optimize

import mfrnn


class ErfByQuadrature(mfrnn.AbstractQuadratureNonlinearity):
    """erf(sqrt(pi) x / 2) through the generic quadrature path."""

    order: int = eqx.field(static=True, default=301)
    rule: str = eqx.field(static=True, default="trapezoid")

    def __call__(self, x):
        return jsp.erf(np.sqrt(np.pi) / 2 * x)

    def derivative(self, x):
        return jnp.exp(-np.pi / 4 * jnp.asarray(x) ** 2)

    def second_derivative(self, x):
        return -np.pi / 2 * x * jnp.exp(-np.pi / 4 * jnp.asarray(x) ** 2)

    def primitive(self, x):
        return x * self(x) + (self.derivative(x) - 1.0) * 2 / np.pi


def _scipy_delta0(g):
    """Independent reference: brentq on the SCS energy condition, numpy quadrature."""
    z = np.linspace(-12, 12, 4001)
    w = np.exp(-z * z / 2)
    w /= w.sum()
    logcosh = lambda x: np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - np.log(2)

    def energy(d):
        P = logcosh(np.sqrt(d) * z)
        return g * g * (w @ P**2 - (w @ P) ** 2) - d * d / 2

    return optimize.brentq(energy, 1e-3, 200.0, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize("g", [1.2, 2.0, 3.0, 5.0])
def test_delta0_against_scipy_energy_condition(g):
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g))
    assert int(sol.regime) == mfrnn.REGIME_NAMES.index("chaotic")
    np.testing.assert_allclose(sol.delta0, _scipy_delta0(g), rtol=1e-10)
    assert abs(float(sol.delta_inf)) < 1e-10
    # Consistency conditions (docs/theory/dmft.md): V'(Delta0) > 0 and V''(0) < 0.
    phi = mfrnn.Tanh()
    assert g**2 * float(phi.gaussian_second_moment(0.0, sol.delta0)) - float(sol.delta0) > 0
    assert 1 - g**2 * float(phi.gaussian_mean(0.0, sol.delta0, "dphi")) ** 2 > 0


@pytest.mark.parametrize("g,b,s", [(2.0, 0.0, 0.0), (2.5, 0.3, 0.4), (1.6, 0.0, 0.3)])
def test_erf_closed_form_and_quadrature_paths_agree(g, b, s):
    closed = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, b, s, phi=mfrnn.Erf()))
    quad = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, b, s, phi=ErfByQuadrature()))
    np.testing.assert_allclose(closed.delta0, quad.delta0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(closed.delta_inf, quad.delta_inf, rtol=0, atol=1e-9)


def test_regimes_and_quiescent_below_onset():
    gs = jnp.array([0.3, 0.9, 0.999, 1.05, 2.0])
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(gs, jnp.zeros(5), jnp.zeros(5)))
    np.testing.assert_array_equal(sol.regime, [0, 0, 0, 2, 2])
    np.testing.assert_array_equal(sol.delta0[:3], 0.0)
    assert np.all(np.asarray(sol.delta0[3:]) > 0.05)
    # With a bias: a stable fixed point with Delta0 = 0 (no quenched input) and x = b.
    fp = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(0.8, 0.5, 0.3))
    assert int(fp.regime) == 1
    phi = mfrnn.Tanh()
    np.testing.assert_allclose(
        fp.delta0, 0.64 * phi.gaussian_second_moment(0.5, fp.delta0) + 0.09, rtol=1e-12
    )


def test_onset():
    for phi in (mfrnn.Tanh(), mfrnn.Erf()):
        assert float(mfrnn.chaos_onset(phi).g_c) == pytest.approx(1.0, abs=1e-12)
    grid = jnp.linspace(0.0, 1.0, 6)
    by_bias = mfrnn.chaos_onset(mfrnn.Tanh(), grid, 0.0).g_c
    by_input = mfrnn.chaos_onset(mfrnn.Tanh(), 0.0, grid).g_c
    assert np.all(np.diff(np.asarray(by_bias)) > 0)
    assert np.all(np.diff(np.asarray(by_input)) > 0)
    # The regime switches at g_c(b, s_I).
    for b, s in [(0.4, 0.0), (0.0, 0.5), (0.3, 0.3)]:
        g_c = float(mfrnn.chaos_onset(mfrnn.Tanh(), b, s).g_c)
        below = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g_c - 0.01, b, s))
        above = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g_c + 0.01, b, s))
        assert int(below.regime) == 1 and int(above.regime) == 2
        np.testing.assert_allclose(below.bulk_radius, 1.0, atol=0.02)


def test_chaotic_branch_with_input_is_not_the_static_root():
    ens = mfrnn.GaussianEnsemble(2.5, 0.3, 0.5)
    sol = mfrnn.solve_dmft(ens)
    q = float(sol.delta0 - sol.delta_inf)
    assert q > 0.3 and float(sol.delta_inf) > 0.25
    assert float(sol.residual) < 1e-9
    assert abs(float(sol.delta0) - float(sol.delta0_static)) > 0.1
    # Equations re-evaluated from the averages directly.
    phi, g2, s2 = mfrnn.Tanh(), 2.5**2, 0.25
    d0, dinf = float(sol.delta0), float(sol.delta_inf)
    np.testing.assert_allclose(dinf, g2 * float(phi.gaussian_correlation(0.3, d0, dinf)) + s2, rtol=1e-9)
    V = lambda d: -d * d / 2 + g2 * float(phi.gaussian_correlation(0.3, d0, d, "Phi")) + s2 * d
    np.testing.assert_allclose(V(d0), V(dinf), atol=1e-9)
    # Non-odd phi without any input: a mean field and Delta_inf > 0.
    pos = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(3.0, phi=mfrnn.ShiftedTanh(1.0)))
    assert int(pos.regime) == 2 and float(pos.delta_inf) > 0.1


@pytest.mark.parametrize("field", ["g", "bias", "input_std"])
def test_gradients_match_finite_differences(field):
    base = {"g": 2.2, "bias": 0.2, "input_std": 0.4}

    def delta0(value):
        kw = dict(base, **{field: value})
        return mfrnn.solve_dmft(mfrnn.GaussianEnsemble(kw["g"], kw["bias"], kw["input_std"])).delta0

    grad = jax.grad(delta0)(base[field])
    np.testing.assert_allclose(grad, finite_difference(delta0, base[field], 1e-5), rtol=1e-6)


def test_onset_gradient():
    g_c = lambda b: mfrnn.chaos_onset(mfrnn.Tanh(), b, 0.2).g_c
    np.testing.assert_allclose(jax.grad(g_c)(0.3), finite_difference(g_c, 0.3), rtol=1e-6)
    g_c_s = lambda s: mfrnn.chaos_onset(mfrnn.Tanh(), 0.3, s).g_c
    np.testing.assert_allclose(jax.grad(g_c_s)(0.2), finite_difference(g_c_s, 0.2), rtol=1e-6)


def test_failure_is_visible():
    # ReLU at g > sqrt(2): the static variance runs away; no plausible number returned.
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(2.0, phi=mfrnn.ReLU()), throw=False)
    assert sol.result != mfrnn.RESULTS.successful
    with pytest.raises(eqx.EquinoxRuntimeError):
        mfrnn.solve_dmft(mfrnn.GaussianEnsemble(2.0, phi=mfrnn.ReLU()))
    # Mixed grid: only the bad point is flagged.
    mixed = mfrnn.solve_dmft(
        mfrnn.GaussianEnsemble(jnp.array([0.5, 2.0]), jnp.zeros(2), jnp.zeros(2), phi=mfrnn.ReLU()),
        throw=False,
    )
    ok = mfrnn.result_codes(mixed) == 0
    np.testing.assert_array_equal(ok, [True, False])


def test_bad_input():
    with pytest.raises(ValueError, match="`g`"):
        mfrnn.solve_dmft(mfrnn.GaussianEnsemble(-1.0))
    with pytest.raises(ValueError, match="`g`"):
        mfrnn.solve_dmft(mfrnn.GaussianEnsemble(float("nan")))
    # ValueError from mfrnn; TypeError first when the jaxtyping test hook is active.
    with pytest.raises((ValueError, TypeError), match="ensemble"):
        mfrnn.solve_dmft(mfrnn.LowRankEnsemble(1))  # type: ignore[arg-type]
    with pytest.raises(eqx.EquinoxRuntimeError, match="`g`"):
        eqx.filter_jit(lambda g: mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g)).delta0)(-1.0)
    with pytest.raises((ValueError, TypeError), match="phi"):
        mfrnn.chaos_onset("tanh")  # type: ignore[arg-type]


def test_no_recompilation_for_a_new_value(caplog):
    # One compiled program serves every value of g (arrays are arguments, not constants).
    float(mfrnn.solve_dmft(mfrnn.GaussianEnsemble(2.0)).delta0)
    with jax.log_compiles(True), caplog.at_level(logging.DEBUG):
        float(mfrnn.solve_dmft(mfrnn.GaussianEnsemble(2.7)).delta0)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiled, compiled


def test_series_and_quadrature_paths_agree():
    # Strong input (large Delta_inf / Delta0): Mehler's series has not converged and the
    # two-point quadrature takes over; eager (two programs) and traced (one) agree.
    gs, bs, ss = jnp.array([2.5, 3.0, 1.6]), jnp.array([0.3, 1.0, 0.0]), jnp.array([0.5, 2.0, 0.3])
    eager = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(gs, bs, ss))
    traced = jax.jit(lambda g, b, s: mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, b, s)))(gs, bs, ss)
    np.testing.assert_allclose(eager.delta0, traced.delta0, rtol=1e-12)
    np.testing.assert_allclose(eager.delta_inf, traced.delta_inf, rtol=1e-12)
    assert np.all(np.asarray(eager.residual) < 1e-9)
    assert float(eager.delta_inf[1] / eager.delta0[1]) > 0.8  # the quadrature's case


def test_invalid_traced_input_fails_without_throw():
    sol = jax.jit(lambda g: mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g), throw=False))(-1.0)
    assert sol.result != mfrnn.RESULTS.successful and np.isnan(float(sol.delta0))


def test_import_leaves_jax_config_and_cache_is_opt_in(tmp_path):
    script = (
        "import jax, mfrnn, pathlib, sys\n"
        "assert jax.config.jax_compilation_cache_dir is None\n"
        "folder = mfrnn.enable_compilation_cache(sys.argv[1])\n"
        "jax.jit(lambda x: x + 1)(1.0).block_until_ready()\n"
        "assert any(folder.iterdir())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], check=True)
