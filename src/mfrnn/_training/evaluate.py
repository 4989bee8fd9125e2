"""Scoring a trained network on fresh trials of its task, overall and per condition."""

import dataclasses

import equinox as eqx
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PRNGKeyArray

from .._networks import AbstractRateNetwork
from .._options import Loss, LossLike, option
from .._tasks import AbstractTask
from .config import n_readout
from .step import outputs


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
    z = outputs(model, u, dt=task.dt, noise_std=noise_std, key=k_noise)
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
    loss: LossLike = Loss.mse,
    noise_std: float = 0.0,
) -> Evaluation:
    """Score `model` on `batch` fresh trials of `task`, overall and per condition.

    ```python
    ev = mfrnn.evaluate(result.member(0), task, key=jr.key(1))
    ev.accuracy, ev.by_condition
    ```
    """
    loss = option(Loss, loss, "loss")
    if model.W_out is None or model.W_out.shape[1] != n_readout(task, loss):
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
