"""Statistics of simulated activity."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._networks import AbstractRateNetwork, LowRankNetwork


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


def trial_summary(
    xs: Float[ArrayLike, "trial time n"],
    *,
    discard: int = 0,
    network: AbstractRateNetwork | None = None,
) -> dict[str, Float[Array, "..."]]:
    """[`mfrnn.activity_summary`][] of each trial of `xs` (trial x time x units, e.g.
    from [`mfrnn.simulate_trials`][]), averaged over trials; the first `discard` samples
    of every trial are the transient.

    With the low-rank `network` the trials were run on, also `kappa` (trial, rank): per
    trial, the time average of the latent variables `kappa_r = n_r . phi(x) / N` after
    the transient. Trials are not averaged there: the +kappa and -kappa states of a
    symmetric ensemble would cancel.

    **Returns:** a dict of the [`mfrnn.activity_summary`][] keys (scalars), and `kappa`.

    ```python
    xs = mfrnn.simulate_trials(net, jnp.linspace(0, 200, 401), 4, key=jr.key(1))
    mfrnn.trial_summary(xs, discard=100, network=net)["mean_temporal_variance"]
    ```
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(f"`xs` must have shape (trial, time, n), got {xs.shape}.")
    per_trial = jax.vmap(lambda x: activity_summary(x, discard=discard))(xs)
    summary = {name: jnp.mean(value) for name, value in per_trial.items()}
    if isinstance(network, LowRankNetwork):
        kappa = jax.vmap(jax.vmap(network.kappa))(xs[:, discard:])
        summary["kappa"] = jnp.mean(kappa, axis=1)
    return summary
