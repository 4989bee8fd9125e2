"""Psychometric curves of decision tasks: the fraction of +1 choices against the signed
evidence, one curve per group of trials (e.g. per context)."""

import equinox as eqx
import numpy as np
from jaxtyping import Bool, Float, Int

from .._tasks import AbstractTask


class PsychometricCurve(eqx.Module):
    """Fraction of +1 choices per evidence level.

    - `evidence`: the distinct signed evidence values (level,), sorted.
    - `fraction_plus`: (group, level) fraction of trials that chose +1; NaN where a
      group has no trial at that level.
    - `n_trials`: (group, level) trial counts.
    - `group_names`: one name per row (empty when the task has no groups).
    - `xlabel`: what the evidence is (the task's `evidence` label).
    """

    evidence: Float[np.ndarray, " level"]
    fraction_plus: Float[np.ndarray, "group level"]
    n_trials: Int[np.ndarray, "group level"]
    group_names: tuple[str, ...] = eqx.field(static=True)
    xlabel: str = eqx.field(static=True)


def psychometric_curve(
    task: AbstractTask,
    info: dict,
    chose_plus: Bool[np.ndarray, " batch"] | None,
) -> PsychometricCurve | None:
    """The psychometric curve of evaluated trials, grouped as the task says
    (`task.evidence`, `task.evidence_groups`).

    **Arguments:** the `task`, and the trials' `info` and `chose_plus` (from
    [`mfrnn.evaluate`][]).

    **Returns:** a [`mfrnn.PsychometricCurve`][], or None when the task has no signed
    evidence or the trials no choices (not a decision task).

    ```python
    ev = mfrnn.evaluate(net, task, key=jr.key(1))
    curve = mfrnn.psychometric_curve(task, ev.info, ev.chose_plus)
    ```
    """
    if task.evidence is None or chose_plus is None or task.evidence[0] not in info:
        return None
    evidence = np.asarray(info[task.evidence[0]], float)
    chose = np.asarray(chose_plus, float)
    if evidence.shape != chose.shape:
        raise ValueError(
            f"`chose_plus` must have one value per trial {evidence.shape}, got {chose.shape}."
        )
    groups, names = np.zeros(evidence.shape), ()
    if task.evidence_groups is not None and task.evidence_groups[0] in info:
        key, names = task.evidence_groups
        groups = np.asarray(info[key])
    levels = np.unique(evidence)
    group_values = np.unique(groups)
    # Trials per (group, level) cell, and how many of them chose +1.
    cell = (groups[:, None] == group_values)[:, :, None] & (evidence[:, None] == levels)[:, None]
    counts = cell.sum(0)
    plus = (cell * chose[:, None, None]).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(counts > 0, plus / counts, np.nan)
    return PsychometricCurve(
        evidence=levels,
        fraction_plus=fraction,
        n_trials=counts,
        group_names=tuple(names[int(v)] for v in group_values) if names else (),
        xlabel=task.evidence[1],
    )
