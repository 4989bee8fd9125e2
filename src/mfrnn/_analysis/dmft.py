"""Theory next to simulation for Gaussian (random) ensembles, in one call."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._ensembles import GaussianEnsemble
from .._misc import to_dtype
from .._solution import DMFTSolution, RESULTS, summary_repr
from .._theory import dmft_autocorrelation, dmft_lyapunov, LyapunovSolution, solve_dmft
from .dynamics import activity_autocorrelation, lyapunov_exponents


class DMFTComparison(eqx.Module):
    """Theory and simulation of one Gaussian ensemble point; times in units of tau.

    - `theory`: the point's [`mfrnn.DMFTSolution`][] (delta0, delta_inf, regime, ...).
    - `theory_lyapunov`: its [`mfrnn.LyapunovSolution`][] (lyapunov, tau_half).
    - `lags`: the lags of the simulated autocorrelation; `theory_autocorrelation`: the
      DMFT Delta(tau) at those lags; `autocorrelation`: the simulated one per network.
    - `delta0`, `delta_inf`, `tau_half`: of the simulated autocorrelation, per network
      (theory: `theory.delta0`, `theory.delta_inf`, `theory_lyapunov.tau_half`).
    - `lyapunov`: the measured maximal Lyapunov exponent per network (theory:
      `theory_lyapunov.lyapunov`).
    - `result`: the theory's [`mfrnn.RESULTS`][] code.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    theory: DMFTSolution
    theory_lyapunov: LyapunovSolution
    lags: Float[Array, " lag"]
    theory_autocorrelation: Float[Array, " lag"]
    autocorrelation: Float[Array, "networks lag"]
    delta0: Float[Array, " networks"]
    delta_inf: Float[Array, " networks"]
    tau_half: Float[Array, " networks"]
    lyapunov: Float[Array, " networks"]
    result: RESULTS


def compare_dmft(
    ensemble: GaussianEnsemble,
    n: int,
    *,
    key: PRNGKeyArray,
    n_networks: int = 1,
    t1: float = 250.0,
    t_transient: float = 50.0,
    dt: float = 0.2,
    max_lag: float | None = None,
    dtype=jnp.float32,
    throw: bool = True,
) -> DMFTComparison:
    """Sample `n_networks` networks of `n` units from `ensemble`, simulate each from
    `x ~ N(0, 1)` (RK4 at step `dt` to `t1`, the first `t_transient` discarded), and
    measure the autocorrelation Delta(tau), its Delta0, Delta_inf and tau_half, and the
    maximal Lyapunov exponent (one run: [`mfrnn.lyapunov_exponents`][] with its states
    saved), next to the theory ([`mfrnn.solve_dmft`][], [`mfrnn.dmft_lyapunov`][],
    [`mfrnn.dmft_autocorrelation`][] of the same point).

    **Arguments:**

    - `ensemble`: an unbatched [`mfrnn.GaussianEnsemble`][].
    - `n`: units per network. Finite size biases the measurements by O(1/sqrt(N))
      (and slows the decay of Delta near the onset).
    - `key`: draws the networks, initial states and tangent vectors.
    - `max_lag`: longest lag (default: a quarter of the measured record).
    - `dtype`: simulation precision (float32 halves the memory traffic of J); the
      theory runs in the ensemble's.
    - `throw`: raise if the theory failed; with `False` check `result`.

    ```python
    cmp = mfrnn.compare_dmft(mfrnn.GaussianEnsemble(2.0), 500, key=jr.key(0))
    cmp.theory.delta0, cmp.delta0
    ```
    """
    if not isinstance(ensemble, GaussianEnsemble):
        raise ValueError(f"`ensemble` must be a GaussianEnsemble, got {type(ensemble).__name__}.")
    if n_networks < 1:
        raise ValueError(f"`n_networks` must be positive, got {n_networks}.")
    if not (dt > 0 and 0 <= t_transient < t1):
        raise ValueError(
            f"Need `dt` > 0 and `t1` > `t_transient` >= 0, got dt={dt}, t1={t1}, "
            f"t_transient={t_transient}."
        )
    sol = solve_dmft(ensemble, throw=throw)
    lyap = dmft_lyapunov(ensemble, sol, throw=throw)
    ac = dmft_autocorrelation(ensemble, sol, throw=throw)
    tau = float(ensemble.tau)
    steps = {
        "n_steps": int(round((t1 - t_transient) / dt)),
        "transient_steps": int(round(t_transient / dt)),
    }
    runs = []
    for key_net in jr.split(key, n_networks):
        k_sample, k_x0, k_tangent = jr.split(key_net, 3)
        net = to_dtype(ensemble.sample(n, key=k_sample), dtype)
        x0 = jr.normal(k_x0, (n,), dtype)
        # Physical step tau dt: lags and exponents come out in units of tau.
        est = lyapunov_exponents(net, x0, dt=tau * dt, renorm_every=1, save_states=True,
                                 key=k_tangent, **steps)
        runs.append((activity_autocorrelation(est.xs, dt, max_lag=max_lag),
                     tau * est.exponents[0]))
    lags = runs[0][0].lags
    return DMFTComparison(
        theory=sol,
        theory_lyapunov=lyap,
        lags=lags,
        theory_autocorrelation=ac(lags.astype(sol.delta0.dtype)),
        autocorrelation=jnp.stack([sim.autocorrelation for sim, _ in runs]),
        delta0=jnp.stack([sim.delta0 for sim, _ in runs]),
        delta_inf=jnp.stack([sim.delta_inf for sim, _ in runs]),
        tau_half=jnp.stack([sim.tau_half for sim, _ in runs]),
        lyapunov=jnp.stack([exponent for _, exponent in runs]),
        result=lyap.result,
    )
