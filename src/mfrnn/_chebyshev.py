"""Chebyshev-Lobatto interpolation and integration on [0, 1] (spectral accuracy for
smooth functions), used for the DMFT autocorrelation profile and the Schroedinger
potential: computing them at a few nodes exactly and interpolating spectrally avoids
the interpolation errors described in docs/theory/pitfalls.md."""

import functools as ft

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


@ft.lru_cache(maxsize=None)
def chebyshev_nodes(order: int) -> np.ndarray:
    """Chebyshev-Lobatto nodes on [0, 1], increasing, endpoints included."""
    if order < 3:
        raise ValueError(f"`order` must be >= 3, got {order}.")
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(order) / (order - 1)))


@ft.lru_cache(maxsize=None)
def _barycentric_weights(order: int) -> np.ndarray:
    w = (-1.0) ** np.arange(order)
    w[0] *= 0.5
    w[-1] *= 0.5
    return w


def _integral_matrix(order: int, lbnd: float) -> np.ndarray:
    # Row j: int_{x = lbnd}^{x_j} of the interpolant, in x = 2u - 1 (du = dx / 2).
    x = 2.0 * chebyshev_nodes(order) - 1.0
    cheb = np.polynomial.chebyshev
    coeffs = np.linalg.solve(cheb.chebvander(x, order - 1), np.eye(order))  # col j: e_j
    return 0.5 * cheb.chebval(x, cheb.chebint(coeffs, lbnd=lbnd)).T


@ft.lru_cache(maxsize=None)
def integral_to_one_matrix(order: int) -> np.ndarray:
    """Q with `(Q f)_j = int_{u_j}^1 f(u) du` for f interpolated at the nodes."""
    return -_integral_matrix(order, 1.0)


@ft.lru_cache(maxsize=None)
def integral_from_zero_matrix(order: int) -> np.ndarray:
    """P with `(P f)_j = int_0^{u_j} f(u) du`, accurate (relatively) near u = 0."""
    return _integral_matrix(order, -1.0)


def interpolate(values: Float[Array, " order"], u: ArrayLike) -> Array:
    """Barycentric interpolation of node values at points u in [0, 1] (any shape)."""
    order = values.shape[-1]
    nodes = jnp.asarray(chebyshev_nodes(order), values.dtype)
    weights = jnp.asarray(_barycentric_weights(order), values.dtype)
    u = jnp.asarray(u, values.dtype)
    flat = u.reshape(-1, 1)
    diff = flat - nodes[None, :]
    exact = diff == 0
    # At a node the formula is 0/0; replace by the node value (gradient-safe).
    terms = weights[None, :] / jnp.where(exact, 1.0, diff)
    value = jnp.sum(terms * values[None, :], -1) / jnp.sum(terms, -1)
    at_node = jnp.sum(jnp.where(exact, values[None, :], 0.0), -1)
    return jnp.where(jnp.any(exact, -1), at_node, value).reshape(u.shape)


@ft.lru_cache(maxsize=None)
def interpolation_matrix(order: int, points: int) -> np.ndarray:
    """B with `B @ values` = the interpolant at `points` equispaced u in [0, 1] (float64;
    one matrix product instead of a barycentric sum per call)."""
    nodes = chebyshev_nodes(order)
    weights = _barycentric_weights(order)
    u = np.linspace(0.0, 1.0, points)
    diff = u[:, None] - nodes[None, :]
    exact = diff == 0
    terms = weights[None, :] / np.where(exact, 1.0, diff)
    matrix = terms / np.sum(terms, axis=1, keepdims=True)
    rows = np.any(exact, axis=1)
    matrix[rows] = exact[rows].astype(float)
    return matrix
