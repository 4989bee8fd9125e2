"""`mfrnn` command line. Parses arguments, calls the public API, writes files."""

import argparse
import json
import os
import pathlib
import sys
import time


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="sample a network from an ensemble, integrate it, write PNG + NPZ",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ensemble", choices=["gaussian", "lowrank", "ei"], default="gaussian")
    p.add_argument("--n", type=_positive_int, default=500, help="number of units")
    p.add_argument("--phi", default="tanh", help="tanh | erf | relu | linear | shifted-tanh")
    p.add_argument("--g", type=float, default=2.0, help="random gain (J_ij ~ N(0, g^2/N))")
    p.add_argument("--bias", type=float, default=0.0)
    p.add_argument("--input-std", type=float, default=0.0, help="quenched input std")
    p.add_argument("--sigma-mn", type=float, default=0.0, help="low-rank: cov(m, n)")
    p.add_argument("--sigma-m", type=float, default=1.0, help="low-rank: std of m")
    p.add_argument("--sigma-n", type=float, default=1.0, help="low-rank: std of n")
    p.add_argument("--mean-m", type=float, default=0.0, help="low-rank: mean of m")
    p.add_argument("--mean-n", type=float, default=0.0, help="low-rank: mean of n")
    p.add_argument("--frac-e", type=float, default=0.8, help="E-I: excitatory fraction")
    p.add_argument("--std-e", type=float, default=1.0)
    p.add_argument("--std-i", type=float, default=1.0)
    p.add_argument("--mean-e", type=float, default=0.0)
    p.add_argument("--mean-i", type=float, default=0.0)
    p.add_argument("--zero-row-sum", action="store_true")
    p.add_argument("--t1", type=float, default=200.0, help="duration (units of tau)")
    p.add_argument("--save-dt", type=float, default=0.5, help="interval between saves")
    p.add_argument("--discard", type=float, default=50.0, help="transient left out of stats")
    p.add_argument("--noise-std", type=float, default=None, help="SDE noise (stationary std)")
    p.add_argument("--dt", type=float, default=0.05, help="step for SDE (Euler-Maruyama)")
    p.add_argument("--trials", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--x64", action="store_true", help="run in float64")
    p.add_argument("--out", default="runs/simulate", help="output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_simulate)


def _ensemble_from_args(args, mfrnn):
    phi = mfrnn.nonlinearity(args.phi)
    if args.ensemble == "gaussian":
        return mfrnn.GaussianEnsemble(args.g, args.bias, args.input_std, phi=phi)
    if args.ensemble == "lowrank":
        return mfrnn.LowRankEnsemble.rank_one(
            sigma_mn=args.sigma_mn, sigma_m=args.sigma_m, sigma_n=args.sigma_n,
            mean_m=args.mean_m, mean_n=args.mean_n, g=args.g, bias=args.bias, phi=phi)
    return mfrnn.EIEnsemble(
        args.frac_e, mean_e=args.mean_e, mean_i=args.mean_i, std_e=args.std_e,
        std_i=args.std_i, zero_row_sum=args.zero_row_sum, bias=args.bias, phi=phi)


def _simulate(args) -> dict:
    _jax_setup(args, args.x64)
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import mfrnn
    import mfrnn.plotting

    if args.t1 <= args.discard:
        raise ValueError(f"`--t1` ({args.t1}) must exceed `--discard` ({args.discard}).")
    ensemble = _ensemble_from_args(args, mfrnn)
    k_net, k_trials = jr.split(jr.key(args.seed))
    network = ensemble.sample(args.n, key=k_net)
    ts = jnp.arange(0.0, args.t1 + 0.5 * args.save_dt, args.save_dt)
    start = time.perf_counter()
    xs = mfrnn.simulate_trials(network, ts, args.trials, key=k_trials,
                               noise_std=args.noise_std, dt0=args.dt)
    xs = np.asarray(xs)
    elapsed = time.perf_counter() - start
    discard = int(np.searchsorted(np.asarray(ts), args.discard))
    summary = {key: np.asarray(value).tolist() for key, value in
               mfrnn.trial_summary(xs, discard=discard, network=network).items()}
    J = network.dense_matrix() if args.n <= 2000 else None
    summary.update(
        command="simulate", ensemble=args.ensemble, n=args.n, g=args.g, phi=args.phi,
        trials=args.trials, t1=args.t1, seconds=elapsed,
        spectral_radius=None if J is None else mfrnn.spectral_radius(network))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "simulation.npz", ts=np.asarray(ts), xs=xs, x0=xs[:, 0],
                        **({"J": np.asarray(J)} if J is not None else {}))
    fig = mfrnn.plotting.plot_activity(
        ts, xs[0], rates=np.asarray(network.phi(jnp.asarray(xs[0]))),
        title=f"{args.ensemble} network, N = {args.n}, g = {args.g}, phi = {args.phi}")
    fig.savefig(out / "activity.png", dpi=120)
    return _write_json(out, "summary.json", summary, ["activity.png", "simulation.npz"])


def _add_theory_arguments(p) -> None:
    p.add_argument("--phi", default="tanh", help="tanh | erf | relu | linear | shifted-tanh")
    p.add_argument("--bias", type=_value_or_grid, default=0.0,
                   help="uniform bias b (or a grid A:B:N)")
    p.add_argument("--input-std", type=_value_or_grid, default=0.0,
                   help="quenched input std s_I (or a grid A:B:N)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout (a list over a grid)")


def _add_dmft(sub) -> None:
    p = sub.add_parser(
        "dmft",
        help="DMFT of a random network: Delta0, Delta_inf, regime, Lyapunov exponent",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--g", type=_value_or_grid, required=True,
                   help="random gain (J_ij ~ N(0, g^2/N)), or a grid A:B:N to sweep")
    _add_theory_arguments(p)
    p.add_argument("--plot", action="store_true",
                   help="write autocorrelation.png (over a grid: the sweep's plot)")
    p.add_argument(
        "--simulate", type=_positive_int, default=None, metavar="N",
        help="with --plot: overlay the autocorrelation of a sampled network of N units",
    )
    p.add_argument("--t1", type=float, default=250.0, help="simulated time (with --simulate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="output folder (with --plot; default runs/dmft); over a grid, "
                   "writes the sweep's plot and JSON")
    p.set_defaults(func=_dmft)


def _add_onset(sub) -> None:
    p = sub.add_parser(
        "onset",
        help="chaos onset g_c(b, s_I) of a random network",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_theory_arguments(p)
    p.add_argument("--out", default=None,
                   help="write onset.json here (over a grid: also the sweep's plot)")
    p.set_defaults(func=_onset)


def _float_or_none(x) -> float | None:
    x = float(x)
    return x if x == x else None  # NaN -> null in JSON


def _write_json(out, name: str, result: dict, others=()) -> dict:
    """Write `result` to `out/name`; list it after the `others` written to `out` (names
    or paths) under `result["files"]`."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(result, indent=2))
    result["files"] = [str(out / pathlib.Path(f).name) for f in (*others, name)]
    return result


def _dmft_record(args, mfrnn, values, sol, lyap) -> dict:
    """One point's JSON object, from that point's solutions (on the host)."""
    converged = bool(lyap.result == mfrnn.RESULTS.successful)
    return {
        "command": "dmft",
        "g": values["g"],
        "phi": args.phi,
        "bias": values["bias"],
        "input_std": values["input_std"],
        "delta0": _float_or_none(sol.delta0),
        "delta_inf": _float_or_none(sol.delta_inf),
        "regime": (
            mfrnn.REGIME_NAMES[int(sol.regime)]
            if bool(sol.result == mfrnn.RESULTS.successful)
            else None
        ),
        "lyapunov": _float_or_none(lyap.lyapunov),
        "tau_half": _float_or_none(lyap.tau_half),
        "tail_rate": _float_or_none(lyap.tail_rate),
        "bulk_radius": _float_or_none(sol.bulk_radius),
        "zero_mode_check_e1": _float_or_none(lyap.e1),
        "converged": converged,
        "message": "" if converged else mfrnn.RESULTS[lyap.result],
    }


def _dmft(args) -> dict:
    jax, mfrnn = _theory_setup(args)
    if _lowest(args.g) < 0:
        raise ValueError(f"`--g` must be non-negative, got {_shown(args.g)}.")
    if _lowest(args.input_std) < 0:
        raise ValueError(f"`--input-std` must be non-negative, got {_shown(args.input_std)}.")
    if args.simulate is not None and not args.plot:
        raise ValueError("`--simulate` overlays a simulation on the plot: add `--plot`.")
    values, sweep = _sweep(args, ("g", "bias", "input_std"))
    if sweep is not None and args.simulate is not None:
        raise ValueError(f"`--simulate` takes one point; `--{sweep[0].replace('_', '-')}` "
                         "is a grid.")
    ensemble = mfrnn.GaussianEnsemble(
        values["g"], values["bias"], values["input_std"], phi=mfrnn.nonlinearity(args.phi)
    )
    start = time.perf_counter()
    # solve_dmft on concrete values (its smallest program), then dmft_lyapunov (with the
    # tail rate); one transfer of every result to the host. Over a grid, both are vmapped.
    sol = mfrnn.solve_dmft(ensemble, throw=False)
    sol, lyap = jax.device_get((sol, mfrnn.dmft_lyapunov(ensemble, sol, throw=False)))
    if sweep is not None:
        name, axis = sweep
        points = [
            _dmft_record(args, mfrnn, {**values, name: float(x)}, mfrnn.solution_at(sol, i),
                         mfrnn.solution_at(lyap, i))
            for i, x in enumerate(axis)
        ]
        out = args.out if args.out is not None or not args.plot else "runs/dmft"
        return _sweep_result(
            mfrnn, "dmft", name, axis, points, out,
            ("delta0", "delta_inf", "lyapunov", "tau_half", "bulk_radius", "regime"),
            {"regime": mfrnn.REGIME_NAMES},
            f"DMFT, phi = {args.phi}" + "".join(
                f", {k} = {v}" for k, v in values.items() if k != name),
        )
    result = {
        **_dmft_record(args, mfrnn, values, sol, lyap),
        "seconds": time.perf_counter() - start,
    }
    if not args.plot:
        return result
    import jax.numpy as jnp
    import numpy as np

    ac = mfrnn.dmft_autocorrelation(ensemble, sol, throw=False)
    lags = np.asarray(ac.default_lags())
    tau_max = float(lags[-1])
    cmp = None
    if args.simulate is not None:
        cmp = mfrnn.compare_dmft(ensemble, args.simulate, key=jax.random.key(args.seed),
                                 t1=args.t1, max_lag=tau_max, throw=False)
        result["simulation"] = {
            "n": args.simulate,
            "delta0": float(cmp.delta0[0]),
            "delta_inf": float(cmp.delta_inf[0]),
            "tau_half": _float_or_none(cmp.tau_half[0]),
            "lyapunov": float(cmp.lyapunov[0]),
        }
    import mfrnn.plotting

    out = pathlib.Path(args.out if args.out is not None else "runs/dmft")
    out.mkdir(parents=True, exist_ok=True)
    fig = mfrnn.plotting.plot_autocorrelation(
        lags,
        np.asarray(ac(jnp.asarray(lags))),
        simulated_lags=None if cmp is None else np.asarray(cmp.lags),
        simulated=None if cmp is None else np.asarray(cmp.autocorrelation[0]),
        title=f"DMFT, g = {args.g}, phi = {args.phi}, b = {args.bias}, s_I = {args.input_std}",
    )
    fig.savefig(out / "autocorrelation.png", dpi=120)
    return _write_json(out, "dmft.json", result, ["autocorrelation.png"])


def _onset_record(args, mfrnn, values, sol) -> dict:
    converged = bool(sol.result == mfrnn.RESULTS.successful)
    return {
        "command": "onset",
        "phi": args.phi,
        "bias": values["bias"],
        "input_std": values["input_std"],
        "g_c": _float_or_none(sol.g_c) if converged else None,
        "delta0_at_onset": _float_or_none(sol.delta0) if converged else None,
        "converged": converged,
    }


def _onset(args) -> dict:
    jax, mfrnn = _theory_setup(args)
    if _lowest(args.input_std) < 0:
        raise ValueError(f"`--input-std` must be non-negative, got {_shown(args.input_std)}.")
    values, sweep = _sweep(args, ("bias", "input_std"))
    sol = mfrnn.chaos_onset(
        mfrnn.nonlinearity(args.phi), values["bias"], values["input_std"], throw=False
    )
    sol = jax.device_get(sol)
    if sweep is not None:
        name, axis = sweep
        points = [
            _onset_record(args, mfrnn, {**values, name: float(x)}, mfrnn.solution_at(sol, i))
            for i, x in enumerate(axis)
        ]
        return _sweep_result(
            mfrnn, "onset", name, axis, points, args.out, ("g_c", "delta0_at_onset"), {},
            f"chaos onset, phi = {args.phi}" + "".join(
                f", {k} = {v}" for k, v in values.items() if k != name),
        )
    result = _onset_record(args, mfrnn, values, sol)
    return result if args.out is None else _write_json(args.out, "onset.json", result)


def _value_or_grid(text: str) -> float | tuple[float, float, int]:
    """A number, or a grid A:B:N to sweep (as `mfrnn phase --g 0.1:3:40`)."""
    if ":" in text:
        return _grid(text)
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or a grid A:B:N, got {text!r}") from None


def _lowest(value) -> float:
    return value[0] if isinstance(value, tuple) else value


def _shown(value) -> str:
    return ":".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value}"


def _sweep(args, names):
    """The arguments `names` as a dict, the one given as a grid `A:B:N` replaced by its
    values, and `(name, values)` of that grid (None if every one is a number)."""
    import numpy as np

    grids = [name for name in names if isinstance(getattr(args, name), tuple)]
    if len(grids) > 1:
        flags = ", ".join(f"`--{name.replace('_', '-')}`" for name in grids)
        raise ValueError(f"Sweep one argument at a time; got grids for {flags}.")
    values = {name: getattr(args, name) for name in names}
    if not grids:
        return values, None
    values[grids[0]] = np.linspace(*getattr(args, grids[0]))
    return values, (grids[0], values[grids[0]])


def _sweep_result(mfrnn, command, name, axis, points, out, quantities, categories,
                  title) -> dict:
    """A sweep's points (printed as a JSON list) and, with `out`, its plot of
    `quantities` against the swept argument and its JSON."""
    result = {"sweep": points}
    if out is None:
        return result
    import matplotlib.pyplot as plt

    import mfrnn.plotting

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = mfrnn.plotting.plot_sweep(
        axis, {q: [p[q] for p in points] for q in quantities},
        converged=[p["converged"] for p in points], categories=categories,
        xlabel=name, title=title,
    )
    stem = f"{command}_{name}"
    fig.savefig(out / f"{stem}.png", dpi=120)
    plt.close(fig)
    (out / f"{stem}.json").write_text(json.dumps(points, indent=2))
    result["files"] = [str(out / f"{stem}.png"), str(out / f"{stem}.json")]
    return result


def _grid(text: str) -> tuple[float, float, int]:
    try:
        a, b, n = text.split(":")
        lo, hi, count = float(a), float(b), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B:N (e.g. 0.2:3:20), got {text!r}")
    if count < 2 or not hi > lo:
        raise argparse.ArgumentTypeError(f"need B > A and N >= 2, got {text!r}")
    return lo, hi, count


def _add_lowrank_arguments(p) -> None:
    p.add_argument("--sigma-m", type=float, default=1.0, help="std of m")
    p.add_argument("--sigma-n", type=float, default=3.0, help="std of n")
    p.add_argument("--mean-m", type=float, default=0.0, help="mean of m (M_m)")
    p.add_argument("--mean-n", type=float, default=0.0, help="mean of n (M_n)")
    p.add_argument("--phi", default="tanh", help="tanh | erf | relu | linear | shifted-tanh")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _add_lowrank(sub) -> None:
    p = sub.add_parser(
        "lowrank",
        help="mean-field phase and order parameters of a rank-one + random ensemble",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--g", type=_value_or_grid, required=True,
                   help="random gain, or a grid A:B:N to sweep")
    p.add_argument("--sigma-mn", type=_value_or_grid, default=0.0,
                   help="cov(m, n), or a grid A:B:N to sweep (0: the Mastrogiuseppe-Ostojic "
                   "convention, overlap by --mean-m --mean-n)")
    p.add_argument("--order", type=_positive_int, default=301, help="quadrature nodes")
    _add_lowrank_arguments(p)
    p.add_argument("--out", default=None,
                   help="write lowrank.json here (over a grid: also the sweep's plot)")
    p.set_defaults(func=_lowrank)


# The fields of LowRankEnsemble.rank_one that `mfrnn phase` takes as axes or `--set`.
_PHASE_FIELDS = ("g", "sigma_mn", "sigma_m", "sigma_n", "mean_m", "mean_n", "bias")


def _field(text: str, value=float):
    """FIELD=VALUE (`value` parses VALUE), FIELD one of _PHASE_FIELDS."""
    name, sep, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    if name not in _PHASE_FIELDS:
        raise argparse.ArgumentTypeError(
            f"unknown field {name!r}; expected one of {', '.join(_PHASE_FIELDS)}")
    try:
        return name, value(rest)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad value in {text!r}") from None


def _add_phase(sub) -> None:
    p = sub.add_parser(
        "phase",
        help="phase diagram of a rank-one + random ensemble over two of its fields "
        "(default g and sigma_mn): PNG + NPZ + JSON",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--x", type=lambda t: _field(t, _grid), default=None, metavar="FIELD=A:B:N",
                   help=f"x axis, any of {', '.join(_PHASE_FIELDS)} (default: --g)")
    p.add_argument("--y", type=lambda t: _field(t, _grid), default=None, metavar="FIELD=A:B:N",
                   help="y axis (default: --sigma-mn)")
    p.add_argument("--set", type=_field, action="append", default=[], metavar="FIELD=VALUE",
                   help="value of a field that is not an axis, e.g. --set mean_m=1.1")
    p.add_argument("--g", type=_grid, default=None, help="g grid A:B:N (as --x g=A:B:N; "
                   "default 0.1:3:16)")
    p.add_argument("--sigma-mn", type=_grid, default=None, help="sigma_mn grid A:B:N (as "
                   "--y sigma_mn=A:B:N; default 0:2.9:16)")
    p.add_argument("--order", type=_positive_int, default=61, help="quadrature nodes")
    p.add_argument("--out", default="runs/phase", help="output folder")
    _add_lowrank_arguments(p)
    p.set_defaults(func=_phase)


def _phase_plane(args) -> tuple[dict, dict]:
    """The two axes `{field: (A, B, N)}` (x first) and the other fields' values."""
    axes = []
    for flag, axis, grid, name, default in (
        ("--x", args.x, args.g, "g", (0.1, 3.0, 16)),
        ("--y", args.y, args.sigma_mn, "sigma_mn", (0.0, 2.9, 16)),
    ):
        if axis is not None and grid is not None:
            raise ValueError(f"`{flag}` and `--{name.replace('_', '-')}` both give the "
                             f"{flag[2:]} axis; give one.")
        axes.append(axis if axis is not None else (name, grid or default))
    axes = dict(axes)
    if len(axes) != 2:
        raise ValueError(f"`--x` and `--y` must be two different fields, got {list(axes)}.")
    fixed = dict(sigma_m=args.sigma_m, sigma_n=args.sigma_n, mean_m=args.mean_m,
                 mean_n=args.mean_n)
    for name, value in args.set:
        if name in axes:
            raise ValueError(f"`--set {name}=...`: {name} is an axis.")
        fixed[name] = value
    return axes, {k: v for k, v in fixed.items() if k not in axes}


def _phi(args, mfrnn, order=None):
    phi = mfrnn.nonlinearity(args.phi)
    if order is not None and isinstance(phi, mfrnn.AbstractQuadratureNonlinearity):
        phi = mfrnn.nonlinearity(args.phi, order=order)
    return phi


def _jax_setup(args, x64: bool = False):
    """Import jax (late: `--help` and bad arguments need none of it), in float64 if
    asked, with the persistent compilation cache (when run as a program) unless
    $MFRNN_NO_COMPILATION_CACHE is set."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    import mfrnn

    if getattr(args, "compilation_cache", False) and not mfrnn.compilation_cache_disabled():
        mfrnn.enable_compilation_cache()
    return jax


def _theory_setup(args):
    jax = _jax_setup(args, x64=True)  # theory in float64
    import mfrnn

    return jax, mfrnn


def _lowrank_record(args, mfrnn, values, pd) -> dict:
    """One point's JSON object, from that point's PhaseDiagram (on the host)."""
    ok = bool(pd.success)
    return {
        "command": "lowrank",
        "g": values["g"],
        "sigma_mn": values["sigma_mn"],
        "sigma_m": args.sigma_m,
        "sigma_n": args.sigma_n,
        "mean_m": args.mean_m,
        "mean_n": args.mean_n,
        "phi": args.phi,
        "kappa": _float_or_none(pd.kappa[0]) if ok else None,
        "delta0": _float_or_none(pd.delta0[0]) if ok else None,
        "delta_inf": _float_or_none(pd.delta_inf[0]) if ok else None,
        "regime": mfrnn.PHASE_NAMES[int(pd.phase)] if ok else None,
        "bulk_radius": _float_or_none(pd.bulk_radius),
        "outlier": _float_or_none(pd.outlier),
        "converged": ok,
        "message": "" if ok else mfrnn.RESULTS[pd.result],
    }


def _lowrank(args) -> dict:
    jax, mfrnn = _theory_setup(args)
    if _lowest(args.g) < 0:
        raise ValueError(f"`--g` must be non-negative, got {_shown(args.g)}.")
    values, sweep = _sweep(args, ("g", "sigma_mn"))
    start = time.perf_counter()
    ensemble = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=values["sigma_mn"], sigma_m=args.sigma_m, sigma_n=args.sigma_n,
        mean_m=args.mean_m, mean_n=args.mean_n, g=values["g"], phi=_phi(args, mfrnn, args.order))
    pd = jax.device_get(mfrnn.phase_diagram(ensemble, throw=False))  # one transfer
    if sweep is not None:
        name, axis = sweep
        points = [
            _lowrank_record(args, mfrnn, {**values, name: float(x)}, mfrnn.solution_at(pd, i))
            for i, x in enumerate(axis)
        ]
        fixed = {k: v for k, v in values.items() if k != name}
        fixed.update(sigma_m=args.sigma_m, sigma_n=args.sigma_n, mean_m=args.mean_m,
                     mean_n=args.mean_n)
        return _sweep_result(
            mfrnn, "lowrank", name, axis, points, args.out,
            ("kappa", "delta0", "delta_inf", "bulk_radius", "outlier", "regime"),
            {"regime": mfrnn.PHASE_NAMES},
            f"rank one + random, phi = {args.phi}\n"
            + ", ".join(f"{k} = {v:g}" for k, v in fixed.items()),
        )
    result = {**_lowrank_record(args, mfrnn, values, pd), "seconds": time.perf_counter() - start}
    return result if args.out is None else _write_json(args.out, "lowrank.json", result)


def _phase(args) -> dict:
    _, mfrnn = _theory_setup(args)  # mfrnn.plotting loads on first use
    import jax.numpy as jnp
    import numpy as np

    grids, fixed = _phase_plane(args)
    (xname, xgrid), (yname, ygrid) = grids.items()
    axes = {xname: np.linspace(*xgrid), yname: np.linspace(*ygrid)}
    X, Y = np.meshgrid(axes[xname], axes[yname], indexing="ij")
    phi = _phi(args, mfrnn, args.order)
    ens = mfrnn.LowRankEnsemble.rank_one(
        **fixed, **{xname: jnp.asarray(X), yname: jnp.asarray(Y)}, phi=phi)
    start = time.perf_counter()
    # Failed cells are drawn as such; stages are reported on stderr.
    pd = mfrnn.phase_diagram(ens, throw=False, progress=True)
    seconds = time.perf_counter() - start
    # Boundary curves on finer axes than the grid's.
    fine = {k: np.linspace(v[0], v[-1], n) for (k, v), n in zip(axes.items(), (120, 60))}
    lines = mfrnn.phase_boundaries(fine, fixed, phi=phi, throw=False)
    phase, success = np.asarray(pd.phase), np.asarray(pd.success)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "phase.npz", **axes, phase=phase, kappa=np.asarray(pd.kappa[..., 0]),
        delta0=np.asarray(pd.delta0[..., 0]), delta_inf=np.asarray(pd.delta_inf[..., 0]),
        bulk_radius=np.asarray(pd.bulk_radius), outlier=np.asarray(pd.outlier),
        success=success,
        **{f"boundary_{line.name}_{k}": np.asarray(v) for line in lines
           for k, v in ((xname, line.x), (yname, line.y))},
    )
    fig = mfrnn.plotting.plot_phase_diagram(
        axes[xname], axes[yname], phase, success, mfrnn.PHASE_NAMES, xlabel=xname,
        ylabel=yname, boundaries=[(line.label, line.x, line.y) for line in lines],
        title=f"rank one + random, phi = {args.phi}, "
        + ", ".join(f"{k} = {v:g}" for k, v in fixed.items()),
    )
    fig.savefig(out / "phase.png", dpi=120)
    result = {
        "command": "phase", "axes": [xname, yname], xname: list(xgrid), yname: list(ygrid),
        **fixed, "phi": args.phi, "points": int(X.size),
        "phase_counts": {name: int(np.sum(phase[success] == i))
                         for i, name in enumerate(mfrnn.PHASE_NAMES)},
        "failed_points": int(np.sum(~success)),
        "seconds_with_compile": seconds,
    }
    return _write_json(out, "phase.json", result, ["phase.png", "phase.npz"])


def _add_dimension(sub) -> None:
    p = sub.add_parser(
        "dimension",
        help="activity dimension PR/N of a random-mode network J = L D R^T (theory, "
        "optionally next to simulated networks)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--g", type=float, required=True, help="effective gain (N Var J_ij = g^2)")
    p.add_argument("--effective-rank", type=float, default=None,
                   help="alpha PR_D (default: the iid limit)")
    p.add_argument("--phi", default="tanh", help="tanh | erf (odd phi)")
    p.add_argument("--simulate", type=_positive_int, default=None, metavar="N",
                   help="also simulate sampled networks of N units")
    p.add_argument("--networks", type=_positive_int, default=2, help="with --simulate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write dimension.png + dimension.json here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_dimension)


def _dimension(args) -> dict:
    jax, mfrnn = _theory_setup(args)
    import numpy as np

    if args.g < 0:
        raise ValueError(f"`--g` must be non-negative, got {args.g}.")
    if args.effective_rank is not None and not args.effective_rank > 0:
        raise ValueError(f"`--effective-rank` must be positive, got {args.effective_rank}.")
    phi = mfrnn.nonlinearity(args.phi)
    ensemble = mfrnn.RandomModeEnsemble(args.g, args.effective_rank, phi=phi)
    start = time.perf_counter()
    sol = jax.device_get(mfrnn.activity_dimension(ensemble, throw=False))
    converged = bool(sol.result == mfrnn.RESULTS.successful)
    result = {
        "command": "dimension",
        "g": args.g,
        "effective_rank": args.effective_rank,
        "phi": args.phi,
        "pr_phi": _float_or_none(sol.pr_phi) if converged else None,
        "pr_x": _float_or_none(sol.pr_x) if converged else None,
        "delta0": _float_or_none(sol.delta0) if converged else None,
        "pr_s": _float_or_none(sol.pr_s),
        "chaotic": bool(sol.chaotic),
        "converged": converged,
        "message": "" if converged else mfrnn.RESULTS[sol.result],
        "seconds": time.perf_counter() - start,
    }
    markers = None
    if args.simulate is not None:
        cmp = mfrnn.compare_dimension(
            ensemble, args.simulate, key=jax.random.key(args.seed), n_networks=args.networks
        )
        result["simulation"] = {
            "n": args.simulate,
            "networks": args.networks,
            "pr_phi": float(cmp.pooled_pr_phi),  # traces pooled over networks
            "pr_x": float(cmp.pooled_pr_x),
            "pr_phi_per_network": np.asarray(cmp.pr_phi).tolist(),
            "pr_x_per_network": np.asarray(cmp.pr_x).tolist(),
            "delta0": np.asarray(cmp.delta0).tolist(),
            "pc_tau_half_phi": [_float_or_none(v) for v in np.asarray(cmp.pc_tau_half_phi)],
            "pc_tau_half_phi_theory": _float_or_none(cmp.theory.pc_tau_half_phi),
        }
        rank = args.effective_rank if args.effective_rank is not None else 1e3
        markers = [(rank, float(cmp.pooled_pr_phi), float(cmp.pooled_pr_x))]
    if args.out is None:
        return result
    import jax.numpy as jnp

    import mfrnn.plotting

    ranks = np.geomspace(1e-2, 1e2, 41)
    curve = mfrnn.activity_dimension(
        mfrnn.RandomModeEnsemble(args.g, jnp.append(jnp.asarray(ranks), jnp.inf), phi=phi),
        throw=False,
    )
    ok = np.asarray(curve.result == mfrnn.RESULTS.successful)
    pr_phi = np.where(ok, np.asarray(curve.pr_phi), np.nan)
    pr_x = np.where(ok, np.asarray(curve.pr_x), np.nan)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = mfrnn.plotting.plot_dimension(
        ranks, pr_phi[:-1], pr_x[:-1], iid=(pr_phi[-1], pr_x[-1]), markers=markers,
        title=f"random-mode network, g_eff = {args.g}, phi = {args.phi}",
    )
    fig.savefig(out / "dimension.png", dpi=120)
    return _write_json(out, "dimension.json", result, ["dimension.png"])


def _task_argument(text: str) -> tuple[str, float | int | str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key = key.replace("-", "_")
    try:
        number = float(value)
    except ValueError:
        return key, value  # a word, e.g. gate=and for the task logic_gate
    # Counts (n_turns, n_bits, n_slots, n_freqs, n_trials, seed) are integers.
    is_count = key.startswith("n_") or key == "seed"
    return key, int(number) if is_count else number


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train networks on a task (optax); writes checkpoint, metrics JSON, plots",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", required=True,
                   help="task name: and or xor not flipflop1 flipflop3 time_reproduction "
                   "oscillation sine perceptual_decision context_decision match_to_sample "
                   "parametric_wm (also the names metrics.json carries: logic_gate, "
                   "flipflop), or neurogym:<env id> (optional extra)")
    p.add_argument("--n", type=_positive_int, default=128, help="number of units")
    p.add_argument("--rank", type=_positive_int, default=None, help="low-rank J = m n^T / N")
    p.add_argument("--dale", nargs="?", const="sign", default=None,
                   choices=["sign", "projection"], help="Dale's law (E/I columns)")
    p.add_argument("--frac-e", type=float, default=0.8, help="Dale: excitatory fraction")
    p.add_argument("--seeds", type=_positive_int, default=1, help="members trained at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--g", type=float, default=None,
                   help="initial random gain (default: the task's initial_gain(rank): "
                   "initial_g, 0.9 but 1.5 for match_to_sample; 0 for low rank)")
    p.add_argument("--phi", default="tanh")
    p.add_argument("--tau", type=float, default=100.0, help="time constant (ms)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="maximum steps")
    p.add_argument("--batch", type=_positive_int, default=64)
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3],
                   help="Adam learning rate(s); several train one member each per seed")
    p.add_argument("--loss", choices=["mse", "xent"], default="mse")
    p.add_argument("--train", nargs="+", default=None,
                   help="parameters that learn: J m n W_in W_out bias")
    p.add_argument("--noise-std", type=float, default=0.0, help="recurrent noise")
    p.add_argument("--l2-rates", type=float, default=0.0)
    p.add_argument("--l2-weights", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--solver", choices=["euler", "diffrax"], default="euler")
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="stop a member at this accuracy (default: the task's target_loss or "
                   "target_accuracy)")
    p.add_argument("--target-loss", type=float, default=None)
    p.add_argument("--eval-every", type=_positive_int, default=50)
    p.add_argument("--checkpoint-every", type=_positive_int, default=100)
    p.add_argument("--task-arg", type=_task_argument, action="append", default=[],
                   metavar="KEY=VALUE", help="task timing override, e.g. stimulus=400")
    p.add_argument("--fresh", action="store_true",
                   help="start over even if DIR holds a checkpoint (default: resume)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--x64", action="store_true",
                   help="jax_enable_x64 (trials drawn in float64; resume needs the same)")
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_train)


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained checkpoint on fresh trials; writes JSON and plots",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dir", help="a folder written by `mfrnn train`")
    p.add_argument("--trials", type=_positive_int, default=512)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_evaluate)


def _train(args) -> dict:
    # The persistent compilation cache is on (as for every command run as a program;
    # `fit` uses it too, unless $MFRNN_NO_COMPILATION_CACHE is set): a second run of
    # the same training skips compilation. metrics.json reports its folder and size.
    jax = _jax_setup(args, args.x64)
    import mfrnn

    task = mfrnn.make_task(args.task, **dict(args.task_arg))
    g = args.g if args.g is not None else task.initial_gain(args.rank)
    dale = None if args.dale is None else mfrnn.DaleConstraint(args.dale)
    spec = mfrnn.NetworkSpec(n=args.n, rank=args.rank, dale=dale, frac_e=args.frac_e,
                             g=g, phi=args.phi, tau=args.tau)
    targets = (args.target_accuracy, args.target_loss)
    if targets == (None, None):
        targets = (task.target_accuracy, task.target_loss)
    train = tuple(args.train) if args.train else (("J", "W_in", "W_out", "bias"))
    config = mfrnn.TrainConfig(
        learning_rate=tuple(args.lr) if len(args.lr) > 1 else args.lr[0],
        n_steps=args.steps, batch_size=args.batch, loss=mfrnn.Loss(args.loss), train=train,
        grad_clip=args.grad_clip if args.grad_clip > 0 else None, l2_rates=args.l2_rates,
        l2_weights=args.l2_weights, noise_std=args.noise_std, solver=args.solver,
        target_accuracy=targets[0], target_loss=targets[1],
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
    )
    out = pathlib.Path(args.out)
    checkpoint = out / "checkpoint.mfrnn"
    if args.fresh and checkpoint.exists():
        checkpoint.unlink()
    resumed = checkpoint.exists()
    print(f"mfrnn train: {task.name}, {spec.n} units, {args.seeds * len(args.lr)} member(s)"
          + (f", resuming from {checkpoint}" if resumed else ""), file=sys.stderr, flush=True)
    result = mfrnn.fit(task, spec, config, key=jax.random.key(args.seed), n_seeds=args.seeds,
                       checkpoint=checkpoint, resume=True, progress=not args.no_progress)
    summary = _write_evaluation(mfrnn, result, out, trials=512, seed=args.seed + 1)
    folder = jax.config.jax_compilation_cache_dir
    if folder is None and not mfrnn.compilation_cache_disabled():
        folder = mfrnn.default_compilation_cache_dir()
    summary.update(command="train", resumed=resumed, compilation_cache=None if folder is None
                   else dict(folder=str(folder), bytes=mfrnn.compilation_cache_size(folder)))
    _write_json(out, "metrics.json", summary, ["checkpoint.mfrnn", *summary["plots"]])
    del summary["plots"]  # listed in "files"
    return summary


def _evaluate(args) -> dict:
    _jax_setup(args)
    import mfrnn

    folder = pathlib.Path(args.dir)
    result = _load_run(mfrnn, folder)
    summary = _write_evaluation(mfrnn, result, folder, trials=args.trials, seed=args.seed,
                                prefix="eval_")
    summary["command"] = "evaluate"
    _write_json(folder, "evaluation.json", summary, summary["plots"])
    del summary["plots"]  # listed in "files"
    return summary


def _write_evaluation(mfrnn, result, out, *, trials, seed, prefix="") -> dict:
    """Evaluate every member on fresh trials (`mfrnn.evaluate_run`); plot the best one.
    Returns the summary."""
    import jax.random as jr
    import matplotlib.pyplot as plt

    import mfrnn.plotting

    run = mfrnn.evaluate_run(result, key=jr.key(seed), batch=trials)
    task, best, curve = run.task, run.best, run.psychometric
    ev = run.evaluations[best]
    figures = {
        "loss": mfrnn.plotting.plot_training(result.history, title=task.name),
        "trials": mfrnn.plotting.plot_trials(ev.u, ev.y, ev.mask, ev.z, dt=task.dt,
                                             title=f"{task.name}, member {best}"),
    }
    if curve is not None:
        figures["psychometric"] = mfrnn.plotting.plot_psychometric(
            curve.evidence, curve.fraction_plus, group_names=curve.group_names,
            xlabel=curve.xlabel, title=task.name)
    for name, fig in figures.items():
        fig.savefig(out / f"{prefix}{name}.png", dpi=110)
    plt.close("all")
    return dict(run.summary(), plots=[str(out / f"{prefix}{name}.png") for name in figures])


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="fixed and slow points, linearisation and spectrum of a trained checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dir", help="a folder written by `mfrnn train`")
    p.add_argument("--input", type=float, nargs="+", default=None,
                   help="constant input u (one value per task input; default 0)")
    p.add_argument("--member", type=int, default=0, help="which trained member")
    p.add_argument("--trials", type=_positive_int, default=32,
                   help="task trials whose states start the search")
    p.add_argument("--states", type=_positive_int, default=256, help="initial states")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_analyze)


def _add_populations(sub) -> None:
    p = sub.add_parser(
        "populations",
        help="Gaussian-mixture populations of a trained low-rank checkpoint, resampled",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dir", help="a folder written by `mfrnn train --rank R`")
    p.add_argument("--max-populations", type=_positive_int, default=3)
    p.add_argument("--resamples", type=_positive_int, default=5, help="networks per fit")
    p.add_argument("--n", type=_positive_int, default=None,
                   help="units of each resampled network (default: the trained size)")
    p.add_argument("--trials", type=_positive_int, default=256, help="trials per score")
    p.add_argument("--member", type=int, default=0, help="which trained member")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_populations)


def _load_run(mfrnn, folder):
    result = mfrnn.load_checkpoint(pathlib.Path(folder) / "checkpoint.mfrnn")
    if result.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
        result = mfrnn.load_checkpoint(pathlib.Path(folder) / "checkpoint.mfrnn")
    return result


def _analyze(args) -> dict:
    _jax_setup(args)
    import jax.random as jr

    import mfrnn

    folder = pathlib.Path(args.dir)
    result = _load_run(mfrnn, folder)
    if args.input is not None and len(args.input) != result.task.n_in:
        raise ValueError(
            f"`--input` needs {result.task.n_in} values (task {result.task.name!r} has "
            f"{result.task.n_in} inputs), got {len(args.input)}."
        )
    analysis = mfrnn.analyze_run(result, key=jr.key(args.seed), member=args.member,
                                 inputs=args.input, n_trials=args.trials, n_states=args.states)
    import matplotlib.pyplot as plt

    import mfrnn.plotting

    fps = analysis.fixed_points
    fig = mfrnn.plotting.plot_fixed_points(
        analysis.trajectories_pc, analysis.points_pc, fps.n_unstable, fps.is_fixed,
        title=f"{result.task.name}: fixed points (u = {analysis.inputs.tolist()})")
    fig.savefig(folder / "fixed_points.png", dpi=110)
    sp = analysis.spectrum
    fig = mfrnn.plotting.plot_spectrum(
        sp.eigenvalues, initial_eigenvalues=sp.initial_eigenvalues, bulk_radius=sp.bulk_radius,
        predicted_outliers=sp.predicted_outliers, title=f"{result.task.name}: J")
    fig.savefig(folder / "spectrum.png", dpi=110)
    plt.close("all")
    summary = analysis.summary()
    summary.update(command="analyze", member=args.member)
    return _write_json(folder, "analysis.json", summary, ["fixed_points.png", "spectrum.png"])


def _populations(args) -> dict:
    _jax_setup(args)
    import jax.random as jr
    import numpy as np

    import mfrnn

    folder = pathlib.Path(args.dir)
    result = _load_run(mfrnn, folder)
    if not 0 <= args.member < result.n_members:
        raise ValueError(f"`--member` must be in [0, {result.n_members}), got {args.member}.")
    pa = mfrnn.population_analysis(
        result.member(args.member), result.task, max_populations=args.max_populations,
        key=jr.key(args.seed), n_resamples=args.resamples, n=args.n, batch=args.trials,
        loss=result.config.loss, noise_std=result.config.noise_std)
    import matplotlib.pyplot as plt

    import mfrnn.plotting

    fig = mfrnn.plotting.plot_population_accuracy(
        pa.n_populations, pa.accuracy, trained_accuracy=pa.trained_accuracy, bic=pa.bic,
        title=f"{result.task.name}: resampled from Gaussian mixtures")
    fig.savefig(folder / "populations.png", dpi=110)
    plt.close("all")
    acc = np.asarray(pa.accuracy)
    summary = {
        "command": "populations",
        "trained_accuracy": pa.trained_accuracy,
        "populations": [
            {"n_populations": int(k), "accuracy_mean": float(acc[i].mean()),
             "accuracy_std": float(acc[i].std()), "accuracies": acc[i].tolist(),
             "bic": float(pa.bic[i]), "weights": np.asarray(pa.fits[i].weights).tolist(),
             "converged": bool(pa.fits[i].result == mfrnn.RESULTS.successful)}
            for i, k in enumerate(np.asarray(pa.n_populations))
        ],
    }
    return _write_json(folder, "populations.json", summary, ["populations.png"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfrnn", description="Recurrent rate networks: simulation and mean-field theory."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_dmft(sub)
    _add_onset(sub)
    _add_lowrank(sub)
    _add_phase(sub)
    _add_dimension(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_analyze(sub)
    _add_populations(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line. Run as a program (argv from sys.argv) it keeps compiled
    programs in JAX's persistent cache and ends the process itself once its output is
    out; `main([...])` from Python leaves JAX's configuration alone and returns."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.compilation_cache = argv is None
    try:
        result = args.func(args)
    except ValueError as error:
        parser.exit(2, f"mfrnn {args.command}: error: {error}\n")
    if args.json:
        json.dump(result.get("sweep", result), sys.stdout)  # a sweep: one object a point
        sys.stdout.write("\n")
    elif "sweep" in result:
        keys = ("g_c", "kappa", "delta0", "delta_inf", "regime", "lyapunov", "tau_half",
                "outlier", "converged")
        for point in result["sweep"]:
            print(", ".join(f"{key}: {point[key]}" for key in ("g", "sigma_mn", "bias",
                  "input_std") + keys if key in point))
        for path in result.get("files", []):
            print(f"wrote {path}")
    else:
        keys = ("g_c", "kappa", "pr_phi", "pr_x", "delta0", "delta_inf", "regime", "lyapunov",
                "tau_half", "outlier", "phase_counts", "failed_points", "seconds_with_compile", "step",
                "accuracy", "best_member")
        for key in keys:
            if key in result:
                print(f"{key}: {result[key]}")
        for path in result.get("files", []):
            print(f"wrote {path}")
    if argv is None:
        # Every file is closed and every thread joined by now. The interpreter's own
        # teardown of JAX's runtime takes ~0.4 s, a tenth of a one-point command: skip it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
