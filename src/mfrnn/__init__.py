"""mfrnn: dynamics and dynamic mean-field theory of recurrent rate networks."""

import importlib.metadata

from ._analysis import (
    activity_autocorrelation as activity_autocorrelation,
    activity_summary as activity_summary,
    ActivityAutocorrelation as ActivityAutocorrelation,
    compare_lowrank as compare_lowrank,
    LowRankComparison as LowRankComparison,
    LyapunovEstimate as LyapunovEstimate,
    lyapunov_exponents as lyapunov_exponents,
)
from ._compilation_cache import (
    default_compilation_cache_dir as default_compilation_cache_dir,
    enable_compilation_cache as enable_compilation_cache,
)
from ._ensembles import (
    AbstractEnsemble as AbstractEnsemble,
    EIEnsemble as EIEnsemble,
    GaussianEnsemble as GaussianEnsemble,
    loading_index as loading_index,
    LowRankEnsemble as LowRankEnsemble,
    MixtureEnsemble as MixtureEnsemble,
)
from ._networks import (
    AbstractRateNetwork as AbstractRateNetwork,
    DaleNetwork as DaleNetwork,
    DenseNetwork as DenseNetwork,
    LowRankNetwork as LowRankNetwork,
    PiecewiseConstantInput as PiecewiseConstantInput,
    spectral_radius as spectral_radius,
)
from ._nonlinearities import (
    AbstractNonlinearity as AbstractNonlinearity,
    AbstractQuadratureNonlinearity as AbstractQuadratureNonlinearity,
    Erf as Erf,
    gaussian_average as gaussian_average,
    gaussian_two_point_average as gaussian_two_point_average,
    Linear as Linear,
    nonlinearity as nonlinearity,
    ReLU as ReLU,
    ShiftedTanh as ShiftedTanh,
    Tanh as Tanh,
)
from ._misc import to_dtype as to_dtype
from ._simulate import simulate as simulate, simulate_euler as simulate_euler
from ._solution import (
    DMFTSolution as DMFTSolution,
    OnsetSolution as OnsetSolution,
    REGIME_NAMES as REGIME_NAMES,
    RESULTS as RESULTS,
)
from ._tasks import (
    AbstractTask as AbstractTask,
    ContextDecision as ContextDecision,
    DelayedMatchToSample as DelayedMatchToSample,
    FiniteOscillation as FiniteOscillation,
    FlipFlop as FlipFlop,
    LogicGate as LogicGate,
    make_task as make_task,
    NeurogymTask as NeurogymTask,
    ParametricWorkingMemory as ParametricWorkingMemory,
    PerceptualDecision as PerceptualDecision,
    SetResetFlipFlop as SetResetFlipFlop,
    SineWave as SineWave,
    TASK_NAMES as TASK_NAMES,
    task_from_spec as task_from_spec,
    TimeReproduction as TimeReproduction,
)
from ._train import (
    evaluate as evaluate,
    Evaluation as Evaluation,
    fit as fit,
    init_network as init_network,
    load_checkpoint as load_checkpoint,
    NetworkSpec as NetworkSpec,
    run_trials as run_trials,
    save_checkpoint as save_checkpoint,
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
)
from ._theory import (
    Autocorrelation as Autocorrelation,
    BoundarySolution as BoundarySolution,
    chaos_onset as chaos_onset,
    dmft_autocorrelation as dmft_autocorrelation,
    dmft_lyapunov as dmft_lyapunov,
    fixed_point_chaos_boundary as fixed_point_chaos_boundary,
    kappa_instability_g as kappa_instability_g,
    kappa_instability_overlap as kappa_instability_overlap,
    LatentDynamics as LatentDynamics,
    effective_couplings as effective_couplings,
    LowRankSolution as LowRankSolution,
    LyapunovSolution as LyapunovSolution,
    PHASE_NAMES as PHASE_NAMES,
    phase_diagram as phase_diagram,
    PhaseDiagram as PhaseDiagram,
    solve_dmft as solve_dmft,
    solve_lowrank as solve_lowrank,
)


__version__ = importlib.metadata.version("mfrnn")
