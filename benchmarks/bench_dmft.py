"""Benchmark: DMFT of a random network over a grid of g, mfrnn (vmapped, jitted) vs a
plain scipy loop (brentq + numpy Gauss-Hermite, written here) in the same run.

    python benchmarks/bench_dmft.py [--quick] [--n-g 256] [--out benchmarks/results/dmft.json]

Work (issue #3): Delta0 and lambda_max for `--n-g` values of g in [1.05, 5], tanh.
- mfrnn: `solve_dmft` + `dmft_lyapunov` in one jitted, vmapped call; compile time is
  reported on its own, and the run and gradient times are the fastest of three calls;
  with the default quadrature (301-node trapezoid, 1e-13 for tanh
  up to Delta0 = 20) and with a cheaper one (151 nodes) closer to the baseline's accuracy.
- scipy loop, per g: brentq on the energy condition with Gauss-Hermite (150 nodes),
  tau(Delta) by the cumulative trapezoid rule on 400 + 400 points (sqrt substitution at
  the top, log spacing at the bottom), a cubic spline of the potential in tau, and the
  lowest eigenvalue of the finite-difference Hamiltonian (Neumann at 0) by
  `scipy.linalg.eigh_tridiagonal` (the recipe in docs/theory/pitfalls.md).
Also the cost of `jax.grad` of lambda_max and tau_half (summed over the grid) relative
to the forward solve. Accuracies are max deviations from mfrnn's default quadrature.
"""

import argparse
import json
import os
import pathlib
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.interpolate
import scipy.linalg
from scipy import integrate, optimize

import mfrnn


# ------------------------------------------------------------------ scipy baseline
GH_Z, GH_W = np.polynomial.hermite_e.hermegauss(150)
GH_W = GH_W / GH_W.sum()


def _logcosh(x):
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2 * ax)) - np.log(2)


def _two_point(f, d0, d):
    # E f(a) f(b), Var a = Var b = d0, Cov = d >= 0: E_z [E_y f(sqrt(d) z + sqrt(d0-d) y)]^2.
    d = np.atleast_1d(d)[:, None, None]
    x = np.sqrt(d) * GH_Z[None, :, None] + np.sqrt(np.maximum(d0 - d, 0)) * GH_Z[None, None, :]
    inner = f(x) @ GH_W
    return (inner**2) @ GH_W


def scipy_point(g):
    def energy(d0):
        P = _logcosh(np.sqrt(d0) * GH_Z)
        return g * g * (GH_W @ P**2 - (GH_W @ P) ** 2) - d0 * d0 / 2

    d0 = optimize.brentq(energy, 1e-6, 200.0, xtol=1e-13, rtol=1e-13)
    V = lambda d: -0.5 * d * d + g * g * _two_point(_logcosh, d0, d)
    v0 = -0.5 * d0 * d0 + g * g * (GH_W @ _logcosh(np.sqrt(d0) * GH_Z) ** 2)
    # Upper half: D = d0 - s^2; lower half: log-spaced.
    s = np.linspace(0, np.sqrt(d0 / 2), 400)
    d_up = d0 - s**2
    w_up = np.maximum(v0 - V(d_up), 1e-300)
    slope = g * g * (GH_W @ np.tanh(np.sqrt(d0) * GH_Z) ** 2) - d0
    integrand_up = np.where(s > 0, 2 * s / np.sqrt(2 * w_up), 2 / np.sqrt(2 * slope))
    tau_up = integrate.cumulative_trapezoid(integrand_up, s, initial=0.0)
    d_low = np.geomspace(d0 / 2, 1e-4 * d0, 400)  # below: cancellation in V(0) - V(D)
    w_low = np.maximum(V(0.0) - V(d_low), 1e-300)  # V(0) - V(D): pitfall 12
    logs = np.log(d_low)
    tau_low = tau_up[-1] - integrate.cumulative_trapezoid(
        d_low / np.sqrt(2 * w_low), logs, initial=0.0
    )
    tau = np.concatenate([tau_up, tau_low[1:]])
    d = np.concatenate([d_up, d_low[1:]])
    tau_half = tau_up[-1]
    potential = 1 - g * g * _two_point(lambda x: 1 / np.cosh(x) ** 2, d0, d)
    spline = scipy.interpolate.CubicSpline(tau, potential)
    k2 = 1 - g * g * (GH_W @ (1 / np.cosh(np.sqrt(d0) * GH_Z) ** 2)) ** 2
    h, T = 0.02, tau[-1] + 10 / np.sqrt(k2)
    grid = np.arange(0, T, h)
    pot = np.where(grid <= tau[-1], spline(np.minimum(grid, tau[-1])), k2)
    off = -np.ones(len(grid) - 1) / h**2
    off[0] *= np.sqrt(2)  # Neumann at 0, symmetrised
    e0 = scipy.linalg.eigh_tridiagonal(pot + 2 / h**2, off, select="i", select_range=(0, 0))[0][0]
    return d0, -1 + np.sqrt(1 - e0), tau_half


# ------------------------------------------------------------------ mfrnn
def mfrnn_forward(gs, phi):
    ens = mfrnn.GaussianEnsemble(gs, jnp.zeros_like(gs), jnp.zeros_like(gs), phi=phi)
    sol = mfrnn.solve_dmft(ens, throw=False)
    lyap = mfrnn.dmft_lyapunov(ens, sol, throw=False)
    return sol.delta0, lyap.lyapunov, lyap.tau_half, lyap.result._value


def mfrnn_grad(gs, phi):
    def total(gs_):
        ens = mfrnn.GaussianEnsemble(gs_, jnp.zeros_like(gs_), jnp.zeros_like(gs_), phi=phi)
        lyap = mfrnn.dmft_lyapunov(ens, throw=False)
        return jnp.sum(lyap.lyapunov + lyap.tau_half)

    return jax.grad(total)(gs)


def _timed(fn, *args, repeats=3):
    """The output and the fastest of `repeats` timed calls (single runs on a shared
    2-core machine vary by ~10 %)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return out, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 values of g, for tests")
    parser.add_argument("--n-g", type=int, default=256)
    parser.add_argument("--out", default="benchmarks/results/dmft.json")
    args = parser.parse_args()
    n_g = 16 if args.quick else args.n_g
    gs = jnp.linspace(1.05, 5.0, n_g)
    results = {"n_g": n_g, "g_range": [1.05, 5.0], "device": str(jax.devices()[0]),
               "platform": platform.platform(), "cpu_count": os.cpu_count()}

    for name, phi in (("mfrnn", mfrnn.Tanh()), ("mfrnn_order151", mfrnn.Tanh(order=151))):
        fwd = jax.jit(lambda g, phi=phi: mfrnn_forward(g, phi))
        start = time.perf_counter()
        compiled = fwd.lower(gs).compile()
        t_compile = time.perf_counter() - start
        out, t_run = _timed(compiled, gs)
        grad = jax.jit(lambda g, phi=phi: mfrnn_grad(g, phi))
        start = time.perf_counter()
        grad_c = grad.lower(gs).compile()
        t_grad_compile = time.perf_counter() - start
        _, t_grad = _timed(grad_c, gs)
        results[name] = {
            "compile_s": t_compile,
            "run_s": t_run,
            "grad_compile_s": t_grad_compile,
            "grad_run_s": t_grad,
            "grad_over_forward": t_grad / t_run,
            "all_converged": bool(np.all(np.asarray(out[3]) == 0)),
            "delta0": np.asarray(out[0]).tolist(),
            "lyapunov": np.asarray(out[1]).tolist(),
        }
        print(f"{name}: compile {t_compile:.1f} s, run {t_run:.2f} s "
              f"({n_g / t_run:.1f} g/s), grad {t_grad:.2f} s (x{t_grad / t_run:.2f})", flush=True)

    start = time.perf_counter()
    base = np.array([scipy_point(float(g)) for g in np.asarray(gs)])
    t_scipy = time.perf_counter() - start
    print(f"scipy loop: {t_scipy:.2f} s ({n_g / t_scipy:.1f} g/s)", flush=True)
    ref_d0 = np.asarray(results["mfrnn"]["delta0"])
    ref_lam = np.asarray(results["mfrnn"]["lyapunov"])
    results["scipy_loop"] = {
        "run_s": t_scipy,
        "max_abs_err_delta0": float(np.max(np.abs(base[:, 0] - ref_d0))),
        "max_rel_err_lyapunov": float(np.max(np.abs(base[:, 1] / ref_lam - 1))),
    }
    fast = results["mfrnn_order151"]
    fast["max_abs_err_delta0"] = float(np.max(np.abs(np.asarray(fast["delta0"]) - ref_d0)))
    fast["max_rel_err_lyapunov"] = float(
        np.max(np.abs(np.asarray(fast["lyapunov"]) / ref_lam - 1))
    )
    for name in ("mfrnn", "mfrnn_order151"):
        r = results[name]
        r["speedup_vs_scipy"] = t_scipy / r["run_s"]
        r["speedup_vs_scipy_with_compile"] = t_scipy / (r["run_s"] + r["compile_s"])
        print(f"{name}: x{r['speedup_vs_scipy']:.1f} vs scipy "
              f"(x{r['speedup_vs_scipy_with_compile']:.1f} counting compilation)")
    print(f"scipy accuracy vs mfrnn: Delta0 {results['scipy_loop']['max_abs_err_delta0']:.1e}, "
          f"lambda {results['scipy_loop']['max_rel_err_lyapunov']:.1e} (relative)")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
