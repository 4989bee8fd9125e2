import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mfrnn.cli import main


ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    # `mfrnn` run as a program turns JAX's persistent cache on by default: not in the
    # subprocesses below (the user's cache folder) unless a test asks.
    monkeypatch.setenv("MFRNN_NO_COMPILATION_CACHE", "1")


def _run(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_gaussian_writes_files(tmp_path, capsys):
    out = tmp_path / "sim"
    summary = _run(
        capsys, "simulate", "--n", "120", "--g", "2.5", "--t1", "40", "--discard", "10",
        "--trials", "2", "--out", str(out), "--json",
    )
    for name in ("activity.png", "simulation.npz", "summary.json"):
        assert (out / name).stat().st_size > 0
    data = np.load(out / "simulation.npz")
    assert data["xs"].shape == (2, data["ts"].shape[0], 120)
    # Chaotic at g = 2.5: activity keeps fluctuating with O(1) temporal variance.
    assert summary["mean_temporal_variance"] > 0.5
    assert summary["spectral_radius"] == pytest.approx(2.5, rel=0.1)
    assert json.loads((out / "summary.json").read_text())["n"] == 120


def test_simulate_quiescent_and_low_rank(tmp_path, capsys):
    quiet = _run(
        capsys, "simulate", "--n", "100", "--g", "0.5", "--t1", "40", "--discard", "20",
        "--trials", "1", "--out", str(tmp_path / "q"), "--json",
    )
    assert quiet["mean_temporal_variance"] < 1e-6  # decays to the fixed point x = 0
    lr = _run(
        capsys, "simulate", "--ensemble", "lowrank", "--n", "400", "--g", "0", "--mean-m", "1.5",
        "--mean-n", "2.0", "--t1", "40", "--discard", "20", "--trials", "2",
        "--out", str(tmp_path / "lr"), "--json",
    )
    kappa = np.array(lr["kappa"])
    assert kappa.shape == (2, 1)
    assert np.all(np.abs(kappa) > 0.5)  # a non-trivial latent fixed point in every trial


def test_simulate_noise_and_ei(tmp_path, capsys):
    s = _run(
        capsys, "simulate", "--ensemble", "ei", "--n", "80", "--zero-row-sum", "--std-e", "0.5",
        "--std-i", "0.5", "--noise-std", "0.3", "--dt", "0.1", "--t1", "30", "--discard", "10",
        "--trials", "2", "--out", str(tmp_path / "ei"), "--json",
    )
    assert s["mean_temporal_variance"] > 0.01


def test_bad_arguments_name_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--g", "-1", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "`g`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--phi", "nope", "--out", str(tmp_path)])
    assert "phi" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--n", "0"])


def test_module_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mfrnn", "simulate", "--n", "30", "--t1", "12", "--discard", "2",
         "--trials", "1", "--out", str(tmp_path), "--json"],
        capture_output=True, text=True, check=True,
    )
    assert "mean_temporal_variance" in json.loads(proc.stdout)


def test_benchmark_script_runs_quick(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_simulate.py"), "--quick",
         "--repeats", "1", "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.read_text())
    for case in ("dense", "low_rank"):
        assert result[case]["mfrnn_seconds"] > 0
        assert result[case]["max_abs_difference_final_state"] < 1e-3


def test_dmft_and_onset_json(capsys):
    res = _run(capsys, "dmft", "--g", "2.0", "--json")
    for key in ("delta0", "delta_inf", "regime", "lyapunov", "tau_half", "converged"):
        assert key in res
    assert res["regime"] == "chaotic" and res["converged"]
    assert res["delta0"] == pytest.approx(1.92480541374, rel=1e-9)
    assert res["lyapunov"] > 0 and abs(res["zero_mode_check_e1"]) < 1e-8
    quiet = _run(capsys, "dmft", "--g", "0.5", "--json")
    assert quiet["regime"] == "quiescent" and quiet["tau_half"] is None
    assert quiet["lyapunov"] == pytest.approx(-0.5)
    bad = _run(capsys, "dmft", "--g", "2.0", "--phi", "relu", "--json")
    assert not bad["converged"] and bad["delta0"] is None and bad["message"]
    onset = _run(capsys, "onset", "--json")
    assert onset["g_c"] == pytest.approx(1.0, abs=1e-10)
    assert _run(capsys, "onset", "--bias", "0.3", "--json")["g_c"] > 1.0


def test_dmft_plot_with_simulation(tmp_path, capsys):
    out = tmp_path / "dmft"
    res = _run(
        capsys, "dmft", "--g", "2.5", "--plot", "--simulate", "300", "--t1", "80",
        "--out", str(out), "--json",
    )
    assert (out / "autocorrelation.png").stat().st_size > 0
    assert json.loads((out / "dmft.json").read_text())["simulation"]["n"] == 300
    assert res["simulation"]["delta0"] == pytest.approx(res["delta0"], rel=0.3)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["dmft", "--g", "-1"], "--g"),
        (["dmft", "--g", "1", "--phi", "nope"], "phi"),
        (["dmft", "--g", "2", "--simulate", "100"], "--plot"),
        (["onset", "--input-std", "-0.1"], "--input-std"),
    ],
)
def test_dmft_bad_input_exits_2(argv, match, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_compilation_cache_on_by_default_and_switched_off_by_env(tmp_path):
    def run(cache_home, **env):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MFRNN_")}
        environ.update(XDG_CACHE_HOME=str(cache_home), **env)
        proc = subprocess.run(
            [sys.executable, "-m", "mfrnn", "onset", "--json"],
            env=environ, capture_output=True, text=True, check=True,
        )
        assert json.loads(proc.stdout)["g_c"] == pytest.approx(1.0, abs=1e-10)
        folder = cache_home / "mfrnn" / "jax"
        return folder.is_dir() and any(folder.iterdir())

    assert run(tmp_path / "on")
    assert not run(tmp_path / "off", MFRNN_NO_COMPILATION_CACHE="1")


def test_dmft_json_matches_the_library(capsys, monkeypatch):
    # The command's programs (solve; Lyapunov exponent and tail rate) against the
    # separate library calls. Called from Python, main() leaves JAX's configuration.
    import jax

    import mfrnn

    monkeypatch.delenv("MFRNN_NO_COMPILATION_CACHE")
    res = _run(capsys, "dmft", "--g", "2.5", "--bias", "0.3", "--input-std", "0.5", "--json")
    assert jax.config.jax_compilation_cache_dir is None
    ens = mfrnn.GaussianEnsemble(2.5, 0.3, 0.5)
    lyap = mfrnn.dmft_lyapunov(ens)
    ac = mfrnn.dmft_autocorrelation(ens)
    assert res["lyapunov"] == pytest.approx(float(lyap.lyapunov), rel=1e-12)
    assert res["tau_half"] == pytest.approx(float(ac.tau_half), rel=1e-12)
    assert res["tail_rate"] == pytest.approx(float(ac.tail_rate), rel=1e-12)


def test_one_point_commands_accept_a_grid(tmp_path, capsys):
    # `dmft --g A:B:N`: one JSON object per point (as the scalar command prints), a
    # plot of the quantities against g with --out.
    points = _run(capsys, "dmft", "--g", "0.5:2:2", "--json", "--out", str(tmp_path))
    assert [p["g"] for p in points] == [0.5, 2.0]
    assert [p["regime"] for p in points] == ["quiescent", "chaotic"]
    assert points[1]["delta0"] == pytest.approx(1.92480541374, rel=1e-9)
    assert (tmp_path / "dmft_g.png").stat().st_size > 0
    assert json.loads((tmp_path / "dmft_g.json").read_text()) == points
    onset = _run(capsys, "onset", "--bias", "0:0.3:3", "--json", "--out", str(tmp_path))
    assert len(onset) == 3 and onset[0]["g_c"] == pytest.approx(1.0, abs=1e-10)
    assert onset[2]["bias"] == 0.3 and onset[2]["g_c"] > onset[1]["g_c"] > 1.0
    assert (tmp_path / "onset_bias.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["dmft", "--g", "1:2:3", "--bias", "0:1:2"])
    assert "one argument at a time" in capsys.readouterr().err


def test_compare_dmft_next_to_the_theory():
    # Theory next to simulation in one call (what `dmft --plot --simulate` draws), at the
    # size and duration of test_dmft_plot_with_simulation (its programs are reused).
    import jax.random as jr

    import mfrnn

    ens = mfrnn.GaussianEnsemble(2.5)
    cmp = mfrnn.compare_dmft(ens, 300, key=jr.key(0), n_networks=2, t1=80.0)
    sol = mfrnn.solve_dmft(ens)
    assert float(cmp.theory.delta0) == pytest.approx(float(sol.delta0), rel=1e-12)
    assert cmp.autocorrelation.shape == (2, cmp.lags.shape[0])
    assert cmp.theory_autocorrelation.shape == cmp.lags.shape
    assert float(cmp.theory_autocorrelation[0]) == pytest.approx(float(sol.delta0), rel=1e-9)
    # N = 300 over 30 units of time: finite-size and finite-time errors of O(10 %).
    np.testing.assert_allclose(cmp.delta0, float(sol.delta0), rtol=0.3)
    np.testing.assert_allclose(cmp.tau_half, float(cmp.theory_lyapunov.tau_half), rtol=0.5)
    assert np.all(np.asarray(cmp.lyapunov) > 0) and float(cmp.theory_lyapunov.lyapunov) > 0
    with pytest.raises((ValueError, TypeError), match="ensemble"):  # jaxtyping checks first
        mfrnn.compare_dmft(mfrnn.LowRankEnsemble.rank_one(sigma_mn=1.0), 10, key=jr.key(0))


def test_lowrank_takes_the_mastrogiuseppe_ostojic_convention_without_sigma_mn():
    from mfrnn import cli

    args = cli.build_parser().parse_args(
        ["lowrank", "--g", "1.85", "--mean-m", "1.1", "--mean-n", "2", "--sigma-n", "1"]
    )
    assert args.sigma_mn == 0.0 and (args.mean_m, args.mean_n) == (1.1, 2.0)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--x", "mean_m=0:1:3", "--g", "0:1:3"], "`--x` and `--g` both give the x axis"),
        (["--x", "g=0:1:3", "--y", "g=0:2:3"], "two different fields"),
        (["--x", "mean_m=0:1:3", "--y", "mean_n=0:1:3", "--set", "mean_n=1"], "is an axis"),
        (["--x", "nope=0:1:3"], "unknown field 'nope'"),
        (["--x", "g=1:0:3"], "need B > A"),
        (["--set", "sigma_m"], "FIELD=VALUE"),
    ],
)
def test_phase_axes_bad_input_exits_2(argv, match, tmp_path, capsys):
    # `phase --x FIELD=A:B:N --y FIELD=A:B:N --set FIELD=V`: checked before any solve.
    with pytest.raises(SystemExit) as exit_info:
        main(["phase", *argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "phase.npz").exists()


def test_phase_axes_parse():
    from mfrnn import cli

    parser = cli.build_parser()
    args = parser.parse_args(["phase", "--x", "g=0.1:3:200", "--y", "mean-n=0:4:200", "--set",
                              "sigma_m=1", "--set", "mean_m=1.1"])
    assert args.x == ("g", (0.1, 3.0, 200)) and args.y == ("mean_n", (0.0, 4.0, 200))
    assert args.set == [("sigma_m", 1.0), ("mean_m", 1.1)]
    # The old flags still give the default plane (g, sigma_mn).
    args = parser.parse_args(["phase", "--g", "0.3:2.7:4", "--sigma-mn", "0.3:2.7:4"])
    assert args.x is None and args.g == (0.3, 2.7, 4) and args.sigma_mn == (0.3, 2.7, 4)
