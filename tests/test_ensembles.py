import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn


def _eigs(network):
    return np.linalg.eigvals(np.asarray(network.dense_matrix()))


def test_gaussian_statistics(getkey):
    n, g = 1000, 1.5
    net = mfrnn.GaussianEnsemble(g, bias=0.3, input_std=0.5).sample(n, key=getkey())
    J = np.asarray(net.J)
    assert abs(J.mean()) < 4 * g / n  # std of the mean of n^2 entries: g / n^1.5... generous
    np.testing.assert_allclose(n * J.var(), g**2, rtol=0.01)
    np.testing.assert_allclose(np.mean(net.bias), 0.3, atol=4 * 0.5 / np.sqrt(n))
    np.testing.assert_allclose(np.std(net.bias), 0.5, rtol=0.1)
    eig = _eigs(net)
    # Circular law of radius g: a quarter of the eigenvalues inside g / 2 (docs/theory/pitfalls.md)
    np.testing.assert_allclose(np.mean(np.abs(eig) < g / 2), 0.25, atol=0.03)
    assert abs(np.max(np.abs(eig)) / g - 1) < 3 / np.sqrt(n) * 2


def test_gaussian_no_self_couplings(getkey):
    net = mfrnn.GaussianEnsemble(1.0).sample(50, key=getkey(), self_couplings=False)
    assert np.all(np.diag(np.asarray(net.J)) == 0)


def test_low_rank_loading_statistics(getkey):
    # Rank two with one input, full covariance and nonzero means.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T / 5 + 0.1 * np.eye(5)
    mean = rng.normal(size=5)
    ens = mfrnn.LowRankEnsemble(2, mean=mean, cov=cov, n_inputs=1)
    n = 40_000
    net = ens.sample(n, key=getkey())
    loads = np.concatenate([net.m, net.n_vectors, net.W_in], axis=1)
    idx = mfrnn.loading_index(2, 1)
    assert idx == {"m": [0, 1], "n": [2, 3], "I": [4]}
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(loads.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / n))
    np.testing.assert_allclose(np.cov(loads.T), cov, atol=6 * np.max(scale) / np.sqrt(n))
    assert net.J_random is None  # g = 0: nothing N x N is formed


def test_low_rank_outlier_and_bulk(getkey):
    n, g = 1500, 0.6
    ens = mfrnn.LowRankEnsemble.rank_one(mean_m=1.5, mean_n=1.4, g=g)
    net = ens.sample(n, key=getkey())
    eig = _eigs(net)
    overlap = float(net.m[:, 0] @ net.n_vectors[:, 0] / n)
    top = eig[np.argmax(np.abs(eig))]
    # Outlier at n.m / N (about 2.1), the rest inside the disk of radius g.
    np.testing.assert_allclose(top.real, overlap, rtol=0.05)
    rest = np.sort(np.abs(eig))[:-1]
    assert rest.max() < g * 1.08


def test_low_rank_conventions_and_errors():
    # Zero-mean covariance overlap needs a valid covariance matrix.
    with pytest.raises(ValueError, match="cov"):
        mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, sigma_m=1.0, sigma_n=1.0)
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, sigma_m=1.0, sigma_n=3.0)
    np.testing.assert_allclose(ens.cov, [[1.0, 2.0], [2.0, 9.0]])
    mo = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=2.0)
    np.testing.assert_allclose(mo.mean, [1.1, 2.0])
    with pytest.raises(ValueError, match="mean"):
        mfrnn.LowRankEnsemble(2, mean=jnp.zeros(3))
    with pytest.raises(ValueError, match="cov"):
        mfrnn.LowRankEnsemble(1, cov=jnp.eye(3))
    with pytest.raises(ValueError, match="rank"):
        mfrnn.LowRankEnsemble(0)
    with pytest.raises(ValueError, match="g"):
        mfrnn.LowRankEnsemble(1, g=-1.0)
    with pytest.raises(ValueError, match="symmetric"):
        mfrnn.LowRankEnsemble(1, cov=jnp.array([[1.0, 0.5], [0.0, 1.0]]))


def test_gaussian_errors():
    with pytest.raises(ValueError, match="`g`"):
        mfrnn.GaussianEnsemble(-1.0)
    with pytest.raises(ValueError, match="`g`"):
        mfrnn.GaussianEnsemble(float("nan"))
    with pytest.raises(ValueError, match="input_std"):
        mfrnn.GaussianEnsemble(1.0, input_std=-0.1)
    with pytest.raises((ValueError, TypeError), match="phi"):  # TypeError: jaxtyping
        mfrnn.GaussianEnsemble(1.0, phi=jnp.tanh)
    with pytest.raises(ValueError, match="`n`"):
        mfrnn.GaussianEnsemble(1.0).sample(0, key=jr.key(0))


def test_mixture(getkey):
    c1 = jnp.array([[1.0, 0.8], [0.8, 1.0]])
    c2 = jnp.array([[2.0, -0.5], [-0.5, 1.0]])
    ens = mfrnn.MixtureEnsemble(
        1, fractions=[0.3, 0.7], means=jnp.array([[0.0, 1.0], [1.0, 0.0]]), covs=jnp.stack([c1, c2])
    )
    n = 30_000
    sizes = ens.population_sizes(n)
    assert sizes.tolist() == [9000, 21000]
    assert ens.population_sizes(7).sum() == 7
    net = ens.sample(n, key=getkey())
    labels = ens.population_labels(n)
    loads = np.concatenate([net.m, net.n_vectors], axis=1)
    for p, (mean, cov) in enumerate([([0.0, 1.0], c1), ([1.0, 0.0], c2)]):
        sel = loads[labels == p]
        np.testing.assert_allclose(sel.mean(0), mean, atol=0.05)
        np.testing.assert_allclose(np.cov(sel.T), cov, atol=0.06)
    with pytest.raises(ValueError, match="sum to 1"):
        mfrnn.MixtureEnsemble(1, fractions=[0.3, 0.6], means=jnp.zeros((2, 2)), covs=jnp.stack([c1, c2]))
    with pytest.raises(ValueError, match="means"):
        mfrnn.MixtureEnsemble(1, fractions=[0.3, 0.7], means=jnp.zeros((2, 3)), covs=jnp.stack([c1, c2]))
    with pytest.raises(ValueError, match=r"covs\[1\]"):
        mfrnn.MixtureEnsemble(
            1, fractions=[0.5, 0.5], means=jnp.zeros((2, 2)), covs=jnp.stack([c1, -c2])
        )


def test_ei_rajan_abbott(getkey):
    n, f = 1000, 0.8
    std_e, std_i = 0.8, 1.6
    mean_e = 1.0
    mean_i = -f * mean_e / (1 - f)  # balanced
    kwargs = dict(mean_e=mean_e, mean_i=mean_i, std_e=std_e, std_i=std_i)
    ens = mfrnn.EIEnsemble(f, zero_row_sum=True, **kwargs)
    r = float(ens.bulk_radius())
    np.testing.assert_allclose(r, np.sqrt(f * std_e**2 + (1 - f) * std_i**2))
    key = getkey()
    net = ens.sample(n, key=key)
    J = np.asarray(net.J)
    n_e = ens.n_excitatory(n)
    assert n_e == 800
    np.testing.assert_allclose(J.sum(axis=1), 0.0, atol=1e-10)
    np.testing.assert_allclose(J[:, :n_e].mean() * np.sqrt(n), mean_e, atol=0.02)
    np.testing.assert_allclose(J[:, n_e:].std() * np.sqrt(n), std_i, rtol=0.02)
    eig = np.abs(_eigs(net))
    # All eigenvalues in the disk of radius r, edge reached (no escapees with zero row
    # sums). The density is not uniform when std_e != std_i, so no quarter-rule here.
    assert 0.9 * r < eig.max() < 1.1 * r
    # Same draw without the constraint: O(1) eigenvalues escape (pitfall 19).
    free = mfrnn.EIEnsemble(f, zero_row_sum=False, **kwargs).sample(n, key=key)
    assert np.sum(np.abs(_eigs(free)) > 1.1 * r) >= 1
    with pytest.raises(ValueError, match="frac_e"):
        mfrnn.EIEnsemble(1.2)


def test_ensembles_vmap_over_parameters(getkey):
    key = getkey()
    gs = jnp.array([0.5, 1.0, 2.0])

    def std_of_J(ens):
        return jnp.std(ens.sample(200, key=key).J) * jnp.sqrt(200.0)

    out = jax.vmap(lambda g: std_of_J(mfrnn.GaussianEnsemble(g)))(gs)
    # An ensemble whose fields are all batched maps directly.
    batch = mfrnn.GaussianEnsemble(gs, jnp.zeros(3), jnp.zeros(3), tau=jnp.ones(3))
    out_batched = eqx.filter_vmap(std_of_J)(batch)
    np.testing.assert_allclose(out_batched, out, rtol=1e-12)
    np.testing.assert_allclose(out, gs, rtol=0.02)
    # The same draw scaled: J is linear in g for a fixed key.
    np.testing.assert_allclose(out / gs, out[0] / gs[0], rtol=1e-12)
    grad = jax.grad(lambda g: std_of_J(mfrnn.GaussianEnsemble(g)))(1.0)
    np.testing.assert_allclose(grad, out[1] / gs[1], rtol=1e-10)
