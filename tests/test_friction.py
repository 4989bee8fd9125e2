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


def test_result_codes_per_point():
    # A 2 x 2 grid with failures: ReLU has no finite Delta0 above g = sqrt(2).
    g = jnp.array([[0.5, 2.0], [1.2, 3.0]])
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g, phi=mfrnn.ReLU()), throw=False)
    names = mfrnn.result_names(sol)
    assert names.shape == (2, 2)
    assert names[0, 0] == "successful" and names[1, 1] == "static_not_converged"
    assert set(names.ravel()) <= set(mfrnn.RESULT_NAMES)
    messages = mfrnn.result_messages(sol)
    assert messages[0, 0] == "" and messages[1, 1].startswith("The static")
    point = mfrnn.solution_at(sol, 1, 1)  # every field of one point, `result` included
    assert point.delta0.shape == () and mfrnn.RESULTS[point.result] == messages[1, 1]
    assert mfrnn.RESULTS[mfrnn.solution_at(sol.result, (0, 0))] == ""
    assert mfrnn.RESULT_NAMES[mfrnn.result_codes(sol)[1, 1]] == "static_not_converged"
    # The code names are listed where users look: the module docs and RESULTS.
    doc = mfrnn._solution.__doc__
    assert all(f"`{name}`" in doc for name in mfrnn.RESULT_NAMES)


def test_task_argument_error_lists_the_arguments(capsys):
    from mfrnn import cli

    with pytest.raises(ValueError, match=r"no argument 'bits'; its arguments are n_bits, "):
        mfrnn.make_task("flipflop3", bits=2)
    # The command line prints it as one line, no traceback.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--task", "flipflop3", "--task-arg", "bits=2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'bits'" in err and "n_bits" in err and "Traceback" not in err


def test_task_names_round_trip(capsys):
    # The name a task's spec (and so metrics.json) carries is a name make_task and the
    # command line take, and with its kwargs it rebuilds the task.
    from mfrnn import cli

    for name in mfrnn.TASK_NAMES:
        task = mfrnn.make_task(name)
        spec = task.spec()
        assert spec["name"] in mfrnn.TASK_NAMES
        assert mfrnn.make_task(spec["name"], **spec["kwargs"]) == task
    assert mfrnn.make_task("flipflop").spec()["name"] == "flipflop"
    args = cli.build_parser().parse_args(
        ["train", "--task", "logic_gate", "--task-arg", "gate=and", "--task-arg", "n_bits=2"]
    )
    assert dict(args.task_arg) == {"gate": "and", "n_bits": 2}
    # "flipflop" gets past the name check to the argument check.
    with pytest.raises(SystemExit):
        cli.main(["train", "--task", "flipflop", "--task-arg", "bits=2"])
    assert "Task 'flipflop' has no argument 'bits'" in capsys.readouterr().err


def test_result_modules_print_their_fields():
    theory = mfrnn.PhaseDiagram(
        phase=jnp.array(1), kappa=jnp.array([0.79]), delta0=jnp.array([0.71]),
        delta_inf=jnp.array([0.71]), bulk_radius=jnp.array(0.36), outlier=jnp.array(-0.53),
        manifold_dimension=jnp.array(0), success=jnp.array(True),
        result=mfrnn.RESULTS.successful,
    )
    cmp = mfrnn.LowRankComparison(
        theory=theory, kappa=jnp.array([[0.8], [0.78]]), sample_kappa=jnp.full((2, 1), jnp.nan),
        delta0=jnp.array([[0.7], [0.72]]), temporal_variance=jnp.zeros((2, 1)),
    )
    text = repr(cmp)
    for field in ("theory=PhaseDiagram(", "phase=1", "kappa=[[0.8], [0.78]]",
                  "bulk_radius=0.36", "result=successful", "temporal_variance=[[0], [0]]"):
        assert field in text, text
    big = mfrnn.DMFTSolution(*(jnp.linspace(0.0, 1.0, 50),) * 4, jnp.zeros(50, int),
                             jnp.full(50, jnp.nan), mfrnn.RESULTS.successful)
    text = repr(big)
    assert "delta0=f64[50] (min 0, max 1)" in text and "residual=f64[50] (all nan)" in text


def test_phase_plot_labels_come_from_the_swept_fields():
    import matplotlib.pyplot as plt

    G, S = jnp.meshgrid(jnp.linspace(0.1, 3, 3), jnp.linspace(0, 2.9, 2), indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G)
    assert mfrnn.grid_labels(ens) == ("g", "cov(m, n)")
    mo = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=S, g=G)
    assert mfrnn.grid_labels(mo) == ("g", "mean(n)")
    phase = jnp.zeros((3, 2), int)
    fig = mfrnn.plotting.plot_phase_diagram(
        G[:, 0], S[0], phase, phase == 0, mfrnn.PHASE_NAMES, xlabel="g", ylabel="cov(m, n)"
    )
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("g", "cov(m, n)")
    fig = mfrnn.plotting.plot_phase_diagram(G[:, 0], S[0], phase, phase == 0, mfrnn.PHASE_NAMES)
    assert "sigma_mn" not in fig.axes[0].get_ylabel()  # no hard-coded label
    plt.close("all")


def test_theory_results_print_their_fields():
    # The theory Modules share the readable repr: scalars by value, codes by name.
    line = mfrnn.kappa_instability_overlap(jnp.array([0.5, 2.0]))
    text = repr(line)
    assert text.startswith("BoundarySolution(") and "value=" in text and "delta0=" in text
    assert "successful" in text
    text = repr(mfrnn.kappa_instability_g(0.5, throw=False))
    assert "value=nan" in text and "no_onset" in text
