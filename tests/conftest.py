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
