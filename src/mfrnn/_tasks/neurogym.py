"""Adapter: a neurogym environment as a trial-aligned, padded pool of trials.

Optional (`pip install mfrnn[neurogym]`, neurogym 2.2.0 installs beside jax without
torch); neurogym is imported only here, when a pool is built. See docs/guide/tasks.md:
trials are generated host-side once (`env.new_trial()`, `env.ob`, `env.gt`), padded to
the longest, masked (0 on padding, `decision_weight` in the decision period) and moved
to the device; `sample` draws trials from the pool inside jit. `ngym.Dataset` is not
used: it cuts windows across trials and has no mask.
"""

import contextlib
import warnings
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int

from .base import AbstractTask


def _import_neurogym():
    try:
        with _quiet_gymnasium():
            import neurogym
    except ImportError as e:
        raise ImportError(
            "The neurogym adapter needs neurogym: `pip install mfrnn[neurogym]` "
            "(neurogym 2.2.0 needs no torch)."
        ) from e
    return neurogym


@contextlib.contextmanager
def _quiet_gymnasium():
    """gymnasium warns about neurogym's env metadata (render_modes) at registration, and
    neurogym's pinned dependencies raise deprecation warnings on import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"gymnasium(\..*)?")
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# Seed offset of the held-out pool: far from the seeds of pools trained on.
_HELD_OUT_SEED = 10_000


class NeurogymTask(AbstractTask):
    """A pool of `n_trials` neurogym trials (action labels as targets).

    - Inputs: the env's observations. With `go_cue=True` the fixation observation is
      held at 1 until the decision period (neurogym's ContextDecisionMaking drops it
      after the fixation period, so nothing says when to answer; docs/guide/tasks.md).
    - Targets: one-hot action labels (`n_out` = number of actions) for MSE, or the
      labels themselves (`info["labels"]`) for cross-entropy.
    - Correct: argmax of the output at the last step of the trial equals the label
      there (neurogym's criterion). `info` holds the numeric entries of neurogym's
      trial dict (coherence, context, ground truth...).
    """

    name: ClassVar[str] = "neurogym"
    # neurogym's criterion (argmax at the last step); near PerceptualDecisionMaking's ceiling.
    target_accuracy: ClassVar[float | None] = 0.8
    env_id: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    n_trials: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    go_cue: bool = eqx.field(static=True)
    decision_weight: float = eqx.field(static=True)
    env_kwargs: tuple = eqx.field(static=True)
    input_noise: float = eqx.field(static=True)
    n_actions: int = eqx.field(static=True)
    condition_keys: tuple[str, ...] = eqx.field(static=True)
    inputs: Float[Array, "pool time n_in"]
    labels: Int[Array, "pool time"]
    weights: Float[Array, "pool time"]
    decision_on: Int[Array, " pool"]
    length: Int[Array, " pool"]
    conditions: dict[str, Any]

    def __init__(
        self,
        env_id: str = "PerceptualDecisionMaking-v0",
        *,
        dt: float = 100.0,
        n_trials: int = 2000,
        seed: int = 0,
        go_cue: bool = True,
        decision_weight: float = 5.0,
        env_kwargs: dict | tuple = (),
    ):
        ngym = _import_neurogym()
        if not isinstance(n_trials, int) or n_trials < 1:
            raise ValueError(f"`n_trials` must be a positive integer, got {n_trials!r}.")
        env_kwargs = tuple(sorted(dict(env_kwargs).items()))
        with _quiet_gymnasium():
            env = ngym.make(env_id, dt=dt, **dict(env_kwargs)).unwrapped
        env.seed(seed)
        obs, gts, decision, infos = [], [], [], []
        fix = env.observation_space.name.get("fixation") if hasattr(
            env.observation_space, "name") else None
        for _ in range(n_trials):
            info = env.new_trial()
            ob = np.array(env.ob, dtype=np.float32)
            dec = int(env.start_ind["decision"]) if "decision" in env.start_ind else len(ob) - 1
            if go_cue and fix is not None:
                ob[:dec, fix] = 1.0
            obs.append(ob)
            gts.append(np.asarray(env.gt, dtype=np.int32))
            decision.append(dec)
            infos.append(info)
        length = np.array([len(o) for o in obs])
        t_max = int(length.max())
        n_in = obs[0].shape[1]
        inputs = np.zeros((n_trials, t_max, n_in), np.float32)
        labels = np.zeros((n_trials, t_max), np.int32)
        weights = np.zeros((n_trials, t_max), np.float32)
        for i, (ob, gt, dec) in enumerate(zip(obs, gts, decision)):
            inputs[i, : len(ob)] = ob
            labels[i, : len(gt)] = gt
            weights[i, : len(gt)] = 1.0
            weights[i, dec: len(gt)] = decision_weight
        numeric = [k for k, v in infos[0].items() if np.isscalar(v) and np.isreal(v)]
        conditions = {k: jnp.asarray([float(inf[k]) for inf in infos]) for k in numeric}
        self.env_id = env_id
        self.dt = float(dt)
        self.n_trials = n_trials
        self.seed = int(seed)
        self.go_cue = bool(go_cue)
        self.decision_weight = float(decision_weight)
        self.env_kwargs = env_kwargs
        self.input_noise = 0.0  # neurogym's noise is in the observations
        self.n_actions = int(env.action_space.n)
        self.condition_keys = tuple(numeric)
        self.inputs = jnp.asarray(inputs)
        self.labels = jnp.asarray(labels)
        self.weights = jnp.asarray(weights)
        self.decision_on = jnp.asarray(decision)
        self.length = jnp.asarray(length)
        self.conditions = conditions

    @property
    def n_classes(self):
        return self.n_actions

    n_in = property(lambda self: self.inputs.shape[-1])
    n_out = property(lambda self: self.n_actions)
    n_steps = property(lambda self: self.inputs.shape[1])

    def trial(self, key):
        i = jr.randint(key, (), 0, self.n_trials)
        labels = self.labels[i]
        y = (labels[:, None] == jnp.arange(self.n_actions)[None]).astype(self.inputs.dtype)
        mask = jnp.broadcast_to(self.weights[i][:, None], y.shape)
        info = {k: v[i] for k, v in self.conditions.items()}
        info.update(labels=labels, response_on=self.decision_on[i],
                    response_off=self.length[i])
        return self.inputs[i], y, mask, info

    def trial_correct(self, z, y, mask, info):
        last = info["response_off"] - 1
        return jnp.argmax(z[last]) == info["labels"][last]

    def held_out(self) -> "NeurogymTask":
        """A pool drawn with another seed: scores on trials the network was not
        trained on."""
        spec = self.spec()
        spec["kwargs"]["seed"] += _HELD_OUT_SEED
        return self.from_spec(spec)

    def spec(self):
        return {"name": self.name, "kwargs": dict(
            env_id=self.env_id, dt=self.dt, n_trials=self.n_trials, seed=self.seed,
            go_cue=self.go_cue, decision_weight=self.decision_weight,
            env_kwargs=[list(kv) for kv in self.env_kwargs])}

    @classmethod
    def from_spec(cls, spec):
        kwargs = dict(spec["kwargs"])
        kwargs["env_kwargs"] = tuple(tuple(kv) for kv in kwargs.get("env_kwargs", ()))
        return cls(**kwargs)
