"""Benchmark: fixed points of a trained 3-bit flip-flop network (N = 256, tanh, tau = 100;
1024 initial states from its own trajectories), mfrnn's finder (batched L-BFGS on q, Newton
polish of the distinct candidates) against the standard approach of FixedPointFinder
(Golub & Sussillo 2018: Adam on q with an adaptive learning rate), in the same run.

    python benchmarks/bench_fixed_points.py [--quick] [--out benchmarks/results/fixed_points.json]

Both sides are measured with the same stick: `q = |-x + J tanh(x) + b|^2 / 2` (tau^2 times
the q of dx/dt, so the target does not depend on tau), states with `q < 1e-12`, and
distinct points among them (RMS distance > 1e-3). Reported: seconds (mfrnn after
compilation, and with it; the baseline to the end and to the first time it held its final
set of points), the number of states below the target, distinct points, and how many are
stable (8 memory states) or saddles. mfrnn's time includes linearising every point (the
eigenvalues, timed apart as well), which the baseline does not do. The baseline is numpy,
float64, vectorised over all states; mfrnn runs in float64 on the CPU. Training the
network (a few seconds, float32) is not timed.
"""

import argparse
import json
import os
import pathlib
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np


jax.config.update("jax_enable_x64", True)
import mfrnn


Q_TARGET = 1e-12
UNIQUE_TOL = 1e-3


def _q(J, b, x):
    f = -x + np.tanh(x) @ J.T + b
    return 0.5 * np.sum(f**2, axis=-1)


def _distinct(points, tol=UNIQUE_TOL):
    kept = []
    for p in points:
        if not kept or np.min(np.sqrt(np.mean((np.asarray(kept) - p) ** 2, axis=1))) > tol:
            kept.append(p)
    return np.asarray(kept).reshape(-1, points.shape[-1])


def _unstable(J, points):
    """Unstable directions of -1 + J diag(1 - tanh^2) at each point."""
    out = []
    for x in points:
        A = -np.eye(len(x)) + J * (1 - np.tanh(x) ** 2)[None, :]
        out.append(int(np.sum(np.linalg.eigvals(A).real > 0)))
    return np.asarray(out, int)


def _summary(J, b, x):
    below = _q(J, b, x) < Q_TARGET
    pts = _distinct(x[below])
    unstable = _unstable(J, pts)
    return dict(states_below_target=int(below.sum()), distinct_points=len(pts),
                n_stable=int(np.sum(unstable == 0)), n_saddles=int(np.sum(unstable > 0)))


def adam_baseline(J, b, x0, *, max_iters, lr=0.1, check_every=100):
    """FixedPointFinder-style: Adam on q for all states at once (numpy, float64), with
    its adaptive learning rate (times 1/0.95 after 5 steps of decrease of the mean q, times
    0.95 on an increase), until every state has q < target or the budget ends. Every
    `check_every` steps the distinct points below the target are counted (untimed)."""
    x = x0.copy()
    m, v = np.zeros_like(x), np.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    prev, streak, trace, paused = np.inf, 0, [], 0.0
    t0 = time.perf_counter()
    for it in range(1, max_iters + 1):
        r = np.tanh(x)
        f = -x + r @ J.T + b
        q = 0.5 * np.sum(f**2, 1)
        loss = q.mean()
        if loss < prev:
            streak += 1
            if streak >= 5:
                lr, streak = lr / 0.95, 0
        else:
            lr, streak = lr * 0.95, 0
        prev = loss
        # grad q = J_F^T F with J_F = -1 + J diag(1 - r^2)
        grad = -f + (f @ J) * (1 - r**2)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        x = x - lr * (m / (1 - b1**it)) / (np.sqrt(v / (1 - b2**it)) + eps)
        if it % check_every == 0:
            t_check = time.perf_counter()
            qx = _q(J, b, x)
            trace.append((t_check - t0 - paused, it, len(_distinct(x[qx < Q_TARGET]))))
            paused += time.perf_counter() - t_check
            if np.all(qx < Q_TARGET):
                break
    return x, it, time.perf_counter() - t0 - paused, trace


def trained_flipflop(n, quick):
    task = mfrnn.FlipFlop(3, dt=20.0, slot=200.0, pulse=40.0, grace=80.0, n_slots=6,
                          input_noise=0.0)
    config = mfrnn.TrainConfig(n_steps=1500, batch_size=32, learning_rate=1e-2, eval_every=25,
                               target_loss=5e-3)
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=n), config, key=jr.key(0))
    to64 = lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a
    net = jtu.tree_map(to64, result.member(0))
    u, *_ = task.sample(jr.key(1), 64)
    return net, task, jnp.asarray(u, jnp.float64), result.steps_to_criterion[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller Adam budget (smoke run)")
    parser.add_argument("--out", default="benchmarks/results/fixed_points.json")
    args = parser.parse_args()
    n, n_states = 256, 1024
    max_iters = 2000 if args.quick else 5000  # FixedPointFinder's default budget
    net, task, u, trained_in = trained_flipflop(n, args.quick)
    # FixedPointFinder's recipe: states sampled from trajectories, plus a little noise.
    states, _ = mfrnn.trajectory_states(net, u, dt=task.dt, n_states=n_states, key=jr.key(2),
                                        noise=0.1)
    J, b = np.asarray(net.J), np.asarray(net.bias)

    find = lambda: mfrnn.find_fixed_points(net, states, throw=False)
    t0 = time.perf_counter()
    fps = jax.block_until_ready(find())
    first = time.perf_counter() - t0
    steady = []
    for _ in range(3):
        t0 = time.perf_counter()
        fps = jax.block_until_ready(find())
        steady.append(time.perf_counter() - t0)
    # Included above, and not done by the baseline: the eigenvalues at every point.
    t0 = time.perf_counter()
    for p in fps.points:
        mfrnn.jacobian_eigenvalues(net, p)
    linearise = time.perf_counter() - t0
    # The states each initial state ended on (its point), measured like the baseline's.
    ours = dict(seconds=min(steady), seconds_runs=steady, seconds_with_compile=first,
                seconds_linearisation_included=linearise,
                **_summary(J, b, np.repeat(np.asarray(fps.points), np.asarray(fps.count), 0)),
                library_n_fixed=fps.n_fixed, library_n_stable=fps.n_stable,
                library_n_slow=fps.n_slow, max_speed_fixed=float(np.max(np.asarray(
                    fps.speed)[np.asarray(fps.is_fixed)])) if fps.n_fixed else None)
    print("mfrnn:", ours, flush=True)

    x, iters, base_s, trace = adam_baseline(J, b, np.asarray(states), max_iters=max_iters)
    final = trace[-1][2] if trace else 0
    to_set = next((t for t, _, k in trace if k >= final), base_s) if final else None
    theirs = dict(seconds=base_s, seconds_to_final_set=to_set, iterations=iters,
                  **_summary(J, b, x), implementation="numpy",
                  trace_seconds_iterations_distinct=trace[:: max(1, len(trace) // 20)])
    print("Adam baseline:", {k: v for k, v in theirs.items() if not k.startswith("trace")},
          flush=True)
    meta = dict(device=str(jax.devices()[0]), platform=platform.platform(),
                cpu_count=os.cpu_count(), jax=jax.__version__, n=n, n_states=n_states,
                network="3-bit flip-flop, trained (float32, cast to float64)",
                trained_steps=trained_in, q_target=Q_TARGET, unique_tol=UNIQUE_TOL,
                quick=args.quick,
                note="2-core machine shared with other jobs: timings are noisy")
    ratio = dict(baseline_over_mfrnn=base_s / ours["seconds"],
                 baseline_to_set_over_mfrnn=(to_set / ours["seconds"]) if to_set else None)
    print("ratio:", ratio)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, mfrnn=ours, adam_baseline=theirs, ratio=ratio),
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
