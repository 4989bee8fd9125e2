"""Mean-field solutions of low-rank (plus random) networks and Gaussian-mixture
populations, and their reduced latent dynamics (docs: theory of low-rank networks).

The equations and the solvers are in `meanfield.py`; this module holds the entry points.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._ensembles import LowRankEnsemble, MixtureEnsemble
from .._ensembles.low_rank import loading_index
from .._jit import jit
from .._misc import is_concrete
from .._solution import raise_if_failed, vmap_batch
from .branches import Branch
from .meanfield import (
    check_common,
    check_ensemble,
    check_point,
    default_guesses,
    kappa_map,
    LowRankSolution,
    map_points,
    per_population,
    points,
    solve_chaos,
    solve_fixed_point,
    stats,
)


@jit
def solve_lowrank(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa0: Float[ArrayLike, "*guesses rank"] | None = None,
    *,
    inputs: Float[ArrayLike, "*batch n_inputs"] | None = None,
    branch: Branch = Branch.fixed_point,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 24,
    throw: bool = True,
) -> LowRankSolution:
    """Mean-field solutions of a low-rank (plus random) ensemble or a Gaussian mixture.

    **Arguments:**

    - `ensemble`: a [`mfrnn.LowRankEnsemble`][] or [`mfrnn.MixtureEnsemble`][]. Its
      fields may be arrays over a grid (`LowRankEnsemble.rank_one(sigma_mn=grid)`).
    - `kappa0`: initial guesses, shape `(*guesses, rank)`; the solution gets the axes
      `(*batch, *guesses)`. Default: kappa = 0 and +-scale along each latent axis
      (2 rank + 1 guesses). A nonzero guess solves on a kappa != 0 branch: it fails
      (flagged) rather than fall onto kappa = 0.
    - `inputs`: constant inputs u (n_inputs,), e.g. `mu = M_m kappa + M_I u`.
    - `branch`: a [`mfrnn.Branch`][]: `Branch.fixed_point` (stationary) or
      `Branch.chaotic` (kappa, Delta0, Delta_inf with temporal fluctuations; meaningful
      where the fixed points are unstable).
    - `rtol`, `atol`, `max_steps`: Newton settings (default 1e-10 float64, 1e-5 float32).
    - `throw`: raise if any point failed; with False check `solution.result`.

    **Returns:** a [`mfrnn.LowRankSolution`][], differentiable in the ensemble's fields.

    ```python
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, g=0.5)
    sol = mfrnn.solve_lowrank(ens)          # branches kappa = 0, +kappa, -kappa
    sol.kappa[:, 0], sol.stable
    ```
    """
    rtol, atol = check_common(ensemble, rtol, atol, max_steps)
    if not isinstance(branch, Branch):
        raise ValueError(
            f"`branch` must be a mfrnn.Branch (Branch.fixed_point or Branch.chaotic; "
            f"Branch(name) converts a name), got {branch!r}."
        )
    point, batch = points(ensemble, inputs)
    if kappa0 is not None:
        kappa0 = jnp.asarray(kappa0, point.means.dtype)
        if kappa0.shape[-1:] != (ensemble.rank,):
            raise ValueError(
                f"`kappa0` must have a last axis of length rank = {ensemble.rank}, "
                f"got shape {kappa0.shape}."
            )
        kappa0 = eqx.error_if(kappa0, ~jnp.isfinite(kappa0), "`kappa0` must be finite.")
    solve = solve_fixed_point if branch is Branch.fixed_point else solve_chaos

    def one(p):
        p = check_point(p)
        guesses = default_guesses(p, branch) if kappa0 is None else kappa0
        fn = lambda k: solve(p, k, rtol, atol, max_steps)
        return vmap_batch(fn, guesses.ndim - 1)(guesses)

    sol = map_points(one, point, batch)
    return raise_if_failed(sol, lambda s: s.kappa) if throw else sol


# ----------------------------------------------------------------------------------
# Reduced latent dynamics of mixtures (g = 0).


def _input_at(args, t, n_inputs, dtype):
    if args is None:
        return jnp.zeros((n_inputs,), dtype)
    return jnp.asarray(args(t) if callable(args) else args, dtype)


class LatentDynamics(eqx.Module):
    """The reduced latent ODE of a low-rank ensemble or mixture without random part,
    `tau dkappa/dt = -kappa + sum_p alpha_p E_p[n phi(x)]` (docs: mixtures), as a
    diffrax vector field `(t, kappa, args)`; `args` is None, a constant input vector u,
    or a callable `t -> u(t)`. Exact at g = 0 for the latent part of x (orthogonal
    transients decay at rate 1/tau).

    ```python
    field = mfrnn.LatentDynamics(ens)
    sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0, 50, 0.1, kappa0)
    ```
    """

    ensemble: LowRankEnsemble | MixtureEnsemble

    def __check_init__(self):
        check_ensemble(self.ensemble)
        g = self.ensemble.g
        if g.ndim or (is_concrete(g) and float(g) != 0.0):
            raise ValueError(
                "`LatentDynamics` needs a scalar ensemble with g = 0: with a random part the "
                "latent ODE is not closed (use `solve_lowrank` for its fixed points)."
            )

    def __call__(self, t, kappa: Float[Array, " rank"], args) -> Float[Array, " rank"]:
        ens = self.ensemble
        u = _input_at(args, t, ens.n_inputs, kappa.dtype)
        p, _ = points(ens, u)
        st = stats(p, kappa)
        return (-kappa + kappa_map(p, st, st.L)) / ens.tau


def effective_couplings(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa: Float[ArrayLike, " rank"],
    inputs: Float[ArrayLike, " n_inputs"] | None = None,
    delta_random: ArrayLike = 0.0,
) -> tuple[Float[Array, "rank rank"], Float[Array, "rank n_inputs"]]:
    """Effective couplings of a mixture at the state kappa (docs: mixtures):
    `sigma~_{n_r m_r'} = sum_p alpha_p sigma^p_{n_r m_r'} <phi'>_p` and likewise
    `sigma~_{n_r I_s}`. `<.>_p` is Gaussian with the population's mean and variance
    `L_p + delta_random` (the random field's variance; 0 at g = 0). Scaling a
    population's gain (`MixtureEnsemble.with_gains`) changes them through <phi'>_p.
    """
    p, batch = points(ensemble, inputs)
    if batch:
        raise ValueError("`effective_couplings` needs an unbatched ensemble; vmap over it.")
    kappa = jnp.asarray(kappa, p.means.dtype)
    st = stats(p, kappa)
    delta = st.L + delta_random
    gain = per_population(lambda m, d: p.phi.gaussian_mean(m, d, "dphi"), st.mu, delta)
    idx = loading_index(p.rank, p.n_inputs)
    i_n = np.array(idx["n"])
    w = (p.fractions * gain)[:, None, None]
    nm = jnp.sum(w * p.covs[:, i_n][:, :, np.array(idx["m"])], 0)
    nI = jnp.sum(w * p.covs[:, i_n][:, :, np.array(idx["I"], dtype=int)], 0)
    return nm, nI
