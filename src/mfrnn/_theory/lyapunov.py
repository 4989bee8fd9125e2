"""Maximal Lyapunov exponent from DMFT (docs/theory/dmft.md): ground state E0 of
`H = -d^2/dtau^2 + U(tau)`, `U = 1 - g^2 [phi']_{Delta0, Delta(tau)}`, and
`lambda_max = -1 + sqrt(1 - E0)`.

The eigenvalues are found by Pruefer shooting: the angle theta with
`psi = r sin(theta)`, `psi' = r cos(theta)` obeys `theta' = cos^2 - (U - E) sin^2` and
is integrated from tau = inf (decaying solution) to tau = 0, where it is a decreasing
function of E. Even states end at theta = pi/2 (psi'(0) = 0), odd ones at theta = 0.
The odd state with E1 = 0 is the exact zero mode Delta'(tau): |E1| << |E0| checks the
whole chain (profile, potential, integration). The integration runs in the profile's
Chebyshev variable u (where U and dtau/du are smooth, no interpolation of Delta(tau));
the tail beyond y_c is handled in closed form to first order in y_c. Each energy is
bracketed by bisection on an 8x coarser RK4 grid, then polished by Newton on the fine one.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from .._chebyshev import interpolation_matrix
from .._ensembles import GaussianEnsemble
from .._jit import jit
from .._solution import (
    CHAOTIC,
    DMFTSolution,
    raise_if_failed,
    RESULTS,
    summary_repr,
    vmap_batch,
)
from .._stepping import rk4_step
from .autocorrelation import node_averages, profile_nodes, tau_half_from_nodes
from .dmft import solve_dmft
from .guesses import bisection


class LyapunovSolution(eqx.Module):
    """Maximal Lyapunov exponent from DMFT.

    - `lyapunov`: lambda_max. Chaotic regime: `-1 + sqrt(1 - E0)` (> 0). At a stable
      fixed point: `-1 + bulk_radius`, the decay rate of the slowest perturbation.
    - `e0`, `e1`: the two lowest eigenvalues of the Schroedinger problem; `e1` is 0 in
      exact arithmetic (self-test). NaN outside the chaotic regime.
    - `tau_half`, `tail_rate`: as in [`mfrnn.Autocorrelation`][] (`tail_rate^2` is
      also the bottom of the Schroedinger problem's continuum).
    - `result`: [`mfrnn.RESULTS`][] code.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    lyapunov: Float[Array, "*batch"]
    e0: Float[Array, "*batch"]
    e1: Float[Array, "*batch"]
    tau_half: Float[Array, "*batch"]
    tail_rate: Float[Array, "*batch"]
    result: RESULTS


def _theta_at_zero(energy, args):
    """Pruefer angle at tau = 0 for energy E. args: dtau/du and U at the RK4 stage points
    (u = 0 ... 1), the tail rate k and the first-order tail coefficient.

    RK4 on the linear system (psi, psi') (no trigonometric function per step; the angle
    is atan2(psi, psi') with the windings counted at the sign changes of psi: at psi = 0,
    theta always decreases in u)."""
    h_stages, pot_stages, k, tail_c = args
    kappa = jnp.sqrt(jnp.maximum(k**2 - energy, 0.0))
    # Tail: w = psi'/psi = -kappa + c y_c / (2 kappa + k) to first order in y_c.
    w = -kappa + tail_c / (2.0 * kappa + k)
    n = (h_stages.shape[0] - 1) // 2
    du = 1.0 / n
    shifted = pot_stages - energy

    def rhs(y, coefficients):
        # d/du: u grows as tau falls, dtau/du = -h.
        (psi, dpsi), (h, pot) = y, coefficients
        return -h * dpsi, -h * pot * psi

    def step(carry, stage):
        psi, dpsi, sign, winds = carry
        h0, hm, h1, p0, pm, p1 = stage
        psi, dpsi = rk4_step(rhs, (psi, dpsi), du, ((h0, p0), (hm, pm), (h1, p1)))
        scale = jnp.abs(psi) + jnp.abs(dpsi)  # linear: rescaling changes no angle
        crossed = psi * sign < 0
        carry = psi / scale, dpsi / scale, jnp.where(crossed, -sign, sign), winds + crossed
        return carry, None

    stages = (
        h_stages[:-1:2], h_stages[1::2], h_stages[2::2],
        shifted[:-1:2], shifted[1::2], shifted[2::2],
    )
    # theta(inf) = pi/2 - arctan(w): (sin, cos) theta is (1, w) up to a positive factor.
    one = jnp.ones_like(w)
    init = (one, w, one, jnp.zeros((), jnp.int32))
    (psi, dpsi, sign, winds), _ = jax.lax.scan(step, init, stages)
    # theta + winds pi lies in (0, pi), where sign * psi > 0.
    return jnp.arctan2(sign * psi, sign * dpsi) - winds * np.pi


def _theta_residual(energy, args):
    *shooting, target = args
    return _theta_at_zero(energy, tuple(shooting)) - target


def _lyapunov_single(g, b, s_I, phi, d0, d_inf, chaotic, bulk, averages, order, steps):
    s2 = s_I**2
    nodes = profile_nodes(g, b, s2, phi, d0, d_inf, chaotic, order, averages)
    dtype = nodes["tau"].dtype
    tau = nodes["tau"]
    k = jnp.where(chaotic, nodes["tail_rate"], 1.0)
    # U - k^2 ~ -g^2 [phi''] y in the tail (Price); tail_c = g^2 [phi''] y_c = -3 beta y_c.
    tail_c = jnp.where(chaotic, -3.0 * nodes["tail_beta"] * nodes["y"][0], 0.0)

    def stages(n):  # dtau/du and U at the RK4 stage points of n steps
        matrix = jnp.asarray(interpolation_matrix(order, 2 * n + 1), dtype)
        return matrix @ nodes["integrand"], matrix @ nodes["potential"]

    h_stages, pot_stages = stages(steps)
    tol = 1e-7 if jnp.finfo(dtype).bits >= 64 else 3e-3  # squared below: 1e-14 / 1e-5
    lower = jnp.min(pot_stages) - 1e-3
    upper = k**2
    # theta(0) = pi/2: even ground state E0; theta(0) = 0: the odd zero mode E1.
    targets = jnp.asarray([0.5 * np.pi, 0.0], dtype)
    # Guesses by bisection on an 8x coarser RK4 grid (not differentiated): the fine
    # Newton polish then needs two steps instead of ~45 fine bisection steps.
    coarse = jax.lax.stop_gradient((*stages(max(steps // 8, 1)), k, tail_c))

    def guess(target):  # theta(0) decreases with E
        return bisection(lambda e: -_theta_residual(e, (*coarse, target)), lower, upper, 32)

    def polish(target, e_guess):
        return optx.root_find(
            _theta_residual,
            # float32 resolves E to ~1e-6.
            optx.Newton(rtol=100 * tol * tol, atol=10 * tol * tol),
            e_guess,
            args=(h_stages, pot_stages, k, tail_c, target),
            options=dict(lower=lower, upper=upper),
            max_steps=32,
            throw=False,
        )

    guesses = jax.lax.stop_gradient(jax.vmap(guess)(targets))
    sol = jax.vmap(polish)(targets, guesses)
    e0, e1 = sol.value[0], sol.value[1]
    ok = jnp.all(sol.result == optx.RESULTS.successful)
    # Self-test: E1 is an exact zero mode; a large |E1| means an inaccurate profile.
    ok = ok & (e0 < e1) & (jnp.abs(e1) <= 1e-3 * jnp.abs(e0) + 10 * tol * tol)
    nan = jnp.asarray(jnp.nan, dtype)
    lyap = jnp.where(chaotic, -1.0 + jnp.sqrt(jnp.maximum(1.0 - e0, 0.0)), -1.0 + bulk)
    return LyapunovSolution(
        lyapunov=lyap,
        e0=jnp.where(chaotic, e0, nan),
        e1=jnp.where(chaotic, e1, nan),
        tau_half=jnp.where(chaotic, tau_half_from_nodes(tau), nan),
        tail_rate=jnp.where(chaotic, nodes["tail_rate"], nan),
        result=RESULTS.where(~chaotic | ok, RESULTS.successful, RESULTS.lyapunov_not_converged),
    )


@jit
def dmft_lyapunov(
    ensemble: GaussianEnsemble,
    solution: DMFTSolution | None = None,
    *,
    order: int = 96,
    steps: int = 1000,
    throw: bool = True,
) -> LyapunovSolution:
    """Maximal Lyapunov exponent of a random network from DMFT (SCS 1988).

    **Arguments:**

    - `ensemble`: a [`mfrnn.GaussianEnsemble`][]; its fields may be arrays (a grid).
    - `solution`: its [`mfrnn.solve_dmft`][] solution, solved here when not given.
    - `order`: Chebyshev nodes of the autocorrelation profile.
    - `steps`: RK4 steps of the Pruefer shooting (error ~ steps^-4).
    - `throw`: raise if a point failed; else check `result`.

    **Returns:** a [`mfrnn.LyapunovSolution`][], differentiable in the ensemble fields
    (implicit differentiation of the eigenvalue condition).

    ```python
    mfrnn.dmft_lyapunov(mfrnn.GaussianEnsemble(2.0)).lyapunov
    ```
    """
    if solution is None:
        solution = solve_dmft(ensemble, throw=throw)
    g, b, s_I = jnp.broadcast_arrays(ensemble.g, ensemble.bias, ensemble.input_std)
    phi = ensemble.phi
    chaotic = solution.regime == CHAOTIC
    averages = node_averages(b, phi, solution.delta0, solution.delta_inf, chaotic, order, g.ndim)

    def fn(g_, b_, s_, d0, di, chaotic_, bulk, averages_, res):
        sol = _lyapunov_single(g_, b_, s_, phi, d0, di, chaotic_, bulk, averages_, order, steps)
        result = RESULTS.where(res == RESULTS.successful, sol.result, res)
        return eqx.tree_at(lambda s: s.result, sol, result)

    sol = vmap_batch(fn, g.ndim)(
        g,
        b,
        s_I,
        solution.delta0,
        solution.delta_inf,
        chaotic,
        solution.bulk_radius,
        averages,
        solution.result,
    )
    return raise_if_failed(sol, lambda s: s.lyapunov) if throw else sol
