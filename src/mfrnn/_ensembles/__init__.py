from .base import AbstractEnsemble as AbstractEnsemble
from .ei import EIEnsemble as EIEnsemble
from .gaussian import GaussianEnsemble as GaussianEnsemble
from .low_rank import LowRankEnsemble as LowRankEnsemble, loading_index as loading_index
from .mixture import MixtureEnsemble as MixtureEnsemble
from .random_mode import RandomModeEnsemble as RandomModeEnsemble
