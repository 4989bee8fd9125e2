"""mfrnn: dynamics and dynamic mean-field theory of recurrent rate networks."""

import importlib.metadata

from ._analysis import (
    activity_autocorrelation as activity_autocorrelation,
    activity_summary as activity_summary,
    ActivityAutocorrelation as ActivityAutocorrelation,
    analyze_run as analyze_run,
    compare_dimension as compare_dimension,
    compare_dmft as compare_dmft,
    compare_lowrank as compare_lowrank,
    connectivity_spectrum as connectivity_spectrum,
    ConnectivitySpectrum as ConnectivitySpectrum,
    Continuation as Continuation,
    continue_fixed_point as continue_fixed_point,
    coupling_spectra as coupling_spectra,
    CouplingSpectra as CouplingSpectra,
    covariance_spectrum as covariance_spectrum,
    DimensionComparison as DimensionComparison,
    DMFTComparison as DMFTComparison,
    evaluate_run as evaluate_run,
    find_fixed_points as find_fixed_points,
    find_latent_fixed_points as find_latent_fixed_points,
    fit_populations as fit_populations,
    FixedPoints as FixedPoints,
    initial_bulk_radius as initial_bulk_radius,
    jacobian_bulk_radius as jacobian_bulk_radius,
    jacobian_eigenvalues as jacobian_eigenvalues,
    latent_trajectories as latent_trajectories,
    Linearisation as Linearisation,
    linearise as linearise,
    low_rank_outliers as low_rank_outliers,
    LowRankComparison as LowRankComparison,
    lyapunov_exponents as lyapunov_exponents,
    LyapunovEstimate as LyapunovEstimate,
    network_loadings as network_loadings,
    participation_ratio as participation_ratio,
    ParticipationRatio as ParticipationRatio,
    pc_autocorrelation as pc_autocorrelation,
    PCAutocorrelation as PCAutocorrelation,
    population_analysis as population_analysis,
    PopulationAnalysis as PopulationAnalysis,
    PopulationFit as PopulationFit,
    psychometric_curve as psychometric_curve,
    PsychometricCurve as PsychometricCurve,
    rajan_abbott_radius as rajan_abbott_radius,
    RunAnalysis as RunAnalysis,
    RunEvaluation as RunEvaluation,
    trajectory_states as trajectory_states,
    trial_summary as trial_summary,
)
from ._compilation_cache import (
    clear_caches as clear_caches,
    compilation_cache_disabled as compilation_cache_disabled,
    compilation_cache_size as compilation_cache_size,
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
    RandomModeEnsemble as RandomModeEnsemble,
)
from ._grid_labels import grid_labels as grid_labels
from ._misc import to_dtype as to_dtype
from ._networks import (
    AbstractRateNetwork as AbstractRateNetwork,
    DaleNetwork as DaleNetwork,
    DenseNetwork as DenseNetwork,
    LowRankNetwork as LowRankNetwork,
    PiecewiseConstantInput as PiecewiseConstantInput,
    RandomModeNetwork as RandomModeNetwork,
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
from ._options import (
    Activity as Activity,
    DaleConstraint as DaleConstraint,
    Loss as Loss,
    ModeSpectrum as ModeSpectrum,
    PhiFunction as PhiFunction,
    QuadratureRule as QuadratureRule,
    TrialSolver as TrialSolver,
)
from ._phase_boundaries import (
    phase_boundaries as phase_boundaries,
    PhaseBoundary as PhaseBoundary,
)
from ._simulate import (
    simulate as simulate,
    simulate_euler as simulate_euler,
    simulate_trials as simulate_trials,
)
from ._solution import (
    DMFTSolution as DMFTSolution,
    OnsetSolution as OnsetSolution,
    REGIME_NAMES as REGIME_NAMES,
    result_codes as result_codes,
    result_messages as result_messages,
    RESULT_NAMES as RESULT_NAMES,
    result_names as result_names,
    RESULTS as RESULTS,
    solution_at as solution_at,
    summary_repr as summary_repr,
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
    task_arguments as task_arguments,
    task_from_spec as task_from_spec,
    TASK_NAMES as TASK_NAMES,
    TimeReproduction as TimeReproduction,
)
from ._theory import (
    activity_dimension as activity_dimension,
    Autocorrelation as Autocorrelation,
    BoundarySolution as BoundarySolution,
    Branch as Branch,
    chaos_onset as chaos_onset,
    DimensionSolution as DimensionSolution,
    dmft_autocorrelation as dmft_autocorrelation,
    dmft_lyapunov as dmft_lyapunov,
    effective_couplings as effective_couplings,
    fixed_point_chaos_boundary as fixed_point_chaos_boundary,
    kappa_instability_g as kappa_instability_g,
    kappa_instability_overlap as kappa_instability_overlap,
    LatentDynamics as LatentDynamics,
    LowRankSolution as LowRankSolution,
    LyapunovSolution as LyapunovSolution,
    phase_diagram as phase_diagram,
    PHASE_NAMES as PHASE_NAMES,
    PhaseDiagram as PhaseDiagram,
    random_mode_spectra as random_mode_spectra,
    RandomModeSpectra as RandomModeSpectra,
    solve_dmft as solve_dmft,
    solve_lowrank as solve_lowrank,
)
from ._training import (
    evaluate as evaluate,
    Evaluation as Evaluation,
    fit as fit,
    init_network as init_network,
    load_checkpoint as load_checkpoint,
    NetworkSpec as NetworkSpec,
    run_trials as run_trials,
    save_checkpoint as save_checkpoint,
    TrainConfig as TrainConfig,
    training_loss as training_loss,
    TrainResult as TrainResult,
)


__version__ = importlib.metadata.version("mfrnn")


def __getattr__(name: str):
    # `mfrnn.plotting` on first use: matplotlib stays out of `import mfrnn`.
    if name == "plotting":
        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module 'mfrnn' has no attribute {name!r}")
