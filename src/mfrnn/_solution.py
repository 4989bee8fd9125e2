import equinox as eqx
import jax
import optimistix as optx
from jaxtyping import Array, Float, Int


class RESULTS(optx.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    static_not_converged = (
        "The static (fixed-point) self-consistency did not converge: Newton found no "
        "root (kappa, Delta0) from its guesses within `max_steps`, or the fixed points "
        "it found cannot be the whole picture (kappa = 0 unstable through an outlier "
        "while no kappa != 0 root was found). With an unbounded phi and large g no "
        "finite Delta0 exists at all."
    )
    chaotic_not_converged = (
        "The chaotic DMFT self-consistency did not converge. Try a smaller `rtol` "
        "or larger `max_steps`; close to the onset the chaotic branch is hard to resolve."
    )
    lyapunov_not_converged = (
        "The Schroedinger eigenvalue problem of the DMFT Lyapunov exponent did not "
        "converge, or failed its self-test (|E1| of the zero mode not << |E0|). Try a "
        "larger `order` or `steps`."
    )
    no_onset = "No chaos onset: g^2 <phi'^2> = 1 has no solution on the static branch."


# Regime codes of `DMFTSolution.regime`.
QUIESCENT, FIXED_POINT, CHAOTIC = 0, 1, 2
REGIME_NAMES = ("quiescent", "fixed_point", "chaotic")


class DMFTSolution(eqx.Module):
    """Stationary DMFT solution of a random network.

    - `delta0`: Delta(0), variance of x about its mean.
    - `delta_inf`: Delta(tau -> inf) (static part; = delta0 at a fixed point).
    - `delta0_static`: Delta0 of the static (fixed-point) branch, stable or not.
    - `bulk_radius`: `g sqrt(<phi'^2>)` on the static branch; > 1 means chaos.
    - `regime`: 0 quiescent (x = bias exactly), 1 fixed point, 2 chaotic.
    - `residual`: max |equation residual| at the returned solution.
    - `result`: [`mfrnn.RESULTS`][] code; check it when `throw=False`.
    """

    delta0: Float[Array, "*batch"]
    delta_inf: Float[Array, "*batch"]
    delta0_static: Float[Array, "*batch"]
    bulk_radius: Float[Array, "*batch"]
    regime: Int[Array, "*batch"]
    residual: Float[Array, "*batch"]
    result: RESULTS


class OnsetSolution(eqx.Module):
    """Chaos onset `g_c` and the static Delta0 there; `result` as in DMFTSolution."""

    g_c: Float[Array, "*batch"]
    delta0: Float[Array, "*batch"]
    result: RESULTS


def vmap_batch(fn, ndim: int):
    """`fn` on one grid point, vmapped over `ndim` leading batch axes of every argument."""
    for _ in range(ndim):
        fn = jax.vmap(fn)
    return fn


def raise_if_failed(solution, where):
    """Make `where(solution)` raise the result's message if any grid point failed."""
    result = solution.result
    return eqx.tree_at(
        where, solution, result.error_if(where(solution), result != RESULTS.successful)
    )
