"""Integration of rate networks: diffrax (ODE and SDE) and a fast Euler `lax.scan`.

Noise convention (both paths): `tau dx = (-x + J phi(x) + ...) dt + sigma sqrt(2 tau) dW`,
so `noise_std` = sigma is the stationary standard deviation of an uncoupled unit,
whatever `dt` and `tau`. An Euler step adds `sqrt(2 alpha) sigma xi`, alpha = dt / tau.
"""

import diffrax as dfx
import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._misc import check_nonnegative, check_positive
from ._networks import AbstractRateNetwork, PiecewiseConstantInput


def _check_state(network: AbstractRateNetwork, x0) -> None:
    if not isinstance(network, AbstractRateNetwork):
        raise ValueError(f"`network` must be an AbstractRateNetwork, got {type(network)}.")
    if jnp.shape(x0) != (network.n,):
        raise ValueError(
            f"`x0` must have shape ({network.n},) for one trial (vmap for batches), "
            f"got {jnp.shape(x0)}."
        )


@eqx.filter_jit
def simulate(
    network: AbstractRateNetwork,
    x0: Float[ArrayLike, " n"],
    ts: Float[ArrayLike, " time"],
    *,
    inputs=None,
    noise_std: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    solver: dfx.AbstractSolver | None = None,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    dt0: ArrayLike | None = None,
    saveat: dfx.SaveAt | None = None,
    adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
    max_steps: int | None = 1_000_000,
    progress_meter: dfx.AbstractProgressMeter = dfx.NoProgressMeter(),
    throw: bool = True,
) -> dfx.Solution:
    """Integrate one trial of `network` from `x0`, saving at `ts`, with diffrax.

    **Arguments:**

    - `network`: an [`mfrnn.AbstractRateNetwork`][].
    - `x0`: initial state, shape `(n,)`. Batch trials, initial conditions or networks
      with `jax.vmap` / `eqx.filter_vmap`.
    - `ts`: save times; the integration runs from `ts[0]` to `ts[-1]`.
    - `inputs`: `u(t) -> (n_in,)` (e.g. [`mfrnn.PiecewiseConstantInput`][] or a
      `diffrax.LinearInterpolation`), or None. Keyword only, as the rest.
    - `noise_std`: if given, the run is an SDE with additive noise of stationary
      standard deviation `noise_std` per uncoupled unit (module docstring); needs `key`.
    - `solver`, `stepsize_controller`, `dt0`, `saveat`, `adjoint`, `max_steps`,
      `progress_meter`: forwarded to `diffrax.diffeqsolve`. Defaults: ODE `Tsit5` with
      `PIDController(rtol=1e-6, atol=1e-8)`; SDE `Euler` (Euler-Maruyama; the noise is
      additive, so Ito = Stratonovich) with `ConstantStepSize` and `dt0` required.
    - `throw`: raise if diffrax fails; otherwise read `solution.result`.

    **Returns:** the `diffrax.Solution` (`ys` of shape `(time, n)`, `result`, `stats`).

    ```python
    net = mfrnn.GaussianEnsemble(g=2.0).sample(500, key=jr.key(0))
    sol = mfrnn.simulate(net, x0, jnp.linspace(0, 100, 1001))
    ```
    """
    _check_state(network, x0)
    ts = jnp.asarray(ts)
    x0 = jnp.asarray(x0, dtype=network.bias.dtype)
    is_sde = noise_std is not None
    if saveat is None:
        saveat = dfx.SaveAt(ts=ts)
    if is_sde:
        if key is None:
            raise ValueError("`key` is required when `noise_std` is given.")
        check_nonnegative("noise_std", noise_std)
        if dt0 is None:
            raise ValueError("`dt0` is required for SDE integration (noise_std given).")
        solver = dfx.Euler() if solver is None else solver
        stepsize_controller = (
            dfx.ConstantStepSize() if stepsize_controller is None else stepsize_controller
        )
        brownian = dfx.VirtualBrownianTree(
            ts[0], ts[-1], tol=jnp.asarray(dt0) / 4, shape=(network.n,), key=key
        )
        scale = jnp.asarray(noise_std, x0.dtype) * jnp.sqrt(2.0 / network.tau)
        diffusion = dfx.ControlTerm(
            lambda t, x, args: lx.DiagonalLinearOperator(jnp.full_like(x, scale)), brownian
        )
        terms = dfx.MultiTerm(dfx.ODETerm(network), diffusion)
    else:
        solver = dfx.Tsit5() if solver is None else solver
        if stepsize_controller is None:
            stepsize_controller = dfx.PIDController(rtol=1e-6, atol=1e-8)
        terms = dfx.ODETerm(network)
    return dfx.diffeqsolve(
        terms,
        solver,
        ts[0],
        ts[-1],
        dt0,
        x0,
        args=inputs,
        saveat=saveat,
        stepsize_controller=stepsize_controller,
        adjoint=adjoint,
        max_steps=max_steps,
        progress_meter=progress_meter,
        throw=throw,
    )


@eqx.filter_jit
def simulate_euler(
    network: AbstractRateNetwork,
    x0: Float[ArrayLike, " n"],
    *,
    dt: float,
    n_steps: int,
    inputs: Float[ArrayLike, "steps n_in"] | PiecewiseConstantInput | None = None,
    noise_std: ArrayLike | None = None,
    key: PRNGKeyArray | None = None,
    save_every: int = 1,
) -> Float[Array, "time n"]:
    """Fixed-step Euler (Euler-Maruyama) by `lax.scan`: the fast path for training.

    `x_{k+1} = x_k + alpha (-x_k + J phi(x_k) + bias + W_in u_k) + sqrt(2 alpha) sigma xi_k`
    with alpha = dt / tau; `u_k` is row k of `inputs` (held constant over step k), which
    matches diffrax's `Euler` with a [`mfrnn.PiecewiseConstantInput`][] on the same grid.

    **Returns:** states at steps `0, save_every, 2 save_every, ..., n_steps`, shape
    `(n_steps // save_every + 1, n)` (`n_steps` must be a multiple of `save_every`).
    """
    _check_state(network, x0)
    check_positive("dt", dt)
    if n_steps < 0 or save_every < 1 or n_steps % save_every:
        raise ValueError(
            f"`n_steps` ({n_steps}) must be a non-negative multiple of `save_every` ({save_every})."
        )
    x0 = jnp.asarray(x0, dtype=network.bias.dtype)
    if isinstance(inputs, PiecewiseConstantInput):
        inputs = inputs(inputs.t0 + inputs.dt * jnp.arange(n_steps))
    if inputs is not None:
        inputs = jnp.asarray(inputs, dtype=x0.dtype)
        if inputs.ndim != 2 or inputs.shape[0] != n_steps:
            raise ValueError(
                f"`inputs` must have shape (n_steps={n_steps}, n_in), got {inputs.shape}."
            )
    alpha = jnp.asarray(dt, x0.dtype) / network.tau
    if noise_std is not None:
        if key is None:
            raise ValueError("`key` is required when `noise_std` is given.")
        check_nonnegative("noise_std", noise_std)
        noise_scale = jnp.sqrt(2.0 * alpha) * jnp.asarray(noise_std, x0.dtype)
    n_saves = n_steps // save_every
    steps = jnp.arange(n_steps).reshape(n_saves, save_every)
    u_all = None if inputs is None else inputs.reshape(n_saves, save_every, -1)

    def step(x, per_step):
        k, u = per_step
        x = x + alpha * network.drive(None, x, u)
        if noise_std is not None:
            xi = jr.normal(jr.fold_in(key, k), x.shape, x.dtype)
            x = x + noise_scale * xi
        return x, None

    def block(x, per_block):
        x, _ = lax.scan(step, x, per_block)
        return x, x

    _, xs = lax.scan(block, x0, (steps, u_all))
    return jnp.concatenate([x0[None], xs], axis=0)


@eqx.filter_jit
def simulate_trials(
    network: AbstractRateNetwork,
    ts: Float[ArrayLike, " time"],
    n_trials: int,
    *,
    key: PRNGKeyArray,
    noise_std: ArrayLike | None = None,
    dt0: ArrayLike | None = None,
) -> Float[Array, "trial time n"]:
    """`n_trials` trials of `network`, each from its own initial state `x0 ~ N(0, 1)`
    per unit: [`mfrnn.simulate`][] mapped over trials (what `mfrnn simulate --trials`
    runs). With `noise_std` every trial is an SDE with its own noise, at the step `dt0`.

    **Arguments:**

    - `network`: an [`mfrnn.AbstractRateNetwork`][].
    - `ts`: save times; `ts[0]` is the initial time, so `xs[:, 0]` are the initial states.
    - `n_trials`: number of trials.
    - `key`: draws the initial states and the noise.
    - `noise_std`: as for [`mfrnn.simulate`][]; None (default) integrates the ODE with
      adaptive steps. `dt0`: the constant step of the SDE (used with `noise_std` only).

    **Returns:** the states, shape `(n_trials, time, n)`.

    ```python
    net = mfrnn.GaussianEnsemble(g=2.0).sample(500, key=jr.key(0))
    xs = mfrnn.simulate_trials(net, jnp.linspace(0, 200, 401), 4, key=jr.key(1))
    mfrnn.trial_summary(xs, discard=100)
    ```
    """
    if not isinstance(network, AbstractRateNetwork):
        raise ValueError(f"`network` must be an AbstractRateNetwork, got {type(network)}.")
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"`n_trials` must be a positive integer, got {n_trials!r}.")
    k_x0, k_noise = jr.split(key)
    x0s = jr.normal(k_x0, (n_trials, network.n), network.bias.dtype)

    def one(x0, k):
        if noise_std is None:
            return simulate(network, x0, ts).ys
        return simulate(network, x0, ts, noise_std=noise_std, dt0=dt0, key=k).ys

    return eqx.filter_vmap(one)(x0s, jr.split(k_noise, n_trials))
