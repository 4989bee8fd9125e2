"""Training rate networks on tasks with optax: BPTT through the Euler scan (or diffrax),
several seeds / learning rates at once, checkpoints that resume exactly.

- `config.py`: `NetworkSpec`, `TrainConfig`, the initial networks and the optimiser.
- `step.py`: the forward pass (`run_trials`), the loss, the compiled training step.
- `fit.py`: the training loop (`fit`), progress and stopping.
- `checkpoints.py`: the checkpoint file format and resuming.
- `evaluate.py`: scoring a trained network on fresh trials.
"""

from .checkpoints import (
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
)
from .config import (
    init_members as init_members,
    init_network as init_network,
    NetworkSpec as NetworkSpec,
    TrainConfig as TrainConfig,
)
from .evaluate import evaluate as evaluate, Evaluation as Evaluation
from .fit import fit as fit
from .result import TrainResult as TrainResult
from .step import run_trials as run_trials, training_loss as training_loss
