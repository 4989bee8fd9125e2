from .dmft import chaos_onset as chaos_onset, solve_dmft as solve_dmft
