"""Benchmark: network simulation, mfrnn (JAX, jitted) vs a numpy float32 loop doing
the same arithmetic, in the same run. Writes a JSON result.

    python benchmarks/bench_simulate.py [--quick] [--out benchmarks/results/simulate.json]

Cases (issue #2): dense N=1000, g=2, tanh, 64 trials, 1000 Euler steps of dt=0.1;
low-rank N=100000, rank 2, 16 trials, 1000 steps. Times are the best of `--repeats`
runs after compilation; compile time is reported on its own. GFLOP/s count the
recurrent matmul flops (2 N^2 per trial-step dense), set against numpy's own float32
matmul rate on the same shape measured here.
"""

import argparse
import json
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import mfrnn


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _compile(fn, *args):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def bench_dense(n, trials, steps, dt, g, repeats, key):
    net = mfrnn.GaussianEnsemble(g).sample(n, key=key)
    x0 = jr.normal(jr.fold_in(key, 1), (trials, n), jnp.float32)

    def run(network, x0s):
        return jax.vmap(
            lambda x: mfrnn.simulate_euler(network, x, dt=dt, n_steps=steps, save_every=steps)[-1]
        )(x0s)

    compiled, t_compile = _compile(run, net, x0)
    out = compiled(net, x0).block_until_ready()
    t_jax = _best(lambda: compiled(net, x0).block_until_ready(), repeats)

    J = np.asarray(net.J, np.float32)
    JT = np.ascontiguousarray(J.T)
    alpha = np.float32(dt)

    def numpy_loop():
        X = np.asarray(x0, np.float32).copy()
        for _ in range(steps):
            X += alpha * (-X + np.tanh(X) @ JT)
        return X

    ref = numpy_loop()
    t_numpy = _best(numpy_loop, repeats)

    # The same matmul alone, numpy and XLA, to measure the machine's rate.
    R = np.tanh(np.asarray(x0, np.float32))
    reps = max(steps // 10, 10)
    t_mm_np = _best(lambda: [R @ JT for _ in range(reps)], repeats) / reps
    mm = jax.jit(lambda a, b: a @ b)
    Rj, JTj = jnp.asarray(R), jnp.asarray(JT)
    mm(Rj, JTj).block_until_ready()
    t_mm_jax = _best(lambda: [mm(Rj, JTj).block_until_ready() for _ in range(reps)], repeats) / reps

    flops = 2.0 * n * n * trials * steps
    flops_mm = 2.0 * n * n * trials
    return {
        "n": n,
        "trials": trials,
        "steps": steps,
        "dt": dt,
        "g": g,
        "mfrnn_seconds": t_jax,
        "mfrnn_compile_seconds": t_compile,
        "numpy_seconds": t_numpy,
        "speedup_vs_numpy": t_numpy / t_jax,
        "speedup_vs_numpy_including_compile": t_numpy / (t_jax + t_compile),
        "mfrnn_gflops": flops / t_jax / 1e9,
        "numpy_loop_gflops": flops / t_numpy / 1e9,
        "numpy_matmul_gflops": flops_mm / t_mm_np / 1e9,
        "xla_matmul_gflops": flops_mm / t_mm_jax / 1e9,
        "fraction_of_numpy_matmul_rate": (flops / t_jax) / (flops_mm / t_mm_np),
        "max_abs_difference_final_state": float(np.max(np.abs(np.asarray(out) - ref))),
    }


def bench_low_rank(n, rank, trials, steps, dt, repeats, key):
    ens = mfrnn.LowRankEnsemble(rank, cov=jnp.eye(2 * rank) * 1.0)
    net = ens.sample(n, key=key)
    x0 = jr.normal(jr.fold_in(key, 1), (trials, n), jnp.float32)

    def run(network, x0s):
        return jax.vmap(
            lambda x: mfrnn.simulate_euler(network, x, dt=dt, n_steps=steps, save_every=steps)[-1]
        )(x0s)

    compiled, t_compile = _compile(run, net, x0)
    out = compiled(net, x0).block_until_ready()
    t_jax = _best(lambda: compiled(net, x0).block_until_ready(), repeats)

    m = np.asarray(net.m, np.float32)
    nv = np.asarray(net.n_vectors, np.float32)
    mT = np.ascontiguousarray(m.T) / np.float32(n)
    alpha = np.float32(dt)

    def numpy_loop():
        X = np.asarray(x0, np.float32).copy()
        for _ in range(steps):
            X += alpha * (-X + (np.tanh(X) @ nv) @ mT)
        return X

    ref = numpy_loop()
    t_numpy = _best(numpy_loop, repeats)
    # Bytes moved per step at least: read and write X, read m and n.
    bytes_per_step = 4.0 * (2 * trials * n + 2 * rank * n)
    return {
        "n": n,
        "rank": rank,
        "trials": trials,
        "steps": steps,
        "dt": dt,
        "mfrnn_seconds": t_jax,
        "mfrnn_compile_seconds": t_compile,
        "numpy_seconds": t_numpy,
        "speedup_vs_numpy": t_numpy / t_jax,
        "speedup_vs_numpy_including_compile": t_numpy / (t_jax + t_compile),
        "mfrnn_effective_GBps": bytes_per_step * steps / t_jax / 1e9,
        "max_abs_difference_final_state": float(np.max(np.abs(np.asarray(out) - ref))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "simulate.json"))
    args = parser.parse_args(argv)
    key = jr.key(0)
    if args.quick:
        dense = dict(n=100, trials=8, steps=50)
        low_rank = dict(n=2000, trials=4, steps=50)
    else:
        dense = dict(n=1000, trials=64, steps=1000)
        low_rank = dict(n=100_000, trials=16, steps=1000)
    result = {
        "benchmark": "simulate",
        "quick": args.quick,
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "dense": bench_dense(**dense, dt=0.1, g=2.0, repeats=args.repeats, key=key),
        "low_rank": bench_low_rank(**low_rank, rank=2, dt=0.1, repeats=args.repeats, key=key),
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for case in ("dense", "low_rank"):
        r = result[case]
        print(
            f"{case:9s} mfrnn {r['mfrnn_seconds']:.3f} s (compile {r['mfrnn_compile_seconds']:.2f} s)"
            f"  numpy {r['numpy_seconds']:.3f} s  speed-up x{r['speedup_vs_numpy']:.2f}"
        )
    d = result["dense"]
    print(
        f"dense     {d['mfrnn_gflops']:.1f} GFLOP/s = {d['fraction_of_numpy_matmul_rate']:.2f} of numpy's "
        f"matmul rate ({d['numpy_matmul_gflops']:.1f} GFLOP/s; XLA matmul {d['xla_matmul_gflops']:.1f})"
    )
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
