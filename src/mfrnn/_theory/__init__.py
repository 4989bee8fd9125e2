from .autocorrelation import (
    Autocorrelation as Autocorrelation,
    dmft_autocorrelation as dmft_autocorrelation,
)
from .branches import Branch as Branch
from .dimension import (
    activity_dimension as activity_dimension,
    DimensionSolution as DimensionSolution,
    random_mode_spectra as random_mode_spectra,
    RandomModeSpectra as RandomModeSpectra,
)
from .dmft import chaos_onset as chaos_onset, solve_dmft as solve_dmft
from .lowrank import (
    effective_couplings as effective_couplings,
    LatentDynamics as LatentDynamics,
    solve_lowrank as solve_lowrank,
)
from .lyapunov import (
    dmft_lyapunov as dmft_lyapunov,
    LyapunovSolution as LyapunovSolution,
)
from .meanfield import LowRankSolution as LowRankSolution
from .phase import (
    BoundarySolution as BoundarySolution,
    fixed_point_chaos_boundary as fixed_point_chaos_boundary,
    kappa_instability_g as kappa_instability_g,
    kappa_instability_overlap as kappa_instability_overlap,
    phase_diagram as phase_diagram,
    PHASE_NAMES as PHASE_NAMES,
    PhaseDiagram as PhaseDiagram,
)
