from .base import AbstractTask as AbstractTask
from .decision import ContextDecision as ContextDecision, PerceptualDecision as PerceptualDecision
from .jarne import (
    FiniteOscillation as FiniteOscillation,
    LogicGate as LogicGate,
    SetResetFlipFlop as SetResetFlipFlop,
    TimeReproduction as TimeReproduction,
)
from .neurogym import NeurogymTask as NeurogymTask
from .registry import (
    make_task as make_task,
    task_arguments as task_arguments,
    TASK_NAMES as TASK_NAMES,
    task_from_spec as task_from_spec,
)
from .sussillo_barak import FlipFlop as FlipFlop, SineWave as SineWave
from .working_memory import (
    DelayedMatchToSample as DelayedMatchToSample,
    ParametricWorkingMemory as ParametricWorkingMemory,
)
