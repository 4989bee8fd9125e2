import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import all_nonlinearities, finite_difference, scipy_gaussian_mean

import mfrnn


WHICH = tuple(mfrnn.PhiFunction)  # phi, dphi, ddphi, Phi
POINTS = [(0.0, 1.0, 0.4), (0.3, 2.0, 0.8), (-0.5, 4.0, -1.5), (0.2, 1.5, 1.5), (1.0, 0.5, 0.0)]


def _fn(phi, which):
    return {
        "phi": phi.__call__,
        "dphi": phi.derivative,
        "ddphi": phi.second_derivative,
        "Phi": phi.primitive,
    }[which]


@pytest.mark.parametrize("phi", all_nonlinearities(), ids=lambda p: type(p).__name__)
def test_derivatives_and_primitive(phi):
    x = jnp.linspace(-3.0, 3.0, 61) + 0.013  # avoid ReLU's kink
    np.testing.assert_allclose(phi.derivative(x), jax.vmap(jax.grad(phi))(x), atol=1e-12)
    np.testing.assert_allclose(phi.primitive(0.0), 0.0, atol=1e-14)
    np.testing.assert_allclose(jax.vmap(jax.grad(phi.primitive))(x), phi(x), atol=1e-12)
    if not isinstance(phi, mfrnn.ReLU):
        np.testing.assert_allclose(
            phi.second_derivative(x), jax.vmap(jax.grad(phi.derivative))(x), atol=1e-12
        )


def test_slope_one_at_zero():
    for phi in (mfrnn.Tanh(), mfrnn.Erf(), mfrnn.Linear()):
        assert float(phi.derivative(0.0)) == pytest.approx(1.0, abs=1e-15)
        assert float(phi(0.0)) == 0.0


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("mu,delta0,delta", POINTS)
def test_erf_closed_form_matches_quadrature(which, mu, delta0, delta):
    phi = mfrnn.Erf()
    fn = _fn(phi, which)
    quad_mean = mfrnn.gaussian_average(fn, mu, delta0)
    quad_second = mfrnn.gaussian_average(lambda x: fn(x) ** 2, mu, delta0)
    quad_corr = mfrnn.gaussian_two_point_average(fn, mu, delta0, delta)
    np.testing.assert_allclose(phi.gaussian_mean(mu, delta0, which), quad_mean, rtol=0, atol=1e-11)
    np.testing.assert_allclose(
        phi.gaussian_second_moment(mu, delta0, which), quad_second, rtol=0, atol=1e-11
    )
    np.testing.assert_allclose(
        phi.gaussian_correlation(mu, delta0, delta, which), quad_corr, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("delta0,delta", [(0.5, 0.2), (3.0, 2.9), (20.0, -11.0), (10.0, 10.0)])
def test_erf_zero_mean_arcsine_law(delta0, delta):
    c = np.pi / 2
    expected = 2 / np.pi * np.arcsin(c * delta / (1 + c * delta0))
    np.testing.assert_allclose(mfrnn.Erf().gaussian_correlation(0.0, delta0, delta), expected, atol=1e-13)


@pytest.mark.parametrize("delta", [0.5, 5.0, 20.0])
@pytest.mark.parametrize("mu", [0.0, 0.8])
@pytest.mark.parametrize("which", ["phi", "dphi", "Phi"])
def test_tanh_quadrature_accuracy_at_large_variance(which, mu, delta):
    # The target: tanh averages to 1e-9 up to Delta0 ~ 20.
    phi = mfrnn.Tanh()
    fn = _fn(phi, which)
    f = lambda x: np.asarray(fn(jnp.asarray(x)))
    ref_mean = scipy_gaussian_mean(f, mu, delta)
    ref_second = scipy_gaussian_mean(lambda x: f(x) ** 2, mu, delta)
    assert abs(float(phi.gaussian_mean(mu, delta, which)) - ref_mean) < 1e-9
    assert abs(float(phi.gaussian_second_moment(mu, delta, which)) - ref_second) < 1e-9


def test_gauss_hermite_option_is_worse_for_tanh_at_large_variance():
    f = lambda x: jnp.tanh(x) ** 2
    ref = scipy_gaussian_mean(lambda x: np.tanh(x) ** 2, 0.0, 20.0)
    gh = mfrnn.gaussian_average(f, 0.0, 20.0, order=300, rule=mfrnn.QuadratureRule.gauss_hermite)
    trap = mfrnn.gaussian_average(f, 0.0, 20.0, order=301, rule=mfrnn.QuadratureRule.trapezoid)
    assert abs(float(trap) - ref) < 1e-12
    assert abs(float(gh) - ref) > 1e-7  # why the default is the trapezoid rule
    small = mfrnn.gaussian_average(f, 0.0, 1.0, order=200, rule=mfrnn.QuadratureRule.gauss_hermite)
    assert abs(float(small) - scipy_gaussian_mean(lambda x: np.tanh(x) ** 2, 0.0, 1.0)) < 1e-13


@pytest.mark.parametrize("phi", all_nonlinearities(), ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("mu,delta0,delta", POINTS)
def test_price_theorem(phi, mu, delta0, delta):
    """d[f]/d delta = [f'] and [f](delta = 0) = <f>^2: two identities that pin the
    two-point averages independently of how they are computed."""
    if isinstance(phi, mfrnn.ReLU) and abs(delta) == delta0:
        pytest.skip("ReLU: [phi''] is infinite at |delta| = delta0")
    for which, lower in (("Phi", "phi"), ("phi", "dphi"), ("dphi", "ddphi")):
        if isinstance(phi, mfrnn.ReLU) and which == "dphi":
            pass  # [phi''] is the bivariate density at the origin: still a valid check
        corr = lambda d: phi.gaussian_correlation(mu, delta0, d, which)
        d = float(np.clip(delta, -delta0 + 1e-3, delta0 - 1e-3))
        np.testing.assert_allclose(
            finite_difference(corr, d, 1e-5),
            phi.gaussian_correlation(mu, delta0, d, lower),
            rtol=1e-6,
            atol=1e-8,
        )
        np.testing.assert_allclose(
            phi.gaussian_correlation(mu, delta0, 0.0, which),
            phi.gaussian_mean(mu, delta0, which) ** 2,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            phi.gaussian_correlation(mu, delta0, delta0, which),
            phi.gaussian_second_moment(mu, delta0, which),
            rtol=1e-9,
            atol=1e-12,
        )


@pytest.mark.parametrize("phi", all_nonlinearities(), ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("which", ["phi", "dphi", "Phi"])
def test_single_point_averages_against_scipy(phi, which):
    fn = _fn(phi, which)
    f = lambda x: np.asarray(fn(jnp.asarray(x)))
    for mu, delta in [(0.0, 1.0), (0.4, 3.0), (-1.2, 0.3)]:
        np.testing.assert_allclose(
            phi.gaussian_mean(mu, delta, which), scipy_gaussian_mean(f, mu, delta), atol=1e-10
        )
        np.testing.assert_allclose(
            phi.gaussian_second_moment(mu, delta, which),
            scipy_gaussian_mean(lambda x: f(x) ** 2, mu, delta),
            atol=1e-10,
        )


@pytest.mark.parametrize("delta0,delta", [(1.0, 0.3), (2.0, -1.2), (4.0, 4.0)])
def test_relu_arccosine_kernel(delta0, delta):
    theta = np.arccos(delta / delta0)
    relu = mfrnn.ReLU()
    expected = delta0 / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
    np.testing.assert_allclose(relu.gaussian_correlation(0.0, delta0, delta), expected, atol=1e-11)
    np.testing.assert_allclose(
        relu.gaussian_correlation(0.0, delta0, delta, "dphi"), (np.pi - theta) / (2 * np.pi), atol=1e-11
    )


def test_stein_mean_derivative():
    for phi in all_nonlinearities():
        d_mean = finite_difference(lambda m: phi.gaussian_mean(m, 1.7), 0.3)
        np.testing.assert_allclose(d_mean, phi.gaussian_mean(0.3, 1.7, "dphi"), rtol=1e-7)


def test_averages_vmap_and_jit():
    phi = mfrnn.Tanh()
    deltas = jnp.linspace(0.1, 10.0, 7)
    batched = jax.jit(jax.vmap(lambda d: phi.gaussian_correlation(0.1, d, 0.5 * d)))(deltas)
    single = jnp.stack([phi.gaussian_correlation(0.1, d, 0.5 * d) for d in deltas])
    np.testing.assert_allclose(batched, single, rtol=1e-13)


def test_zero_variance_is_finite_with_finite_gradient():
    phi = mfrnn.Tanh()
    assert float(phi.gaussian_mean(0.5, 0.0)) == pytest.approx(np.tanh(0.5), abs=1e-15)
    grad = jax.grad(lambda d: phi.gaussian_second_moment(0.5, d))(0.0)
    assert np.isfinite(float(grad))


def test_unknown_name_and_which():
    with pytest.raises(ValueError, match="phi"):
        mfrnn.nonlinearity("sigmoidal-thing")
    assert isinstance(mfrnn.nonlinearity("ERF"), mfrnn.Erf)
    with pytest.raises((ValueError, TypeError), match="which"):  # TypeError: jaxtyping
        mfrnn.Tanh().gaussian_mean(0.0, 1.0, "phi3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        mfrnn.gaussian_average(jnp.tanh, 0.0, 1.0, order=1)


TANHS = [mfrnn.Tanh(), mfrnn.ShiftedTanh(0.7)]


@pytest.mark.parametrize("phi", TANHS, ids=lambda p: type(p).__name__)
def test_shared_two_point_rule_and_mehler_series(phi):
    # The adaptive two-point rule (all `which` on one grid) against the plain
    # order x order rule, and Mehler's series from `hermite_coefficients` against both.
    fns = {w: _fn(phi, w) for w in WHICH}
    for mu, d0, d in [(0.0, 17.0, 16.7), (0.3, 5.0, 2.0), (-0.5, 2.0, -1.2), (0.2, 1.5, 1.5)]:
        shared = phi.gaussian_correlations(mu, d0, d, WHICH)
        for w, value in zip(WHICH, shared):
            np.testing.assert_allclose(value, phi.gaussian_correlation(mu, d0, d, w), atol=1e-14)
            plain = mfrnn.gaussian_two_point_average(fns[w], mu, d0, d)
            np.testing.assert_allclose(value, plain, rtol=1e-11, atol=1e-11)
    coeffs = phi.hermite_coefficients(0.3, 5.0, ("phi", "dphi"), 200)
    n = np.arange(200)
    for rho in (0.0, 0.5, 0.9):
        for c, w in zip(coeffs, ("phi", "dphi")):
            series = np.sum(np.asarray(c) ** 2 * rho**n)
            expected = phi.gaussian_correlation(0.3, 5.0, rho * 5.0, w)
            np.testing.assert_allclose(series, expected, atol=1e-13)


@pytest.mark.parametrize("phi", TANHS, ids=lambda p: type(p).__name__)
def test_two_point_derivatives(phi):
    # The averages' custom JVP (sums on the rule's own grid), forward and reverse, against
    # finite differences: interior, delta = 0, delta < 0, |delta| > delta0 (clipped).
    for mu, d0, d in [(0.3, 5.0, 2.0), (0.2, 1.5, 0.0), (-0.5, 2.0, -1.2), (0.3, 2.0, 2.5)]:
        f = lambda *a: jnp.stack(phi.gaussian_correlations(*a, ("phi", "dphi", "Phi")))
        fwd = jax.jacfwd(f, argnums=(0, 1, 2))(mu, d0, d)
        rev = jax.jacrev(f, argnums=(0, 1, 2))(mu, d0, d)
        point = np.array([mu, d0, d])
        for i in range(3):
            step = lambda k: f(*(point + k * 1e-5 * np.eye(3)[i]))
            np.testing.assert_allclose(fwd[i], (step(1) - step(-1)) / 2e-5, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(rev[i], fwd[i], rtol=1e-12, atol=1e-14)
    theta = lambda t: mfrnn.ShiftedTanh(t).gaussian_correlation(0.3, 5.0, 2.0)
    np.testing.assert_allclose(jax.grad(theta)(0.7), finite_difference(theta, 0.7), rtol=1e-6)


def test_energy_gap():
    # The one-grid remainder (trapezoid rule) against two other methods: the plain
    # difference of 301-node averages where q is large (no cancellation to speak of),
    # and the integral form (the base class's, 12 nodes in t) where q is small, the span
    # of correlations short and that rule exact to rounding; delta < 0 in both.
    phi = mfrnn.Tanh()
    gap = jax.jit(jax.vmap(lambda a: jnp.stack(phi.gaussian_energy_gap(a[0], a[1] + a[2], a[1]))))

    @jax.jit
    @jax.vmap
    def plain(a):
        mu, low, q = a
        Phi_top = phi.gaussian_second_moment(mu, low + q, "Phi")
        Phi_c, phi_c = phi.gaussian_correlations(mu, low + q, low, ("Phi", "phi"))
        return jnp.stack([phi_c, (Phi_top - Phi_c - q * phi_c) / q**2])

    base = mfrnn.AbstractNonlinearity.gaussian_energy_gap
    integral = jax.jit(jax.vmap(lambda a: jnp.stack(base(phi, a[0], a[1] + a[2], a[1]))))
    large = jnp.array([(0.0, 0.0, 15.0), (0.4, 2.0, 6.0), (-0.3, 0.5, 3.0), (0.3, -0.8, 2.0)])
    small = jnp.array([(0.0, 1.0, 1e-3), (0.5, 3.0, 0.05), (0.0, 10.0, 1e-5), (0.2, -0.01, 0.05)])
    for points, reference in ((large, plain), (small, integral)):
        ours, theirs = gap(points), reference(points)
        np.testing.assert_allclose(ours[:, 0], theirs[:, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(ours[:, 1], theirs[:, 1], rtol=1e-11)
    # Its JVP (Price and the heat equation on the grid) against finite differences.
    f = lambda a: jnp.stack(phi.gaussian_energy_gap(*a))
    points = jnp.array([[0.3, 5.0, 2.0], [0.0, 1.01, 1.0], [0.2, 2.0, -1.2]])
    fwd = jax.jit(jax.vmap(jax.jacfwd(f)))(points)
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.jacrev(f)))(points), fwd, rtol=1e-12, atol=1e-14)
    shifts = 1e-5 * np.eye(3)[None]
    steps = jnp.stack([points[:, None] + shifts, points[:, None] - shifts], 1)  # point, sign, direction
    values = np.asarray(jax.jit(jax.vmap(f))(steps.reshape(-1, 3))).reshape(3, 2, 3, 2)
    fd = (values[:, 0] - values[:, 1]).transpose(0, 2, 1) / 2e-5
    np.testing.assert_allclose(fwd, fd, rtol=1e-6, atol=1e-8)
    # The threshold's tangent (by autodiff through the grid).
    theta = jax.jit(lambda t: mfrnn.ShiftedTanh(t).gaussian_energy_gap(0.3, 5.0, 2.0)[1])
    np.testing.assert_allclose(jax.grad(theta)(0.7), finite_difference(theta, 0.7), rtol=1e-6)
