import os


# Plots are written to files; tests never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import jax.random as jr
import pytest


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    keys = iter(jr.split(jr.key(1234), 10_000))
    return lambda: next(keys)


# Longest files first: pytest-xdist (--dist loadfile) hands files out in collection
# order, so starting the long ones early keeps both CI workers busy to the end.
_LONG_FIRST = ("test_lowrank", "test_phase_grids", "test_train", "test_notebooks",
               "test_notebooks_training", "test_fixed_points", "test_dimension",
               "test_phase_distributed", "test_populations", "test_train_criteria",
               "test_continuous_attractor", "test_dmft_simulation", "test_simulate",
               "test_dmft_dynamics")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        stem = item.path.stem
        return _LONG_FIRST.index(stem) if stem in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)  # stable: order within a file is kept
