"""Steps where a new user got stuck: each error names the argument, and the plotting
module is reachable from `import mfrnn`."""

import subprocess
import sys

import jax.numpy as jnp
import pytest

import mfrnn


def test_positional_phi_in_gaussian_ensemble_names_the_argument():
    # In a plain process, as a user runs it (the test suite's runtime type checker
    # would reject the argument before the constructor's own check).
    code = (
        "import mfrnn\n"
        "for args, name in (((2.0, mfrnn.Tanh()), 'bias'), ((2.0, 0.0, mfrnn.Erf()), "
        "'input_std')):\n"
        "    try:\n"
        "        mfrnn.GaussianEnsemble(*args)\n"
        "    except ValueError as e:\n"
        "        assert f'`{name}` got the nonlinearity' in str(e) and 'phi=' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('no error')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert float(mfrnn.GaussianEnsemble(2.0, 0.3, 0.5).bias) == 0.3  # positional still fine


@pytest.mark.parametrize(
    "make",
    [
        lambda g: mfrnn.GaussianEnsemble(g),
        lambda g: mfrnn.LowRankEnsemble.rank_one(sigma_mn=1.0, g=g),
    ],
    ids=["gaussian", "low_rank"],
)
def test_empty_g_is_a_clear_error(make):
    with pytest.raises(ValueError, match=r"`g` is empty \(shape \(0,\)\)"):
        make(jnp.array([]))


def test_plotting_is_reachable_after_import_mfrnn():
    code = (
        "import sys, mfrnn; assert 'mfrnn.plotting' not in sys.modules; "
        "assert callable(mfrnn.plotting.plot_phase_diagram); "
        "assert 'matplotlib' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'plotz'"):
        mfrnn.plotz  # noqa: B018
