"""Benchmark: a (g, sigma_mn) phase diagram of a rank-one + random network, mfrnn (one
jitted, vmapped call) vs a scipy loop solving the same equations point by point.

    python benchmarks/bench_phase.py [--quick] [--n 200] [--scipy-n 20] [--out ...]

Work (issue #4): zero-mean loadings (sigma_m = 1, sigma_n = 3), tanh, g in [0.1, 3],
sigma_mn in [0, 2.9], an n x n grid. Per point: fixed points from kappa = 0, +-kappa
guesses with bulk radius and outliers; where none is stable, the kappa = 0 chaotic state,
its kappa-stability and, if unstable, the kappa != 0 chaotic state.
- mfrnn: `phase_diagram` (61-node trapezoid quadrature); compile time reported apart.
- scipy loop, per point: `scipy.optimize.fsolve` on the same residuals with 61-node
  Gauss-Hermite averages (two-point averages on the 61 x 61 product rule), the same
  stability formulas, the same labelling. It runs on a `--scipy-n` x `--scipy-n`
  sub-grid (spread over the full grid) because the full grid takes hours; its rate
  (points/s) is compared, and its labels are checked against mfrnn's at those points.
"""

import argparse
import json
import pathlib
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
from scipy import optimize

import mfrnn


SIGMA_M, SIGMA_N = 1.0, 3.0
Z, W = np.polynomial.hermite_e.hermegauss(61)
W = W / W.sum()


def phi(x):
    return np.tanh(x)


def dphi(x):
    return 1 - np.tanh(x) ** 2


def ddphi(x):
    t = np.tanh(x)
    return -2 * t * (1 - t**2)


def dddphi(x):
    t = np.tanh(x)
    return (1 - t**2) * (6 * t**2 - 2)


def Phi(x):
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2 * ax)) - np.log(2)


def mean(f, d):
    return W @ f(np.sqrt(max(d, 0.0)) * Z)


def corr(f, d0, d):
    x = np.sqrt(max(d, 0)) * Z[:, None] + np.sqrt(max(d0 - d, 0)) * Z[None, :]
    return W @ (f(x) @ W) ** 2


def scipy_point(g, smn):
    """Phase code (0..3) and kappa, as mfrnn labels them."""
    L = lambda k: SIGMA_M**2 * k**2

    def fixed_res(y):
        k, D = y
        d = L(k) + D
        return [k - smn * k * mean(dphi, d), D - g * g * mean(lambda x: phi(x) ** 2, d)]

    def stability(k, D):
        d = L(k) + D
        # Zero means: A = E[n m phi'] , B = E[n phi''], C = E[phi phi' m], d = E[phi'^2 + phi phi''].
        kn, km = smn * k, SIGMA_M**2 * k
        A = smn * mean(dphi, d) + kn * km * mean(dddphi, d)
        B = kn * mean(dddphi, d)
        C = km * mean(lambda x: dphi(x) ** 2 + phi(x) * ddphi(x), d)
        dd = mean(lambda x: dphi(x) ** 2 + phi(x) * ddphi(x), d)
        z = np.linalg.eigvals(np.array([[A, g * g * B], [C, g * g * dd]]))
        bulk = g * np.sqrt(mean(lambda x: dphi(x) ** 2, d))
        return bulk, np.max(z.real) - 1

    scale = np.sqrt(SIGMA_N**2) + 0.5
    sols = []
    for k0 in (0.0, scale, -scale):
        y, info, ier, _ = optimize.fsolve(fixed_res, [k0, 0.5 * min(g * g, 1)], full_output=True)
        if ier == 1 and np.max(np.abs(fixed_res(y))) < 1e-8 and (k0 == 0 or abs(y[0]) > 1e-6):
            bulk, out = stability(*y)
            sols.append((y[0], bulk < 1 and out < 0, bulk, out))
    stable_k = [s for s in sols if s[1] and abs(s[0]) > 1e-6]
    if stable_k:
        return 1, stable_k[0][0]
    if sols and abs(sols[0][0]) <= 1e-6 and sols[0][1]:
        return 0, 0.0

    def chaos_res(y):
        k, d_inf, q = y[0], y[1], np.exp(y[2])
        Lk = L(k)
        d0 = d_inf + q
        top, low = Lk + d0, Lk + d_inf
        v_top = -0.5 * d0**2 + g * g * mean(lambda x: Phi(x) ** 2, top)
        v_inf = -0.5 * d_inf**2 + g * g * corr(Phi, top, low)
        e_inf = d_inf - g * g * corr(phi, top, low)
        scale_k = abs(k) if abs(y[0]) > 0 else 1.0
        e_k = (k - smn * k * mean(dphi, top)) / scale_k if k != 0 else 0.0
        return [e_k, e_inf, (v_top - v_inf) / q**2]

    # kappa = 0: SCS-like unknowns only.
    y, info, ier, _ = optimize.fsolve(
        lambda y: chaos_res([0.0, y[0], y[1]])[1:], [0.0, np.log(g * g)], full_output=True
    )
    d0 = y[0] + np.exp(y[1])
    if ier == 1 and smn * mean(dphi, d0) < 1:
        return 2, 0.0
    y, info, ier, _ = optimize.fsolve(chaos_res, [0.1 * scale, 0.5, np.log(g * g)], full_output=True)
    if ier == 1 and abs(y[0]) > 1e-6:
        return 3, y[0]
    return -1, np.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 x 8 grid, for tests")
    parser.add_argument("--n", type=int, default=200, help="grid is n x n")
    parser.add_argument("--scipy-n", type=int, default=20, help="scipy sub-grid size")
    parser.add_argument("--out", default="benchmarks/results/phase.json")
    args = parser.parse_args()
    n, sn = (8, 4) if args.quick else (args.n, args.scipy_n)
    g_axis = np.linspace(0.1, 3.0, n)
    s_axis = np.linspace(0.0, 2.9, n)
    G, S = np.meshgrid(g_axis, s_axis, indexing="ij")
    phi_j = mfrnn.Tanh(order=61)

    def ensemble(G, S):
        return mfrnn.LowRankEnsemble.rank_one(
            sigma_mn=jnp.asarray(S), sigma_m=SIGMA_M, sigma_n=SIGMA_N, g=jnp.asarray(G), phi=phi_j
        )

    start = time.perf_counter()
    pd = mfrnn.phase_diagram(ensemble(G, S))
    jax.block_until_ready(pd)
    first = time.perf_counter() - start
    start = time.perf_counter()
    pd = mfrnn.phase_diagram(ensemble(G, S * 0.999))  # new values, same compiled code
    jax.block_until_ready(pd)
    run = time.perf_counter() - start
    compile_s = max(first - run, 0.0)

    idx = np.unique(np.linspace(0, n - 1, sn).round().astype(int))
    start = time.perf_counter()
    labels = np.array([[scipy_point(G[i, j], S[i, j] * 0.999)[0] for j in idx] for i in idx])
    scipy_s = time.perf_counter() - start
    n_scipy = labels.size
    ours = np.asarray(pd.phase)[np.ix_(idx, idx)]
    ok = np.asarray(pd.success)[np.ix_(idx, idx)]
    agree = float(np.mean((labels == ours)[ok & (labels >= 0)]))

    rate = G.size / run
    scipy_rate = n_scipy / scipy_s
    results = {
        "benchmark": "phase",
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "grid": [n, n],
        "mfrnn": {
            "seconds_run": run,
            "seconds_compile": compile_s,
            "points_per_second": rate,
            "points_per_second_with_compile": G.size / first,
            "failed_points": int(np.sum(~np.asarray(pd.success))),
            "phase_counts": {name: int(np.sum(np.asarray(pd.phase) == i))
                             for i, name in enumerate(mfrnn.PHASE_NAMES)},
        },
        "scipy": {"points": n_scipy, "seconds": scipy_s, "points_per_second": scipy_rate,
                  "failed_points": int(np.sum(labels < 0))},
        "ratio_points_per_second": rate / scipy_rate,
        "ratio_with_compile": (G.size / first) / scipy_rate,
        "label_agreement_on_scipy_subgrid": agree,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
