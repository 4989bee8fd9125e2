"""Spectra of connectivity against random-matrix theory (issue 13): circular law,
Rajan-Abbott radius of the Dale initialisation, low-rank outliers, before/after."""

import jax.numpy as jnp
import jax.random as jr
import mfrnn
import numpy as np
import pytest


def test_circular_law_and_low_rank_outliers(getkey):
    n, g = 300, 0.8
    task = mfrnn.FlipFlop(3)
    spec = mfrnn.NetworkSpec(n=n, g=g)
    initial = mfrnn.init_network(task, spec, key=getkey(), dtype=jnp.float64)
    # A rank-2 change independent of the bulk: outliers at the eigenvalues of n^T m / N.
    m = jr.normal(getkey(), (n, 2))
    nv = m @ jnp.array([[1.6, 0.3], [-0.2, 1.3]]) + 0.5 * jr.normal(getkey(), (n, 2))
    trained = mfrnn.DenseNetwork(initial.J + m @ nv.T / n)
    sp = mfrnn.connectivity_spectrum(trained, initial=initial, spec=spec)
    assert sp.bulk_radius == g
    ev0 = np.abs(np.asarray(sp.initial_eigenvalues))
    assert np.mean(ev0 < g / 2) == pytest.approx(0.25, abs=0.05)  # uniform disk
    assert np.mean(ev0 < 1.1 * g) == 1.0
    expected = np.sort_complex(np.linalg.eigvals(np.asarray(nv.T @ m) / n))
    np.testing.assert_allclose(np.sort_complex(np.asarray(sp.predicted_outliers)), expected,
                               rtol=1e-10)
    assert len(sp.outliers) == 2
    # Finite N: the bulk shifts each outlier by O(g / sqrt(N)).
    np.testing.assert_allclose(np.sort_complex(np.asarray(sp.outliers)), expected, atol=0.12)
    assert sp.spectral_radius == pytest.approx(mfrnn.spectral_radius(trained))
    lr = mfrnn.LowRankNetwork(m, nv, J_random=initial.J)
    sp_lr = mfrnn.connectivity_spectrum(lr, bulk_radius=g)
    np.testing.assert_allclose(np.sort_complex(np.asarray(sp_lr.predicted_outliers)), expected,
                               rtol=1e-10)


def test_rajan_abbott_radius_of_the_dale_initialisation(getkey):
    n, g, f = 400, 1.2, 0.8
    spec = mfrnn.NetworkSpec(n=n, g=g, dale="sign", frac_e=f)
    net = mfrnn.init_network(mfrnn.FlipFlop(3), spec, key=getkey(), dtype=jnp.float64)
    r = mfrnn.initial_bulk_radius(spec)
    assert r == pytest.approx(g * np.sqrt(f * (np.pi / 2 - 1)))
    # The same number from the sampled columns' variances (Rajan & Abbott).
    J = np.asarray(net.dense_matrix())
    signs = np.asarray(net.signs)
    var = [np.var(J[:, signs == s]) * n for s in (1, -1)]
    assert mfrnn.rajan_abbott_radius(f, *np.sqrt(var)) == pytest.approx(r, rel=0.05)
    ev = np.abs(np.linalg.eigvals(J))
    # Balanced means without zero row sums: a few O(1) escapees, the bulk inside r.
    assert np.mean(ev <= 1.05 * r) > 0.97 and np.quantile(ev, 0.9) > 0.8 * r


def test_fixed_point_jacobian_bulk_radius(getkey):
    n, g = 300, 0.7
    J = g * jr.normal(getkey(), (n, n)) / np.sqrt(n)
    net = mfrnn.DenseNetwork(J, bias=0.8 * jr.normal(getkey(), (n,)))
    fps = mfrnn.find_fixed_points(net, jnp.zeros((1, n)))
    x = fps.points[0]
    radius = mfrnn.jacobian_bulk_radius(g, net.phi.derivative(x))
    ev = np.asarray(fps.eigenvalues[0])
    assert radius < g  # saturation shrinks the bulk
    assert np.max(np.abs(ev + 1)) == pytest.approx(radius, rel=0.1)
