"""Nonlinearities phi and their Gaussian averages.

Notation (THEORY.md): `<f>_{mu, delta} = E f(mu + sqrt(delta) z)`, z ~ N(0, 1), and
`[f]_{mu; delta0, delta} = E f(a) f(b)` for (a, b) jointly Gaussian with means mu,
variances delta0 and covariance delta (|delta| <= delta0).
"""

import abc
import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._custom_types import Which
from ._misc import safe_sqrt, standard_normal_rule, taylor_remainder_integral


_WHICH = ("phi", "dphi", "ddphi", "Phi")
_DEFAULT_ORDER = 301


def _check_which(which: str) -> None:
    if which not in _WHICH:
        raise ValueError(f"`which` must be one of {_WHICH}, got {which!r}.")


def gaussian_average(
    fn: Callable[[Array], Array],
    mu: ArrayLike,
    delta: ArrayLike,
    *,
    order: int = _DEFAULT_ORDER,
    rule: Literal["trapezoid", "gauss-hermite"] = "trapezoid",
) -> Float[Array, ""]:
    """`E fn(mu + sqrt(delta) z)` for z ~ N(0, 1), by quadrature.

    **Arguments:**

    - `fn`: elementwise function of an array.
    - `mu`, `delta`: mean and variance (scalars).
    - `order`, `rule`: number of nodes and rule; see `standard_normal_rule` notes. The
      default (trapezoid, 301 nodes on [-10, 10]) gives tanh averages to 1e-13 at
      delta = 20 and 1e-9 at delta = 40.

    **Returns:** a scalar.

    ```python
    mfrnn.gaussian_average(jnp.tanh, 0.0, 2.0)
    ```
    """
    z, w = standard_normal_rule(order, rule)
    mu = jnp.asarray(mu)
    x = mu + safe_sqrt(delta) * jnp.asarray(z, dtype=mu.dtype)
    return jnp.sum(jnp.asarray(w, dtype=x.dtype) * fn(x))


def _two_point(mean_fn, mu, delta0, delta, order: int, rule: str) -> Array:
    """`E f(a) f(b)` by splitting off the shared part: a = mu + y + u1, b = mu +- y + u2.

    `mean_fn(m, v) = E f(m + sqrt(v) z)` does the inner (private) average, in closed
    form where the nonlinearity has one, so only the outer integral is by quadrature.
    """
    z, w = standard_normal_rule(order, rule)
    mu = jnp.asarray(mu)
    delta0 = jnp.asarray(delta0)
    delta = jnp.asarray(delta)
    z = jnp.asarray(z, dtype=mu.dtype)
    inner = jnp.maximum(delta0 - jnp.abs(delta), 0.0)
    y = safe_sqrt(jnp.abs(delta)) * z
    f_plus = jax.vmap(lambda yi: mean_fn(mu + yi, inner))(y)
    # The rule is symmetric, so F(-y_k) is F(y_k) reversed.
    f_other = jnp.where(delta >= 0, f_plus, f_plus[::-1])
    return jnp.sum(jnp.asarray(w, dtype=mu.dtype) * f_plus * f_other)


def gaussian_two_point_average(
    fn: Callable[[Array], Array],
    mu: ArrayLike,
    delta0: ArrayLike,
    delta: ArrayLike,
    *,
    order: int = _DEFAULT_ORDER,
    rule: Literal["trapezoid", "gauss-hermite"] = "trapezoid",
) -> Float[Array, ""]:
    """`E fn(a) fn(b)`, (a, b) Gaussian with means `mu`, variances `delta0`, covariance
    `delta` (clipped to |delta| <= delta0), by nested quadrature (order**2 evaluations).

    ```python
    mfrnn.gaussian_two_point_average(jnp.tanh, 0.0, 2.0, 1.0)
    ```
    """

    def mean_fn(m, v):
        return gaussian_average(fn, m, v, order=order, rule=rule)

    return _two_point(mean_fn, mu, delta0, delta, order, rule)


class AbstractNonlinearity(eqx.Module):
    """A rate nonlinearity phi with its derivatives, primitive and Gaussian averages.

    Concrete classes give closed forms where they exist and quadrature otherwise.
    `which` selects the function averaged: "phi", "dphi" (phi'), "ddphi" (phi'') or
    "Phi" (the primitive with Phi(0) = 0, used by the DMFT potential).
    """

    @abc.abstractmethod
    def __call__(self, x: ArrayLike) -> Array:
        """phi(x), elementwise."""

    @abc.abstractmethod
    def derivative(self, x: ArrayLike) -> Array:
        """phi'(x), elementwise."""

    @abc.abstractmethod
    def second_derivative(self, x: ArrayLike) -> Array:
        """phi''(x), elementwise."""

    @abc.abstractmethod
    def primitive(self, x: ArrayLike) -> Array:
        """Phi(x) = int_0^x phi, elementwise."""

    @abc.abstractmethod
    def gaussian_mean(self, mu: ArrayLike, delta: ArrayLike, which: Which = "phi") -> Array:
        """`<f>_{mu, delta}` with f selected by `which`."""

    @abc.abstractmethod
    def gaussian_second_moment(
        self, mu: ArrayLike, delta: ArrayLike, which: Which = "phi"
    ) -> Array:
        """`<f^2>_{mu, delta}` with f selected by `which`."""

    @abc.abstractmethod
    def gaussian_correlation(
        self, mu: ArrayLike, delta0: ArrayLike, delta: ArrayLike, which: Which = "phi"
    ) -> Array:
        """`[f]_{mu; delta0, delta} = E f(a) f(b)` with f selected by `which`."""


def _function(phi: AbstractNonlinearity, which: str) -> Callable[[Array], Array]:
    _check_which(which)
    return {
        "phi": phi.__call__,
        "dphi": phi.derivative,
        "ddphi": phi.second_derivative,
        "Phi": phi.primitive,
    }[which]


class AbstractQuadratureNonlinearity(AbstractNonlinearity):
    """Nonlinearities whose Gaussian averages are all computed by quadrature."""

    order: eqx.AbstractVar[int]
    rule: eqx.AbstractVar[str]

    def gaussian_mean(self, mu, delta, which: Which = "phi"):
        fn = _function(self, which)
        return gaussian_average(fn, mu, delta, order=self.order, rule=self.rule)  # pyright: ignore

    def gaussian_second_moment(self, mu, delta, which: Which = "phi"):
        fn = _function(self, which)
        return gaussian_average(
            lambda x: fn(x) ** 2, mu, delta, order=self.order, rule=self.rule  # pyright: ignore
        )

    def gaussian_correlation(self, mu, delta0, delta, which: Which = "phi"):
        fn = _function(self, which)
        return gaussian_two_point_average(
            fn, mu, delta0, delta, order=self.order, rule=self.rule  # pyright: ignore
        )


def _logcosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2.0 * ax)) - np.log(2.0)


class Tanh(AbstractQuadratureNonlinearity):
    """phi(x) = tanh(x); slope 1 at 0. Gaussian averages by quadrature."""

    order: int = eqx.field(static=True, default=_DEFAULT_ORDER)
    rule: str = eqx.field(static=True, default="trapezoid")

    def __call__(self, x):
        return jnp.tanh(x)

    def derivative(self, x):
        return 1.0 - jnp.tanh(x) ** 2

    def second_derivative(self, x):
        t = jnp.tanh(x)
        return -2.0 * t * (1.0 - t**2)

    def primitive(self, x):
        return _logcosh(x)


class ShiftedTanh(AbstractQuadratureNonlinearity):
    """phi(x) = 1 + tanh(x - theta): positive rates, <phi> != 0 (so mean fields appear)."""

    theta: Float[Array, ""]
    order: int = eqx.field(static=True)
    rule: str = eqx.field(static=True)

    def __init__(self, theta: ArrayLike = 0.0, *, order: int = _DEFAULT_ORDER, rule: str = "trapezoid"):
        self.theta = jnp.asarray(theta, dtype=float)
        self.order = order
        self.rule = rule

    def __call__(self, x):
        return 1.0 + jnp.tanh(x - self.theta)

    def derivative(self, x):
        return 1.0 - jnp.tanh(x - self.theta) ** 2

    def second_derivative(self, x):
        t = jnp.tanh(x - self.theta)
        return -2.0 * t * (1.0 - t**2)

    def primitive(self, x):
        return x + _logcosh(x - self.theta) - _logcosh(self.theta)


# erf(a x) with a = sqrt(pi)/2 has slope 1 at 0 and phi'(x) = exp(-a^2 x^2).
_A2 = np.pi / 4.0
_C = 2.0 * _A2


class Erf(AbstractNonlinearity):
    """phi(x) = erf(sqrt(pi) x / 2): slope 1 at 0, tanh-like, with closed-form averages.

    Single-point averages are elementary. Two-point averages use Price's theorem,
    `d[f]/d delta = [f']`, from the elementary `[phi']`:
    `[phi](delta) = <phi>^2 + int_0^delta [phi']`, and likewise for Phi; the remaining
    one-dimensional integral of an analytic closed form is done by 64-node
    Gauss-Legendre (round-off accurate for delta0 <~ 50).
    """

    def __call__(self, x):
        return jsp.erf(np.sqrt(_A2) * x)

    def derivative(self, x):
        return jnp.exp(-_A2 * jnp.asarray(x) ** 2)

    def second_derivative(self, x):
        x = jnp.asarray(x)
        return -2.0 * _A2 * x * jnp.exp(-_A2 * x**2)

    def primitive(self, x):
        x = jnp.asarray(x)
        return x * self(x) + (self.derivative(x) - 1.0) * (2.0 / np.pi)

    def _mean_dphi(self, mu, delta):
        s = 1.0 + _C * delta
        return jnp.exp(-_A2 * mu**2 / s) / jnp.sqrt(s)

    def _corr_dphi(self, mu, delta0, delta):
        sp = 1.0 + _C * (delta0 + delta)
        sm = 1.0 + _C * (delta0 - delta)
        return jnp.exp(-_C * mu**2 / sp) / jnp.sqrt(sp * sm)

    def gaussian_mean(self, mu, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu)
        delta = jnp.asarray(delta)
        s = 1.0 + _C * delta
        if which == "phi":
            return jsp.erf(np.sqrt(_A2) * mu / jnp.sqrt(s))
        mean_dphi = self._mean_dphi(mu, delta)
        if which == "dphi":
            return mean_dphi
        if which == "ddphi":
            return -_C * mu * mean_dphi / s
        # Stein: E[x phi(x)] = mu <phi> + delta <phi'>.
        mean_phi = self.gaussian_mean(mu, delta, "phi")
        return mu * mean_phi + delta * mean_dphi + (mean_dphi - 1.0) * (2.0 / np.pi)

    def gaussian_second_moment(self, mu, delta, which: Which = "phi"):
        return self.gaussian_correlation(mu, delta, delta, which)

    def gaussian_correlation(self, mu, delta0, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu)
        delta0 = jnp.asarray(delta0)
        delta = jnp.clip(jnp.asarray(delta), -delta0, delta0)
        if which == "dphi":
            return self._corr_dphi(mu, delta0, delta)
        if which == "ddphi":
            return jax.jvp(
                lambda d: self._corr_dphi(mu, delta0, d), (delta,), (jnp.ones_like(delta),)
            )[1]
        corr = jax.vmap(lambda r: self._corr_dphi(mu, delta0, r))
        mean_phi = self.gaussian_mean(mu, delta0, "phi")
        if which == "phi":
            return mean_phi**2 + taylor_remainder_integral(corr, delta, 0)
        mean_Phi = self.gaussian_mean(mu, delta0, "Phi")
        return (
            mean_Phi**2 + delta * mean_phi**2 + taylor_remainder_integral(corr, delta, 1)
        )


def _normal_pdf(t):
    return jnp.exp(-0.5 * t**2) / np.sqrt(2.0 * np.pi)


def _normal_cdf(t):
    return 0.5 * jsp.erfc(-t / np.sqrt(2.0))


class ReLU(AbstractNonlinearity):
    """phi(x) = max(x, 0), with closed-form averages.

    phi'' is the Dirac delta at 0, so `<phi''>` is the Gaussian density at 0 and
    `[phi'']` the bivariate density at (0, 0); `second_derivative(x)` returns 0 (its
    value away from 0). Two-point averages use Price's theorem from `[phi'']`,
    integrated by Gauss-Legendre with the endpoint singularity removed.
    """

    def __call__(self, x):
        return jnp.maximum(x, 0.0)

    def derivative(self, x):
        return jnp.where(jnp.asarray(x) > 0, 1.0, 0.0)

    def second_derivative(self, x):
        return jnp.zeros_like(jnp.asarray(x, dtype=float))

    def primitive(self, x):
        return 0.5 * jnp.maximum(x, 0.0) ** 2

    @staticmethod
    def _truncated_moment(mu, delta, power: int):
        """E[x^power 1{x > 0}] for x ~ N(mu, delta), delta > 0."""
        s = jnp.sqrt(delta)
        t = mu / s
        # M_k = E[z^k 1{z > -t}]: M_0 = Phi(t), M_1 = phi(t), M_k = (-t)^(k-1) phi(t) + (k-1) M_(k-2)
        moments = [_normal_cdf(t), _normal_pdf(t)]
        for k in range(2, power + 1):
            moments.append((-t) ** (k - 1) * _normal_pdf(t) + (k - 1) * moments[k - 2])
        return sum(
            math.comb(power, k) * mu ** (power - k) * s**k * moments[k]
            for k in range(power + 1)
        )

    def _density00(self, mu, delta0, r):
        # Bivariate density at (0, 0): exp(-mu^2/(delta0 + r)) / (2 pi sqrt(delta0^2 - r^2)).
        det = jnp.maximum(delta0**2 - r**2, 1e-300)
        return jnp.exp(-(mu**2) / (delta0 + r)) / (2.0 * np.pi * jnp.sqrt(det))

    def gaussian_mean(self, mu, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        if which == "phi":
            return self._truncated_moment(mu, delta, 1)
        if which == "dphi":
            return self._truncated_moment(mu, delta, 0)
        if which == "ddphi":
            return _normal_pdf(mu / jnp.sqrt(delta)) / jnp.sqrt(delta)
        return 0.5 * self._truncated_moment(mu, delta, 2)

    def gaussian_second_moment(self, mu, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        if which == "phi":
            return self._truncated_moment(mu, delta, 2)
        if which == "dphi":
            return self._truncated_moment(mu, delta, 0)
        if which == "ddphi":
            return jnp.full_like(delta, jnp.inf)
        return 0.25 * self._truncated_moment(mu, delta, 4)

    def gaussian_correlation(self, mu, delta0, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu, dtype=float)
        delta0 = jnp.asarray(delta0, dtype=mu.dtype)
        delta = jnp.clip(jnp.asarray(delta, dtype=mu.dtype), -delta0, delta0)
        density = jax.vmap(lambda r: self._density00(mu, delta0, r))
        if which == "ddphi":
            return self._density00(mu, delta0, delta)
        m_dphi = self.gaussian_mean(mu, delta0, "dphi")
        if which == "dphi":
            return m_dphi**2 + taylor_remainder_integral(density, delta, 0)
        m_phi = self.gaussian_mean(mu, delta0, "phi")
        if which == "phi":
            return m_phi**2 + delta * m_dphi**2 + taylor_remainder_integral(density, delta, 1)
        m_Phi = self.gaussian_mean(mu, delta0, "Phi")
        return (
            m_Phi**2
            + delta * m_phi**2
            + 0.5 * delta**2 * m_dphi**2
            + taylor_remainder_integral(density, delta, 2)
        )


class Linear(AbstractNonlinearity):
    """phi(x) = x. All averages are polynomial in (mu, delta0, delta)."""

    def __call__(self, x):
        return jnp.asarray(x)

    def derivative(self, x):
        return jnp.ones_like(jnp.asarray(x, dtype=float))

    def second_derivative(self, x):
        return jnp.zeros_like(jnp.asarray(x, dtype=float))

    def primitive(self, x):
        return 0.5 * jnp.asarray(x) ** 2

    def gaussian_mean(self, mu, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return {
            "phi": mu,
            "dphi": jnp.ones_like(mu + delta),
            "ddphi": jnp.zeros_like(mu + delta),
            "Phi": 0.5 * (mu**2 + delta),
        }[which]

    def gaussian_second_moment(self, mu, delta, which: Which = "phi"):
        return self.gaussian_correlation(mu, delta, delta, which)

    def gaussian_correlation(self, mu, delta0, delta, which: Which = "phi"):
        _check_which(which)
        mu = jnp.asarray(mu, dtype=float)
        delta0 = jnp.asarray(delta0, dtype=mu.dtype)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return {
            "phi": mu**2 + delta,
            "dphi": jnp.ones_like(mu + delta0 + delta),
            "ddphi": jnp.zeros_like(mu + delta0 + delta),
            "Phi": 0.25
            * (mu**4 + 2 * mu**2 * delta0 + 4 * mu**2 * delta + delta0**2 + 2 * delta**2),
        }[which]


_BY_NAME = {"tanh": Tanh, "erf": Erf, "relu": ReLU, "linear": Linear, "shifted-tanh": ShiftedTanh}


def nonlinearity(name: str, **kwargs) -> AbstractNonlinearity:
    """Nonlinearity by name: "tanh", "erf", "relu", "linear" or "shifted-tanh"
    (keyword `theta`). Unknown names raise a `ValueError` naming `phi`.

    ```python
    phi = mfrnn.nonlinearity("erf")
    ```
    """
    try:
        cls = _BY_NAME[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"Unknown nonlinearity `phi`={name!r}; expected one of {sorted(_BY_NAME)}."
        ) from None
    return cls(**kwargs)
