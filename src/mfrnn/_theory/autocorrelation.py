"""The DMFT autocorrelation Delta(tau) without shooting (docs/theory/dmft.md).

The particle `Delta'' = -V'(Delta)` falls from Delta0 (at rest) to Delta_inf in infinite
time, so `tau(Delta) = int_Delta^Delta0 dD / sqrt(2 W(D))`, `W(D) = V(Delta0) - V(D)`.
With `y = Delta - Delta_inf` and `y = q exp(-L (1 - u)^2)`, u in [0, 1], the integrand in
u is analytic at both ends (the square-root singularity at Delta0 and the logarithmic
tail at Delta_inf are both mapped away), so tau(u) is computed spectrally on
Chebyshev nodes. Below `y_c = q e^{-L}` the energy is its cubic Taylor polynomial
`2 W = y^2 (k^2 + beta y)` and the tail of Delta(tau) is in closed form.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._chebyshev import (
    chebyshev_nodes,
    integral_from_zero_matrix,
    integral_to_one_matrix,
    interpolate,
)
from .._ensembles import GaussianEnsemble
from .._jit import jit
from .._nonlinearities import AbstractQuadratureNonlinearity
from .._solution import (
    CHAOTIC,
    DMFTSolution,
    raise_if_failed,
    RESULTS,
    summary_repr,
    vmap_batch,
)
from .dmft import solve_dmft


# y_c / q where the Taylor tail takes over: the cubic's error there is ~ TAIL_START^2,
# the cancellation error of V(Delta_inf) - V(Delta) is ~ eps / TAIL_START^2.
TAIL_START = 1e-4
_L = float(-np.log(TAIL_START))


class Autocorrelation(eqx.Module):
    """DMFT autocorrelation of a random network; call it on lags: `ac(tau)`.

    - `delta0`, `delta_inf`: Delta(0) and Delta(inf).
    - `tau_half`: lag where `Delta - Delta_inf` has fallen to half of `Delta0 - Delta_inf`
      (NaN outside the chaotic regime).
    - `tail_rate`: `Delta - Delta_inf ~ exp(-tail_rate tau)` at large tau.
    - `result`: [`mfrnn.RESULTS`][] code of the DMFT solution it was built from.
    - the remaining fields are the spectral node data the profile is evaluated from.

    Fields carry the batch shape of the ensemble grid; `ac(tau)` returns
    `batch + tau.shape`.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    delta0: Float[Array, "*batch"]
    delta_inf: Float[Array, "*batch"]
    tau_half: Float[Array, "*batch"]
    tail_rate: Float[Array, "*batch"]
    tail_beta: Float[Array, "*batch"]
    tau_nodes: Float[Array, "*batch order"]
    y_nodes: Float[Array, "*batch order"]
    chaotic: Bool[Array, "*batch"]
    result: RESULTS

    def __call__(self, tau: ArrayLike) -> Array:
        def single(ac):
            k = jnp.where(ac.chaotic, ac.tail_rate, 1.0)
            value = evaluate_profile(ac.tau_nodes, ac.y_nodes, k, ac.tail_beta, ac.delta_inf, tau)
            return jnp.where(ac.chaotic, value, ac.delta0)

        return vmap_batch(single, jnp.ndim(self.delta0))(self)

    def default_lags(
        self, n: int = 400, *, half_lives: float = 6.0, flat: float = 20.0
    ) -> Float[Array, "*batch n"]:
        """`n` lags from 0 that show the decay of Delta(tau) (the lags of `mfrnn dmft
        --plot`): up to `half_lives` times `tau_half` in the chaotic regime (by then
        `Delta - Delta_inf` is a few percent of its range); up to `flat` elsewhere
        (Delta is constant) and where `tau_half` is not finite. Shape `batch + (n,)`.

        ```python
        ac = mfrnn.dmft_autocorrelation(mfrnn.GaussianEnsemble(2.0))
        lags = ac.default_lags()
        plt.plot(lags, ac(lags))
        ```
        """
        decays = self.chaotic & jnp.isfinite(self.tau_half)
        safe = jnp.where(decays, self.tau_half, 1.0)
        longest = jnp.where(decays, half_lives * safe, flat)
        return longest[..., None] * jnp.linspace(0.0, 1.0, n, dtype=longest.dtype)


# Mehler's series [f](rho) = sum_n c_n^2 rho^n (rho = Delta / Delta0) converges like
# rho^n: it gives the two-point averages at every node with rho <= _MEHLER_RHO from one
# set of Hermite coefficients (nodes with y / q above it use the two-point quadrature).
_MEHLER_RHO = 0.9
_MEHLER_TERMS = 330  # 0.9^330 ~ 1e-15


def profile_points(d0, d_inf, chaotic, order: int):
    """(Delta0, Delta_inf, q) of one solution, safe values off the chaotic regime, and
    y = Delta - Delta_inf at the Chebyshev nodes."""
    q = jnp.where(chaotic, d0 - d_inf, 1.0)
    d_inf = jnp.where(chaotic, d_inf, 0.0)
    s = 1.0 - jnp.asarray(chebyshev_nodes(order), q.dtype)
    return d_inf + q, d_inf, q, q * jnp.exp(-_L * s**2)


def _series_averages(b, phi, d0, d_inf, y):
    """Mehler's series for [phi], [phi'] at Delta = Delta_inf + y, and whether its tail
    is negligible there (Delta_inf > 0 moves rho = Delta / Delta0 up)."""
    c_phi, c_dphi = phi.hermite_coefficients(b, d0, ("phi", "dphi"), _MEHLER_TERMS)
    c2 = jnp.stack([c_phi**2, c_dphi**2])  # (2, terms)
    rho = jnp.clip((d_inf + y) / d0, -1.0, 1.0)

    def horner(acc, coeff):
        return acc * rho[None] + coeff[:, None], None

    series, _ = jax.lax.scan(horner, jnp.zeros((2,) + rho.shape, rho.dtype), c2.T[::-1])
    # Tail bound from the last coefficients (odd/even ones vanish by symmetry).
    last = jnp.max(c2[:, -16:])
    tail = last * jnp.abs(rho) ** (_MEHLER_TERMS - 16) / (1.0 - jnp.minimum(jnp.abs(rho), 0.999))
    eps = jnp.finfo(rho.dtype).eps
    return series, jnp.all(tail <= 10 * eps * jnp.sum(c2))


def node_averages(b, phi, d0, d_inf, chaotic, order: int, ndim: int):
    """`[phi]` and `[phi']` at the profile nodes of a batch of `ndim` axes of solutions
    (arrays batch + (order,)). Quadrature nonlinearities: Mehler's series at the nodes
    with y / q <= _MEHLER_RHO, unless its tail is too long somewhere in the batch; the
    two-point quadrature elsewhere."""
    args = (b, d0, d_inf, chaotic)
    series = isinstance(phi, AbstractQuadratureNonlinearity) and phi.rule == "trapezoid"
    u = chebyshev_nodes(order)
    lower = int(np.sum(np.exp(-_L * (1.0 - u) ** 2) <= _MEHLER_RHO)) if series else 0

    def lower_series(b_, d0_, d_inf_, chaotic_):
        d0_, d_inf_, _, y = profile_points(d0_, d_inf_, chaotic_, order)
        values, ok = _series_averages(b_, phi, d0_, d_inf_, y[:lower])
        return values, ok | ~chaotic_

    if lower:
        values, ok = vmap_batch(lower_series, ndim)(*args)
        use_series = jnp.all(ok)  # one flag for the batch: the conds below stay conds
    else:
        values, use_series = jnp.zeros(jnp.shape(d0) + (2, 1), jnp.result_type(d0)), False

    def nodes(b_, d0_, d_inf_, chaotic_, values_):
        d0_, d_inf_, _, y = profile_points(d0_, d_inf_, chaotic_, order)

        def quadrature(k, d_):
            return jnp.stack(phi.gaussian_correlations(b_, d0_, d_, ("phi", "dphi")))

        def node(k_d):
            k, d_ = k_d
            take = lambda k, d_: values_[:, jnp.minimum(k, values_.shape[1] - 1)]
            return jax.lax.cond(use_series & (k < lower), take, quadrature, k, d_)

        # lax.map over nodes: a vmap of two-point averages over nodes x grid points
        # holds nodes x grid x quadrature values at once. Reverse mode stores a few
        # scalars per node (the averages' custom JVP), unless phi has arrays of its own
        # to differentiate through the grid: then it recomputes the quadratures.
        own_arrays = any(eqx.is_inexact_array(leaf) for leaf in jax.tree.leaves(phi))
        fn = jax.checkpoint(node) if own_arrays else node
        out = jax.lax.map(fn, (jnp.arange(order), d_inf_ + y))
        return out[:, 0], out[:, 1]

    return vmap_batch(nodes, ndim)(*args, values)


def profile_nodes(g, b, s2, phi, d0, d_inf, chaotic, order: int, averages):
    """Node data of the profile of one chaotic solution (safe values elsewhere):
    tau at the Chebyshev nodes, y = Delta - Delta_inf there, the tail coefficients and
    the Schroedinger potential `1 - g^2 [phi']_{Delta0, Delta}` at the nodes.
    `averages`: `[phi]`, `[phi']` at the nodes (from `node_averages`)."""
    d0, d_inf, q, y = profile_points(d0, d_inf, chaotic, order)
    dtype = q.dtype
    s = 1.0 - jnp.asarray(chebyshev_nodes(order), dtype)
    dy_du = 2.0 * _L * s * y
    phi_c, dphi_c = averages
    # W = V(Delta0) - V(Delta) by integrating V' = -D + g^2 [phi] + s^2 (no cancellation
    # of O(1) potentials, pitfall 12): from the top where y > q/2, from the bottom
    # (anchored at the cubic W(y_c)) elsewhere.
    dv = (-(d_inf + y) + g**2 * phi_c + s2) * dy_du
    dphi_inf, ddphi_inf = phi.gaussian_correlations(b, d0, d_inf, ("dphi", "ddphi"))
    k2 = 1.0 - g**2 * dphi_inf
    beta = -(g**2) * ddphi_inf / 3.0
    y_c = y[0]
    w_c = 0.5 * y_c**2 * (k2 + beta * y_c)
    to_one = jnp.asarray(integral_to_one_matrix(order), dtype)
    from_zero = jnp.asarray(integral_from_zero_matrix(order), dtype)
    w = jnp.where(y > 0.5 * q, to_one @ dv, w_c - from_zero @ dv)
    w = jnp.maximum(w, 0.0)
    slope_top = -d0 + g**2 * phi.gaussian_second_moment(b, d0) + s2  # V'(Delta0) > 0
    limit_top = jnp.sqrt(2.0 * _L * q / slope_top)
    at_top = s == 0
    integrand = jnp.where(at_top, limit_top, dy_du / jnp.sqrt(jnp.where(at_top, 1.0, 2.0 * w)))
    tau = to_one @ integrand
    return dict(
        tau=tau,
        integrand=integrand,
        y=y,
        potential=1.0 - g**2 * dphi_c,
        tail_rate=jnp.sqrt(jnp.maximum(k2, 0.0)),
        tail_beta=beta,
    )


def tail_y(tau_rel, y_c, k, beta):
    """Closed-form y(tau) for `2 W = y^2 (k^2 + beta y)`, from y_c at tau_rel = 0."""
    r_c = jnp.sqrt(k**2 + beta * y_c)
    rho_c = beta * y_c / (r_c + k) ** 2
    e = jnp.exp(-k * tau_rel)
    return 4.0 * k**2 * y_c * e / ((r_c + k) ** 2 * (1.0 - rho_c * e) ** 2)


def evaluate_profile(tau_nodes, y_nodes, k, beta, delta_inf, tau) -> jax.Array:
    """Delta(|tau|) of one solution from its node data."""
    tau = jnp.abs(jnp.asarray(tau, tau_nodes.dtype))
    tau_c = tau_nodes[0]
    # Invert the decreasing tau(u) by bisection on its interpolant.
    def bisect(t):
        def step(_, lohi):
            lo, hi = lohi
            mid = 0.5 * (lo + hi)
            later = interpolate(tau_nodes, mid) > t  # tau(mid) > t: the root is at u > mid
            return jnp.where(later, mid, lo), jnp.where(later, hi, mid)

        lo, hi = jax.lax.fori_loop(0, 60, step, (jnp.zeros_like(t), jnp.ones_like(t)))
        return 0.5 * (lo + hi)

    flat = tau.reshape(-1)
    u = jax.vmap(bisect)(jnp.minimum(flat, tau_c))
    q = y_nodes[-1]
    y_body = q * jnp.exp(-_L * (1.0 - u) ** 2)
    y_tail = tail_y(jnp.maximum(flat - tau_c, 0.0), y_nodes[0], k, beta)
    y = jnp.where(flat <= tau_c, y_body, y_tail)
    return (delta_inf + y).reshape(tau.shape)


def tau_half_from_nodes(tau_nodes) -> jax.Array:
    """tau at which Delta - Delta_inf = q / 2."""
    u_half = 1.0 - np.sqrt(np.log(2.0) / _L)
    return interpolate(tau_nodes, u_half)


@jit
def dmft_autocorrelation(
    ensemble: GaussianEnsemble,
    solution: DMFTSolution | None = None,
    *,
    order: int = 96,
    throw: bool = True,
) -> Autocorrelation:
    """The DMFT autocorrelation Delta(tau) of a random network, with tau_half and the
    tail rate `sqrt(1 - g^2 [phi']_{Delta0, Delta_inf})` (docs/theory/dmft.md).

    **Arguments:**

    - `ensemble`: a [`mfrnn.GaussianEnsemble`][]; its fields may be arrays (a grid).
    - `solution`: its [`mfrnn.solve_dmft`][] solution, solved here when not given.
    - `order`: number of Chebyshev nodes of the profile (spectral accuracy; 96 gives
      tau(Delta) to ~1e-12 for tanh up to g = 5).
    - `throw`: raise if the DMFT solution of a point failed; else check `result`.

    **Returns:** an [`mfrnn.Autocorrelation`][]: call it on an array of lags to get
    Delta(tau). Outside the chaotic regime Delta(tau) = Delta0 and tau_half, tail_rate
    are NaN. Differentiable in the ensemble fields.

    ```python
    ac = mfrnn.dmft_autocorrelation(mfrnn.GaussianEnsemble(2.0))
    ac(jnp.linspace(0, 20, 200)), ac.tau_half
    ```
    """
    if solution is None:
        solution = solve_dmft(ensemble, throw=throw)
    g, b, s_I = jnp.broadcast_arrays(ensemble.g, ensemble.bias, ensemble.input_std)
    phi = ensemble.phi

    chaotic = solution.regime == CHAOTIC
    averages = node_averages(
        b, phi, solution.delta0, solution.delta_inf, chaotic, order, g.ndim
    )

    def single(g_, b_, s_, d0, d_inf, chaotic, averages, result):
        nodes = profile_nodes(g_, b_, s_**2, phi, d0, d_inf, chaotic, order, averages)
        nan = jnp.asarray(jnp.nan, d0.dtype)
        return Autocorrelation(
            delta0=d0,
            delta_inf=d_inf,
            tau_half=jnp.where(chaotic, tau_half_from_nodes(nodes["tau"]), nan),
            tail_rate=jnp.where(chaotic, nodes["tail_rate"], nan),
            tail_beta=nodes["tail_beta"],
            tau_nodes=jnp.where(chaotic, nodes["tau"], 0.0),
            y_nodes=jnp.where(chaotic, nodes["y"], 0.0),
            chaotic=chaotic,
            result=result,
        )

    out = vmap_batch(single, g.ndim)(
        g, b, s_I, solution.delta0, solution.delta_inf, chaotic, averages, solution.result
    )
    return raise_if_failed(out, lambda a: a.delta0) if throw else out
