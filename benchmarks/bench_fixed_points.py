"""Benchmark: fixed points of a random tanh network (N = 256, g = 1.5, 1024 initial states
from its trajectories), mfrnn's finder (vmapped L-BFGS on q + Newton polish) against the
standard approach of FixedPointFinder (Adam on q(x) = |F(x)|^2 / 2), in the same run.

    python benchmarks/bench_fixed_points.py [--quick] [--out benchmarks/results/fixed_points.json]

Reported for each: seconds (mfrnn: after compilation, and with it), how many initial
states end with q < 1e-12, and how many distinct points (RMS distance > 1e-3) those are.
The baseline is PyTorch when installed, else numpy (same algorithm, batched over states).
"""

import argparse
import json
import os
import pathlib
import platform
import time

import jax
import jax.random as jr
import numpy as np


jax.config.update("jax_enable_x64", True)
import mfrnn


try:
    import torch
except ImportError:  # optional baseline
    torch = None

Q_TARGET = 1e-12


def _distinct(points, tol=1e-3):
    kept = []
    for p in points:
        if not kept or np.min(np.sqrt(np.mean((np.asarray(kept) - p) ** 2, axis=1))) > tol:
            kept.append(p)
    return len(kept)


def adam_baseline(J, b, x0, *, lr=1e-2, max_iters=20000, check_every=100):
    """FixedPointFinder-style: Adam on q, all states at once, until every q < target or
    the iteration budget ends. numpy (or torch) float64."""
    if torch is not None:
        Jt, bt = torch.tensor(J), torch.tensor(b)
        x = torch.tensor(x0, requires_grad=True)
        opt = torch.optim.Adam([x], lr=lr)
        for it in range(max_iters):
            f = -x + torch.tanh(x) @ Jt.T + bt
            q = 0.5 * (f**2).sum(1)
            opt.zero_grad()
            q.sum().backward()
            opt.step()
            if it % check_every == 0 and bool((q < Q_TARGET).all()):
                break
        x = x.detach().numpy()
    else:
        x = x0.copy()
        m, v = np.zeros_like(x), np.zeros_like(x)
        b1, b2, eps = 0.9, 0.999, 1e-8
        for it in range(1, max_iters + 1):
            r = np.tanh(x)
            f = -x + r @ J.T + b
            # grad q = J_F^T F with J_F = -1 + J diag(1 - r^2)
            grad = -f + (f @ J) * (1 - r**2)
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad**2
            x = x - lr * (m / (1 - b1**it)) / (np.sqrt(v / (1 - b2**it)) + eps)
            if it % check_every == 0:
                q = 0.5 * np.sum(f**2, 1)
                if np.all(q < Q_TARGET):
                    break
    f = -x + np.tanh(x) @ J.T + b
    return x, 0.5 * np.sum(f**2, 1), it + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller budget (smoke run)")
    parser.add_argument("--out", default="benchmarks/results/fixed_points.json")
    args = parser.parse_args()
    n, n_states = 256, 1024
    max_iters = 2000 if args.quick else 20000
    lbfgs_steps = 300 if args.quick else 2000
    ens = mfrnn.GaussianEnsemble(1.5)
    net = ens.sample(n, key=jr.key(0))
    net = mfrnn.DenseNetwork(net.J, bias=0.5 * jr.normal(jr.key(1), (n,)))
    # Initial states from the network's own (chaotic-transient) trajectories.
    x0s = jr.normal(jr.key(2), (64, n))
    xs = jax.vmap(lambda x: mfrnn.simulate_euler(net, x, dt=0.2, n_steps=80, save_every=5))(x0s)
    states = xs[:, 1:].reshape(-1, n)[:n_states]

    find = lambda: mfrnn.find_fixed_points(net, states, max_steps=lbfgs_steps, throw=False)
    t0 = time.perf_counter()
    fps = find()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fps = find()
    steady = time.perf_counter() - t0
    good = np.asarray(fps.q) < Q_TARGET
    ours = dict(seconds=steady, seconds_with_compile=first, lbfgs_max_steps=lbfgs_steps,
                states_below_target=int(np.sum(np.asarray(fps.count)[good])),
                distinct_points=int(np.sum(good)), n_stable=fps.n_stable,
                n_slow=fps.n_slow, max_speed_fixed=float(np.max(np.asarray(fps.speed)[good]))
                if good.any() else None)
    print("mfrnn:", ours, flush=True)

    J, b = np.asarray(net.J), np.asarray(net.bias)
    t0 = time.perf_counter()
    x, q, iters = adam_baseline(J, b, np.asarray(states), max_iters=max_iters)
    base_s = time.perf_counter() - t0
    below = q < Q_TARGET
    theirs = dict(seconds=base_s, iterations=iters, states_below_target=int(np.sum(below)),
                  distinct_points=_distinct(x[below]),
                  implementation="torch" if torch is not None else "numpy")
    print("Adam baseline:", theirs, flush=True)
    meta = dict(device=str(jax.devices()[0]), platform=platform.platform(),
                cpu_count=os.cpu_count(), jax=jax.__version__, n=n, n_states=n_states,
                q_target=Q_TARGET, quick=args.quick)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, mfrnn=ours, adam_baseline=theirs), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
