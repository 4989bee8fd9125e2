"""Scoring every member of a training run on held-out trials, in one call (what
`mfrnn train` and `mfrnn evaluate RUN_DIR` write)."""

import dataclasses

import numpy as np
from jaxtyping import PRNGKeyArray

from .._tasks import AbstractTask
from .._training import evaluate, Evaluation, TrainResult
from .psychometric import psychometric_curve, PsychometricCurve


@dataclasses.dataclass
class RunEvaluation:
    """What [`mfrnn.evaluate_run`][] returns.

    - `result`: the evaluated run, a [`mfrnn.TrainResult`][].
    - `task`: the task the members were scored on (`result.task.held_out()`).
    - `evaluations`: one [`mfrnn.Evaluation`][] per member, all on the same trials.
    - `best`: the index of the most accurate member (the first of equals).
    - `psychometric`: the best member's [`mfrnn.PsychometricCurve`][], or None when the
      task has none (not a decision task).
    """

    result: TrainResult
    task: AbstractTask
    evaluations: list[Evaluation]
    best: int
    psychometric: PsychometricCurve | None

    def summary(self) -> dict:
        """JSON-able summary: the run (task, network spec, step, times, history), the
        best member and its accuracy, and per member its learning rate, accuracy, MSE
        (None for cross-entropy), steps to criterion and per-condition accuracy (the
        CLI's `metrics.json` and `evaluation.json`)."""
        result = self.result
        members = [
            dict(member=i, learning_rate=result.learning_rates[i], accuracy=ev.accuracy,
                 loss=None if np.isnan(ev.loss) else ev.loss,
                 steps_to_criterion=result.steps_to_criterion[i],
                 by_condition=ev.by_condition)
            for i, ev in enumerate(self.evaluations)
        ]
        return dict(
            task=self.task.spec(), network=dataclasses.asdict(result.spec), step=result.step,
            seconds=result.seconds, compile_seconds=result.compile_seconds,
            history=result.history, best_member=self.best,
            accuracy=members[self.best]["accuracy"], members=members,
        )


def evaluate_run(result: TrainResult, *, key: PRNGKeyArray, batch: int = 512) -> RunEvaluation:
    """Score every member of a training run (from [`mfrnn.fit`][] or
    [`mfrnn.load_checkpoint`][]) with [`mfrnn.evaluate`][] on the same `batch` trials of
    its task's held-out trials (`task.held_out()`), with the run's loss and noise; pick
    the most accurate member and compute its psychometric curve
    ([`mfrnn.psychometric_curve`][]).

    ```python
    run = mfrnn.evaluate_run(mfrnn.load_checkpoint("run/checkpoint.mfrnn"), key=jr.key(1))
    run.best, run.evaluations[run.best].accuracy, run.summary()["members"]
    ```
    """
    if not isinstance(result, TrainResult):
        raise ValueError(f"`result` must be a TrainResult, got {type(result).__name__}.")
    task, config = result.task.held_out(), result.config
    evaluations = [
        evaluate(result.member(i), task, key=key, batch=batch, loss=config.loss,
                 noise_std=config.noise_std)
        for i in range(result.n_members)
    ]
    best = int(np.argmax([ev.accuracy for ev in evaluations]))
    ev = evaluations[best]
    return RunEvaluation(
        result=result, task=task, evaluations=evaluations, best=best,
        psychometric=psychometric_curve(task, ev.info, ev.chose_plus),
    )
