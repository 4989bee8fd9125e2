"""Estimators on simulated networks, the simulation side of DMFT checks: the
population autocorrelation Delta(tau), its Delta0 / Delta_inf / tau_half, and the
Lyapunov exponents by the Benettin / QR method."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._networks import AbstractRateNetwork
from .._solution import summary_repr
from .._stepping import rk4_step


class ActivityAutocorrelation(eqx.Module):
    """Population autocorrelation of simulated activity.

    - `lags`, `autocorrelation`: `Delta(tau) = mean_i <dx_i(t) dx_i(t + tau)>_t`, dx the
      deviation from the population mean, averaged over units and trials.
    - `delta0`: Delta(0). `delta_inf`: mean over units of the squared time-average of
      dx (the static part; biased upward by ~ 2 tau_c (Delta0 - Delta_inf) / T).
    - `tau_half`: first lag at which `Delta - delta_inf` falls to half of
      `delta0 - delta_inf` (linear interpolation; NaN if it never does).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    lags: Float[Array, " lag"]
    autocorrelation: Float[Array, " lag"]
    delta0: Float[Array, ""]
    delta_inf: Float[Array, ""]
    tau_half: Float[Array, ""]


def activity_autocorrelation(
    xs: Float[ArrayLike, "*trials time n"],
    dt: float,
    *,
    max_lag: float | None = None,
    discard: int = 0,
) -> ActivityAutocorrelation:
    """Time-averaged autocorrelation of simulated activity, averaged over units and over
    any leading (trial / network) axes, by FFT.

    **Arguments:**

    - `xs`: samples `(..., time, n)` on a uniform grid of spacing `dt`.
    - `dt`: sampling interval (physical time).
    - `max_lag`: longest lag returned (default: a quarter of the record).
    - `discard`: number of leading samples dropped as transient.
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 2:
        raise ValueError(f"`xs` must have shape (..., time, n), got {xs.shape}.")
    if not dt > 0:
        raise ValueError(f"`dt` must be positive, got {dt}.")
    n_time = xs.shape[-2] - discard
    if discard < 0 or n_time < 4:
        raise ValueError(f"`discard` = {discard} leaves fewer than 4 samples of {xs.shape[-2]}.")
    n_lag = n_time // 4 if max_lag is None else int(round(max_lag / dt)) + 1
    if not 1 <= n_lag <= n_time:
        raise ValueError(f"`max_lag` must be in [0, {(n_time - 1) * dt}], got {max_lag}.")
    xs = xs[..., discard:, :]
    xs = xs.reshape(-1, n_time, xs.shape[-1])
    dx = xs - jnp.mean(xs, axis=(1, 2), keepdims=True)
    # Unbiased lagged products: sum_t dx(t) dx(t + k) / (T - k), via zero-padded FFT.
    n_fft = int(2 ** np.ceil(np.log2(2 * n_time)))

    def per_trial(d):
        spec = jnp.fft.rfft(d, n=n_fft, axis=0)
        acf = jnp.fft.irfft(spec * jnp.conj(spec), n=n_fft, axis=0)[:n_lag]
        return jnp.mean(acf, axis=1)

    acf = jnp.mean(jax.lax.map(per_trial, dx), axis=0)
    acf = acf / (n_time - jnp.arange(n_lag))
    delta_inf = jnp.mean(jnp.mean(dx, axis=1) ** 2)
    return ActivityAutocorrelation(
        lags=dt * jnp.arange(n_lag, dtype=acf.dtype),
        autocorrelation=acf,
        delta0=acf[0],
        delta_inf=delta_inf,
        tau_half=half_time(acf, delta_inf + 0.5 * (acf[0] - delta_inf), dt),
    )


def half_time(values, level, dt):
    """First time (linear interpolation between samples `dt` apart) at which `values`
    falls to `level`; NaN if it never does."""
    below = values <= level
    k = jnp.argmax(below)
    k_prev = jnp.maximum(k - 1, 0)
    frac = (values[k_prev] - level) / jnp.where(k > 0, values[k_prev] - values[k], 1.0)
    return jnp.where(jnp.any(below) & (k > 0), dt * (k_prev + frac), jnp.nan)


class LyapunovEstimate(eqx.Module):
    """Lyapunov exponents of a simulated network (Benettin / QR).

    - `exponents`: the `n_exponents` largest exponents, decreasing.
    - `times`, `running`: the running estimates after each renormalisation, to judge
      convergence.
    - `xs`: the states at every renormalisation (`save_states=True`, else None), so one
      run also gives the autocorrelation (sampling interval `dt * renorm_every`).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    exponents: Float[Array, " k"]
    times: Float[Array, " renorm"]
    running: Float[Array, "renorm k"]
    xs: Float[Array, "renorm n"] | None


@eqx.filter_jit
def lyapunov_exponents(
    network: AbstractRateNetwork,
    x0: Float[ArrayLike, " n"],
    *,
    dt: float = 0.1,
    n_steps: int = 2000,
    transient_steps: int = 500,
    n_exponents: int = 1,
    renorm_every: int = 10,
    inputs=None,
    key: PRNGKeyArray,
    save_states: bool = False,
) -> LyapunovEstimate:
    """Largest Lyapunov exponents of `network` by the Benettin / QR method: RK4 steps of
    the state and of `n_exponents` tangent vectors (tangent dynamics by `jax.jvp` of the
    vector field, `tau d(dx)/dt = -dx + J diag(phi'(x)) dx` for the rate networks),
    re-orthonormalised by QR every `renorm_every` steps; exponents are the time-averaged
    logarithms of the diagonal of R.

    **Arguments:**

    - `network`, `x0`: the network and its initial state.
    - `dt`, `n_steps`: RK4 step and number of measured steps (physical time
      `dt * n_steps`); `transient_steps` more are run first and discarded.
    - `n_exponents`: how many exponents (1: the maximal one).
    - `renorm_every`: steps between QR re-orthonormalisations.
    - `inputs`: the `args` of the vector field (a function of time), or None.
    - `key`: draws the random initial tangent vectors. Keyword only, required.
    - `save_states`: also return the states at every renormalisation.

    The state keeps the dtype of `x0`: float32 halves the memory traffic of a large
    dense J and is accurate enough for the exponents.
    """
    x0 = jnp.asarray(x0)
    n = x0.shape[-1]
    if x0.shape != (n,) or n != network.n:
        raise ValueError(f"`x0` must have shape ({network.n},), got {x0.shape}.")
    if not 1 <= n_exponents <= n:
        raise ValueError(f"`n_exponents` must be in [1, {n}], got {n_exponents}.")
    if n_steps < renorm_every or renorm_every < 1:
        raise ValueError("`n_steps` must be >= `renorm_every` >= 1.")
    if not dt > 0:
        raise ValueError(f"`dt` must be positive, got {dt}.")
    vf = lambda x, t: network(t, x, inputs).astype(x.dtype)
    rk4 = lambda t, x: rk4_step(vf, x, dt, (t, t + dt / 2, t + dt))

    def joint_step(carry, _):
        t, x, q = carry
        # Tangent map of the RK4 step: exact linearisation of the discrete flow.
        new_x, tangent = jax.linearize(lambda y: rk4(t, y), x)
        return (t + dt, new_x, jax.vmap(tangent, in_axes=1, out_axes=1)(q)), None

    def transient(carry, _):
        t, x = carry
        return (t + dt, rk4(t, x)), None

    (t, x), _ = jax.lax.scan(transient, (jnp.zeros((), x0.dtype), x0), None, transient_steps)
    q0 = jax.random.normal(key, (n, n_exponents), x0.dtype)
    q0, _ = jnp.linalg.qr(q0)

    def block(carry, _):
        carry, _ = jax.lax.scan(joint_step, carry, None, renorm_every)
        t, x, q = carry
        q, r = jnp.linalg.qr(q)
        diag = jnp.diagonal(r)
        q = q * jnp.sign(diag)[None, :]
        return (t, x, q), (jnp.log(jnp.abs(diag)), x if save_states else None)

    n_blocks = n_steps // renorm_every
    _, (logs, xs) = jax.lax.scan(block, (t, x, q0), None, n_blocks)
    elapsed = dt * renorm_every * jnp.arange(1, n_blocks + 1, dtype=x0.dtype)
    running = jnp.cumsum(logs, axis=0) / elapsed[:, None]
    return LyapunovEstimate(exponents=running[-1], times=elapsed, running=running, xs=xs)
