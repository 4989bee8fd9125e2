from .dynamics import (
    activity_autocorrelation as activity_autocorrelation,
    ActivityAutocorrelation as ActivityAutocorrelation,
    LyapunovEstimate as LyapunovEstimate,
    lyapunov_exponents as lyapunov_exponents,
)
from .statistics import activity_summary as activity_summary
from .lowrank import compare_lowrank as compare_lowrank, LowRankComparison as LowRankComparison
