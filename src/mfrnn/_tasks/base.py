"""Trial-aligned task generators: `task.sample(key, batch) -> (u, y, mask, info)`.

Conventions shared by every task:

- Times are in ms; `dt` is the step in ms. A trial has `task.n_steps` steps; step k
  covers `[k dt, (k + 1) dt)`, input `u[k]` is held over it and the output at step k
  is read from the state at its end (the Euler convention of training).
- Input noise is white noise in physical units: `input_noise` = sigma in units of
  input x sqrt(ms), added per step with std `sigma / sqrt(dt)` (neurogym's convention),
  so the information per ms does not depend on `dt`.
- `mask[k, o]` weights the loss on output o at step k (decision periods weigh
  `DECISION_WEIGHT` = 5, as neurogym's recipe); it is 0 on steps nobody scores (transitions after a pulse, padding after a variable-length trial) and it
  always marks the same steps as the targets it belongs to.
- `info` holds per-trial condition labels (coherence, context, bits, f1/f2...), the
  scored response window `response_on <= k < response_off` and, for decision tasks,
  per-step class labels for cross-entropy (0 = fixate, 1 + c = choice c).

Everything is built from per-trial scalars compared against `arange(n_steps)`, so
sampling is jittable and runs inside the training step.
"""

import abc
import dataclasses
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


Trial = tuple[
    Float[Array, "time n_in"], Float[Array, "time n_out"], Float[Array, "time n_out"], dict
]
Batch = tuple[
    Float[Array, "batch time n_in"],
    Float[Array, "batch time n_out"],
    Float[Array, "batch time n_out"],
    dict,
]


def steps(ms: float, dt: float) -> int:
    """Whole steps in `ms` (rounded; timing is on the `dt` grid)."""
    return int(round(ms / dt))


def window(t: Int[Array, " time"], on, off) -> Bool[Array, " time"]:
    return (t >= on) & (t < off)


class AbstractTask(eqx.Module):
    """A task: trial generator, scoring criterion and description.

    Subclasses set the static timing fields, `n_in`, `n_out`, `n_steps`, implement
    `trial(key)` for one noise-free trial (the base adds input noise) and
    `trial_correct(z, y, mask, info)` with the criterion the literature uses.

    Class attributes that describe training and evaluation on the task:

    - `target_loss` / `target_accuracy`: the published stopping criterion (one of them
      is set; docs/guide/tasks.md, "Training criteria"), as `TrainConfig` takes it.
    - `initial_g`: initial random gain of a dense network trained on the task
      (`initial_gain(rank)` gives the default `NetworkSpec.g` for any network).
    - `evidence`: `(info key, axis label)` of the signed evidence of a decision task,
      the x axis of its psychometric curve (None: no curve);
      `evidence_groups`: `(info key, curve names)` splitting trials into curves (the
      key holds each trial's group index 0, 1, ...).

    ```python
    task = mfrnn.make_task("flipflop3")
    task.target_loss, task.target_accuracy     # (0.009, None)
    ```
    """

    name: ClassVar[str]
    # Conditions shown in per-condition accuracy, in order (keys of `info`).
    condition_keys: ClassVar[tuple[str, ...]] = ()
    # Decision tasks have per-step class labels (fixate + choices) for cross-entropy.
    n_classes: ClassVar[int | None] = None
    target_loss: ClassVar[float | None] = None
    target_accuracy: ClassVar[float | None] = None
    initial_g: ClassVar[float] = 0.9
    evidence: ClassVar[tuple[str, str] | None] = None
    evidence_groups: ClassVar[tuple[str, tuple[str, ...]] | None] = None

    dt: eqx.AbstractVar[float]
    input_noise: eqx.AbstractVar[float]

    def __check_init__(self):
        check_numbers(self)

    @property
    @abc.abstractmethod
    def n_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_out(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_steps(self) -> int: ...

    @abc.abstractmethod
    def trial(self, key: PRNGKeyArray) -> Trial:
        """One trial without input noise."""

    @abc.abstractmethod
    def trial_correct(self, z, y, mask, info) -> Bool[Array, ""]:
        """Whether the output `z` (time, n_out) solves this trial."""

    def sample(self, key: PRNGKeyArray, batch: int) -> Batch:
        """`batch` independent trials: inputs `u`, targets `y`, loss `mask` and `info`.

        ```python
        u, y, mask, info = mfrnn.PerceptualDecision().sample(jr.key(0), 64)
        ```
        """
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"`batch` must be a positive integer, got {batch!r}.")
        trial_key, noise_key = jr.split(key)
        u, y, mask, info = jax.vmap(self.trial)(jr.split(trial_key, batch))
        if self.input_noise > 0:
            std = self.input_noise / math.sqrt(self.dt)
            u = u + std * jr.normal(noise_key, u.shape, u.dtype)
        return u, y, mask, info

    def accuracy(self, z, y, mask, info) -> Bool[Array, " batch"]:
        """Per-trial correctness of outputs `z` (batch, time, n_out)."""
        return jax.vmap(self.trial_correct)(z, y, mask, info)

    def class_correct(self, logits, info) -> Bool[Array, " batch"]:
        """Cross-entropy readout: argmax of the logits at the last scored step equals
        the label there (neurogym's criterion)."""
        if self.n_classes is None:
            raise ValueError(f"Task {self.name!r} has no class labels (no cross-entropy).")
        last = info["response_off"] - 1
        at_last = jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]
        label = jnp.take_along_axis(info["labels"], last[:, None], axis=1)[:, 0]
        return jnp.argmax(at_last, axis=-1) == label

    def held_out(self) -> "AbstractTask":
        """The task to score a trained network on: trials it was not trained on. A
        generator draws fresh trials on every call, so this is the task itself; a
        fixed pool of trials ([`mfrnn.NeurogymTask`][]) returns another pool."""
        return self

    def initial_gain(self, rank: int | None = None) -> float:
        """The default initial random gain `g` (`NetworkSpec.g`) of a network trained on
        this task: `initial_g` for a dense network (`rank` None); 0 for a low-rank one,
        whose structure `m n^T / N` is trained alone (a `g` > 0 adds a frozen random part
        to it).

        ```python
        task = mfrnn.make_task("match_to_sample")
        spec = mfrnn.NetworkSpec(n=128, rank=2, g=task.initial_gain(rank=2))  # g = 0
        ```
        """
        if rank is not None and (not isinstance(rank, int) or rank < 1):
            raise ValueError(f"`rank` must be None or a positive integer, got {rank!r}.")
        return self.initial_g if rank is None else 0.0

    def time_ms(self) -> Float[Array, " time"]:
        return self.dt * (jnp.arange(self.n_steps) + 1.0)

    def spec(self) -> dict[str, Any]:
        """JSON-able description: `task_from_spec(task.spec())` rebuilds the task."""
        kwargs = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kwargs[f.name] = list(value) if isinstance(value, tuple) else value
        return {"name": self.name, "kwargs": kwargs}


def number(default: float):
    """A static float task parameter (a duration in ms, a noise level, a tolerance)."""
    return eqx.field(default=default, static=True, converter=float)


def count(default: int):
    """A static integer task parameter."""
    return eqx.field(default=default, static=True, converter=int)


def floats(default: tuple):
    """A static tuple of floats (coherences)."""
    return eqx.field(default=default, static=True,
                     converter=lambda values: tuple(float(v) for v in values))


def _nonnegative(name: str) -> bool:
    return name in ("input_noise", "grace", "seed") or name.startswith("delay")


def check_numbers(task) -> None:
    """Every numeric field finite; noise, grace, delays and seeds non-negative, other
    scalars positive, with the argument named."""
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if not math.isfinite(v):
                raise ValueError(f"`{f.name}` must be a finite number, got {value!r}.")
            if isinstance(value, tuple):  # lists (coherences): their class checks ranges
                continue
            if v < 0 or (v == 0 and not _nonnegative(f.name)):
                kind = "non-negative" if _nonnegative(f.name) else "positive"
                raise ValueError(f"`{f.name}` must be {kind}, got {value!r}.")


# Loss weight of the decision period relative to fixation (docs/guide/tasks.md):
# the decision is a few steps of a long trial, and unweighted, "always output 0" wins.
DECISION_WEIGHT = 5.0


def decision_outputs(t, choice, fix_off, resp_on, resp_off):
    """Decision-task targets: 0 while fixating, `choice` (+-1) in the response window;
    scored on both (weight 1 and `DECISION_WEIGHT`); labels 0 (fixate) / 1 (choice -1)
    / 2 (choice +1)."""
    fixating = t < fix_off
    responding = window(t, resp_on, resp_off)
    y = jnp.where(responding, choice, 0.0)[:, None]
    mask = jnp.where(responding, DECISION_WEIGHT, fixating.astype(y.dtype))[:, None]
    labels = jnp.where(responding, jnp.where(choice > 0, 2, 1), 0)
    return y, mask, labels


def sign_of_mean_correct(z, info) -> Bool[Array, ""]:
    """Sign of the mean output in the response window equals the choice."""
    t = jnp.arange(z.shape[0])
    w = window(t, info["response_on"], info["response_off"]).astype(z.dtype)
    mean = jnp.sum(w * z[:, 0]) / jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sign(mean) == info["choice"]


def masked_mse(z, y, mask) -> Float[Array, ""]:
    return jnp.sum(mask * (z - y) ** 2) / jnp.maximum(jnp.sum(mask), 1.0)
