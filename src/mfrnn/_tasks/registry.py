"""Tasks by name (CLI, checkpoints): `make_task("xor")`, `task_from_spec(task.spec())`."""

import functools as ft

from .base import AbstractTask
from .decision import ContextDecision, PerceptualDecision
from .jarne import FiniteOscillation, LogicGate, SetResetFlipFlop, TimeReproduction
from .sussillo_barak import FlipFlop, SineWave
from .working_memory import DelayedMatchToSample, ParametricWorkingMemory


_FACTORIES = {
    "and": ft.partial(LogicGate, "and"),
    "or": ft.partial(LogicGate, "or"),
    "xor": ft.partial(LogicGate, "xor"),
    "not": ft.partial(LogicGate, "not"),
    "flipflop1": SetResetFlipFlop,
    "flipflop3": ft.partial(FlipFlop, 3),
    "time_reproduction": TimeReproduction,
    "oscillation": FiniteOscillation,
    "sine": SineWave,
    "perceptual_decision": PerceptualDecision,
    "context_decision": ContextDecision,
    "match_to_sample": DelayedMatchToSample,
    "parametric_wm": ParametricWorkingMemory,
}
TASK_NAMES = tuple(_FACTORIES)

_CLASSES = {
    cls.name: cls
    for cls in (LogicGate, SetResetFlipFlop, TimeReproduction, FiniteOscillation, FlipFlop,
                SineWave, PerceptualDecision, ContextDecision, DelayedMatchToSample,
                ParametricWorkingMemory)
}


def make_task(name: str, **kwargs) -> AbstractTask:
    """A task by its short name (`TASK_NAMES`), with keyword overrides of its timing;
    `"neurogym:<env id>"` builds a [`mfrnn.NeurogymTask`][] pool (keywords `dt`,
    `n_trials`, `seed`, ...).

    ```python
    task = mfrnn.make_task("context_decision", stimulus=400.0)
    task = mfrnn.make_task("neurogym:PerceptualDecisionMaking-v0", dt=100.0)
    ```
    """
    if isinstance(name, str) and name.lower().startswith("neurogym:"):
        from .neurogym import NeurogymTask

        return NeurogymTask(name.split(":", 1)[1], **kwargs)
    try:
        factory = _FACTORIES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"Unknown task {name!r}; expected one of {list(TASK_NAMES)}.") from None
    return factory(**kwargs)


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
