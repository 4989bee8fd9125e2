"""The DMFT autocorrelation Delta(tau) without shooting (THEORY.md 1.1, pitfalls 11-12).

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
from .._solution import CHAOTIC, DMFTSolution, vmap_batch
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
    - the remaining fields are the spectral node data the profile is evaluated from.

    Fields carry the batch shape of the ensemble grid; `ac(tau)` returns
    `batch + tau.shape`.
    """

    delta0: Float[Array, "*batch"]
    delta_inf: Float[Array, "*batch"]
    tau_half: Float[Array, "*batch"]
    tail_rate: Float[Array, "*batch"]
    tail_beta: Float[Array, "*batch"]
    tau_nodes: Float[Array, "*batch order"]
    y_nodes: Float[Array, "*batch order"]
    chaotic: Bool[Array, "*batch"]

    def __call__(self, tau: ArrayLike) -> Array:
        def single(ac):
            k = jnp.where(ac.chaotic, ac.tail_rate, 1.0)
            value = evaluate_profile(ac.tau_nodes, ac.y_nodes, k, ac.tail_beta, ac.delta_inf, tau)
            return jnp.where(ac.chaotic, value, ac.delta0)

        return vmap_batch(single, jnp.ndim(self.delta0))(self)


def profile_nodes(g, b, s2, phi, d0, d_inf, chaotic, order: int):
    """Node data of the profile of one chaotic solution (safe values elsewhere):
    tau at the Chebyshev nodes, y = Delta - Delta_inf there, the tail coefficients and
    the Schroedinger potential `1 - g^2 [phi']_{Delta0, Delta}` at the nodes."""
    q = jnp.where(chaotic, d0 - d_inf, 1.0)
    d_inf = jnp.where(chaotic, d_inf, 0.0)
    d0 = d_inf + q
    dtype = q.dtype
    u = jnp.asarray(chebyshev_nodes(order), dtype)
    s = 1.0 - u
    y = q * jnp.exp(-_L * s**2)
    dy_du = 2.0 * _L * s * y

    # lax.map over nodes: a vmap of two-point averages over nodes x grid points
    # holds order x grid x quadrature^2 values at once.
    def node_values(d_):
        return (
            phi.gaussian_correlation(b, d0, d_, "phi"),
            phi.gaussian_correlation(b, d0, d_, "dphi"),
        )

    # checkpoint: reverse mode recomputes the quadratures instead of storing them.
    phi_c, dphi_c = jax.lax.map(jax.checkpoint(node_values), d_inf + y)
    # W = V(Delta0) - V(Delta) by integrating V' = -D + g^2 [phi] + s^2 (no cancellation
    # of O(1) potentials, pitfall 12): from the top where y > q/2, from the bottom
    # (anchored at the cubic W(y_c)) elsewhere.
    dv = (-(d_inf + y) + g**2 * phi_c + s2) * dy_du
    k2 = 1.0 - g**2 * phi.gaussian_correlation(b, d0, d_inf, "dphi")
    beta = -(g**2) * phi.gaussian_correlation(b, d0, d_inf, "ddphi") / 3.0
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


@eqx.filter_jit
def dmft_autocorrelation(
    ensemble: GaussianEnsemble,
    solution: DMFTSolution | None = None,
    *,
    order: int = 96,
) -> Autocorrelation:
    """The DMFT autocorrelation Delta(tau) of a random network, with tau_half and the
    tail rate `sqrt(1 - g^2 [phi']_{Delta0, Delta_inf})` (THEORY.md 1.1).

    **Arguments:**

    - `ensemble`: a [`mfrnn.GaussianEnsemble`][]; its fields may be arrays (a grid).
    - `solution`: its [`mfrnn.solve_dmft`][] solution, solved here when not given.
    - `order`: number of Chebyshev nodes of the profile (spectral accuracy; 96 gives
      tau(Delta) to ~1e-12 for tanh up to g = 5).

    **Returns:** an [`mfrnn.Autocorrelation`][]: call it on an array of lags to get
    Delta(tau). Outside the chaotic regime Delta(tau) = Delta0 and tau_half, tail_rate
    are NaN. Differentiable in the ensemble fields.

    ```python
    ac = mfrnn.dmft_autocorrelation(mfrnn.GaussianEnsemble(2.0))
    ac(jnp.linspace(0, 20, 200)), ac.tau_half
    ```
    """
    if solution is None:
        solution = solve_dmft(ensemble, throw=False)
    g, b, s_I = jnp.broadcast_arrays(ensemble.g, ensemble.bias, ensemble.input_std)
    phi = ensemble.phi

    def single(g_, b_, s_, d0, d_inf, regime):
        chaotic = regime == CHAOTIC
        nodes = profile_nodes(g_, b_, s_**2, phi, d0, d_inf, chaotic, order)
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
        )

    return vmap_batch(single, g.ndim)(
        g, b, s_I, solution.delta0, solution.delta_inf, solution.regime
    )
