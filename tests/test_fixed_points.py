"""Fixed and slow points (issue 13): hand-built networks with known answers, the
trained 3-bit flip-flop, latent against full space, continuation, linearisation,
the `mfrnn analyze` command and bad input."""

import json

import jax
import jax.numpy as jnp
import jax.random as jr
import mfrnn
import numpy as np
import pytest
from mfrnn.cli import main
from scipy.optimize import brentq
from scipy.special import ndtri


def _euler_states(net, x0s, n_steps=40, dt=0.5, inputs=None):
    u = None if inputs is None else jnp.broadcast_to(inputs, (n_steps, inputs.shape[0]))
    xs = jax.vmap(lambda x: mfrnn.simulate_euler(net, x, dt=dt, n_steps=n_steps, inputs=u))(x0s)
    return xs.reshape(-1, net.n)


def _quantile_rank_one(n, sigma_mn, sigma_n):
    """Zero-mean rank-one loadings whose sample law is the theory's up to quadrature:
    m at the normal quantiles (twice), n = sigma_mn m + y with y = +-s on the two copies,
    so that mean(y f(m)) = 0 exactly for every f."""
    half = n // 2
    z = ndtri((np.arange(half) + 0.5) / half)
    m = np.concatenate([z, z])
    y = np.sqrt(sigma_n**2 - sigma_mn**2) * np.concatenate([np.ones(half), -np.ones(half)])
    return m, sigma_mn * m + y


def test_linear_network_has_its_analytic_fixed_point(getkey):
    n = 16
    J = 1.5 * jr.normal(getkey(), (n, n)) / np.sqrt(n)  # several unstable directions
    b, W = jr.normal(getkey(), (n,)), jr.normal(getkey(), (n, 2))
    u = jnp.array([0.4, -0.7])
    net = mfrnn.DenseNetwork(J, mfrnn.Linear(), bias=b, W_in=W, tau=2.0)
    fps = mfrnn.find_fixed_points(net, 3 * jr.normal(getkey(), (24, n)), u)
    exact = np.linalg.solve(np.eye(n) - np.asarray(J), np.asarray(b + W @ u))
    assert fps.points.shape == (1, n) and bool(fps.is_fixed[0]) and int(fps.count[0]) == 24
    np.testing.assert_allclose(fps.points[0], exact, rtol=0, atol=1e-10)
    assert float(fps.speed[0]) < 1e-10
    ev = np.linalg.eigvals(np.asarray(J) - np.eye(n)) / 2.0
    ev = ev[np.argsort(-ev.real)]
    np.testing.assert_allclose(np.sort_complex(np.asarray(fps.eigenvalues[0])),
                               np.sort_complex(ev), atol=1e-12)
    assert int(fps.n_unstable[0]) == int(np.sum(np.linalg.eigvals(np.asarray(J)).real > 1)) > 0
    assert fps.n_stable == 0 and fps.n_slow == 0


def test_rank_one_zero_mean_network_has_plus_minus_kappa_and_a_saddle(getkey):
    sigma_mn, sigma_n, n = 2.0, 3.0, 2000
    m, nv = _quantile_rank_one(n, sigma_mn, sigma_n)
    net = mfrnn.LowRankNetwork(m, nv)
    theory = mfrnn.solve_lowrank(mfrnn.LowRankEnsemble.rank_one(sigma_mn=sigma_mn, sigma_n=sigma_n))
    kappa_star = float(jnp.max(theory.kappa))
    states = _euler_states(net, 2 * jr.normal(getkey(), (8, n)))[::10]
    fps = mfrnn.find_fixed_points(net, states)
    assert bool(jnp.all(fps.is_fixed)) and fps.points.shape[0] == 3
    assert float(jnp.max(fps.speed)) < 1e-10  # Newton-polished in float64
    kappa = np.sort(np.asarray(fps.kappa[:, 0]))
    assert abs(kappa[1]) < 1e-12
    # The sample-exact kappa (root of kappa = mean(n tanh(m kappa))) to Newton precision;
    # the theory's kappa* to the quantile rule's quadrature error.
    exact = brentq(lambda k: np.mean(nv * np.tanh(m * k)) - k, 0.5, 3.0, xtol=1e-14)
    np.testing.assert_allclose(kappa[[0, 2]], [-exact, exact], rtol=1e-10)
    np.testing.assert_allclose(kappa[[0, 2]], [-kappa_star, kappa_star], rtol=1e-3)
    by_kappa = {round(float(k), 6): int(u) for k, u in zip(fps.kappa[:, 0], fps.n_unstable)}
    assert by_kappa[0.0] == 1  # kappa = 0: a saddle, unstable along m
    assert [by_kappa[k] for k in by_kappa if k != 0.0] == [0, 0]
    # At kappa = 0 the outlier is -1 + n.m/N = -1 + sample sigma_mn (theory: 1).
    lam = np.asarray(fps.eigenvalues)[np.argmin(np.abs(np.asarray(fps.kappa[:, 0])))][0]
    assert lam.real == pytest.approx(-1 + np.mean(m * nv), abs=1e-12)


def test_slow_points_without_a_fixed_point_nearby_are_labelled_slow(getkey):
    # Uncoupled units dx/dt = -x + 2 tanh(x) - 0.6: past the saddle-node (b_c = -0.533)
    # only the root x_- < 0 is left; q keeps local minima at the fold x_f = acosh(sqrt 2),
    # where |F| = x_f - 2 tanh(x_f) + 0.6 > 0.
    net = mfrnn.DenseNetwork(2.0 * jnp.eye(3), bias=jnp.full(3, -0.6))
    # One start in each of the 8 basins of q (x < -x_f: the root; x > -x_f: the fold).
    corners = np.array([[a, b, c] for a in (-2.0, 1.5) for b in (-2.0, 1.5) for c in (-2.0, 1.5)])
    starts = np.repeat(corners, 3, axis=0) + 0.3 * jr.normal(getkey(), (24, 3))
    fps = mfrnn.find_fixed_points(net, starts)
    x_minus = brentq(lambda x: -x + 2 * np.tanh(x) - 0.6, -4.0, -1.0, xtol=1e-15)
    x_f = np.arccosh(np.sqrt(2.0))
    f_f = -x_f + 2 * np.tanh(x_f) - 0.6
    assert fps.n_fixed == 1 and fps.n_slow == 7
    np.testing.assert_allclose(fps.points[0], np.full(3, x_minus), atol=1e-12)
    for p, q, fixed in zip(np.asarray(fps.points[1:]), np.asarray(fps.q[1:]),
                           np.asarray(fps.is_fixed[1:])):
        at_fold = np.abs(p - x_f) < 1e-5
        assert not fixed and np.all(at_fold | (np.abs(p - x_minus) < 1e-5))
        assert q == pytest.approx(0.5 * np.sum(at_fold) * f_f**2, rel=1e-8)


def test_eigenvalues_match_finite_differences_and_modes(getkey):
    n = 40
    J = 1.6 * jr.normal(getkey(), (n, n)) / np.sqrt(n)
    W_out = jr.normal(getkey(), (n, 2))
    net = mfrnn.DenseNetwork(J, bias=0.3 * jr.normal(getkey(), (n,)), W_out=W_out, tau=3.0)
    fps = mfrnn.find_fixed_points(net, _euler_states(net, jr.normal(getkey(), (6, n)))[::8],
                                  throw=False)
    fixed = np.flatnonzero(np.asarray(fps.is_fixed))
    assert fixed.size >= 1
    h = 1e-6
    for i in fixed:
        x = fps.points[i]
        cols = [(np.asarray(net(None, x + h * e, None)) - np.asarray(net(None, x - h * e, None)))
                / (2 * h) for e in jnp.eye(n)]
        ev = np.linalg.eigvals(np.stack(cols, axis=1))
        np.testing.assert_allclose(np.sort_complex(np.asarray(fps.eigenvalues[i])),
                                   np.sort_complex(ev), atol=1e-7)
        lin = mfrnn.linearise(net, x, n_modes=3)
        A = np.asarray(net.jacobian(x))
        R, L = np.asarray(lin.right), np.asarray(lin.left)
        lam = np.asarray(lin.eigenvalues)[:3]
        np.testing.assert_allclose(A @ R, R * lam[None, :], atol=1e-10)
        np.testing.assert_allclose(L.T @ A, lam[:, None] * L.T, atol=1e-10)
        np.testing.assert_allclose(np.sum(L * R, axis=0), 1.0, atol=1e-10)
        np.testing.assert_allclose(lin.time_constants, -1 / lam.real)
        cos = np.abs(R.conj().T @ np.asarray(W_out)) / np.linalg.norm(np.asarray(W_out), axis=0)
        np.testing.assert_allclose(lin.readout_projection, cos)


def _rank_two():
    # n_r = 2 m_r + noise: four states at N -> inf, two stable ones in this sample.
    cov = np.array([[1.0, 0.0, 2.0, 0.0, 0.2], [0.0, 1.0, 0.0, 2.0, 0.0],
                    [2.0, 0.0, 9.0, 0.0, 0.5], [0.0, 2.0, 0.0, 9.0, 0.3],
                    [0.2, 0.0, 0.5, 0.3, 1.0]])
    ens = mfrnn.LowRankEnsemble(2, mean=np.zeros(5), cov=cov, n_inputs=1, bias=0.1)
    return ens.sample(300, key=jr.key(5))


def test_latent_and_full_space_fixed_points_agree(getkey):
    net = _rank_two()
    u = jnp.array([0.2])
    latent = mfrnn.find_latent_fixed_points(net, u)
    full = mfrnn.find_fixed_points(net, _euler_states(net, 2 * jr.normal(getkey(), (12, net.n)),
                                                      inputs=u)[::6], u)
    assert latent.n_fixed == 5 and latent.n_stable == 2
    assert full.n_stable == 2 and full.n_fixed >= 2
    dense_net = mfrnn.DenseNetwork(net.dense_matrix(), bias=net.bias, W_in=net.W_in)
    for x, ev in zip(np.asarray(full.points), np.asarray(full.eigenvalues)):
        d = np.max(np.abs(np.asarray(latent.points) - x), axis=1)
        j = int(np.argmin(d))
        assert d[j] < 1e-8
        # The dense Jacobian has the latent form's eigenvalues, and -1 else.
        dense = mfrnn.jacobian_eigenvalues(dense_net, x)
        np.testing.assert_allclose(np.asarray(latent.eigenvalues[j]), dense, atol=1e-9)
        np.testing.assert_allclose(ev, dense, atol=1e-9)


def test_continuation_loses_the_branch_at_the_saddle_node():
    net = _rank_two()
    path = jnp.linspace(0.0, 1.5, 31)[:, None]
    # Stable states along the path from the latent solution (15 x 15 guesses each).
    stable = [np.asarray(fps.points)[np.asarray(fps.stable)] for fps in
              (mfrnn.find_latent_fixed_points(net, p, per_axis=15) for p in path)]
    lost = []
    for start in stable[0]:
        cont = mfrnn.continue_fixed_point(net, start, path)
        ok = np.asarray(cont.converged)
        for i in np.flatnonzero(ok):  # on a stable branch of the latent solution
            assert np.min(np.max(np.abs(stable[i] - np.asarray(cont.points[i])), axis=1)) < 1e-8
        assert np.all(np.asarray(cont.max_real)[ok] < 0) and cont.stability_changes == ()
        if cont.lost_at >= 0:
            # Lost exactly where the latent solution loses a stable state (saddle-node).
            assert len(stable[cont.lost_at]) < len(stable[cont.lost_at - 1])
            assert np.all(np.isnan(np.asarray(cont.points)[cont.lost_at:]))
            lost.append(cont.lost_at)
    assert len(stable[-1]) == 1 and len(lost) == 1


FF_TASK = dict(dt=20.0, slot=200.0, pulse=40.0, grace=80.0, n_slots=6, input_noise=0.0)


def test_trained_flipflop_has_eight_memory_states_and_cli_analyze(tmp_path, capsys):
    task = mfrnn.FlipFlop(3, **FF_TASK)
    config = mfrnn.TrainConfig(n_steps=800, batch_size=32, learning_rate=1e-2, eval_every=25,
                               target_loss=9e-3, dtype="float64")
    run = tmp_path / "ff"
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=32), config, key=jr.key(0),
                       checkpoint=run / "checkpoint.mfrnn")
    assert result.steps_to_criterion[0] is not None
    net = result.member(0)
    u, *_ = task.sample(jr.key(1), 32)
    states, _ = mfrnn.trajectory_states(net, u, dt=task.dt, n_states=256, key=jr.key(2))
    fps = mfrnn.find_fixed_points(net, states, throw=False)
    stable = np.asarray(fps.stable)
    assert stable.sum() == 8
    assert float(jnp.max(fps.speed[fps.is_fixed])) < 1e-10
    z = np.asarray(jax.vmap(net.readout)(fps.points[stable]))
    assert np.all(np.abs(z) > 0.5)  # each one a memory: a corner of the cube
    assert len({tuple(np.sign(row)) for row in z}) == 8
    assert np.sum(np.asarray(fps.n_unstable)[np.asarray(fps.is_fixed)] == 1) >= 1  # saddles

    assert main(["analyze", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_stable"] == 8 and out["converged"]
    assert out["n_fixed_points"] >= 9 and out["n_slow_points"] >= 0
    assert out["spectral_radius"] == pytest.approx(mfrnn.spectral_radius(net))
    assert out["bulk_radius"] == pytest.approx(0.9)
    saved = json.loads((run / "analysis.json").read_text())
    assert saved["n_stable"] == 8 and len(saved["points"]) == out["n_fixed_points"] + out["n_slow_points"]
    for name in ("fixed_points.png", "spectrum.png"):
        assert (run / name).stat().st_size > 10_000
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(run), "--input", "1", "0"])
    assert info.value.code == 2 and "`--input` needs 3 values" in capsys.readouterr().err


def test_bad_input_names_the_argument():
    net = mfrnn.DenseNetwork(jnp.eye(4), W_in=jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="`inputs` must be one constant input of shape \\(2,\\)"):
        mfrnn.find_fixed_points(net, jnp.zeros((3, 4)), jnp.zeros(3))
    with pytest.raises(ValueError, match="`initial_states`"):
        mfrnn.find_fixed_points(net, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="needs a LowRankNetwork, got DenseNetwork"):
        mfrnn.find_latent_fixed_points(net)
    with pytest.raises(ValueError, match="`inputs` must have shape \\(steps, n_in=2\\)"):
        mfrnn.continue_fixed_point(net, jnp.zeros(4), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="`n_modes`"):
        mfrnn.linearise(net, jnp.zeros(4), n_modes=0)
    with pytest.raises(ValueError, match="`inputs` was given but the network has no `W_in`"):
        mfrnn.find_fixed_points(mfrnn.DenseNetwork(jnp.eye(4)), jnp.zeros((3, 4)), jnp.zeros(2))
