"""Continuous attractors at rank two: a ring of fixed points (rotation-symmetric
overlaps, Mastrogiuseppe & Ostojic 2018, Beiran et al. 2021) is its own phase, with its
radius and the eigenvalues transverse to it; sampled finite networks settle near the
ring and drift along it much more slowly than they relax onto it."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn


def ring(g, s2=2.0):
    """Rank two, zero means, Var n = 9, Cov(m_1, n_1) = 2, Cov(m_2, n_2) = s2."""
    cov = np.eye(4)
    cov[2, 2] = cov[3, 3] = 9.0
    cov[0, 2] = cov[2, 0] = 2.0
    cov[1, 3] = cov[3, 1] = s2
    return mfrnn.LowRankEnsemble(rank=2, mean=jnp.zeros(4), cov=jnp.asarray(cov), g=g)


def test_ring_is_a_continuous_attractor_and_asymmetry_breaks_it():
    gs = jnp.array([0.5, 1.5])
    pd = mfrnn.phase_diagram(ring(gs), throw=True)
    names = [mfrnn.PHASE_NAMES[int(c)] for c in pd.phase]
    assert names == ["continuous_attractor"] * 2
    assert np.all(np.asarray(pd.manifold_dimension) == 1)
    assert np.all(np.asarray(pd.outlier) < -0.1)  # transverse eigenvalues, not the 0 mode
    np.testing.assert_allclose(pd.bulk_radius, [0.3028, 0.9084], atol=1e-4)
    for i, g in enumerate(gs):
        # The ring through any angle: solve_lowrank from an off-axis guess.
        sol = mfrnn.solve_lowrank(ring(g), jnp.array([1.0, 0.3]))
        assert int(sol.manifold_dimension) == 1 and bool(sol.stable)
        np.testing.assert_allclose(
            jnp.linalg.norm(sol.kappa), jnp.linalg.norm(pd.kappa[i]), rtol=1e-8
        )
        # One eigenvalue is the Goldstone mode (0 to rounding), the others negative.
        eig = np.sort(np.abs(np.asarray(sol.eigenvalues)))
        assert eig[0] < 1e-10 and np.all(np.asarray(sol.eigenvalues.real)[np.abs(
            np.asarray(sol.eigenvalues)) > 1e-10] < 0)
    # Unequal overlaps: two isolated pairs of fixed points, the stronger axis stable.
    broken = mfrnn.phase_diagram(ring(gs, s2=1.5), throw=True)
    assert [mfrnn.PHASE_NAMES[int(c)] for c in broken.phase] == ["fixed_point"] * 2
    assert np.all(np.asarray(broken.manifold_dimension) == 0)
    np.testing.assert_allclose(broken.outlier, -0.25, atol=1e-8)  # 1.5 / 2 - 1


def test_sampled_ring_networks_settle_on_the_ring_and_drift_slowly():
    g = 0.5
    radius = float(jnp.linalg.norm(mfrnn.solve_lowrank(ring(g), jnp.array([1.0, 0.0])).kappa))
    n, t1 = 4000, 40.0
    ts = jnp.linspace(0.0, t1, 81)
    radii, drifts, relax = [], [], []
    for key in jr.split(jr.key(3), 2):
        k_net, k_x = jr.split(key)
        net = ring(g).sample(n, key=k_net)
        net = jax.tree.map(lambda x: x.astype(jnp.float32) if eqx_float(x) else x, net)
        angles = jnp.array([0.4, 2.5])
        # Start inside the ring at half its radius, at two angles.
        k0 = 0.5 * radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)
        x0 = k0 @ net.m.T + 0.1 * jr.normal(k_x, (2, n), jnp.float32)
        sol = jax.vmap(lambda x: mfrnn.simulate(
            net, x, ts, stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-5)
        ).ys)(x0)
        kappa = jax.vmap(jax.vmap(net.kappa))(sol)  # (2, time, 2)
        r = np.asarray(jnp.linalg.norm(kappa, axis=-1))
        theta = np.unwrap(np.asarray(jnp.arctan2(kappa[..., 1], kappa[..., 0])), axis=1)
        late = ts >= 20.0
        radii.append(r[:, late].mean(1))
        # Drift along the ring (rad per unit time, late) against the relaxation rate
        # onto it (from the radial gap's decay over the first few time constants).
        drifts.append(np.abs(theta[:, -1] - theta[:, late][:, 0]) / (t1 - 20.0))
        gap = np.abs(r - r[:, -1:])
        i1, i2 = np.searchsorted(np.asarray(ts), [1.0, 4.0])
        relax.append(np.log(gap[:, i1] / gap[:, i2]) / float(ts[i2] - ts[i1]))
    radii, drifts, relax = map(np.concatenate, (radii, drifts, relax))
    # The ensemble's ring up to finite size (as Delta0 in test_lowrank: 10 %): the
    # sampled overlaps are 2 +- sqrt(13 / 4000) = 2 +- 0.06, unequal along the two axes.
    np.testing.assert_allclose(radii, radius, rtol=0.1)
    assert np.all(radii > 1.2)  # on the ring, not at kappa = 0 nor on a single axis pair
    # Relaxation onto the ring at about the theory's transverse rate (0.74 at g = 0.5);
    # the drift along it an order of magnitude slower.
    transverse = -float(mfrnn.phase_diagram(ring(g)).outlier)
    assert np.all(relax > 0.3) and np.all(relax < 1.5 * transverse), relax
    assert np.all(drifts < 0.1 * transverse), drifts


def eqx_float(x):
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)


@pytest.mark.parametrize("rank", [3])
def test_sphere_of_fixed_points_at_rank_three(rank):
    # Isotropic overlaps in three latent dimensions: a sphere (manifold dimension 2).
    cov = np.eye(2 * rank)
    for r in range(rank):
        cov[rank + r, rank + r] = 9.0
        cov[r, rank + r] = cov[rank + r, r] = 2.0
    ens = mfrnn.LowRankEnsemble(rank=rank, mean=jnp.zeros(2 * rank), cov=jnp.asarray(cov), g=0.5)
    pd = mfrnn.phase_diagram(ens, throw=True)
    assert mfrnn.PHASE_NAMES[int(pd.phase)] == "continuous_attractor"
    assert int(pd.manifold_dimension) == rank - 1
    np.testing.assert_allclose(
        jnp.linalg.norm(pd.kappa), jnp.linalg.norm(mfrnn.phase_diagram(ring(0.5)).kappa),
        rtol=1e-8,
    )
