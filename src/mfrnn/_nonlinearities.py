"""Nonlinearities phi and their Gaussian averages (docs/theory/nonlinearities.md).

Notation: `<f>_{mu, delta} = E f(mu + sqrt(delta) z)`, z ~ N(0, 1), and
`[f]_{mu; delta0, delta} = E f(a) f(b)` for (a, b) jointly Gaussian with means mu,
variances delta0 and covariance delta (|delta| <= delta0).
"""

import abc
import functools as ft
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._misc import safe_sqrt, standard_normal_rule, taylor_remainder_integral
from ._options import (
    option,
    PhiFunction,
    PhiFunctionLike,
    QuadratureRule,
    QuadratureRuleLike,
)


_DEFAULT_ORDER = 301


def _check_which(which) -> PhiFunction:
    return option(PhiFunction, which, "which")


def _check_rule(rule) -> QuadratureRule:
    return option(QuadratureRule, rule, "rule")


_T = TypeVar("_T")


def _select(
    which: PhiFunctionLike,
    *,
    phi: Callable[[], _T],
    dphi: Callable[[], _T],
    ddphi: Callable[[], _T],
    Phi: Callable[[], _T],
) -> _T:
    """The one place where a nonlinearity's formulas are chosen by `which`: each case is
    a function of no argument, and only the chosen one is evaluated."""
    return dict(phi=phi, dphi=dphi, ddphi=ddphi, Phi=Phi)[_check_which(which)]()


def gaussian_average(
    fn: Callable[[Array], Array],
    mu: ArrayLike,
    delta: ArrayLike,
    *,
    order: int = _DEFAULT_ORDER,
    rule: QuadratureRuleLike = QuadratureRule.trapezoid,
) -> Float[Array, ""]:
    """`E fn(mu + sqrt(delta) z)` for z ~ N(0, 1), by quadrature.

    **Arguments:**

    - `fn`: elementwise function of an array.
    - `mu`, `delta`: mean and variance (scalars).
    - `order`, `rule`: number of nodes and a [`mfrnn.QuadratureRule`][]. The default
      (trapezoid, 301 nodes on [-10, 10]) gives tanh averages to 1e-13 at delta = 20
      and 1e-9 at delta = 40.

    **Returns:** a scalar.

    ```python
    mfrnn.gaussian_average(jnp.tanh, 0.0, 2.0)
    ```
    """
    z, w = standard_normal_rule(order, _check_rule(rule))
    mu = jnp.asarray(mu)
    x = mu + safe_sqrt(delta) * jnp.asarray(z, dtype=mu.dtype)
    return jnp.sum(jnp.asarray(w, dtype=x.dtype) * fn(x))


def _two_point(mean_fn, mu, delta0, delta, order: int, rule: QuadratureRule) -> Array:
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


# Adaptive two-point trapezoid rule. The quadrature error of a Gaussian average by the
# trapezoid rule with spacing dx is ~exp(-2 pi d / dx) for f analytic in a strip of half
# width d, times the Gaussian's own ~exp(-2 pi^2 var / dx^2). The user's rule (`order`
# nodes on [-10, 10], z-spacing h) resolves f at x-spacing s = h sqrt(delta0); the shared
# (outer, variance |delta|) and private (inner, variance v = delta0 - |delta|) parts
# need that only where f is not yet smoothed: the inner average F_v = <f>_v is entire,
# so the outer needs spacing ~sqrt(v) only. The grid shape follows (|delta|, v) at a
# fixed cost: n_in(delta) * n_out(delta) <= budget, a ~10x smaller grid than
# order x order at the same accuracy (<= 1e-14 relative for delta0 <= 20 at order 301).
_HALF_WIDTH = 8.5  # z truncation: exp(-8.5^2 / 2) ~ 2e-16
_LOG_EPS = 34.5  # target error exp(-34.5) ~ 1e-15
_GAUSS_SPACING = math.sqrt(2.0 * math.pi**2 / _LOG_EPS)  # z-spacing resolving exp(-z^2/2)
_SMOOTH_SPACING = 4.0 * math.pi**2 / _LOG_EPS  # outer: (h_o sqrt|d|)^2 (4|d| + 2v) / v
_BLOCK = 8  # inner nodes come in blocks of _BLOCK: shapes stay static


def _inner_blocks(order: int, a2, v):
    """Inner-rule blocks m (n_in = m * _BLOCK nodes) for variances |delta| = a2, v."""
    h = 20.0 / (order - 1)
    # z-spacing h_i: x-spacing h_i sqrt(v) <= s = h sqrt(delta0), and <= the Gaussian's.
    h_in = np.minimum(h * np.sqrt((a2 + v) / np.maximum(v, 1e-300)), _GAUSS_SPACING)
    return np.ceil((np.ceil(2 * _HALF_WIDTH / h_in) + 1) / _BLOCK)


@ft.lru_cache(maxsize=None)
def _two_point_budget(order: int) -> tuple[int, int]:
    """(chunks R, most blocks M) of the adaptive two-point rule: R * _BLOCK nodes cover
    every correlation rho = |delta| / delta0 in [0, 1] (the rule is scale free)."""
    h = 20.0 / (order - 1)
    a2 = np.linspace(0.0, 1.0, 20001)
    v = 1.0 - a2
    m = _inner_blocks(order, a2, v)
    # Outer z-spacing: smoothing (F_v entire) or the rule's resolution of f itself.
    h_smooth = np.sqrt(_SMOOTH_SPACING * v / np.maximum(4 * a2 + 2 * v, 1e-300))
    h_plain = np.minimum(h / np.sqrt(np.maximum(a2, 1e-300)), _GAUSS_SPACING)
    n_out = np.ceil(2 * _HALF_WIDTH / np.maximum(h_smooth, h_plain)) + 1
    return int(np.max(m * n_out)), int(np.max(m))


class _Grid(NamedTuple):
    """The adaptive two-point grid at one (mu, delta0, delta): R chunks of _BLOCK nodes."""

    x: Array  # (R, _BLOCK) nodes, x = mu + sqrt|delta| z + sqrt(v) zeta
    w: Array  # (R, _BLOCK) inner weights (each outer node's sum to one)
    zeta: Array  # (R, _BLOCK) inner coordinates
    centre: Array  # (R,) mu + sqrt|delta| z of each chunk's outer node
    seg: Array  # (R,) outer node of each chunk (R where dropped)
    z: Array  # (R,) outer coordinates
    weight: Array  # (R,) outer weights
    flip: Array  # (R,) each outer node's mirror image
    share: Array  # (R,) each chunk's part of its node's inner weights
    zeta2: Array  # the inner rule's second moment sum(w zeta^2) (~1)
    root_a: Array
    root_v: Array


def _adaptive_grid(mu, delta0, delta, order: int) -> _Grid:
    """Flat layout: R chunks of _BLOCK inner nodes; outer node i owns m consecutive
    chunks, so n_in = m * _BLOCK, n_out = R // m, and only chunk-level index arithmetic
    is traced."""
    chunks, max_blocks = _two_point_budget(order)
    dtype = mu.dtype
    a2 = jnp.abs(delta)
    v = jnp.maximum(delta0 - a2, 0.0)
    root_a, root_v = safe_sqrt(a2), safe_sqrt(v)

    # Grid shape: integers, no gradient (the rule is fixed for each value).
    h = 20.0 / (order - 1)
    s_, v_ = (jax.lax.stop_gradient(t) for t in (h * safe_sqrt(delta0), root_v))
    h_in = jnp.where(v_ * _GAUSS_SPACING > s_, s_ / jnp.where(v_ > 0, v_, 1.0), _GAUSS_SPACING)
    m = jnp.ceil((jnp.ceil(2 * _HALF_WIDTH / h_in) + 1) / _BLOCK)
    m = jnp.clip(m, 1, max_blocks).astype(jnp.int32)
    n_in = (m * _BLOCK).astype(dtype)
    n_out = chunks // m
    h_in = 2 * _HALF_WIDTH / (n_in - 1)
    h_out = 2 * _HALF_WIDTH / (n_out.astype(dtype) - 1)

    r = jnp.arange(chunks, dtype=jnp.int32)
    i = r // m  # outer node of each chunk
    blk = r - i * m  # its block of inner nodes
    c = jnp.arange(_BLOCK, dtype=dtype)
    z_tab = -_HALF_WIDTH + (jnp.arange(max_blocks, dtype=dtype)[:, None] * _BLOCK + c[None]) * h_in
    tab = jnp.where(jnp.arange(max_blocks)[:, None] < m, jnp.exp(-0.5 * z_tab**2), 0.0)
    tab = tab / jnp.sum(tab)  # exact for constants
    centre = mu + root_a * (-_HALF_WIDTH + i.astype(dtype) * h_out)
    zeta = -_HALF_WIDTH + (blk.astype(dtype)[:, None] * _BLOCK + c[None]) * h_in
    x0 = centre + root_v * (-_HALF_WIDTH + blk.astype(dtype) * (_BLOCK * h_in))
    x = x0[:, None] + (root_v * h_in) * c[None]
    # Outer sums over the chunks of each node (sorted); chunks past n_out are dropped.
    seg = jnp.where(i < n_out, i, chunks)
    z = -_HALF_WIDTH + jnp.arange(chunks, dtype=dtype) * h_out
    weight = jnp.where(jnp.arange(chunks) < n_out, jnp.exp(-0.5 * z**2), 0.0)
    weight = weight / jnp.sum(weight)
    # delta < 0: b = mu - y + u2, and the outer grid is symmetric.
    flip = jnp.clip(n_out - 1 - jnp.arange(chunks), 0, chunks - 1)
    zeta2 = jnp.sum(tab * z_tab**2)
    return _Grid(
        x, tab[blk], zeta, centre, seg, z, weight, flip, jnp.sum(tab, 1)[blk], zeta2, root_a, root_v
    )


def _as_arrays(mu, delta0, delta):
    mu = jnp.asarray(mu)
    dtype = jnp.result_type(mu, delta0, delta, float)
    return mu.astype(dtype), jnp.asarray(delta0, dtype), jnp.asarray(delta, dtype)


def _two_point_trapezoid(values, mu, delta0, delta, order: int, derivatives: bool = False):
    """`E f(a) f(b)` for every f of `values(x) -> tuple`, on the adaptive grid above;
    with `derivatives` also d/d(mu, delta0, delta) of each, on the same grid."""
    mu, delta0, delta = _as_arrays(mu, delta0, delta)
    grid = _adaptive_grid(mu, delta0, delta, order)
    x, w, zeta, seg, z, weight = grid.x, grid.w, grid.zeta, grid.seg, grid.z, grid.weight
    flip, root_a, root_v = grid.flip, grid.root_a, grid.root_v
    chunks = seg.shape[0]
    a2 = jnp.abs(delta)
    fs = values(x)
    k = len(fs)
    if derivatives:  # f' (alone and times the inner coordinate) and f'', elementwise
        d1 = lambda y: jax.jvp(values, (y,), (jnp.ones_like(y),))[1]
        d2 = jax.jvp(d1, (x,), (jnp.ones_like(x),))[1]
        fs = (*fs, *d1(x), *(f * zeta for f in d1(x)), *d2)

    def inner(p):  # the inner average at each outer node, and at its partner
        s = jax.ops.segment_sum(p, seg, chunks + 1, indices_are_sorted=True)
        return s[:chunks], jnp.where(delta >= 0, s[:chunks], s[flip])

    # Many sums (the derivatives): one variadic reduction, a single pass over the grid.
    parts = _row_sums(tuple(w * f for f in fs)) if derivatives else [jnp.sum(w * f, 1) for f in fs]
    sums = [inner(p) for p in parts]
    out = tuple(jnp.sum(weight * f * g) for f, g in sums[:k])
    if not derivatives:
        return out
    # The derivatives of this rule itself, as autodiff through it would give them but
    # without transposing the grid: x = mu + sqrt|delta| z + sqrt(v) zeta, v = delta0 -
    # |delta|, the partner's z mirrored for delta < 0. Where a square root vanishes the
    # limits: d/dv = ([f'', f] + [f, f'']) / 2 (heat equation), d/ddelta = [f'] (Price).
    mirror = jnp.where(delta >= 0, 1.0, -1.0)
    half = lambda r: 0.5 / jnp.where(r > 0, r, 1.0)  # d sqrt(t) / dt
    slopes = []
    for j in range(k):
        (f, g), (f1, g1), (fz, gz), (f2, g2) = sums[j :: k]
        d_mu = jnp.sum(weight * (f1 * g + f * g1))
        d_v = jnp.where(
            root_v > 0,
            jnp.sum(weight * (fz * g + f * gz)) * half(root_v),
            0.5 * jnp.sum(weight * (f2 * g + f * g2)),
        )
        d_a2 = jnp.sum(weight * z * (f1 * g + mirror * f * g1)) * half(root_a)
        price = jnp.sum(weight * f1 * g1)
        d_delta = jnp.where(root_a > 0, mirror * (d_a2 - d_v), price)
        clipped = delta0 < a2  # v = 0 there: only |delta| moves
        slopes.append((
            d_mu, jnp.where(clipped, 0.0, d_v), jnp.where(clipped, mirror * d_a2, d_delta)
        ))
    return out, tuple(slopes)


def _energy_gap_trapezoid(values, mu, delta0, delta, order: int, derivatives: bool = False):
    """`[phi]` and the energy gap (see `gaussian_energy_gap`) on one adaptive grid;
    `values(x) = (Phi, phi, phi', phi'')(x)`. With `derivatives` also their
    d/d(mu, delta0, delta), by Price's theorem and the heat equation on the same grid.

    Split a = x + u1, b = x +- u2 with x = mu + y shared (variance |delta|) and u
    private (variance q = delta0 - delta for delta >= 0). Then `q^2 gap = E_y Var_u
    Phi(x + u) - q E_y <phi>_x^2`, and by Stein `q <phi>_x = E_u[u Phi(x + u)]`, so
    `q^2 gap = E_y E_u R^2` with R the residual of Phi(x + u) after projecting out 1
    and u. The projection is unchanged when an affine function of u is subtracted
    first: D = Phi(x + u) - Phi(x) - u phi(x) = O(u^2) keeps every sum O(q^2), without
    the cancellation of the plain energy difference (q -> 0 near chaos onset). For
    delta < 0 (a transient of Newton's method) the plain difference on the mirrored
    grid, where q >= |delta| keeps it well conditioned.
    """
    mu, delta0, delta = _as_arrays(mu, delta0, delta)
    grid = _adaptive_grid(mu, delta0, delta, order)
    x, w, seg, weight, flip = grid.x, grid.w, grid.seg, grid.weight, grid.flip
    chunks = seg.shape[0]
    Phi, phi, dphi, ddphi = values(x)
    Phi_c, phi_c, *_ = values(grid.centre)
    u = grid.root_v * grid.zeta
    D = Phi - Phi_c[:, None] - u * phi_c[:, None]
    # Sums over the grid are the expensive part: the fewest terms, the rest per node.
    terms = (phi, D, u * D, D * D)
    if derivatives:
        terms += (dphi, ddphi, Phi * phi, phi * phi + Phi * dphi)
    node = lambda p: jax.ops.segment_sum(p, seg, chunks + 1, indices_are_sorted=True)[:chunks]
    s_phi, s0, s1, s2, *more = (node(p) for p in _row_sums(tuple(w * t for t in terms)))
    a, b = node(grid.share * Phi_c), node(grid.share * phi_c)  # Phi(x), phi(x) per node
    s_u2 = grid.root_v**2 * grid.zeta2
    # Phi = D + a + u b, E_u u = 0 (a symmetric rule): E_u Phi and E_u Phi^2 per node.
    s_Phi = s0 + a
    s_Phi2 = s2 + 2 * (a * s0 + b * s1) + a * a + b * b * s_u2
    positive = delta >= 0
    pair = lambda f, g: jnp.sum(weight * f * jnp.where(positive, g, g[flip]))  # [f, g]
    corr = pair(s_phi, s_phi)
    q = delta0 - delta
    residual = s2 - s0 * s0 - s1 * s1 / jnp.where(s_u2 > 0, s_u2, 1.0)
    plain = s_Phi2 - s_Phi * jnp.where(positive, s_Phi, s_Phi[flip])
    plain = plain - q * s_phi * jnp.where(positive, s_phi, s_phi[flip])
    gap = jnp.sum(weight * jnp.where(positive, residual, plain)) / q**2
    if not derivatives:
        return corr, gap
    s_dphi, s_ddphi, s_Phiphi, s_curv = more
    # T = q^2 gap = [Phi]_{d0,d0} - [Phi]_{d0,d} - q [phi]_{d0,d}. Price: d/dd [f] =
    # [f']; heat equation: d/dd0 [f, g] = ([f'', g] + [f, g'']) / 2 at fixed d.
    d_corr = (2 * pair(s_dphi, s_phi), pair(s_ddphi, s_phi), pair(s_dphi, s_dphi))
    t_mu = 2 * (jnp.sum(weight * s_Phiphi) - pair(s_Phi, s_phi) - q * pair(s_dphi, s_phi))
    t_d0 = jnp.sum(weight * s_curv) - pair(s_dphi, s_Phi) - corr - q * pair(s_ddphi, s_phi)
    t_d = -q * pair(s_dphi, s_dphi)
    two = 2 * gap / q  # d(T / q^2) = dT / q^2 - 2 gap / q dq, dq = d d0 - d d
    d_gap = (t_mu / q**2, t_d0 / q**2 - two, t_d / q**2 + two)
    return (corr, gap), (d_corr, d_gap)


@eqx.filter_custom_jvp
def _energy_gap_adaptive(phi, mu, delta0, delta, *, order):
    values = lambda x: phi.functions(x, _GAP_FUNCTIONS)
    return _energy_gap_trapezoid(values, mu, delta0, delta, order)


_GAP_FUNCTIONS = (PhiFunction.Phi, PhiFunction.phi, PhiFunction.dphi, PhiFunction.ddphi)


@_energy_gap_adaptive.def_jvp
def _energy_gap_adaptive_jvp(primals, tangents, *, order):
    return _jvp_on_grid(_energy_gap_trapezoid, _GAP_FUNCTIONS, primals, tangents, order)


@jax.custom_jvp
def _row_sums(terms):
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    return jax.lax.reduce(terms, zeros, lambda a, b: tuple(p + q for p, q in zip(a, b)), (1,))


@_row_sums.defjvp
def _row_sums_jvp(primals, tangents):
    # Plain sums for the tangents (a variadic reduce has no JVP rule for zero tangents).
    (terms,), (dterms,) = primals, tangents
    return _row_sums(terms), tuple(jnp.sum(t, 1) for t in dterms)


@eqx.filter_custom_jvp
def _two_point_adaptive(phi, mu, delta0, delta, *, which, order):
    return _two_point_trapezoid(lambda x: phi.functions(x, which), mu, delta0, delta, order)


@_two_point_adaptive.def_jvp
def _two_point_adaptive_jvp(primals, tangents, *, which, order):
    return _jvp_on_grid(_two_point_trapezoid, which, primals, tangents, order)


def _jvp_on_grid(rule, which, primals, tangents, order: int):
    """The JVP of an adaptive-grid `rule` from the derivatives it computes on its own
    grid: a few more sums in the forward pass and scalars to store for reverse mode,
    instead of transposing the grid's gathers. phi's own parameters by autodiff."""
    phi, mu, delta0, delta = primals
    t_phi, *t_args = tangents
    out, slopes = rule(
        lambda x: phi.functions(x, which), mu, delta0, delta, order, derivatives=True
    )
    t_out = []
    for slope in slopes:
        terms = [s * t for s, t in zip(slope, t_args) if t is not None]
        t_out.append(sum(terms) if terms else jnp.zeros_like(slope[0]))
    if any(t is not None for t in jax.tree.leaves(t_phi)):  # e.g. ShiftedTanh's theta
        fn = lambda p: rule(lambda x: p.functions(x, which), mu, delta0, delta, order)
        _, t_phi_out = eqx.filter_jvp(fn, (phi,), (t_phi,))
        t_out = [a + b for a, b in zip(t_out, t_phi_out)]
    return out, tuple(t_out)


@ft.lru_cache(maxsize=None)
def _hermite_nodes(h: float, terms: int) -> tuple[np.ndarray, np.ndarray]:
    # Nodes at spacing h wide enough for He_n exp(-z^2/4) up to n = terms (turning point
    # sqrt(4n + 2)); trapezoid weights normalised to one.
    half = h * np.ceil((np.sqrt(4.0 * terms + 2.0) + 6.0) / h)
    z = np.linspace(-half, half, int(round(2 * half / h)) + 1)
    w = np.exp(-0.5 * z**2)
    return z, w / w.sum()


@ft.lru_cache(maxsize=None)
def _hermite_matrix(h: float, terms: int) -> np.ndarray:
    z, w = _hermite_nodes(h, terms)
    rows = [np.sqrt(w), z * np.sqrt(w)]
    for n in range(1, terms - 1):
        rows.append((z * rows[n] - np.sqrt(n) * rows[n - 1]) / np.sqrt(n + 1.0))
    return np.stack(rows[:terms]) * np.sqrt(w)


def _hermite_functions(h: float, terms: int):
    """Nodes z and a function of the dtype giving the matrix `w_i He_n(z_i) / sqrt(n!)`
    (n < terms), built by the stable three-term recursion of `He_n sqrt(w) / sqrt(n!)`:
    a constant when small, else computed by the program (no megabytes of constants)."""
    z, w = _hermite_nodes(h, terms)

    def matrix(dtype):
        if terms * len(z) <= 100_000:
            return jnp.asarray(_hermite_matrix(h, terms), dtype)
        root_w = jnp.asarray(np.sqrt(w), dtype)
        zz = jnp.asarray(z, dtype)

        def step(carry, n):
            prev, cur = carry
            nxt = (zz * cur - jnp.sqrt(n) * prev) / jnp.sqrt(n + 1.0)
            return (cur, nxt), cur

        n = jnp.arange(terms, dtype=dtype)
        _, rows = jax.lax.scan(step, (jnp.zeros_like(root_w), root_w), n)
        return rows * root_w[None]

    return z, matrix


def gaussian_two_point_average(
    fn: Callable[[Array], Array],
    mu: ArrayLike,
    delta0: ArrayLike,
    delta: ArrayLike,
    *,
    order: int = _DEFAULT_ORDER,
    rule: QuadratureRuleLike = QuadratureRule.trapezoid,
) -> Float[Array, ""]:
    """`E fn(a) fn(b)`, (a, b) Gaussian with means `mu`, variances `delta0`, covariance
    `delta` (clipped to |delta| <= delta0), by nested quadrature (order**2 evaluations);
    `order` and `rule` (a [`mfrnn.QuadratureRule`][]) as for [`mfrnn.gaussian_average`][].

    ```python
    mfrnn.gaussian_two_point_average(jnp.tanh, 0.0, 2.0, 1.0)
    ```
    """

    def mean_fn(m, v):
        return gaussian_average(fn, m, v, order=order, rule=rule)

    return _two_point(mean_fn, mu, delta0, delta, order, _check_rule(rule))


def _gap_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    # Nodes t on [0, 1] for the energy gap's integral form: Gauss-Legendre in u with
    # t = 1 - (1 - u)^2. The curvature is smooth but not analytic at t = 1 (the
    # correlation -> 1, where its Mehler series converges slowly); the substitution
    # makes the rule converge fast. Relative error of the integral, tanh, Delta0 <= 20:
    # 8 plain nodes up to 4e-5 (deep chaos, D_inf ~ 0); 12 substituted ones <= 5e-10.
    u, w = np.polynomial.legendre.leggauss(order)
    u, w = (u + 1) / 2, w / 2
    return 1.0 - (1.0 - u) ** 2, 2.0 * (1.0 - u) * w


_GAP_RULE = _gap_rule(12)


class AbstractNonlinearity(eqx.Module):
    """A rate nonlinearity phi with its derivatives, primitive and Gaussian averages.

    Concrete classes give closed forms where they exist and quadrature otherwise.
    `which`, a [`mfrnn.PhiFunction`][], selects the function averaged: `PhiFunction.phi`,
    `.dphi` (phi'), `.ddphi` (phi'') or `.Phi` (the primitive with Phi(0) = 0, used by
    the DMFT potential).
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
    def gaussian_mean(
        self, mu: ArrayLike, delta: ArrayLike, which: PhiFunctionLike = PhiFunction.phi
    ) -> Array:
        """`<f>_{mu, delta}` with f selected by `which`."""

    @abc.abstractmethod
    def gaussian_second_moment(
        self, mu: ArrayLike, delta: ArrayLike, which: PhiFunctionLike = PhiFunction.phi
    ) -> Array:
        """`<f^2>_{mu, delta}` with f selected by `which`."""

    @abc.abstractmethod
    def gaussian_correlation(
        self,
        mu: ArrayLike,
        delta0: ArrayLike,
        delta: ArrayLike,
        which: PhiFunctionLike = PhiFunction.phi,
    ) -> Array:
        """`[f]_{mu; delta0, delta} = E f(a) f(b)` with f selected by `which`."""

    def functions(self, x: ArrayLike, which: tuple[PhiFunctionLike, ...]) -> tuple[Array, ...]:
        """The functions selected by `which` at x, elementwise; subclasses share work
        between them (one tanh gives tanh and its derivatives)."""
        return tuple(_function(self, w)(x) for w in which)

    def gaussian_correlations(
        self, mu: ArrayLike, delta0: ArrayLike, delta: ArrayLike, which: tuple[PhiFunctionLike, ...]
    ) -> tuple[Array, ...]:
        """`[f]_{mu; delta0, delta}` for each f of `which`: quadrature nonlinearities
        evaluate them on one set of nodes."""
        return tuple(self.gaussian_correlation(mu, delta0, delta, w) for w in which)

    def gaussian_energy_gap(
        self, mu: ArrayLike, delta0: ArrayLike, delta: ArrayLike
    ) -> tuple[Array, Array]:
        """`[phi]_{mu; delta0, delta}` and the energy gap
        `([Phi]_{delta0, delta0} - [Phi]_{delta0, delta} - q [phi]_{delta0, delta}) / q^2`,
        q = delta0 - delta > 0.

        The gap is the Taylor remainder of c -> [Phi]_{delta0, c} from delta to delta0
        (its second derivative is [phi'], Price), which the DMFT's energy balance needs
        near chaos onset, where q -> 0 and the plain difference loses digits as 1/q^2.
        Here it is the integral form `int_0^1 (1 - t) [phi']_{delta0, delta + t q} dt`
        on 12 Gauss-Legendre nodes, substituted for the non-analytic end t = 1.
        """
        q = jnp.asarray(delta0) - jnp.asarray(delta)
        t, w = (jnp.asarray(a, q.dtype) for a in _GAP_RULE)
        curvature = jax.vmap(lambda t: self.gaussian_correlation(mu, delta0, delta + t * q, PhiFunction.dphi))
        gap = jnp.sum(w * (1.0 - t) * curvature(t))
        return self.gaussian_correlation(mu, delta0, delta), gap


def _function(phi: AbstractNonlinearity, which: PhiFunctionLike) -> Callable[[Array], Array]:
    return _select(
        which,
        phi=lambda: phi.__call__,
        dphi=lambda: phi.derivative,
        ddphi=lambda: phi.second_derivative,
        Phi=lambda: phi.primitive,
    )


class AbstractQuadratureNonlinearity(AbstractNonlinearity):
    """Nonlinearities whose Gaussian averages are all computed by quadrature."""

    order: eqx.AbstractVar[int]
    rule: eqx.AbstractVar[QuadratureRule]

    def gaussian_mean(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        fn = _function(self, which)
        return gaussian_average(fn, mu, delta, order=self.order, rule=self.rule)  # pyright: ignore

    def gaussian_second_moment(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        fn = _function(self, which)
        return gaussian_average(
            lambda x: fn(x) ** 2, mu, delta, order=self.order, rule=self.rule  # pyright: ignore
        )

    def gaussian_correlation(self, mu, delta0, delta, which: PhiFunctionLike = PhiFunction.phi):
        return self.gaussian_correlations(mu, delta0, delta, (which,))[0]

    def hermite_coefficients(
        self, mu: ArrayLike, delta0: ArrayLike, which: tuple[PhiFunctionLike, ...], terms: int
    ) -> tuple[Array, ...]:
        """Hermite coefficients `c_n = E[f(mu + sqrt(delta0) z) He_n(z)] / sqrt(n!)`,
        n < `terms`, of each f of `which` (trapezoid nodes at the rule's spacing).

        By Mehler's formula `[f]_{mu; delta0, delta} = sum_n c_n^2 (delta / delta0)^n`:
        one set of coefficients gives the two-point average at every delta, with a
        geometric tail (`sum_n c_n^2 = <f^2>`).
        """
        z, psi = _hermite_functions(20.0 / (self.order - 1), terms)  # pyright: ignore
        mu = jnp.asarray(mu)
        dtype = jnp.result_type(mu, delta0, float)
        z = jnp.asarray(z, dtype)
        values = self.functions(mu + safe_sqrt(jnp.asarray(delta0, dtype)) * z, which)
        psi = psi(dtype)
        return tuple(psi @ f for f in values)

    def gaussian_energy_gap(self, mu, delta0, delta):
        """As [`mfrnn.AbstractNonlinearity.gaussian_energy_gap`][], on the trapezoid
        rule by one adaptive two-point grid (the variance of Phi's residual after
        projecting out the affine part) instead of the integral form's 13."""
        if self.rule != QuadratureRule.trapezoid:
            return super().gaussian_energy_gap(mu, delta0, delta)
        return _energy_gap_adaptive(self, mu, delta0, delta, order=self.order)  # pyright: ignore

    def gaussian_correlations(self, mu, delta0, delta, which: tuple[PhiFunctionLike, ...]):
        which = tuple(_check_which(w) for w in which)
        if self.rule == QuadratureRule.trapezoid:
            return _two_point_adaptive(
                self, mu, delta0, delta, which=which, order=self.order  # pyright: ignore
            )
        return tuple(
            gaussian_two_point_average(
                _function(self, w), mu, delta0, delta, order=self.order, rule=self.rule  # pyright: ignore
            )
            for w in which
        )


def _logcosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2.0 * ax)) - np.log(2.0)


def _tanh_functions(y, which, primitive):
    """phi, phi', phi'' and the primitive `primitive(log cosh y)` from one tanh (the
    transcendentals dominate a quadrature)."""
    t = jnp.tanh(y)

    def logcosh():
        # log cosh y = |y| - log 2 + log1p(e), e = exp(-2|y|) = (1 - |t|) / (1 + |t|):
        # 1 - |t| is exact and carries t's absolute error, so this keeps log cosh's
        # absolute error at rounding, without a second exp.
        a = jnp.abs(t)
        return jnp.abs(y) - np.log(2.0) + jnp.log1p((1.0 - a) / (1.0 + a))

    return tuple(
        _select(
            w,
            phi=lambda: t,
            dphi=lambda: 1.0 - t**2,
            ddphi=lambda: -2.0 * t * (1.0 - t**2),
            Phi=lambda: primitive(logcosh()),
        )
        for w in which
    )


class Tanh(AbstractQuadratureNonlinearity):
    """phi(x) = tanh(x); slope 1 at 0. Gaussian averages by quadrature (`order` nodes of
    the [`mfrnn.QuadratureRule`][] `rule`)."""

    order: int = eqx.field(static=True, default=_DEFAULT_ORDER)
    rule: QuadratureRule = eqx.field(
        static=True, default=QuadratureRule.trapezoid, converter=_check_rule
    )

    def __call__(self, x):
        return jnp.tanh(x)

    def derivative(self, x):
        return 1.0 - jnp.tanh(x) ** 2

    def second_derivative(self, x):
        t = jnp.tanh(x)
        return -2.0 * t * (1.0 - t**2)

    def primitive(self, x):
        return _logcosh(x)

    def functions(self, x, which):
        return _tanh_functions(jnp.asarray(x), which, lambda lc: lc)


class ShiftedTanh(AbstractQuadratureNonlinearity):
    """phi(x) = 1 + tanh(x - theta): positive rates, <phi> != 0 (so mean fields appear)."""

    theta: Float[Array, ""]
    order: int = eqx.field(static=True)
    rule: QuadratureRule = eqx.field(static=True)

    def __init__(
        self,
        theta: ArrayLike = 0.0,
        *,
        order: int = _DEFAULT_ORDER,
        rule: QuadratureRuleLike = QuadratureRule.trapezoid,
    ):
        self.theta = jnp.asarray(theta, dtype=float)
        self.order = order
        self.rule = _check_rule(rule)

    def __call__(self, x):
        return 1.0 + jnp.tanh(x - self.theta)

    def derivative(self, x):
        return 1.0 - jnp.tanh(x - self.theta) ** 2

    def second_derivative(self, x):
        t = jnp.tanh(x - self.theta)
        return -2.0 * t * (1.0 - t**2)

    def primitive(self, x):
        return x + _logcosh(x - self.theta) - _logcosh(self.theta)

    def functions(self, x, which):
        x = jnp.asarray(x)
        fs = _tanh_functions(x - self.theta, which, lambda lc: x + lc - _logcosh(self.theta))
        return tuple(1.0 + f if w == PhiFunction.phi else f for w, f in zip(which, fs))


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

    def gaussian_mean(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu)
        delta = jnp.asarray(delta)
        s = 1.0 + _C * delta

        def Phi():
            # Stein: E[x phi(x)] = mu <phi> + delta <phi'>.
            mean_dphi = self._mean_dphi(mu, delta)
            mean_phi = self.gaussian_mean(mu, delta, PhiFunction.phi)
            return mu * mean_phi + delta * mean_dphi + (mean_dphi - 1.0) * (2.0 / np.pi)

        return _select(
            which,
            phi=lambda: jsp.erf(np.sqrt(_A2) * mu / jnp.sqrt(s)),
            dphi=lambda: self._mean_dphi(mu, delta),
            ddphi=lambda: -_C * mu * self._mean_dphi(mu, delta) / s,
            Phi=Phi,
        )

    def gaussian_second_moment(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        return self.gaussian_correlation(mu, delta, delta, which)

    def gaussian_correlation(self, mu, delta0, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu)
        delta0 = jnp.asarray(delta0)
        delta = jnp.clip(jnp.asarray(delta), -delta0, delta0)
        corr = jax.vmap(lambda r: self._corr_dphi(mu, delta0, r))
        mean_phi = lambda: self.gaussian_mean(mu, delta0, PhiFunction.phi)

        def Phi():
            m_phi = mean_phi()
            mean_Phi = self.gaussian_mean(mu, delta0, PhiFunction.Phi)
            return mean_Phi**2 + delta * m_phi**2 + taylor_remainder_integral(corr, delta, 1)

        return _select(
            which,
            phi=lambda: mean_phi() ** 2 + taylor_remainder_integral(corr, delta, 0),
            dphi=lambda: self._corr_dphi(mu, delta0, delta),
            ddphi=lambda: jax.jvp(
                lambda d: self._corr_dphi(mu, delta0, d), (delta,), (jnp.ones_like(delta),)
            )[1],
            Phi=Phi,
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

    def gaussian_mean(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return _select(
            which,
            phi=lambda: self._truncated_moment(mu, delta, 1),
            dphi=lambda: self._truncated_moment(mu, delta, 0),
            ddphi=lambda: _normal_pdf(mu / jnp.sqrt(delta)) / jnp.sqrt(delta),
            Phi=lambda: 0.5 * self._truncated_moment(mu, delta, 2),
        )

    def gaussian_second_moment(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return _select(
            which,
            phi=lambda: self._truncated_moment(mu, delta, 2),
            dphi=lambda: self._truncated_moment(mu, delta, 0),
            ddphi=lambda: jnp.full_like(delta, jnp.inf),
            Phi=lambda: 0.25 * self._truncated_moment(mu, delta, 4),
        )

    def gaussian_correlation(self, mu, delta0, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu, dtype=float)
        delta0 = jnp.asarray(delta0, dtype=mu.dtype)
        delta = jnp.clip(jnp.asarray(delta, dtype=mu.dtype), -delta0, delta0)
        density = jax.vmap(lambda r: self._density00(mu, delta0, r))
        rest = lambda k: taylor_remainder_integral(density, delta, k)
        # The means, always in the order phi', phi, Phi.
        kinds = (PhiFunction.dphi, PhiFunction.phi, PhiFunction.Phi)
        means = lambda k: [self.gaussian_mean(mu, delta0, w) for w in kinds[:k]]

        def phi():
            m_dphi, m_phi = means(2)
            return m_phi**2 + delta * m_dphi**2 + rest(1)

        def Phi():
            m_dphi, m_phi, m_Phi = means(3)
            return m_Phi**2 + delta * m_phi**2 + 0.5 * delta**2 * m_dphi**2 + rest(2)

        return _select(
            which,
            phi=phi,
            dphi=lambda: means(1)[0] ** 2 + rest(0),
            ddphi=lambda: self._density00(mu, delta0, delta),
            Phi=Phi,
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

    def gaussian_mean(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu, dtype=float)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return _select(
            which,
            phi=lambda: mu,
            dphi=lambda: jnp.ones_like(mu + delta),
            ddphi=lambda: jnp.zeros_like(mu + delta),
            Phi=lambda: 0.5 * (mu**2 + delta),
        )

    def gaussian_second_moment(self, mu, delta, which: PhiFunctionLike = PhiFunction.phi):
        return self.gaussian_correlation(mu, delta, delta, which)

    def gaussian_correlation(self, mu, delta0, delta, which: PhiFunctionLike = PhiFunction.phi):
        mu = jnp.asarray(mu, dtype=float)
        delta0 = jnp.asarray(delta0, dtype=mu.dtype)
        delta = jnp.asarray(delta, dtype=mu.dtype)
        return _select(
            which,
            phi=lambda: mu**2 + delta,
            dphi=lambda: jnp.ones_like(mu + delta0 + delta),
            ddphi=lambda: jnp.zeros_like(mu + delta0 + delta),
            Phi=lambda: 0.25
            * (mu**4 + 2 * mu**2 * delta0 + 4 * mu**2 * delta + delta0**2 + 2 * delta**2),
        )


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
