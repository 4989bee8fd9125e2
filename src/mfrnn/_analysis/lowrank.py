"""Theory next to simulation for low-rank ensembles and mixtures, in one call."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._ensembles import LowRankEnsemble, MixtureEnsemble
from .._ensembles.base import is_zero
from .._simulate import simulate_euler
from .._solution import summary_repr
from .._theory.phase import phase_diagram, PhaseDiagram


class LowRankComparison(eqx.Module):
    """Theory and simulation of one ensemble point.

    - `theory`: the point's [`mfrnn.PhaseDiagram`][] (phase, kappa, delta0, ...).
    - `kappa`: measured `n . phi(x) / N`, time-averaged, per network (networks, rank).
    - `sample_kappa`: at g = 0, the sample-exact kappa of each drawn network, the root
      of `kappa = mean(n phi(b + m kappa + I u))` (docs/theory/pitfalls.md); nan if g > 0.
    - `delta0`: variance of x about its population mean (over units and time), per
      network and population; `temporal_variance`: unit-averaged variance in time.
    """

    theory: PhaseDiagram
    kappa: Float[Array, "networks rank"]
    sample_kappa: Float[Array, "networks rank"]
    delta0: Float[Array, "networks populations"]
    temporal_variance: Float[Array, "networks populations"]

    def __repr__(self):
        return summary_repr(self)


def _sample_exact_kappa(net, inputs, kappa_start):
    drive = net.bias if inputs is None else net.bias + net.W_in @ inputs

    def residual(kappa, _):
        x = drive + net.m @ kappa
        return kappa - net.n_vectors.T @ net.phi(x) / net.n

    sol = optx.root_find(residual, optx.Newton(1e-12, 1e-12), kappa_start, max_steps=64,
                         throw=False)
    return jnp.where(sol.result == optx.RESULTS.successful, sol.value, jnp.nan)


def compare_lowrank(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    n: int,
    *,
    key: PRNGKeyArray,
    n_networks: int = 3,
    t1: float = 200.0,
    dt: float = 0.1,
    inputs: Float[ArrayLike, " n_inputs"] | None = None,
    dtype=None,
) -> LowRankComparison:
    """Sample `n_networks` networks of `n` units from `ensemble`, simulate them (Euler,
    `dt`, to `t1`, the first half discarded), and measure kappa, Delta0 and the temporal
    variance next to the theory ([`mfrnn.phase_diagram`][] of the same point).

    Each network starts on the theory's branch: `x0 = b + m kappa* + I u` plus small
    noise (so a +kappa fixed point is not confused with -kappa). `dtype` (e.g.
    float32) sets the simulation precision; the theory runs in the ensemble's.
    """
    if not isinstance(ensemble, (LowRankEnsemble, MixtureEnsemble)):
        raise ValueError(
            f"`ensemble` must be a LowRankEnsemble or MixtureEnsemble, got {type(ensemble).__name__}."
        )
    if n_networks < 1:
        raise ValueError(f"`n_networks` must be positive, got {n_networks}.")
    theory = phase_diagram(ensemble, inputs=inputs, throw=False)  # `success` reported
    labels = (
        ensemble.population_labels(n)
        if isinstance(ensemble, MixtureEnsemble)
        else np.zeros(n, int)
    )
    n_pop = int(labels.max()) + 1
    n_steps = int(round(t1 / dt))
    save_every = max(1, n_steps // 400)
    n_steps -= n_steps % save_every
    u = None if inputs is None else jnp.asarray(inputs)
    exact = is_zero(ensemble.g)

    kappas, samples, deltas, temporal = [], [], [], []
    for key_net in jr.split(key, n_networks):
        k_sample, k_x0 = jr.split(key_net)
        net = ensemble.sample(n, key=k_sample)
        if dtype is not None:
            net = jax.tree.map(
                lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, net
            )
        drive = net.bias if u is None else net.bias + net.W_in @ u.astype(net.m.dtype)
        x0 = drive + net.m @ theory.kappa.astype(net.m.dtype)
        x0 = x0 + 0.1 * jr.normal(k_x0, (n,), net.m.dtype)
        steps_u = None if u is None else jnp.broadcast_to(u, (n_steps, u.shape[0]))
        xs = simulate_euler(
            net, x0, dt=dt, n_steps=n_steps, inputs=steps_u, save_every=save_every
        )
        xs = xs[xs.shape[0] // 2 :].astype(theory.kappa.dtype)
        kappa_t = jax.vmap(net.kappa)(xs.astype(net.m.dtype)).astype(xs.dtype)
        kappas.append(jnp.mean(kappa_t, 0))
        per_pop_d0, per_pop_tv = [], []
        for p in range(n_pop):
            xp = xs[:, labels == p]
            per_pop_d0.append(jnp.mean((xp - jnp.mean(xp)) ** 2))
            per_pop_tv.append(jnp.mean(jnp.var(xp, axis=0)))
        deltas.append(jnp.stack(per_pop_d0))
        temporal.append(jnp.stack(per_pop_tv))
        if exact:
            net64 = jax.tree.map(
                lambda x: x.astype(xs.dtype) if eqx.is_inexact_array(x) else x, net
            )
            samples.append(_sample_exact_kappa(net64, u, kappas[-1]))
        else:
            samples.append(jnp.full_like(kappas[-1], jnp.nan))
    return LowRankComparison(
        theory=theory,
        kappa=jnp.stack(kappas),
        sample_kappa=jnp.stack(samples),
        delta0=jnp.stack(deltas),
        temporal_variance=jnp.stack(temporal),
    )
