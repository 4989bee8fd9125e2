"""What a training run is made of: the network spec, the optimisation settings, the
initial networks (one per member) and their optimiser."""

import dataclasses
import functools as ft
import math

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import optax
from jaxtyping import PRNGKeyArray

from .._networks import AbstractRateNetwork, DaleNetwork, DenseNetwork, LowRankNetwork
from .._nonlinearities import nonlinearity
from .._options import (
    DaleConstraint,
    DaleConstraintLike,
    Loss,
    LossLike,
    option,
    TrialSolver,
    TrialSolverLike,
)
from .._tasks import AbstractTask


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
    dale: DaleConstraintLike | None = None
    frac_e: float = 0.8
    g: float = 0.9
    phi: str = "tanh"
    tau: float = 100.0

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"`n` must be a positive integer, got {self.n!r}.")
        if self.rank is not None and (not isinstance(self.rank, int) or not 1 <= self.rank <= self.n):
            raise ValueError(f"`rank` must be None or an integer in [1, n], got {self.rank!r}.")
        if self.dale is not None:
            object.__setattr__(self, "dale", option(DaleConstraint, self.dale, "dale"))
        if self.dale is not None and self.rank is not None:
            raise ValueError("Dale's law is for dense networks; give `rank` or `dale`, not both.")
        if not 0 < self.frac_e < 1:
            raise ValueError(f"`frac_e` must be in (0, 1), got {self.frac_e}.")
        if not self.g >= 0:
            raise ValueError(f"`g` must be non-negative, got {self.g}.")
        if not self.tau > 0:
            raise ValueError(f"`tau` must be positive, got {self.tau}.")
        nonlinearity(self.phi)


# The `run_trials` solver each `TrainConfig.solver` stands for.
_SOLVERS = {TrialSolver.euler: None, TrialSolver.diffrax: dfx.Euler()}


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
    - `solver`: the forward pass of [`mfrnn.run_trials`][], a [`mfrnn.TrialSolver`][]
      (a name, not a solver object, so that the config stays JSON).
    - `target_accuracy` / `target_loss`: a member stops (is frozen) once its
      evaluation batch reaches either; training stops when every member has.
    """

    learning_rate: float | tuple[float, ...] = 1e-3
    n_steps: int = 1000
    batch_size: int = 64
    loss: LossLike = Loss.mse
    train: tuple[str, ...] = ("J", "W_in", "W_out", "bias")
    grad_clip: float | None = 1.0
    l2_rates: float = 0.0
    l2_weights: float = 0.0
    noise_std: float = 0.0
    solver: TrialSolverLike = TrialSolver.euler
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
        object.__setattr__(self, "loss", option(Loss, self.loss, "loss"))
        unknown = set(self.train) - {"J", "m", "n", "W_in", "W_out", "bias"}
        if unknown or not self.train:
            raise ValueError(f"`train` must name some of J, m, n, W_in, W_out, bias; got {self.train!r}.")
        object.__setattr__(self, "solver", option(TrialSolver, self.solver, "solver"))
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

    @property
    def trial_solver(self) -> dfx.AbstractSolver | None:
        """The `solver` argument of [`mfrnn.run_trials`][] that `solver` names."""
        return _SOLVERS[self.solver]


def n_readout(task: AbstractTask, loss: LossLike) -> int:
    """Readout units: the task's outputs, or its classes' logits for `loss`='xent'."""
    if loss == "xent":
        if task.n_classes is None:
            raise ValueError(f"`loss`='xent' needs a task with class labels; {task.name!r} has none.")
        return task.n_classes
    return task.n_out


def init_network(
    task: AbstractTask, spec: NetworkSpec, *, key: PRNGKeyArray, loss: LossLike = Loss.mse,
    dtype=jnp.float32,
) -> AbstractRateNetwork:
    """An untrained network for `task` as `spec` describes: W_in ~ N(0, 1), W_out ~
    N(0, 1 / n), J ~ N(0, g^2 / n) (Dale: |J| with inhibitory columns scaled so rows
    balance on average; low rank: m, n ~ N(0, 1)).

    ```python
    net = mfrnn.init_network(task, mfrnn.NetworkSpec(n=64), key=jr.key(0))
    ```
    """
    if not isinstance(task, AbstractTask):
        raise ValueError(f"`task` must be an AbstractTask, got {type(task)}.")
    n = spec.n
    n_out = n_readout(task, loss)
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


def filter_spec(task, spec, config):
    """The trainable filter (`eqx.partition`'s) of the networks `spec` builds for `task`."""
    one = jax.eval_shape(
        lambda k: init_network(task, spec, key=k, loss=config.loss, dtype=jnp.dtype(config.dtype)),
        key_shape(),
    )
    return _trainable_filter(one, config.train)


def key_shape() -> jax.ShapeDtypeStruct:
    """The shape and dtype of a PRNG key, for `jax.eval_shape` (no key is drawn)."""
    return jax.eval_shape(jr.key, 0)


def check_dtype(config):
    if jnp.dtype(config.dtype) == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("`dtype`='float64' needs jax_enable_x64.")


@ft.lru_cache(maxsize=64)  # the same object for the same config: no recompilation
def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Clip (global norm), then Adam with an injected learning rate (one per member)."""
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rates[0])
    if config.grad_clip is None:
        return optax.chain(optax.identity(), adam)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), adam)


def start(task, spec, config, key, n_seeds, filter_spec):
    """Initial members, optimiser states and member keys (a compiled program of `fit`:
    compiled at LLVM -O1, which keeps the networks bit-identical to `init_network`'s)."""
    lrs = config.learning_rates
    dtype = jnp.dtype(config.dtype)
    keys = member_keys(key, n_seeds * len(lrs))
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


def check_key(key, n_members: int) -> jax.Array:
    """A run's `key` as typed PRNG keys (raw `PRNGKey`s are wrapped): one key, or one per
    member (shape `(n_members,)`)."""
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.ndim in (1, 2):
        key = jr.wrap_key_data(key)
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape in ((), (n_members,)):
            return key
        raise ValueError(
            f"`key` must be one PRNG key or one per member ({n_members}: `n_seeds` x the "
            f"learning rates), got keys of shape {key.shape}."
        )
    raise ValueError(f"`key` must be a PRNG key, `jax.random.key(seed)`; got {key!r}.")


def member_keys(key, n_members: int) -> jax.Array:
    """Member i's key: `fold_in(key, i)`, or `key[i]` given one key per member. fold_in,
    not split: member i's stream does not depend on how many members run."""
    if key.ndim == 1:
        return key
    return jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(n_members))


def init_members(task, spec, config, key, n_seeds):
    """Stacked initial networks (one per member), their optimiser states and keys,
    the trainable filter and the optimiser."""
    from .programs import run_programs  # (which imports this module)

    check_dtype(config)
    trainable = filter_spec(task, spec, config)
    key = check_key(key, n_seeds * len(config.learning_rates))
    args = (task, spec, config, key, n_seeds, trainable)
    program = run_programs(*args, names=("start",))["start"]  # the program `fit` runs
    models, opt_states, keys = program(*args)
    return models, opt_states, keys, trainable, make_optimizer(config)
