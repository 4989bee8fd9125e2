"""Grid (leading batch) axes in MixtureEnsemble's means, covs and gains."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn


PHI = mfrnn.Tanh(order=61)
SMN = (2.4, 3.2, 3.8)  # Cov(m, n) of population 0 over the grid
KAPPA0 = jnp.array([[1.0]])


def _cov(smn):
    return [[1.0, smn], [smn, 16.0]]


def _covs(smn0):
    # Population 0's overlap smn0, population 1's 0.8.
    return jnp.array([_cov(smn0), _cov(0.8)])


def _mixture(covs, means=None):
    means = jnp.zeros(covs.shape[:-3] + (2, 2)) if means is None else means
    return mfrnn.MixtureEnsemble(1, fractions=[0.5, 0.5], means=means, covs=covs, phi=PHI)


def _grid():
    return _mixture(jnp.stack([_covs(s) for s in SMN]))  # covs (3, 2, 2, 2)


def test_batched_shapes_and_errors():
    ens = _grid()
    assert ens.covs.shape == (3, 2, 2, 2) and ens.means.shape == (3, 2, 2)
    assert ens.n_populations == 2
    # Batch axes broadcast between means and covs.
    ens = _mixture(ens.covs, means=jnp.zeros((2, 2)))
    assert ens.means.shape == (2, 2) and ens.n_populations == 2
    with pytest.raises(ValueError, match=r"`means`.*\(\.\.\., 2, 2\)"):
        _mixture(ens.covs, means=jnp.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match=r"`covs`.*\(\.\.\., 2, 2, 2\)"):
        _mixture(jnp.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        _mixture(ens.covs, means=jnp.zeros((4, 2, 2)))
    # A non-PSD matrix in one grid cell is found and named.
    bad = ens.covs.at[1, 0, 0, 1].set(5.0).at[1, 0, 1, 0].set(5.0)
    with pytest.raises(ValueError, match=r"`covs\[1, 0\]` must be positive semi-definite"):
        _mixture(bad)
    with pytest.raises(ValueError, match=r"`covs\[2, 1\]` must be symmetric"):
        _mixture(ens.covs.at[2, 1, 0, 1].set(0.3))
    with pytest.raises(ValueError, match="vmap over"):
        ens.sample(10, key=jr.key(0))
    with pytest.raises(ValueError, match=r"`gains`.*\(\.\.\., 2\)"):
        ens.with_gains(jnp.ones((3, 3)))


def test_vmap_over_batched_mixture():
    ens = _grid()
    # Map the grid fields only; fractions (one per population) and g stay shared.
    axes = eqx.tree_at(
        lambda e: (e.means, e.covs), jax.tree.map(lambda _: None, ens), (0, 0),
        is_leaf=lambda x: x is None,
    )
    key = jr.key(1)
    m = jax.vmap(lambda e: e.sample(40, key=key).n_vectors, in_axes=(axes,))(ens)
    assert m.shape == (3, 40, 1)
    one = _mixture(_covs(SMN[2])).sample(40, key=key).n_vectors
    np.testing.assert_allclose(m[2], one, rtol=1e-12)


def test_solve_over_a_population_overlap_grid():
    sol = mfrnn.solve_lowrank(_grid(), KAPPA0, throw=False)
    assert sol.kappa.shape == (3, 1, 1)
    for i, s in enumerate(SMN):
        one = mfrnn.solve_lowrank(_mixture(_covs(s)), KAPPA0, throw=False)
        assert bool(one.result == mfrnn.RESULTS.successful)
        np.testing.assert_allclose(sol.kappa[i], one.kappa, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sol.delta0[i], one.delta0, rtol=0, atol=1e-12)
    # Larger overlap, larger kappa.
    assert np.all(np.diff(np.abs(np.asarray(sol.kappa[:, 0, 0]))) > 0)


def test_with_gains_over_a_grid():
    base = _mixture(_covs(3.2))
    gains = jnp.array([[1.0, 1.0], [0.7, 1.0], [1.3, 0.9]])
    grid = base.with_gains(gains)
    assert grid.means.shape == (3, 2, 2) and grid.covs.shape == (3, 2, 2, 2)
    for i in range(3):
        one = base.with_gains(gains[i])
        np.testing.assert_allclose(grid.means[i], one.means, rtol=1e-15)
        np.testing.assert_allclose(grid.covs[i], one.covs, rtol=1e-15)
    # Broadcast against the ensemble's own grid: (3,) overlaps x (2, 1) gain rows.
    both = _grid().with_gains(gains[1:, None])
    assert both.covs.shape == (2, 3, 2, 2, 2)
    np.testing.assert_allclose(both.covs[1, 0], _mixture(_covs(SMN[0])).with_gains(gains[2]).covs)

    # Gain modulation (g = 0, bias = 0): kappa of the gained ensemble solves
    # kappa = sum_p alpha_p E_p[n tanh(gain_p m kappa)] with the *original* loadings,
    # checked by an independent 2-d Gauss-Hermite quadrature. Tanh(order=61) is good to
    # ~1e-5 here (order 301 agrees to 1e-10); a wrong scaling would be off by ~0.1.
    sol = mfrnn.solve_lowrank(grid, KAPPA0, throw=False)  # same shapes as the overlap grid
    assert bool(np.all(sol.result == mfrnn.RESULTS.successful))
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    Z1, Z2 = np.meshgrid(z, z, indexing="ij")
    W = w[:, None] * w[None, :]
    for i in (1, 2):
        kappa = float(sol.kappa[i, 0, 0])
        rhs = 0.0
        for p in range(2):
            chol = np.linalg.cholesky(np.asarray(base.covs[p]))
            m = chol[0, 0] * Z1
            n = chol[1, 0] * Z1 + chol[1, 1] * Z2
            rhs += 0.5 * np.sum(W * n * np.tanh(float(gains[i, p]) * m * kappa))
        assert abs(kappa - float(sol.kappa[0, 0, 0])) > 0.05  # the gains matter
        assert kappa == pytest.approx(rhs, abs=3e-5)
