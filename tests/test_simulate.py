import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg

import mfrnn


def _linear_network(n, key, *, tau=1.0, with_input=False):
    kJ, kb, kw = jr.split(key, 3)
    J = 0.6 * jr.normal(kJ, (n, n)) / np.sqrt(n)
    W_in = jr.normal(kw, (n, 2)) if with_input else None
    return mfrnn.DenseNetwork(J, mfrnn.Linear(), bias=0.3 * jr.normal(kb, (n,)), W_in=W_in, tau=tau)


def test_linear_network_matches_matrix_exponential(getkey):
    n, tau = 6, 2.0
    net = _linear_network(n, getkey(), tau=tau)
    x0 = jr.normal(getkey(), (n,))
    ts = jnp.linspace(0.0, 5.0, 11)
    sol = mfrnn.simulate(
        net, x0, ts, stepsize_controller=dfx.PIDController(rtol=1e-12, atol=1e-12), dt0=0.01
    )
    A = (np.asarray(net.J) - np.eye(n)) / tau
    b = np.asarray(net.bias) / tau
    x_star = -np.linalg.solve(A, b)
    exact = np.stack([x_star + scipy.linalg.expm(A * t) @ (np.asarray(x0) - x_star) for t in ts])
    np.testing.assert_allclose(sol.ys, exact, atol=1e-10)


@pytest.mark.parametrize(
    "solver,order", [(dfx.Euler(), 1), (dfx.Heun(), 2), (dfx.Bosh3(), 3), (dfx.Tsit5(), 5)]
)
def test_empirical_convergence_order(getkey, solver, order):
    n = 20
    net = mfrnn.GaussianEnsemble(1.5).sample(n, key=getkey())
    x0 = jr.normal(getkey(), (n,))
    ts = jnp.array([0.0, 2.0])
    ref = mfrnn.simulate(
        net, x0, ts, stepsize_controller=dfx.PIDController(rtol=1e-13, atol=1e-13), dt0=0.01
    ).ys[-1]
    dts = [0.2, 0.1, 0.05, 0.025] if order < 5 else [0.4, 0.2, 0.1, 0.05]
    errors = [
        float(jnp.max(jnp.abs(
            mfrnn.simulate(net, x0, ts, solver=solver, stepsize_controller=dfx.ConstantStepSize(), dt0=dt).ys[-1]
            - ref
        )))
        for dt in dts
    ]
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    # At least the solver's order; Tsit5's small fifth-order constant lets sixth-order
    # terms show at these steps, hence the one-sided margin above.
    assert order - 0.35 < slope < order + 1.5, (errors, slope)


def test_euler_scan_equals_diffrax_euler(getkey):
    n, dt, n_steps = 8, 0.05, 200
    net = _linear_network(n, getkey(), tau=1.5, with_input=True)
    net = eqx.tree_at(lambda m: m.phi, net, mfrnn.Tanh())
    u = mfrnn.PiecewiseConstantInput(jr.normal(getkey(), (n_steps, 2)), dt)
    x0 = jr.normal(getkey(), (n,))
    ts = dt * jnp.arange(0, n_steps + 1, 10)
    ref = mfrnn.simulate(
        net, x0, ts, inputs=u, solver=dfx.Euler(), stepsize_controller=dfx.ConstantStepSize(), dt0=dt
    ).ys
    scan = mfrnn.simulate_euler(net, x0, dt=dt, n_steps=n_steps, inputs=u.values, save_every=10)
    np.testing.assert_allclose(scan, ref, atol=1e-12)
    scan2 = mfrnn.simulate_euler(net, x0, dt=dt, n_steps=n_steps, inputs=u, save_every=10)
    np.testing.assert_allclose(scan2, ref, atol=1e-12)


def _ou_setup(key, n=4, tau=1.5):
    J = 0.5 * jr.normal(key, (n, n)) / np.sqrt(n)
    net = mfrnn.DenseNetwork(J, mfrnn.Linear(), tau=tau)
    A = (np.asarray(J) - np.eye(n)) / tau
    sigma = 0.7
    Q = 2 * sigma**2 / tau * np.eye(n)  # diffusion sigma sqrt(2 / tau) per unit
    P = scipy.linalg.solve_continuous_lyapunov(A, -Q)
    return net, sigma, A, P


def _stationary_cov(xs, burn):
    x = np.asarray(xs)[:, burn:, :].reshape(-1, xs.shape[-1])
    return np.cov(x.T)


def test_euler_scan_noise_statistics_do_not_depend_on_dt(getkey):
    net, sigma, A, P = _ou_setup(getkey())
    trials, t_total, burn_t = 2000, 60.0, 10.0
    x0 = jnp.zeros((trials, net.n))
    covs = {}
    for dt in (0.01, 0.04):
        steps = int(round(t_total / dt))
        save = int(round(1.0 / dt))
        keys = jr.split(getkey(), trials)
        xs = jax.vmap(
            lambda x, k: mfrnn.simulate_euler(
                net, x, dt=dt, n_steps=steps, save_every=save, noise_std=sigma, key=k
            )
        )(x0, keys)
        covs[dt] = _stationary_cov(xs, int(burn_t))
        # Exact stationary covariance of the Euler map M x + sqrt(2 alpha) sigma xi.
        M = np.eye(net.n) + dt * A
        P_euler = scipy.linalg.solve_discrete_lyapunov(M, 2 * dt / 1.5 * sigma**2 * np.eye(net.n))
        np.testing.assert_allclose(covs[dt], P_euler, atol=0.03 * np.max(np.diag(P)))
    # Both within a few percent of the continuous-time (Lyapunov) value: the noise
    # intensity is in physical units, only the O(dt) Euler bias remains.
    for dt, C in covs.items():
        np.testing.assert_allclose(np.diag(C), np.diag(P), rtol=0.03 + dt)
    # The isolated-unit convention: noise_std is the stationary std of a J = 0 unit.
    free = mfrnn.DenseNetwork(jnp.zeros((1, 1)), mfrnn.Linear(), tau=3.0)
    xs = jax.vmap(
        lambda k: mfrnn.simulate_euler(free, jnp.zeros(1), dt=0.01, n_steps=3000, save_every=100, noise_std=0.5, key=k)
    )(jr.split(getkey(), 4000))
    np.testing.assert_allclose(np.std(np.asarray(xs)[:, 10:]), 0.5 * np.sqrt(1 / (1 - 0.01 / 6)), rtol=0.02)


def test_diffrax_sde_noise_statistics_do_not_depend_on_dt(getkey):
    net, sigma, A, P = _ou_setup(getkey())
    trials = 300
    ts = jnp.arange(0.0, 40.0 + 0.5, 0.5)
    variances = []
    for dt in (0.01, 0.04):
        keys = jr.split(getkey(), trials)
        xs = jax.vmap(
            lambda k: mfrnn.simulate(net, jnp.zeros(net.n), ts, noise_std=sigma, dt0=dt, key=k).ys
        )(keys)
        C = _stationary_cov(xs, 20)
        variances.append(np.trace(C))
    np.testing.assert_allclose(variances, np.trace(P), rtol=0.06)
    np.testing.assert_allclose(variances[0], variances[1], rtol=0.06)


def test_low_rank_network_equals_dense(getkey):
    ens = mfrnn.LowRankEnsemble(
        2, mean=jnp.array([0.5, 0.0, 1.0, 0.0, 0.0]), cov=jnp.eye(5) * 0.8, n_inputs=1, g=0.7
    )
    lr = ens.sample(60, key=getkey())
    dense = mfrnn.DenseNetwork(lr.dense_matrix(), lr.phi, bias=lr.bias, W_in=lr.W_in)
    x0 = jr.normal(getkey(), (60,))
    ts = jnp.linspace(0.0, 10.0, 21)
    u = lambda t: jnp.array([jnp.sin(t)])
    a = mfrnn.simulate(lr, x0, ts, inputs=u).ys
    b = mfrnn.simulate(dense, x0, ts, inputs=u).ys
    np.testing.assert_allclose(a, b, atol=1e-9)
    x = jr.normal(getkey(), (60,))
    np.testing.assert_allclose(lr(0.0, x, None), dense(0.0, x, None), atol=1e-12)
    np.testing.assert_allclose(lr.kappa(x), lr.n_vectors.T @ jnp.tanh(x) / 60, atol=1e-13)


def test_batching_over_trials_and_networks(getkey):
    n, trials = 30, 5
    ts = jnp.linspace(0.0, 5.0, 6)
    x0s = jr.normal(getkey(), (trials, n))
    net = mfrnn.GaussianEnsemble(1.5).sample(n, key=getkey())
    batched = jax.vmap(lambda x: mfrnn.simulate(net, x, ts).ys)(x0s)
    single = jnp.stack([mfrnn.simulate(net, x, ts).ys for x in x0s])
    np.testing.assert_allclose(batched, single, atol=1e-8)
    # Networks vmapped: sample inside vmap over keys, simulate each.
    keys = jr.split(getkey(), 3)
    nets = eqx.filter_vmap(lambda k: mfrnn.GaussianEnsemble(1.5).sample(n, key=k))(keys)
    out = eqx.filter_vmap(lambda m, x: mfrnn.simulate(m, x, ts).ys)(nets, x0s[:3])
    for i, k in enumerate(keys):
        ref = mfrnn.simulate(mfrnn.GaussianEnsemble(1.5).sample(n, key=k), x0s[i], ts).ys
        np.testing.assert_allclose(out[i], ref, atol=1e-8)


def test_no_recompile_for_new_values(getkey):
    net = mfrnn.GaussianEnsemble(1.2).sample(10, key=getkey())
    fn = eqx.debug.assert_max_traces(
        lambda m, x: mfrnn.simulate_euler(m, x, dt=0.1, n_steps=10), max_traces=1
    )
    jfn = eqx.filter_jit(fn)
    for _ in range(3):
        jfn(net, jr.normal(getkey(), (10,)))
        net = eqx.tree_at(lambda m: m.J, net, net.J * 1.01)


def test_float32_preserved(getkey):
    J = jr.normal(getkey(), (10, 10), dtype=jnp.float32) / 4
    net = mfrnn.DenseNetwork(J)
    xs = mfrnn.simulate_euler(net, jnp.ones(10, jnp.float32), dt=0.1, n_steps=5, noise_std=0.1, key=getkey())
    assert xs.dtype == jnp.float32


def test_bad_inputs(getkey):
    net = mfrnn.GaussianEnsemble(1.0).sample(10, key=getkey())
    ts = jnp.linspace(0.0, 1.0, 3)
    with pytest.raises(ValueError, match="x0"):
        mfrnn.simulate(net, jnp.zeros(11), ts)
    with pytest.raises(ValueError, match="key"):
        mfrnn.simulate(net, jnp.zeros(10), ts, noise_std=0.1, dt0=0.1)
    with pytest.raises(ValueError, match="noise_std"):
        mfrnn.simulate_euler(net, jnp.zeros(10), dt=0.1, n_steps=3, noise_std=-1.0, key=getkey())
    with pytest.raises(ValueError, match="inputs"):
        mfrnn.simulate_euler(net, jnp.zeros(10), dt=0.1, n_steps=3, inputs=jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match="J"):
        mfrnn.DenseNetwork(jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="W_in"):
        mfrnn.DenseNetwork(jnp.zeros((3, 3)), W_in=jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match="`m` and `n`"):
        mfrnn.LowRankNetwork(jnp.zeros((5, 2)), jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match="J"):
        mfrnn.DenseNetwork(jnp.full((2, 2), jnp.nan))


def test_trial_summary_averages_trials_and_keeps_kappa_per_trial(getkey):
    # mfrnn.simulate_trials runs in tests/test_cli.py (`mfrnn simulate --trials`); here
    # the summary alone, on given states (no integration).
    net = mfrnn.LowRankEnsemble.rank_one(mean_m=1.0, mean_n=2.0).sample(20, key=getkey())
    xs = jr.normal(getkey(), (3, 12, 20))
    summary = mfrnn.trial_summary(xs, discard=2, network=net)
    per_trial = [mfrnn.activity_summary(x, discard=2) for x in xs]
    for name, value in per_trial[0].items():
        np.testing.assert_allclose(summary[name], np.mean([s[name] for s in per_trial]),
                                   rtol=1e-6)
    kappa = np.mean(np.tanh(np.asarray(xs[:, 2:])) @ np.asarray(net.n_vectors), axis=1) / 20
    np.testing.assert_allclose(summary["kappa"], kappa, rtol=1e-5)  # (trial, rank)
    dense = mfrnn.GaussianEnsemble(1.0).sample(20, key=getkey())
    assert "kappa" not in mfrnn.trial_summary(xs, network=dense)
    with pytest.raises((ValueError, TypeError), match="trial"):  # TypeError: type checks
        mfrnn.trial_summary(xs[0])
