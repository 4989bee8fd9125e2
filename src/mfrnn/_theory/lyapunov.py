"""Maximal Lyapunov exponent from DMFT (THEORY.md 1.1): ground state E0 of
`H = -d^2/dtau^2 + U(tau)`, `U = 1 - g^2 [phi']_{Delta0, Delta(tau)}`, and
`lambda_max = -1 + sqrt(1 - E0)`.

The eigenvalues are found by Pruefer shooting: the angle theta with
`psi = r sin(theta)`, `psi' = r cos(theta)` obeys `theta' = cos^2 - (U - E) sin^2` and
is integrated from tau = inf (decaying solution) to tau = 0, where it is a decreasing
function of E. Even states end at theta = pi/2 (psi'(0) = 0), odd ones at theta = 0.
The odd state with E1 = 0 is the exact zero mode Delta'(tau): |E1| << |E0| checks the
whole chain (profile, potential, integration). The integration runs in the profile's
Chebyshev variable u (where U and dtau/du are smooth, no interpolation of Delta(tau));
the tail beyond y_c is handled in closed form to first order in y_c.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from .._chebyshev import interpolate
from .._ensembles import GaussianEnsemble
from .._solution import CHAOTIC, DMFTSolution, raise_if_failed, RESULTS, vmap_batch
from .autocorrelation import profile_nodes, tau_half_from_nodes
from .dmft import solve_dmft


class LyapunovSolution(eqx.Module):
    """Maximal Lyapunov exponent from DMFT.

    - `lyapunov`: lambda_max. Chaotic regime: `-1 + sqrt(1 - E0)` (> 0). At a stable
      fixed point: `-1 + bulk_radius`, the decay rate of the slowest perturbation.
    - `e0`, `e1`: the two lowest eigenvalues of the Schroedinger problem; `e1` is 0 in
      exact arithmetic (self-test). NaN outside the chaotic regime.
    - `tau_half`: as in [`mfrnn.Autocorrelation`][].
    - `result`: [`mfrnn.RESULTS`][] code.
    """

    lyapunov: Float[Array, "*batch"]
    e0: Float[Array, "*batch"]
    e1: Float[Array, "*batch"]
    tau_half: Float[Array, "*batch"]
    result: RESULTS


def _theta_at_zero(energy, args):
    # Pruefer angle at tau = 0 for energy E. args: dtau/du and U at the RK4 stage points
    # (u = 0 ... 1), the tail rate k and the first-order tail coefficient.
    h_stages, pot_stages, k, tail_c = args
    kappa = jnp.sqrt(jnp.maximum(k**2 - energy, 0.0))
    # Tail: w = psi'/psi = -kappa + c y_c / (2 kappa + k) to first order in y_c.
    w = -kappa + tail_c / (2.0 * kappa + k)
    theta = 0.5 * np.pi - jnp.arctan(w)
    n = (h_stages.shape[0] - 1) // 2
    du = 1.0 / n

    def rhs(theta, h, pot):
        # d theta / du = -dtau/du * (cos^2 - (U - E) sin^2): u grows as tau falls.
        return -h * (jnp.cos(theta) ** 2 - (pot - energy) * jnp.sin(theta) ** 2)

    def step(theta, i):
        h0, hm, h1 = h_stages[2 * i], h_stages[2 * i + 1], h_stages[2 * i + 2]
        p0, pm, p1 = pot_stages[2 * i], pot_stages[2 * i + 1], pot_stages[2 * i + 2]
        k1 = rhs(theta, h0, p0)
        k2 = rhs(theta + 0.5 * du * k1, hm, pm)
        k3 = rhs(theta + 0.5 * du * k2, hm, pm)
        k4 = rhs(theta + du * k3, h1, p1)
        return theta + du / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4), None

    theta, _ = jax.lax.scan(step, theta, jnp.arange(n))
    return theta


def _lyapunov_single(g, b, s_I, phi, d0, d_inf, regime, bulk, order, steps):
    chaotic = regime == CHAOTIC
    s2 = s_I**2
    nodes = profile_nodes(g, b, s2, phi, d0, d_inf, chaotic, order)
    dtype = nodes["tau"].dtype
    tau = nodes["tau"]
    h_nodes = nodes["integrand"]  # dtau/du = -integrand
    stage_u = jnp.linspace(0.0, 1.0, 2 * steps + 1, dtype=dtype)
    h_stages = interpolate(h_nodes, stage_u)
    pot_stages = interpolate(nodes["potential"], stage_u)
    k = jnp.where(chaotic, nodes["tail_rate"], 1.0)
    # U - k^2 ~ -g^2 [phi''] y in the tail (Price); tail_c = g^2 [phi''] y_c = -3 beta y_c.
    tail_c = jnp.where(chaotic, -3.0 * nodes["tail_beta"] * nodes["y"][0], 0.0)
    args = (h_stages, pot_stages, k, tail_c)
    tol = 1e-7 if jnp.finfo(dtype).bits >= 64 else 3e-3  # squared below: 1e-14 / 1e-5
    lower = jnp.min(pot_stages) - 1e-3
    upper = k**2

    def solve(target):
        return optx.root_find(
            lambda e, a: _theta_at_zero(e, a) - target,
            # theta(0) decreases with E; float32 resolves E to ~1e-6.
            optx.Bisection(rtol=100 * tol * tol, atol=10 * tol * tol, flip=True),
            0.5 * (lower + upper),
            args=args,
            options=dict(lower=lower, upper=upper),
            max_steps=200,
            throw=False,
        )

    ground, odd = solve(0.5 * np.pi), solve(0.0)
    e0 = ground.value
    e1 = odd.value
    ok = (ground.result == optx.RESULTS.successful) & (odd.result == optx.RESULTS.successful)
    # Self-test: E1 is an exact zero mode; a large |E1| means an inaccurate profile.
    ok = ok & (e0 < e1) & (jnp.abs(e1) <= 1e-3 * jnp.abs(e0) + 10 * tol * tol)
    nan = jnp.asarray(jnp.nan, dtype)
    lyap = jnp.where(chaotic, -1.0 + jnp.sqrt(jnp.maximum(1.0 - e0, 0.0)), -1.0 + bulk)
    return LyapunovSolution(
        lyapunov=lyap,
        e0=jnp.where(chaotic, e0, nan),
        e1=jnp.where(chaotic, e1, nan),
        tau_half=jnp.where(chaotic, tau_half_from_nodes(tau), nan),
        result=RESULTS.where(~chaotic | ok, RESULTS.successful, RESULTS.lyapunov_not_converged),
    )


@eqx.filter_jit
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
    def fn(g_, b_, s_, d0, di, reg, bulk, res):
        sol = _lyapunov_single(g_, b_, s_, phi, d0, di, reg, bulk, order, steps)
        result = RESULTS.where(res == RESULTS.successful, sol.result, res)
        return eqx.tree_at(lambda s: s.result, sol, result)

    sol = vmap_batch(fn, g.ndim)(
        g,
        b,
        s_I,
        solution.delta0,
        solution.delta_inf,
        solution.regime,
        solution.bulk_radius,
        solution.result,
    )
    return raise_if_failed(sol, lambda s: s.lyapunov) if throw else sol
