from .dmft import chaos_onset as chaos_onset, solve_dmft as solve_dmft
from .autocorrelation import (
    Autocorrelation as Autocorrelation,
    dmft_autocorrelation as dmft_autocorrelation,
)
from .lyapunov import dmft_lyapunov as dmft_lyapunov, LyapunovSolution as LyapunovSolution
