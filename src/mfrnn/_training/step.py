"""The forward pass of a batch of trials, the training loss, and the compiled programs
that draw the batches and take the optimisation steps of every member at once.

A run compiles four programs, once per (task, spec, config) and shapes: `start`
(initial members and optimiser states, in `config.py`), `evaluation_batch`,
`sample_batches` (the training batches of a chunk of steps) and `train_steps` (those
steps and the evaluation that decides the criterion, in one program: the criterion
check compiles nothing of its own). How they are compiled (options, at once) and kept
(in memory and in the persistent cache, by identity): `programs.py`.
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._bptt import euler_readout, euler_states
from .._networks import AbstractRateNetwork, DaleNetwork, PiecewiseConstantInput
from .._simulate import simulate
from .._tasks import AbstractTask
from .._tasks.base import masked_mse
from .config import key_shape, TrainConfig


def _check_noise_key(noise_std, key):
    if noise_std > 0 and key is None:
        raise ValueError("`key` is required when `noise_std` > 0: it draws the noise.")


def run_trials(
    model: AbstractRateNetwork,
    u: Float[Array, "batch time n_in"],
    *,
    dt: float,
    noise_std: float = 0.0,
    key: PRNGKeyArray | None = None,
    solver: dfx.AbstractSolver | None = None,
) -> tuple[Float[Array, "batch time n_out"], Float[Array, "batch time n"]]:
    """Outputs `z` and rates `r` of a batch of trials from x = 0 (step k's output is
    read at its end). Differentiable: the training forward pass.

    **Arguments:**

    - `model`: the network; `u`: inputs `(batch, time, n_in)` on steps of `dt`.
    - `noise_std`: recurrent noise (stationary std of an uncoupled unit); with noise,
      `key` is required (it draws the noise), without it `key` is not used.
    - `solver`: None integrates by Euler in a `lax.scan` with a hand-written adjoint
      (fast); a diffrax solver integrates each trial with [`mfrnn.simulate`][] at the
      constant step `dt`, with a checkpointed adjoint. `diffrax.Euler()` gives the same
      numbers as None.

    ```python
    z, r = mfrnn.run_trials(net, u, dt=task.dt)
    z, r = mfrnn.run_trials(net, u, dt=task.dt, solver=diffrax.Heun())
    ```
    """
    if solver is not None and not isinstance(solver, dfx.AbstractSolver):
        raise ValueError(
            f"`solver` must be None (the Euler scan) or a diffrax solver, got {solver!r}."
        )
    _check_noise_key(noise_std, key)
    if isinstance(model, DaleNetwork):
        model = model.as_dense()  # form J once, not at every step
    batch, n_steps, _ = u.shape
    dtype = model.bias.dtype
    u = u.astype(dtype)
    keys = jr.split(key, batch) if noise_std > 0 else None

    if solver is not None:
        ts = dt * jnp.arange(n_steps + 1, dtype=dtype)
        x0 = jnp.zeros(model.n, dtype)

        def one(u_trial, k):
            sol = simulate(
                model, x0, ts, inputs=PiecewiseConstantInput(u_trial, dt),
                noise_std=noise_std if noise_std > 0 else None, key=k,
                solver=solver, stepsize_controller=dfx.ConstantStepSize(), dt0=dt,
                saveat=dfx.SaveAt(ts=ts[1:]), max_steps=n_steps + 1,
                adjoint=dfx.RecursiveCheckpointAdjoint(checkpoints=n_steps + 1),
            )
            return sol.ys

        xs = jax.vmap(one)(u, keys)
        r = model.phi(xs)
        return jnp.einsum("btn,no->bto", r, model.W_out), r
    # Time-major through the hand-written adjoint (_bptt): the recurrence of
    # `simulate_euler` (same noise stream), each parameter's gradient one product.
    xi = None
    if keys is not None:
        steps = jnp.arange(n_steps)
        xi = jax.vmap(lambda k: jax.vmap(
            lambda s: jr.normal(jr.fold_in(k, s), (model.n,), dtype))(steps))(keys)
        xi = jnp.swapaxes(xi, 0, 1)
    xs = euler_states((model, jnp.swapaxes(u, 0, 1)), xi, dt, float(noise_std),
                      jnp.zeros((batch, model.n), dtype))
    r = model.phi(xs)
    # A matmul, not an einsum: XLA then reads r as it lies (it transposed r for the
    # einsum, a pass over every row, ~6 % of a dense epoch).
    z = jnp.swapaxes(r @ model.W_out, 0, 1)
    return z, jnp.swapaxes(r, 0, 1)


def outputs(model, u, *, dt, noise_std=0.0, key=None, solver=None):
    """`run_trials`' outputs z alone, without storing the states (evaluation)."""
    if solver is not None:
        return run_trials(model, u, dt=dt, noise_std=noise_std, key=key, solver=solver)[0]
    _check_noise_key(noise_std, key)
    if isinstance(model, DaleNetwork):
        model = model.as_dense()
    batch = u.shape[0]
    dtype = model.bias.dtype
    keys = jr.split(key, batch) if noise_std > 0 else None
    z = euler_readout(model, jnp.swapaxes(u.astype(dtype), 0, 1), dt,
                      jnp.zeros((batch, model.n), dtype), keys=keys, noise_std=noise_std)
    return jnp.swapaxes(z, 0, 1)


def data_loss(task, config, z, y, mask, info):
    """The masked data loss and per-trial correctness of outputs `z`."""
    dtype = z.dtype
    mask = mask.astype(dtype)
    if config.loss == "mse":
        return masked_mse(z, y.astype(dtype), mask), task.accuracy(z, y, mask, info)
    weight = mask[..., 0]
    ce = optax.softmax_cross_entropy_with_integer_labels(z, info["labels"])
    data = jnp.sum(weight * ce) / jnp.maximum(jnp.sum(weight), 1.0)
    return data, task.class_correct(z, info)


def training_loss(
    params: AbstractRateNetwork,
    static: AbstractRateNetwork,
    task: AbstractTask,
    config: TrainConfig,
    trials: tuple,
    *,
    key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, ""], tuple[Float[Array, ""], Float[Array, ""]]]:
    """The loss that [`mfrnn.fit`][] minimises, on one batch of trials.

    **Arguments:**

    - `params`, `static`: the network split by `eqx.partition` into the arrays that
      learn (differentiate with respect to `params`; `l2_weights` penalises them) and
      the rest.
    - `task`, `config`: the task and the [`mfrnn.TrainConfig`][] (`loss`, `l2_rates`,
      `l2_weights`, `noise_std`, `solver`).
    - `trials`: `(u, y, mask, info)` as `task.sample` returns them.
    - `key`: draws the recurrent noise; required when `config.noise_std` > 0.

    **Returns:** `(loss, (data_loss, accuracy))`: the data loss (masked MSE or
    cross-entropy) plus `l2_rates <r^2> + l2_weights sum_p <p^2>`, the data loss alone
    and the batch's mean correctness.

    ```python
    params, static = eqx.partition(net, eqx.is_inexact_array)
    (loss, (data, acc)), grads = eqx.filter_value_and_grad(mfrnn.training_loss, has_aux=True)(
        params, static, task, config, task.sample(jr.key(1), 32))
    ```
    """
    u, y, mask, info = trials
    model = eqx.combine(params, static)
    dtype = model.bias.dtype
    z, r = run_trials(model, u, dt=task.dt, noise_std=config.noise_std, key=key,
                      solver=config.trial_solver)
    data, correct = data_loss(task, config, z, y, mask, info)
    loss = data
    if config.l2_rates > 0:
        loss = loss + config.l2_rates * jnp.mean(r**2)
    if config.l2_weights > 0:
        leaves = jtu.tree_leaves(eqx.filter(params, eqx.is_inexact_array))
        loss = loss + config.l2_weights * sum(jnp.mean(p**2) for p in leaves)
    return loss, (data, jnp.mean(correct.astype(dtype)))


def evaluation_batch(key, task, config):
    """The evaluation batch (shared by all members) and its key: `fold_in(key, 2**31 -
    1)`, of the first member's key given one key per member."""
    eval_key = jr.fold_in(key if key.ndim == 0 else key[0], 2**31 - 1)
    return eval_key, task.sample(eval_key, config.eval_batch)


def sample_batches(keys, step0, task, config, n_steps):
    """Every member's training batches for steps step0 ... step0 + n_steps - 1."""

    def member(key):
        def one(i):
            k_data, _ = jr.split(jr.fold_in(key, step0 + i))
            return task.sample(k_data, config.batch_size)

        return jax.vmap(one)(jnp.arange(n_steps))

    return jax.vmap(member)(keys)


def chunk_steps(task, config, n_members) -> int:
    """Steps whose batches are drawn at once: up to one evaluation interval, within
    ~64 MB of batches."""
    shapes = jax.eval_shape(lambda k: task.sample(k, config.batch_size), key_shape())
    step_bytes = sum(s.size * s.dtype.itemsize for s in jtu.tree_leaves(shapes)) * n_members
    return max(1, min(config.eval_every, config.n_steps, 2**26 // max(step_bytes, 1)))


def _has_dense_matrix(models) -> bool:
    """Whether the (stacked) members carry an N x N matrix (dense J, W or J_random)."""
    n = models.bias.shape[-1]
    return any(x.ndim == 3 and x.shape[1:] == (n, n) for x in jtu.tree_leaves(models))


def _over_members(f, in_axes, *, sequential=False):
    """`f` over the members (axis 0 of the arguments whose in_axis is 0): vmapped, or
    one after another (`sequential`, `lax.map`), or unbatched for a single member.
    CPU timings (N = 512, 32 trials): XLA's batched products (one J per member) run
    ~3x slower than the same products one member at a time, and a batch of one ~12 %
    slower than a plain product; networks with an N x N matrix are therefore mapped,
    low-rank ones (elementwise work, which batching helps) vmapped."""

    def one(*args):
        take = lambda a: jtu.tree_map(lambda x: x[0] if eqx.is_array(x) else x, a)
        args = [take(a) if axis == 0 else a for a, axis in zip(args, in_axes)]
        return jtu.tree_map(lambda x: x[None] if eqx.is_array(x) else x, f(*args))

    def mapped(*args):
        per_member, static = eqx.partition(
            [a if axis == 0 else None for a, axis in zip(args, in_axes)], eqx.is_array)

        def g(arrays):
            member = eqx.combine(arrays, static)
            return f(*[m if axis == 0 else a for m, a, axis in zip(member, args, in_axes)])

        return lax.map(g, per_member)

    def over(*args):
        n = jtu.tree_leaves(args[in_axes.index(0)])[0].shape[0]
        if n == 1:
            return one(*args)
        return mapped(*args) if sequential else eqx.filter_vmap(f, in_axes=in_axes)(*args)

    return over


def train_steps(models, opt_states, done, keys, step0, n_run, data, eval_key, eval_batch,
                do_eval, task, config, filter_spec, optim):
    """`n_run` optimisation steps of every member from `step0` (members already `done`
    keep their parameters and optimiser state, and their training loss is NaN), then,
    if `do_eval`, every member's loss, accuracy and per-trial correctness on the
    evaluation batch."""

    sequential = _has_dense_matrix(models)

    def member_step(model, opt_state, is_done, key, step, batch):
        def train(model, opt_state):
            params, static = eqx.partition(model, filter_spec)
            k_noise = jr.split(jr.fold_in(key, step))[1] if config.noise_std > 0 else None
            (loss, _), grads = eqx.filter_value_and_grad(training_loss, has_aux=True)(
                params, static, task, config, batch, key=k_noise
            )
            updates, new_state = optim.update(grads, opt_state, params)
            new_model = eqx.apply_updates(model, updates)
            if isinstance(new_model, DaleNetwork):
                new_model = new_model.project()
            return new_model, new_state, loss

        def keep(model, opt_state):
            return model, opt_state, jnp.full((), jnp.nan, jnp.dtype(config.dtype))

        # Members mapped one after another skip the step once done; vmapped ones
        # compute it and keep the old values (the cond becomes a select).
        return lax.cond(is_done, keep, train, model, opt_state)

    def body(i, carry):
        models, opt_states, total = carry
        batch = jtu.tree_map(lambda x: x[:, i], data)
        models, opt_states, loss = _over_members(
            member_step, (0, 0, 0, 0, None, 0), sequential=sequential
        )(models, opt_states, done, keys, step0 + i, batch)
        return models, opt_states, total + loss

    total = jnp.zeros(done.shape, jnp.dtype(config.dtype))
    models, opt_states, total = lax.fori_loop(0, n_run, body, (models, opt_states, total))

    def evaluation(models):
        u, y, mask, info = eval_batch

        def member(model):
            key = jr.fold_in(eval_key, 1) if config.noise_std > 0 else None
            z = outputs(model, u, dt=task.dt, noise_std=config.noise_std, key=key,
                        solver=config.trial_solver)
            data, correct = data_loss(task, config, z, y, mask, info)
            return data, jnp.mean(correct.astype(z.dtype)), correct

        return _over_members(member, (0,), sequential=sequential)(models)

    skipped = lambda models: jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                          jax.eval_shape(evaluation, models))
    return models, opt_states, total, lax.cond(do_eval, evaluation, skipped, models)
