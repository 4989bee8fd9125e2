"""Tasks by name (CLI, checkpoints): `make_task("xor")`, `task_from_spec(task.spec())`."""

import dataclasses

from .base import AbstractTask
from .decision import ContextDecision, PerceptualDecision
from .jarne import FiniteOscillation, LogicGate, SetResetFlipFlop, TimeReproduction
from .sussillo_barak import FlipFlop, SineWave
from .working_memory import DelayedMatchToSample, ParametricWorkingMemory


# name -> (class, the keywords the name fixes). The short names come first; then every
# class's own `name` (the one `task.spec()` and the CLI's JSON write), so that a name
# read from a result is a name `make_task` and `mfrnn train --task` take.
_TASKS = {
    "and": (LogicGate, {"gate": "and"}),
    "or": (LogicGate, {"gate": "or"}),
    "xor": (LogicGate, {"gate": "xor"}),
    "not": (LogicGate, {"gate": "not"}),
    "flipflop1": (SetResetFlipFlop, {}),
    "flipflop3": (FlipFlop, {}),  # n_bits = 3 is FlipFlop's default
    "time_reproduction": (TimeReproduction, {}),
    "oscillation": (FiniteOscillation, {}),
    "sine": (SineWave, {}),
    "perceptual_decision": (PerceptualDecision, {}),
    "context_decision": (ContextDecision, {}),
    "match_to_sample": (DelayedMatchToSample, {}),
    "parametric_wm": (ParametricWorkingMemory, {}),
}
_CLASSES = {cls.name: cls for cls, _ in _TASKS.values()}
_TASKS.update({name: (cls, {}) for name, cls in _CLASSES.items() if name not in _TASKS})
TASK_NAMES = tuple(_TASKS)


def task_arguments(name: str) -> tuple[str, ...]:
    """The keyword arguments `make_task(name, ...)` takes (the task's parameters less
    the ones its name fixes, e.g. `gate` for `"xor"`).

    ```python
    mfrnn.task_arguments("flipflop3")   # ('n_bits', 'dt', 'slot', ...)
    ```
    """
    cls, fixed = _lookup(name)
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in fixed)


def _lookup(name):
    try:
        return _TASKS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {list(TASK_NAMES)}.") from None


def make_task(name: str, **kwargs) -> AbstractTask:
    """A task by its name (`TASK_NAMES`: the short names, and the name each task's
    `spec()` writes), with keyword overrides of its parameters (`task_arguments(name)`;
    any other keyword is a `ValueError` that lists them); `"neurogym:<env id>"` builds
    a [`mfrnn.NeurogymTask`][] pool (keywords `dt`, `n_trials`, `seed`, ...).
    `make_task(spec["name"], **spec["kwargs"])` rebuilds the task of a spec.

    ```python
    task = mfrnn.make_task("context_decision", stimulus=400.0)
    task = mfrnn.make_task("neurogym:PerceptualDecisionMaking-v0", dt=100.0)
    ```
    """
    if isinstance(name, str) and name.lower().startswith("neurogym:"):
        from .neurogym import NeurogymTask

        return NeurogymTask(name.split(":", 1)[1], **kwargs)
    cls, fixed = _lookup(name)
    valid = task_arguments(name)
    unknown = [key for key in kwargs if key not in valid]
    if unknown:
        # One line naming what is wrong and what is allowed (not a TypeError from
        # deep inside the constructor).
        raise ValueError(
            f"Task {name!r} has no argument {', '.join(map(repr, unknown))}; its "
            f"arguments are {', '.join(valid)}."
        )
    return cls(**fixed, **kwargs)


def task_from_spec(spec: dict) -> AbstractTask:
    """Rebuild a task from `task.spec()` (JSON; no pickled code)."""
    if not isinstance(spec, dict) or "name" not in spec or "kwargs" not in spec:
        raise ValueError(f"A task spec is a dict with `name` and `kwargs`, got {spec!r}.")
    if spec["name"] == "neurogym":
        from .neurogym import NeurogymTask

        return NeurogymTask.from_spec(spec)
    try:
        cls = _CLASSES[spec["name"]]
    except KeyError:
        raise ValueError(f"Unknown task {spec['name']!r} in spec.") from None
    return cls(**spec["kwargs"])
