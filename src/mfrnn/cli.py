"""`mfrnn` command line. Parses arguments, calls the public API, writes files."""

import argparse
import json
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
            sigma_mn=args.sigma_mn,
            sigma_m=args.sigma_m,
            sigma_n=args.sigma_n,
            mean_m=args.mean_m,
            mean_n=args.mean_n,
            g=args.g,
            bias=args.bias,
            phi=phi,
        )
    return mfrnn.EIEnsemble(
        args.frac_e,
        mean_e=args.mean_e,
        mean_i=args.mean_i,
        std_e=args.std_e,
        std_i=args.std_i,
        zero_row_sum=args.zero_row_sum,
        bias=args.bias,
        phi=phi,
    )


def _simulate(args) -> dict:
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import mfrnn
    import mfrnn.plotting

    if args.t1 <= args.discard:
        raise ValueError(f"`--t1` ({args.t1}) must exceed `--discard` ({args.discard}).")
    ensemble = _ensemble_from_args(args, mfrnn)
    k_net, k_x0, k_noise = jr.split(jr.key(args.seed), 3)
    network = ensemble.sample(args.n, key=k_net)
    ts = jnp.arange(0.0, args.t1 + 0.5 * args.save_dt, args.save_dt)
    x0s = jr.normal(k_x0, (args.trials, args.n))
    keys = jr.split(k_noise, args.trials)
    start = time.perf_counter()

    def one(x0, key):
        if args.noise_std is None:
            return mfrnn.simulate(network, x0, ts).ys
        return mfrnn.simulate(
            network, x0, ts, noise_std=args.noise_std, dt0=args.dt, key=key
        ).ys

    xs = np.asarray(eqx.filter_vmap(one)(x0s, keys))
    elapsed = time.perf_counter() - start
    discard = int(np.searchsorted(np.asarray(ts), args.discard))
    stats = [mfrnn.activity_summary(x, discard=discard) for x in xs]
    summary = {
        key: float(np.mean([float(s[key]) for s in stats])) for key in stats[0]
    }
    J = network.dense_matrix() if args.n <= 2000 else None
    summary.update(
        {
            "command": "simulate",
            "ensemble": args.ensemble,
            "n": args.n,
            "g": args.g,
            "phi": args.phi,
            "trials": args.trials,
            "t1": args.t1,
            "spectral_radius": None if J is None else mfrnn.spectral_radius(network),
            "seconds": elapsed,
        }
    )
    if isinstance(network, mfrnn.LowRankNetwork):
        kappa = np.asarray(jax.vmap(jax.vmap(network.kappa))(jnp.asarray(xs)))
        # Per trial: +kappa and -kappa branches would cancel in an average over trials.
        summary["kappa"] = kappa[:, discard:].mean(axis=1).tolist()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "simulation.npz",
        ts=np.asarray(ts),
        xs=xs,
        x0=np.asarray(x0s),
        **({"J": np.asarray(J)} if J is not None else {}),
    )
    fig = mfrnn.plotting.plot_activity(
        ts,
        xs[0],
        rates=np.asarray(network.phi(jnp.asarray(xs[0]))),
        title=f"{args.ensemble} network, N = {args.n}, g = {args.g}, phi = {args.phi}",
    )
    fig.savefig(out / "activity.png", dpi=120)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["files"] = [str(out / f) for f in ("activity.png", "simulation.npz", "summary.json")]
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfrnn", description="Recurrent rate networks: simulation and mean-field theory."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except ValueError as error:
        parser.exit(2, f"mfrnn {args.command}: error: {error}\n")
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        for path in result.get("files", []):
            print(f"wrote {path}")
    return 0
