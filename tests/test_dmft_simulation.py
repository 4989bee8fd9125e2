"""DMFT against simulations of networks sampled from the same ensemble, and the
simulation-side estimators against exact references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfrnn


def test_autocorrelation_estimator_on_exact_ou_process():
    # Independent AR(1) = exactly sampled OU processes: Delta(tau) = s^2 e^{-tau} + m_i^2.
    rng = np.random.default_rng(0)
    dt, n_time, n = 0.05, 8000, 400
    a = np.exp(-dt)
    offsets = rng.normal(0, 0.5, n)  # quenched per-unit means: Delta_inf = 0.25
    x = np.empty((n_time, n))
    x[0] = rng.normal(size=n)
    noise = rng.normal(size=(n_time, n)) * np.sqrt(1 - a * a)
    for t in range(1, n_time):
        x[t] = a * x[t - 1] + noise[t]
    ac = mfrnn.activity_autocorrelation(x + offsets, dt, max_lag=3.0)
    np.testing.assert_allclose(ac.delta0, 1.0 + np.var(offsets), rtol=0.02)
    np.testing.assert_allclose(ac.delta_inf, np.var(offsets), atol=0.01)
    np.testing.assert_allclose(ac.tau_half, np.log(2), rtol=0.05)
    lags = np.asarray(ac.lags)
    np.testing.assert_allclose(
        np.asarray(ac.autocorrelation) - float(ac.delta_inf), np.exp(-lags), atol=0.03
    )
    with pytest.raises(ValueError, match="dt"):
        mfrnn.activity_autocorrelation(x, -1.0)


def test_lyapunov_estimator_on_linear_network():
    # Linear network: the exponents are the eigenvalues of -1 + J (J symmetric: real).
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 30)) / np.sqrt(30)
    J = 0.45 * (a + a.T) / np.sqrt(2)
    net = mfrnn.DenseNetwork(jnp.asarray(J), phi=mfrnn.Linear())
    est = mfrnn.lyapunov_exponents(
        net, jnp.asarray(rng.normal(size=30)), dt=0.1, n_steps=20000, n_exponents=3,
        key=jax.random.key(0),
    )
    exact = np.sort(np.linalg.eigvalsh(J))[::-1][:3] - 1.0
    np.testing.assert_allclose(est.exponents, exact, atol=2e-3)  # O(1/T) convergence
    with pytest.raises(ValueError, match="x0"):
        mfrnn.lyapunov_exponents(net, jnp.zeros(3), key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):  # a required keyword
        mfrnn.lyapunov_exponents(net, jnp.zeros(30))


# N >= 2000 and three networks per point; N = 3000 at g = 2, where the finite-size bias
# of lambda_max is about -11 % at N = 2000 and -6 % at N = 3000 (docs/theory/pitfalls.md).
@pytest.mark.parametrize("g,n", [(2.0, 3000), (3.0, 2000)])
def test_theory_against_sampled_networks(g, n):
    ens = mfrnn.GaussianEnsemble(g)
    ac_theory = mfrnn.dmft_autocorrelation(ens)
    lyap_theory = mfrnn.dmft_lyapunov(ens)
    measured = []
    for seed in range(3):
        k_net, k_x0 = jax.random.split(jax.random.key(seed))
        # float32 simulation: half the memory traffic of J; ample for 2-10 % checks.
        net = mfrnn.to_dtype(ens.sample(n, key=k_net), jnp.float32)
        x0 = jax.random.normal(k_x0, (n,), jnp.float32)
        est = mfrnn.lyapunov_exponents(
            net, x0, dt=0.2, n_steps=1000, transient_steps=150, renorm_every=1, save_states=True,
            key=jax.random.fold_in(k_x0, 1),
        )
        ac = mfrnn.activity_autocorrelation(est.xs, 0.2, max_lag=40.0)
        measured.append([float(ac.delta0), float(ac.tau_half), float(est.exponents[0])])
    delta0, tau_half, lam = np.mean(measured, axis=0)
    np.testing.assert_allclose(delta0, ac_theory.delta0, rtol=0.02)
    np.testing.assert_allclose(tau_half, ac_theory.tau_half, rtol=0.10)
    np.testing.assert_allclose(lam, lyap_theory.lyapunov, rtol=0.10)
