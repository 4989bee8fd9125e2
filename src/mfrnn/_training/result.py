"""What `fit` returns and what a checkpoint holds."""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np

from .._networks import AbstractRateNetwork
from .._tasks import AbstractTask
from .config import NetworkSpec, TrainConfig


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns. `key`: the run's PRNG key (or keys, one per member);
    `models`: the members stacked along axis 0 (`member(i)` gives one network);
    `history`: per evaluation `step`, `loss` and `accuracy` (lists over members) and
    `train_loss` (NaN for members already done); `steps_to_criterion[i]`: the step at which
    member i reached the target (None if it did not); `eval_correct`: per member and
    evaluation trial, whether the trial was correct at the last evaluation (NumPy;
    None before the first one and after `load_checkpoint`: it is not stored)."""

    task: AbstractTask
    spec: NetworkSpec
    config: TrainConfig
    key: Any
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
    eval_correct: Any = None

    @property
    def n_members(self) -> int:
        return int(np.asarray(self.done).shape[0])

    def member(self, i: int) -> AbstractRateNetwork:
        return jtu.tree_map(lambda x: x[i] if eqx.is_array(x) else x, self.models)

    @property
    def learning_rates(self) -> list[float]:
        return list(np.tile(self.config.learning_rates, self.n_seeds))
