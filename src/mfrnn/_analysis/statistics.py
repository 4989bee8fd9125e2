"""Statistics of simulated activity."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def activity_summary(
    xs: Float[ArrayLike, "time n"], *, discard: int = 0
) -> dict[str, Float[Array, ""]]:
    """Summary statistics of one trajectory `xs` (time x units), after dropping the
    first `discard` samples as transient.

    **Returns:** a dict with `mean_temporal_variance` (mean over units of each unit's
    variance in time; 0 at a fixed point, ~Delta0 - Delta_inf in chaos),
    `population_variance` (variance over units and time, ~Delta0), `mean_activity`,
    `mean_abs_rate_change` (mean |x(t_end) - x(t_end - 1 sample)|).
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 2:
        raise ValueError(f"`xs` must have shape (time, n), got {xs.shape}.")
    if not 0 <= discard < xs.shape[0] - 1:
        raise ValueError(f"`discard` must be in [0, {xs.shape[0] - 2}], got {discard}.")
    xs = xs[discard:]
    return {
        "mean_temporal_variance": jnp.mean(jnp.var(xs, axis=0)),
        "population_variance": jnp.mean(xs**2) - jnp.mean(xs) ** 2,
        "mean_activity": jnp.mean(xs),
        "mean_abs_rate_change": jnp.mean(jnp.abs(xs[-1] - xs[-2])),
    }
