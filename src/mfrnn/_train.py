"""Training rate networks on tasks with optax: BPTT through the Euler scan (or diffrax),
several seeds / learning rates at once with vmap, checkpoints that resume exactly.

One jitted step samples a batch from the task (inside jit: no host round trip),
computes the loss and its gradient, clips, updates and (Dale projection) projects,
for every member at once. Batches and noise come from `fold_in(member key, step)`, so
a run resumed from a checkpoint sees the same data as an uninterrupted one.
"""

import dataclasses
import functools as ft
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._bptt import euler_readout, euler_states
from ._compilation_cache import compilation_cache_scope
from ._networks import (
    AbstractRateNetwork,
    DaleNetwork,
    DenseNetwork,
    LowRankNetwork,
    PiecewiseConstantInput,
)
from ._nonlinearities import nonlinearity
from ._programs import compiled, output_shapes
from ._simulate import simulate
from ._tasks import AbstractTask, task_from_spec
from ._tasks.base import masked_mse


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """How to build (and rebuild, from a checkpoint) the network to train.

    - `n`: units. `rank`: None for a dense J, R for `J = m n^T / N` (m, n trained;
      `g` > 0 adds a fixed random part). `dale`: None, "sign" (|W| diag(signs),
      default for Dale) or "projection"; `frac_e` excitatory units.
    - `g`: initial gain of the random (dense) J, or of the frozen random part for
      low rank. `phi`: nonlinearity name. `tau`: time constant in ms.
    """

    n: int = 128
    rank: int | None = None
    dale: str | None = None
    frac_e: float = 0.8
    g: float = 0.9
    phi: str = "tanh"
    tau: float = 100.0

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"`n` must be a positive integer, got {self.n!r}.")
        if self.rank is not None and (not isinstance(self.rank, int) or not 1 <= self.rank <= self.n):
            raise ValueError(f"`rank` must be None or an integer in [1, n], got {self.rank!r}.")
        if self.dale not in (None, "sign", "projection"):
            raise ValueError(f"`dale` must be None, 'sign' or 'projection', got {self.dale!r}.")
        if self.dale is not None and self.rank is not None:
            raise ValueError("Dale's law is for dense networks; give `rank` or `dale`, not both.")
        if not 0 < self.frac_e < 1:
            raise ValueError(f"`frac_e` must be in (0, 1), got {self.frac_e}.")
        if not self.g >= 0:
            raise ValueError(f"`g` must be non-negative, got {self.g}.")
        if not self.tau > 0:
            raise ValueError(f"`tau` must be positive, got {self.tau}.")
        nonlinearity(self.phi)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (all JSON-able, stored in checkpoints).

    - `learning_rate`: Adam step; a list trains one member per value (times `n_seeds`).
    - `loss`: "mse" (masked) or "xent" (masked softmax cross-entropy on the task's
      class labels; the readout then has `task.n_classes` logits).
    - `train`: which parameters learn: any of "J" (W for Dale; m and n for low
      rank), "m", "n", "W_in", "W_out", "bias".
    - `grad_clip`: global-norm clipping (None: off). `l2_rates`, `l2_weights`: penalties
      on mean squared rates and mean squared trained weights.
    - `noise_std`: recurrent noise (stationary std of an uncoupled unit).
    - `solver`: "euler" (`lax.scan`) or "diffrax" (Euler through `diffeqsolve` with a
      checkpointed adjoint; same numbers, for users who swap in other solvers).
    - `target_accuracy` / `target_loss`: a member stops (is frozen) once its
      evaluation batch reaches either; training stops when every member has.
    """

    learning_rate: float | tuple[float, ...] = 1e-3
    n_steps: int = 1000
    batch_size: int = 64
    loss: str = "mse"
    train: tuple[str, ...] = ("J", "W_in", "W_out", "bias")
    grad_clip: float | None = 1.0
    l2_rates: float = 0.0
    l2_weights: float = 0.0
    noise_std: float = 0.0
    solver: str = "euler"
    target_accuracy: float | None = None
    target_loss: float | None = None
    eval_every: int = 50
    eval_batch: int = 256
    checkpoint_every: int = 100
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("learning_rate", "train"):  # lists (e.g. from JSON) -> hashable
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        lrs = self.learning_rates
        if not lrs or any(not (lr > 0) for lr in lrs):
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        for name in ("n_steps", "batch_size", "eval_every", "eval_batch", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.loss not in ("mse", "xent"):
            raise ValueError(f"`loss` must be 'mse' or 'xent', got {self.loss!r}.")
        unknown = set(self.train) - {"J", "m", "n", "W_in", "W_out", "bias"}
        if unknown or not self.train:
            raise ValueError(f"`train` must name some of J, m, n, W_in, W_out, bias; got {self.train!r}.")
        if self.solver not in ("euler", "diffrax"):
            raise ValueError(f"`solver` must be 'euler' or 'diffrax', got {self.solver!r}.")
        for name in ("l2_rates", "l2_weights", "noise_std"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be non-negative, got {getattr(self, name)}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"`grad_clip` must be positive or None, got {self.grad_clip}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {self.dtype!r}.")

    @property
    def learning_rates(self) -> tuple[float, ...]:
        lr = self.learning_rate
        return tuple(float(v) for v in lr) if isinstance(lr, tuple | list) else (float(lr),)


def _n_readout(task: AbstractTask, loss: str) -> int:
    if loss == "xent":
        if task.n_classes is None:
            raise ValueError(f"`loss`='xent' needs a task with class labels; {task.name!r} has none.")
        return task.n_classes
    return task.n_out


def init_network(
    task: AbstractTask, spec: NetworkSpec, *, key: PRNGKeyArray, loss: str = "mse",
    dtype=jnp.float32,
) -> AbstractRateNetwork:
    """An untrained network for `task` as `spec` describes: W_in ~ N(0, 1), W_out ~
    N(0, 1 / n), J ~ N(0, g^2 / n) (Dale: |J| with inhibitory columns scaled so rows
    balance on average; low rank: m, n ~ N(0, 1))."""
    if not isinstance(task, AbstractTask):
        raise ValueError(f"`task` must be an AbstractTask, got {type(task)}.")
    n = spec.n
    n_out = _n_readout(task, loss)
    k_j, k_in, k_out, k_m, k_n = jr.split(key, 5)
    W_in = jr.normal(k_in, (n, task.n_in), dtype)
    W_out = jr.normal(k_out, (n, n_out), dtype) / math.sqrt(n)
    common = dict(bias=jnp.zeros(n, dtype), W_in=W_in, W_out=W_out,
                  tau=jnp.asarray(spec.tau, dtype))
    phi = nonlinearity(spec.phi)
    J = spec.g / math.sqrt(n) * jr.normal(k_j, (n, n), dtype)
    if spec.rank is not None:
        m = jr.normal(k_m, (n, spec.rank), dtype)
        n_vec = jr.normal(k_n, (n, spec.rank), dtype)
        return LowRankNetwork(m, n_vec, phi, J_random=J if spec.g > 0 else None, **common)
    if spec.dale is not None:
        n_e = int(round(spec.frac_e * n))
        signs = jnp.where(jnp.arange(n) < n_e, 1.0, -1.0).astype(dtype)
        # Inhibitory columns scaled by frac_e / (1 - frac_e): zero mean input per row.
        scale = jnp.where(signs > 0, 1.0, spec.frac_e / (1.0 - spec.frac_e)).astype(dtype)
        W = jnp.abs(J) * scale[None, :] * math.sqrt(math.pi / (2 * (1 + spec.frac_e / (1 - spec.frac_e))))
        return DaleNetwork(W * signs[None, :], signs, phi, constraint=spec.dale, **common)
    return DenseNetwork(J, phi, **common)


def _trainable_filter(model: AbstractRateNetwork, names: tuple[str, ...]):
    """A bool pytree: True on the arrays that learn."""
    fields = []
    for name in names:
        if name == "J":
            if isinstance(model, LowRankNetwork):
                fields += ["m", "n_vectors"]
            elif isinstance(model, DaleNetwork):
                fields.append("W")
            else:
                fields.append("J")
        elif name in ("m", "n"):
            if not isinstance(model, LowRankNetwork):
                raise ValueError(f"`train` names {name!r}, which only low-rank networks have.")
            fields.append("m" if name == "m" else "n_vectors")
        else:
            if getattr(model, name) is None:
                raise ValueError(f"`train` names {name!r}, but the network has none.")
            fields.append(name)
    spec = jtu.tree_map(lambda _: False, model)
    fields = sorted(set(fields))
    return eqx.tree_at(lambda m: [getattr(m, f) for f in fields], spec, replace=[True] * len(fields))


def run_trials(
    model: AbstractRateNetwork,
    u: Float[Array, "batch time n_in"],
    *,
    dt: float,
    noise_std: float = 0.0,
    key: PRNGKeyArray | None = None,
    solver: str = "euler",
) -> tuple[Float[Array, "batch time n_out"], Float[Array, "batch time n"]]:
    """Outputs `z` and rates `r` of a batch of trials from x = 0 (step k's output is
    read at its end). Differentiable: the training forward pass."""
    if isinstance(model, DaleNetwork):
        model = model.as_dense()  # form J once, not at every step
    batch, n_steps, _ = u.shape
    dtype = model.bias.dtype
    u = u.astype(dtype)
    if noise_std > 0 and key is None:
        raise ValueError("`key` is required when `noise_std` > 0: it draws the noise.")
    if noise_std > 0 or solver == "diffrax":
        # Without noise diffrax's per-trial keys are never drawn from.
        keys = jr.split(jr.key(0) if key is None else key, batch)

    if solver == "diffrax":
        ts = dt * jnp.arange(n_steps + 1, dtype=dtype)
        x0 = jnp.zeros(model.n, dtype)

        def one(u_trial, k):
            sol = simulate(
                model, x0, ts, inputs=PiecewiseConstantInput(u_trial, dt),
                noise_std=noise_std if noise_std > 0 else None, key=k,
                solver=dfx.Euler(), stepsize_controller=dfx.ConstantStepSize(), dt0=dt,
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
    if noise_std > 0:
        steps = jnp.arange(n_steps)
        xi = jax.vmap(lambda k: jax.vmap(
            lambda s: jr.normal(jr.fold_in(k, s), (model.n,), dtype))(steps))(keys)
        xi = jnp.swapaxes(xi, 0, 1)
    xs = euler_states((model, jnp.swapaxes(u, 0, 1)), xi, dt, float(noise_std),
                      jnp.zeros((batch, model.n), dtype))
    r = model.phi(xs)
    z = jnp.einsum("tbn,no->bto", r, model.W_out)
    return z, jnp.swapaxes(r, 0, 1)


def _data_loss(task, config, z, y, mask, info):
    """The masked data loss and per-trial correctness of outputs `z`."""
    dtype = z.dtype
    mask = mask.astype(dtype)
    if config.loss == "mse":
        return masked_mse(z, y.astype(dtype), mask), task.accuracy(z, y, mask, info)
    weight = mask[..., 0]
    ce = optax.softmax_cross_entropy_with_integer_labels(z, info["labels"])
    data = jnp.sum(weight * ce) / jnp.maximum(jnp.sum(weight), 1.0)
    return data, task.class_correct(z, info)


def _outputs(model, u, *, dt, noise_std=0.0, key=None, solver="euler"):
    """`run_trials`' outputs z alone, without storing the states (evaluation)."""
    if solver == "diffrax":
        return run_trials(model, u, dt=dt, noise_std=noise_std, key=key, solver=solver)[0]
    if isinstance(model, DaleNetwork):
        model = model.as_dense()
    batch = u.shape[0]
    dtype = model.bias.dtype
    if noise_std > 0 and key is None:
        raise ValueError("`key` is required when `noise_std` > 0: it draws the noise.")
    keys = jr.split(key, batch) if noise_std > 0 else None
    z = euler_readout(model, jnp.swapaxes(u.astype(dtype), 0, 1), dt,
                      jnp.zeros((batch, model.n), dtype), keys=keys, noise_std=noise_std)
    return jnp.swapaxes(z, 0, 1)


def _loss(params, static, task, config, u, y, mask, info, key):
    model = eqx.combine(params, static)
    dtype = model.bias.dtype
    z, r = run_trials(model, u, dt=task.dt, noise_std=config.noise_std, key=key,
                      solver=config.solver)
    data, correct = _data_loss(task, config, z, y, mask, info)
    loss = data
    if config.l2_rates > 0:
        loss = loss + config.l2_rates * jnp.mean(r**2)
    if config.l2_weights > 0:
        leaves = jtu.tree_leaves(eqx.filter(params, eqx.is_inexact_array))
        loss = loss + config.l2_weights * sum(jnp.mean(p**2) for p in leaves)
    return loss, (data, jnp.mean(correct.astype(dtype)))


@ft.lru_cache(maxsize=64)  # the same object for the same config: no recompilation
def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Clip (global norm), then Adam with an injected learning rate (one per member)."""
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rates[0])
    if config.grad_clip is None:
        return optax.chain(optax.identity(), adam)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)


# --------------------------------------------------------------------------- programs
#
# A run compiles four programs, once per (task, spec, config) and shapes: `_start`
# (initial members and optimiser states), `_evaluation_batch`, `_sample` (the
# training batches of a chunk of steps) and `_train` (those steps and the evaluation
# that decides the criterion, in one program: the criterion check compiles nothing of
# its own). The first three draw random numbers and are compiled at a lower LLVM level
# (threefry at -O2 compiles for seconds): `_start` at -O1, which keeps the initial
# networks bit-identical to `init_network`'s, the others at -O0 (their input noise may
# differ from an eager draw in the last bit). All of them compile at once.


def _start(task, spec, config, seed, n_seeds, filter_spec):
    """Initial members, optimiser states and member keys."""
    lrs = config.learning_rates
    dtype = jnp.dtype(config.dtype)
    # fold_in, not split: member i's stream does not depend on how many members run.
    keys = jax.vmap(lambda i: jr.fold_in(jr.key(seed), i))(jnp.arange(n_seeds * len(lrs)))
    init_keys = jax.vmap(lambda k: jr.fold_in(k, -1 % 2**31))(keys)
    models = eqx.filter_vmap(
        lambda k: init_network(task, spec, key=k, loss=config.loss, dtype=dtype)
    )(init_keys)
    optim = make_optimizer(config)
    opt_states = eqx.filter_vmap(lambda m: optim.init(eqx.filter(m, filter_spec)))(models)
    lr = jnp.tile(jnp.asarray(lrs, dtype), n_seeds)
    opt_states = eqx.tree_at(lambda s: s[1].hyperparams["learning_rate"], opt_states,
                             lr.astype(opt_states[1].hyperparams["learning_rate"].dtype))
    return models, opt_states, keys


def _evaluation_batch(seed, task, config):
    """The evaluation batch (shared by all members) and its key."""
    eval_key = jr.fold_in(jr.key(seed), 2**31 - 1)
    return eval_key, task.sample(eval_key, config.eval_batch)


def _sample(keys, step0, task, config, n_steps):
    """Every member's training batches for steps step0 ... step0 + n_steps - 1."""

    def member(key):
        def one(i):
            k_data, _ = jr.split(jr.fold_in(key, step0 + i))
            return task.sample(k_data, config.batch_size)

        return jax.vmap(one)(jnp.arange(n_steps))

    return jax.vmap(member)(keys)


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


def _train(models, opt_states, done, keys, step0, n_run, data, eval_key, eval_batch,
           do_eval, task, config, filter_spec, optim):
    """`n_run` optimisation steps of every member from `step0` (members already `done`
    keep their parameters and optimiser state), then, if `do_eval`, every member's
    loss, accuracy and per-trial correctness on the evaluation batch."""

    sequential = _has_dense_matrix(models)

    def member_step(model, opt_state, is_done, key, step, batch):
        params, static = eqx.partition(model, filter_spec)
        k_noise = jr.split(jr.fold_in(key, step))[1] if config.noise_std > 0 else None
        (loss, _), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(
            params, static, task, config, *batch, k_noise
        )
        updates, new_state = optim.update(grads, opt_state, params)
        new_model = eqx.apply_updates(model, updates)
        if isinstance(new_model, DaleNetwork):
            new_model = new_model.project()
        keep = lambda old, new: jnp.where(is_done, old, new) if eqx.is_array(old) else new
        return jtu.tree_map(keep, model, new_model), jtu.tree_map(keep, opt_state, new_state), loss

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
            z = _outputs(model, u, dt=task.dt, noise_std=config.noise_std, key=key,
                         solver=config.solver)
            data, correct = _data_loss(task, config, z, y, mask, info)
            return data, jnp.mean(correct.astype(z.dtype)), correct

        return _over_members(member, (0,), sequential=sequential)(models)

    skipped = lambda models: jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                          jax.eval_shape(evaluation, models))
    return models, opt_states, total, lax.cond(do_eval, evaluation, skipped, models)


def _filter_spec(task, spec, config):
    one = jax.eval_shape(lambda: init_network(task, spec, key=jr.key(0), loss=config.loss,
                                              dtype=jnp.dtype(config.dtype)))
    return _trainable_filter(one, config.train)


def _check_dtype(config):
    if jnp.dtype(config.dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("`dtype`='float64' needs jax_enable_x64.")


def _int(value) -> np.ndarray:
    return np.asarray(value, np.int32)


def init_members(task, spec, config, seed, n_seeds):
    """Stacked initial networks (one per member), their optimiser states and keys,
    the trainable filter and the optimiser."""
    _check_dtype(config)
    filter_spec = _filter_spec(task, spec, config)
    args = (task, spec, config, jnp.asarray(seed), n_seeds, filter_spec)
    models, opt_states, keys = compiled(_start, *args, opt_level=1)(*args)
    return models, opt_states, keys, filter_spec, make_optimizer(config)


def _chunk_steps(task, config, n_members) -> int:
    """Steps whose batches are drawn at once: up to one evaluation interval, within
    ~64 MB of batches."""
    shapes = jax.eval_shape(lambda k: task.sample(k, config.batch_size), jr.key(0))
    step_bytes = sum(s.size * s.dtype.itemsize for s in jtu.tree_leaves(shapes)) * n_members
    return max(1, min(config.eval_every, config.n_steps, 2**26 // max(step_bytes, 1)))


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns. `models`: the members stacked along axis 0 (`member(i)`
    gives one network); `history`: per evaluation `step`, `loss` and `accuracy`
    (lists over members) and `train_loss`; `steps_to_criterion[i]`: the step at which
    member i reached the target (None if it did not)."""

    task: AbstractTask
    spec: NetworkSpec
    config: TrainConfig
    seed: int
    n_seeds: int
    models: Any
    opt_states: Any
    done: Any
    step: int
    history: dict
    steps_to_criterion: list
    seconds: float = 0.0
    compile_seconds: float = 0.0
    x64: bool = dataclasses.field(default_factory=lambda: bool(jax.config.jax_enable_x64))

    @property
    def n_members(self) -> int:
        return int(np.asarray(self.done).shape[0])

    def member(self, i: int) -> AbstractRateNetwork:
        return jtu.tree_map(lambda x: x[i] if eqx.is_array(x) else x, self.models)

    @property
    def learning_rates(self) -> list[float]:
        return list(np.tile(self.config.learning_rates, self.n_seeds))


class _Progress:
    """A one-line progress bar on stderr (no dependency): step, rate, loss, accuracy."""

    def __init__(self, total, start, enabled):
        self.total, self.enabled = total, enabled
        self.restart(start)

    def restart(self, start):
        self.start, self.t0 = start, time.perf_counter()

    def update(self, step, loss, acc, done):
        if not self.enabled:
            return
        frac = step / self.total
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        sys.stderr.write(f"\rtrain [{bar}] {step}/{self.total} {rate:6.1f} it/s "
                         f"loss {loss:.4g} acc {acc:.3f} done {done}")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


def fit(
    task: AbstractTask,
    spec: NetworkSpec = NetworkSpec(),
    config: TrainConfig = TrainConfig(),
    *,
    seed: int = 0,
    n_seeds: int = 1,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[TrainResult], None] | None = None,
) -> TrainResult:
    """Train `n_seeds` x `len(learning_rate)` networks on `task` at once (vmapped).

    **Arguments:**

    - `task`: an [`mfrnn.AbstractTask`][]; `spec`: a [`mfrnn.NetworkSpec`][];
      `config`: a [`mfrnn.TrainConfig`][].
    - `seed`: seeds every member's initialisation and data stream.
    - `checkpoint`: file written every `config.checkpoint_every` steps and at the
      end (atomically); with `resume=True` an existing file is loaded and training
      continues from its step, giving the same parameters as an uninterrupted run.
    - `progress`: show a progress bar (loss, accuracy) on stderr.
    - `callback(result)`: called after every evaluation (e.g. to log or to stop by
      raising).

    Training runs as four compiled programs (initialisation, evaluation batch, training
    batches, and the training steps with the evaluation that decides the criterion),
    compiled at once. They are kept in JAX's persistent compilation cache
    (`mfrnn.default_compilation_cache_dir()`), so a second run of the same training
    skips compilation; JAX's configuration is restored afterwards. Set
    `$MFRNN_NO_COMPILATION_CACHE=1` to keep the cache off, `$MFRNN_COMPILATION_CACHE_DIR`
    to move it; a configured `jax_compilation_cache_dir` is used as it is. A cached
    program is the same program: the parameters are bit-identical.

    ```python
    task = mfrnn.make_task("flipflop3")
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=64), mfrnn.TrainConfig(n_steps=2000))
    net = result.member(0)
    ```
    """
    bar = _Progress(config.n_steps, 0, progress)

    def on_evaluation(result, correct):
        del correct
        bar.update(result.step, float(np.mean(result.history["loss"][-1])),
                   float(np.mean(result.history["accuracy"][-1])),
                   int(np.sum(np.asarray(result.done))))
        if callback is not None:
            callback(result)
        return False

    result = run_training(task, spec, config, seed, n_seeds, checkpoint, resume,
                          on_evaluation=on_evaluation, on_start=lambda r: bar.restart(r.step))
    bar.close()
    return result


def run_training(task, spec, config, seed, n_seeds, checkpoint, resume, *,
                 on_evaluation=None, on_start=None):
    """The training loop of `fit`. `on_start(result)` is called once the programs are
    compiled; `on_evaluation(result, correct)` after every evaluation (`correct`: numpy,
    per member and evaluation trial); it returns True to stop training there."""
    if not isinstance(task, AbstractTask):
        raise ValueError(f"`task` must be an AbstractTask, got {type(task)}.")
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"`n_seeds` must be a positive integer, got {n_seeds!r}.")
    _check_dtype(config)
    t_start = time.perf_counter()
    filter_spec = _filter_spec(task, spec, config)
    optim = make_optimizer(config)
    n_members = n_seeds * len(config.learning_rates)
    n_chunk = _chunk_steps(task, config, n_members)
    seed_array = jnp.asarray(seed)
    start_args = (task, spec, config, seed_array, n_seeds, filter_spec)
    eval_args = (seed_array, task, config)
    # The programs compile at once (XLA releases the GIL), from their arguments' shapes.
    models, opt_states, keys = output_shapes(_start, *start_args)
    eval_key, eval_batch = output_shapes(_evaluation_batch, *eval_args)
    data = output_shapes(_sample, keys, _int(0), task, config, n_chunk)
    train_args = (models, opt_states, np.zeros(n_members, bool), keys, _int(0), _int(0), data,
                  eval_key, eval_batch, np.asarray(False), task, config, filter_spec, optim)
    with compilation_cache_scope(), ThreadPoolExecutor(3) as pool:
        train = pool.submit(compiled, _train, *train_args)
        sample = pool.submit(compiled, _sample, keys, _int(0), task, config, n_chunk,
                             opt_level=0)
        evaluation = pool.submit(compiled, _evaluation_batch, *eval_args, opt_level=0)
        models, opt_states, keys = compiled(_start, *start_args, opt_level=1)(*start_args)
        eval_key, eval_batch = evaluation.result()(*eval_args)
        train, sample = train.result(), sample.result()
    compile_seconds = time.perf_counter() - t_start

    if resume and checkpoint is not None and pathlib.Path(checkpoint).exists():
        result = load_checkpoint(checkpoint)
        _check_same_run(result, task, spec, config, seed, n_seeds)
    else:
        result = TrainResult(
            task=task, spec=spec, config=config, seed=seed, n_seeds=n_seeds, models=models,
            opt_states=opt_states, done=jnp.asarray(np.zeros(n_members, bool)), step=0,
            history=dict(step=[], loss=[], accuracy=[], train_loss=[]),
            steps_to_criterion=[None] * n_members,
        )
    result.compile_seconds = compile_seconds
    if on_start is not None:
        on_start(result)
    done = np.asarray(result.done)
    loss_sum, loss_steps = np.zeros(n_members), 0
    step = result.step
    data = sample(keys, _int(step)) if step < config.n_steps and not done.all() else None
    while step < config.n_steps and not done.all():
        end = min(config.n_steps, step + n_chunk,
                  (step // config.eval_every + 1) * config.eval_every)
        if checkpoint is not None:
            end = min(end, (step // config.checkpoint_every + 1) * config.checkpoint_every)
        do_eval = end % config.eval_every == 0 or end == config.n_steps
        models, opt_states, total, (ev_loss, ev_acc, correct) = train(
            result.models, result.opt_states, done, keys, _int(step), _int(end - step), data,
            eval_key, eval_batch, np.asarray(do_eval), task, config, filter_spec, optim,
        )
        if end < config.n_steps:  # queued behind this chunk: drawn while it trains
            data = sample(keys, _int(end))
        loss_steps += end - step
        result.models, result.opt_states, result.step, step = models, opt_states, end, end
        loss_sum += np.asarray(total, float)
        stop = False
        if do_eval:
            done = _record_evaluation(result, np.asarray(ev_loss, float),
                                      np.asarray(ev_acc, float), loss_sum / loss_steps, done)
            loss_sum, loss_steps = np.zeros(n_members), 0
            if on_evaluation is not None:
                stop = on_evaluation(result, np.asarray(correct))
        if checkpoint is not None and step % config.checkpoint_every == 0:
            save_checkpoint(checkpoint, result)
        if stop:
            break
    result.seconds += time.perf_counter() - t_start
    if checkpoint is not None:
        save_checkpoint(checkpoint, result)
    return result


def _record_evaluation(result, loss, acc, train_loss, done):
    """Append an evaluation to the history; members reaching the target are done."""
    config = result.config
    h = result.history
    h["step"].append(result.step)
    h["loss"].append(loss.tolist())
    h["accuracy"].append(acc.tolist())
    h["train_loss"].append(None if train_loss is None else train_loss.tolist())
    reached = np.zeros_like(loss, bool)
    if config.target_accuracy is not None:
        reached |= acc >= config.target_accuracy
    if config.target_loss is not None:
        reached |= loss <= config.target_loss
    new_done = done | reached
    for i in np.flatnonzero(new_done & ~done):
        result.steps_to_criterion[i] = result.step
    result.done = jnp.asarray(new_done)
    return new_done


# --------------------------------------------------------------------------- checkpoints

_MAGIC = b"MFRNN-CHECKPOINT-1\n"


def save_checkpoint(path: str | os.PathLike, result: TrainResult) -> None:
    """One file: a JSON header (task spec, network spec, config, seed, step, history)
    followed by the arrays (networks, optimiser states, done flags) as equinox
    serialised leaves. Written to a temporary file and renamed, so a kill mid-write
    leaves the previous checkpoint intact."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(
        format=1, task=result.task.spec(), spec=dataclasses.asdict(result.spec),
        config=dataclasses.asdict(result.config), seed=result.seed, n_seeds=result.n_seeds,
        step=result.step, history=result.history, steps_to_criterion=result.steps_to_criterion,
        seconds=result.seconds, compile_seconds=result.compile_seconds,
        x64=bool(jax.config.jax_enable_x64),
    )
    blob = json.dumps(header).encode()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        eqx.tree_serialise_leaves(f, (result.models, result.opt_states, result.done))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tupled(d: dict, keys) -> dict:
    return {k: (tuple(v) if k in keys and isinstance(v, list) else v) for k, v in d.items()}


def load_checkpoint(path: str | os.PathLike) -> TrainResult:
    """Read a checkpoint written by `fit` / `save_checkpoint` (no pickled code: the
    networks are rebuilt from their specs and the arrays read into them)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"No checkpoint at {str(path)!r}.")
    with open(path, "rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{str(path)!r} is not an mfrnn checkpoint.")
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size).decode())
        task = task_from_spec(header["task"])
        spec = NetworkSpec(**header["spec"])
        config = TrainConfig(**_tupled(header["config"], ("learning_rate", "train")))
        models, opt_states, _, _, _ = init_members(
            task, spec, config, header["seed"], header["n_seeds"]
        )
        n_members = header["n_seeds"] * len(config.learning_rates)
        try:
            models, opt_states, done = eqx.tree_deserialise_leaves(
                f, (models, opt_states, jnp.zeros(n_members, bool))
            )
        except Exception as e:
            raise ValueError(f"Checkpoint {str(path)!r} does not match its header: {e}") from e
    result = TrainResult(
        task=task, spec=spec, config=config, seed=header["seed"], n_seeds=header["n_seeds"],
        models=models, opt_states=opt_states, done=done, step=header["step"],
        history=header["history"], steps_to_criterion=header["steps_to_criterion"],
        seconds=header["seconds"], compile_seconds=header["compile_seconds"],
    )
    result.x64 = header["x64"]
    return result


def _check_same_run(result, task, spec, config, seed, n_seeds):
    """Resuming is only meaningful for the same task, network and settings (the step
    count may grow)."""
    mismatches = []
    if result.task.spec() != task.spec():
        mismatches.append("task")
    if result.spec != spec:
        mismatches.append("network spec")
    if dataclasses.replace(result.config, n_steps=config.n_steps) != config:
        mismatches.append("training config")
    if (result.seed, result.n_seeds) != (seed, n_seeds):
        mismatches.append("seed / n_seeds")
    if result.x64 != bool(jax.config.jax_enable_x64):
        # Trials are drawn in the default float dtype: another x64 setting, other data.
        mismatches.append("jax_enable_x64 setting")
    if mismatches:
        raise ValueError(
            f"Incompatible checkpoint: its {', '.join(mismatches)} differ from this run's; "
            "use another `checkpoint` path or resume=False."
        )
    result.config = config


# --------------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class Evaluation:
    """A trained network on fresh trials: inputs `u`, targets `y`, `mask`, outputs
    `z` (batch, time, n_out), `info`, per-trial `correct`, `accuracy`, the masked MSE
    `loss`, `by_condition` (one row per combination of the task's condition keys:
    its values, trial count and accuracy) and, for decision tasks, `chose_plus` (the
    network chose +1: sign of its mean output, or argmax of its logits)."""

    u: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    z: np.ndarray
    info: dict
    correct: np.ndarray
    accuracy: float
    loss: float
    by_condition: list
    chose_plus: np.ndarray | None


@eqx.filter_jit
def _evaluate_batch(model, task, loss, noise_std, key, batch):
    k_data, k_noise = jr.split(key)
    u, y, mask, info = task.sample(k_data, batch)
    z = _outputs(model, u, dt=task.dt, noise_std=noise_std, key=k_noise)
    if loss == "xent":
        correct = task.class_correct(z, info)
    else:
        correct = task.accuracy(z, y, mask, info)
    return u, y, mask, z, info, correct


def evaluate(
    model: AbstractRateNetwork,
    task: AbstractTask,
    *,
    key: PRNGKeyArray,
    batch: int = 512,
    loss: str = "mse",
    noise_std: float = 0.0,
) -> Evaluation:
    """Score `model` on `batch` fresh trials of `task`, overall and per condition.

    ```python
    ev = mfrnn.evaluate(result.member(0), task, key=jr.key(1))
    ev.accuracy, ev.by_condition
    ```
    """
    if loss not in ("mse", "xent"):
        raise ValueError(f"`loss` must be 'mse' or 'xent', got {loss!r}.")
    if model.W_out is None or model.W_out.shape[1] != _n_readout(task, loss):
        raise ValueError(
            f"The network's readout does not match task {task.name!r} with loss {loss!r}."
        )
    if model.W_in is None or model.W_in.shape[1] != task.n_in:
        raise ValueError(f"The network's `W_in` does not match task {task.name!r} (n_in={task.n_in}).")
    out = _evaluate_batch(model, task, loss, float(noise_std), key, batch)
    u, y, mask, z, info, correct = (jtu.tree_map(np.asarray, v) for v in out)
    keys = [k for k in task.condition_keys if k in info and np.ndim(info[k]) == 1]
    rows = {}
    for i in range(batch):
        cond = tuple(float(info[k][i]) for k in keys)
        rows.setdefault(cond, []).append(bool(correct[i]))
    by_condition = [
        dict(zip(keys, cond), n=len(v), accuracy=float(np.mean(v)))
        for cond, v in sorted(rows.items())
    ]
    chose_plus = None
    if "choice" in info:
        if loss == "xent":
            last = info["response_off"] - 1
            chose_plus = np.argmax(z[np.arange(batch), last], axis=-1) == 2
        else:
            t = np.arange(z.shape[1])
            w = (t >= info["response_on"][:, None]) & (t < info["response_off"][:, None])
            chose_plus = np.sum(w * z[..., 0], axis=1) > 0
    mse = float(np.sum(mask * (z - y) ** 2) / max(np.sum(mask), 1.0)) if loss == "mse" else float("nan")
    return Evaluation(u=u, y=y, mask=mask, z=z, info=info, correct=correct,
                      accuracy=float(np.mean(correct)), loss=mse, by_condition=by_condition,
                      chose_plus=chose_plus)
