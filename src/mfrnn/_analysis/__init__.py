from .dimension import (
    compare_dimension as compare_dimension,
    coupling_spectra as coupling_spectra,
    CouplingSpectra as CouplingSpectra,
    covariance_spectrum as covariance_spectrum,
    DimensionComparison as DimensionComparison,
    participation_ratio as participation_ratio,
    ParticipationRatio as ParticipationRatio,
    pc_autocorrelation as pc_autocorrelation,
    PCAutocorrelation as PCAutocorrelation,
)
from .dmft import compare_dmft as compare_dmft, DMFTComparison as DMFTComparison
from .dynamics import (
    activity_autocorrelation as activity_autocorrelation,
    ActivityAutocorrelation as ActivityAutocorrelation,
    lyapunov_exponents as lyapunov_exponents,
    LyapunovEstimate as LyapunovEstimate,
)
from .evaluation import evaluate_run as evaluate_run, RunEvaluation as RunEvaluation
from .fixed_points import (
    Continuation as Continuation,
    continue_fixed_point as continue_fixed_point,
    find_fixed_points as find_fixed_points,
    find_latent_fixed_points as find_latent_fixed_points,
    FixedPoints as FixedPoints,
    jacobian_eigenvalues as jacobian_eigenvalues,
    trajectory_states as trajectory_states,
)
from .linearisation import (
    Linearisation as Linearisation,
    linearise as linearise,
)
from .lowrank import (
    compare_lowrank as compare_lowrank,
    LowRankComparison as LowRankComparison,
)
from .populations import (
    fit_populations as fit_populations,
    latent_trajectories as latent_trajectories,
    network_loadings as network_loadings,
    population_analysis as population_analysis,
    PopulationAnalysis as PopulationAnalysis,
    PopulationFit as PopulationFit,
)
from .psychometric import (
    psychometric_curve as psychometric_curve,
    PsychometricCurve as PsychometricCurve,
)
from .reverse import analyze_run as analyze_run, RunAnalysis as RunAnalysis
from .spectra import (
    connectivity_spectrum as connectivity_spectrum,
    ConnectivitySpectrum as ConnectivitySpectrum,
    initial_bulk_radius as initial_bulk_radius,
    jacobian_bulk_radius as jacobian_bulk_radius,
    low_rank_outliers as low_rank_outliers,
    rajan_abbott_radius as rajan_abbott_radius,
)
from .statistics import (
    activity_summary as activity_summary,
    trial_summary as trial_summary,
)
