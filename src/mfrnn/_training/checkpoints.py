"""The checkpoint file: a JSON header (specs, config, key, history) and the arrays as
equinox serialised leaves; read back without pickled code, and checked before a run
resumes from it."""

import dataclasses
import json
import os
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._tasks import task_from_spec
from .config import init_members, NetworkSpec, TrainConfig
from .result import TrainResult


_MAGIC = b"MFRNN-CHECKPOINT-1\n"


def save_checkpoint(path: str | os.PathLike, result: TrainResult) -> None:
    """One file: a JSON header (task spec, network spec, config, key, step, history)
    followed by the arrays (networks, optimiser states, done flags) as equinox
    serialised leaves. Written to a temporary file and renamed, so a kill mid-write
    leaves the previous checkpoint intact.

    ```python
    mfrnn.save_checkpoint("run/checkpoint.mfrnn", result)
    ```
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(
        format=1, task=result.task.spec(), spec=dataclasses.asdict(result.spec),
        config=dataclasses.asdict(result.config), n_seeds=result.n_seeds,
        step=result.step, history=result.history, steps_to_criterion=result.steps_to_criterion,
        seconds=result.seconds, compile_seconds=result.compile_seconds,
        x64=bool(jax.config.jax_enable_x64),
    )
    header["key"] = _key_header(result.key)
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


def _key_header(key) -> dict:
    """A PRNG key as JSON: its implementation and its data."""
    return dict(impl=str(jr.key_impl(key)), data=np.asarray(jr.key_data(key)).tolist())


def _header_key(header: dict):
    """The run's key from a checkpoint header (older files store an integer seed)."""
    if "key" not in header:
        return jr.key(header["seed"])
    data = np.asarray(header["key"]["data"], np.uint32)
    return jr.wrap_key_data(data, impl=header["key"]["impl"])


def _same_key(a, b) -> bool:
    return (str(jr.key_impl(a)) == str(jr.key_impl(b))
            and np.array_equal(np.asarray(jr.key_data(a)), np.asarray(jr.key_data(b))))


def _tupled(d: dict, keys) -> dict:
    return {k: (tuple(v) if k in keys and isinstance(v, list) else v) for k, v in d.items()}


def load_checkpoint(path: str | os.PathLike) -> TrainResult:
    """Read a checkpoint written by `fit` / `save_checkpoint` (no pickled code: the
    networks are rebuilt from their specs and the arrays read into them).

    ```python
    result = mfrnn.load_checkpoint("run/checkpoint.mfrnn")
    ```
    """
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
        key = _header_key(header)
        models, opt_states, _, _, _ = init_members(task, spec, config, key, header["n_seeds"])
        n_members = header["n_seeds"] * len(config.learning_rates)
        try:
            models, opt_states, done = eqx.tree_deserialise_leaves(
                f, (models, opt_states, jnp.zeros(n_members, bool))
            )
        except Exception as e:
            raise ValueError(f"Checkpoint {str(path)!r} does not match its header: {e}") from e
    result = TrainResult(
        task=task, spec=spec, config=config, key=key, n_seeds=header["n_seeds"],
        models=models, opt_states=opt_states, done=done, step=header["step"],
        history=header["history"], steps_to_criterion=header["steps_to_criterion"],
        seconds=header["seconds"], compile_seconds=header["compile_seconds"],
    )
    result.x64 = header["x64"]
    return result


def check_same_run(result, task, spec, config, key, n_seeds):
    """Resuming is only meaningful for the same task, network and settings (the step
    count may grow)."""
    mismatches = []
    if result.task.spec() != task.spec():
        mismatches.append("task")
    if result.spec != spec:
        mismatches.append("network spec")
    if dataclasses.replace(result.config, n_steps=config.n_steps) != config:
        mismatches.append("training config")
    if not _same_key(result.key, key) or result.n_seeds != n_seeds:
        mismatches.append("key / n_seeds")
    if result.x64 != bool(jax.config.jax_enable_x64):
        # Trials are drawn in the default float dtype: another x64 setting, other data.
        mismatches.append("jax_enable_x64 setting")
    if mismatches:
        raise ValueError(
            f"Incompatible checkpoint: its {', '.join(mismatches)} differ from this run's; "
            "use another `checkpoint` path or resume=False."
        )
    result.config = config
