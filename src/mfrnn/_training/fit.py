"""The training loop: compile the run's programs at once, then train in chunks of
steps, evaluate, stop members at their criterion, checkpoint, show progress.

Batches and noise come from `fold_in(member key, step)`, so a run resumed from a
checkpoint sees the same data as an uninterrupted one.
"""

import os
import pathlib
import sys
import time
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Key, PRNGKeyArray

from .._tasks import AbstractTask
from .checkpoints import check_same_run, load_checkpoint, save_checkpoint
from .config import (
    check_dtype,
    check_key,
    filter_spec,
    make_optimizer,
    NetworkSpec,
    TrainConfig,
)
from .programs import run_programs
from .result import TrainResult
from .step import chunk_steps


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
    key: PRNGKeyArray | Key[Array, " members"],
    n_seeds: int = 1,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[TrainResult], bool | None] | None = None,
) -> TrainResult:
    """Train `n_seeds` x `len(learning_rate)` networks on `task` at once (vmapped).

    **Arguments:**

    - `task`: an [`mfrnn.AbstractTask`][]; `spec`: a [`mfrnn.NetworkSpec`][];
      `config`: a [`mfrnn.TrainConfig`][].
    - `key`: a PRNG key (`jax.random.key(seed)`): member i initialises and draws its
      batches from `fold_in(key, i)`, the evaluation batch from `fold_in(key, 2**31 - 1)`;
      the checkpoint stores it. Or one key per member (shape `(n_seeds *
      len(learning_rate),)`): member i uses `key[i]` (and the evaluation batch
      `key[0]`'s), so a member of a run can be trained alone, and vice versa.
    - `checkpoint`: file written every `config.checkpoint_every` steps and at the
      end (atomically); with `resume=True` an existing file is loaded and training
      continues from its step, giving the same parameters as an uninterrupted run.
    - `progress`: show a progress bar (loss, accuracy) on stderr.
    - `callback(result)`: called after every evaluation (e.g. to log, or to judge
      `result.eval_correct` by a criterion of one's own); returning True stops training
      there (the result and the checkpoint hold that step).

    Training runs as four compiled programs (initialisation, evaluation batch, training
    batches, and the training steps with the evaluation that decides the criterion),
    compiled at once. They are kept in memory for the process and in the persistent
    compilation cache (`mfrnn.default_compilation_cache_dir()`), so a second run of the
    same training (a task of mfrnn's, the same settings) reads them back without
    tracing or compiling; JAX's configuration is restored afterwards. Set
    `$MFRNN_NO_COMPILATION_CACHE=1` to keep the cache off, `$MFRNN_COMPILATION_CACHE_DIR`
    to move it; a configured `jax_compilation_cache_dir` is used as it is. A cached
    program is the same program: the parameters are bit-identical.
    `result.compile_seconds` is the time until the programs were ready,
    `result.seconds` the whole run's.

    ```python
    task = mfrnn.make_task("flipflop3")
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=64), mfrnn.TrainConfig(n_steps=2000),
                       key=jr.key(0))
    net = result.member(0)
    ```
    """
    bar = _Progress(config.n_steps, 0, progress)

    def on_evaluation(result):
        bar.update(result.step, float(np.mean(result.history["loss"][-1])),
                   float(np.mean(result.history["accuracy"][-1])),
                   int(np.sum(np.asarray(result.done))))
        return callback is not None and callback(result) is True

    result = _run(task, spec, config, key, n_seeds, checkpoint, resume,
                  on_evaluation=on_evaluation, on_start=lambda r: bar.restart(r.step))
    bar.close()
    return result


def _int(value) -> np.ndarray:
    return np.asarray(value, np.int32)


def _run(task, spec, config, key, n_seeds, checkpoint, resume, *, on_evaluation, on_start):
    """The training loop of `fit`. `on_start(result)` is called once the programs are
    compiled; `on_evaluation(result)` after every evaluation; it returns True to stop
    training there."""
    if not isinstance(task, AbstractTask):
        raise ValueError(f"`task` must be an AbstractTask, got {type(task)}.")
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"`n_seeds` must be a positive integer, got {n_seeds!r}.")
    n_members = n_seeds * len(config.learning_rates)
    key = check_key(key, n_members)
    check_dtype(config)
    t_start = time.perf_counter()
    trainable = filter_spec(task, spec, config)
    optim = make_optimizer(config)
    n_chunk = chunk_steps(task, config, n_members)
    programs = run_programs(task, spec, config, key, n_seeds, trainable, optim, n_chunk)
    train, sample = programs["train"], programs["sample"]
    models, opt_states, keys = programs["start"](task, spec, config, key, n_seeds, trainable)
    eval_key, eval_batch = programs["evaluation"](key, task, config)
    compile_seconds = time.perf_counter() - t_start

    if resume and checkpoint is not None and pathlib.Path(checkpoint).exists():
        result = load_checkpoint(checkpoint)
        check_same_run(result, task, spec, config, key, n_seeds)
    else:
        result = TrainResult(
            task=task, spec=spec, config=config, key=key, n_seeds=n_seeds, models=models,
            opt_states=opt_states, done=jnp.asarray(np.zeros(n_members, bool)), step=0,
            history=dict(step=[], loss=[], accuracy=[], train_loss=[]),
            steps_to_criterion=[None] * n_members,
        )
    result.compile_seconds = compile_seconds
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
            eval_key, eval_batch, np.asarray(do_eval), task, config, trainable, optim,
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
            result.eval_correct = np.asarray(correct)
            loss_sum, loss_steps = np.zeros(n_members), 0
            stop = on_evaluation(result)
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
