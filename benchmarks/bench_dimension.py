"""Benchmark: activity dimension of random-mode networks over a (g, effective rank) grid,
mfrnn (vmapped, jitted) against a numpy/scipy loop doing the same integrals in the same
run, and the simulation-side estimator at N = 4000.

    python benchmarks/bench_dimension.py [--quick] [--out benchmarks/results/dimension.json]
    python benchmarks/bench_dimension.py --finite-size [--sizes 1000 2000 4000 8000]

`--finite-size` (slow: about an hour on 2 cores) measures instead simulated against
theoretical PR^phi as N grows (tanh, g_eff = 2, effective ranks inf, 1 and 0.25; the flat
spectrum by default, `--spectrum exponential` for the paper's, alpha = 1 below rank 1)
with `compare_dimension` (key 7, 16 trajectories x 20 tau after 40 tau, Tsit5 at dt =
0.5; max(4, 32000 / N) networks: 32, 16, 8, 4 at N = 1000, 2000, 4000, 8000).
It reports the pooled ratio (ratio of network averages: what the theory computes), its
bootstrap error over networks, the plain mean of per-network ratios (biased upward
by the quenched scatter), how often a 15 % check of four networks would pass (resampling
the networks) and, for factored couplings (M < N / 2), the largest real part of the
eigenvalues of <phi'> J per network (beyond 1 in a few percent of networks at N = 4000,
rank 0.25; never as N -> inf at g_eff = 2, where the bulk ends at sqrt(nu) = 0.974), and
writes benchmarks/results/dimension_finite_size.json.

    python benchmarks/bench_dimension.py --equilibration [--rank 0.25] [--n 4000]

`--equilibration` (3-6 minutes at N = 4000, rank 0.25) follows the pooled PR^phi in
20-tau windows up to 160 tau after the start (32 networks, key 31, 8 trajectories each):
networks with collective modes at the edge of stability keep building them up long after
the default 40 tau transient (docs/theory/random-modes.md).

Work (issue 12): PR^phi / N and PR^x / N for 64 values of g in [1.1, 4] x 64 effective
ranks in [0.01, 100] (tanh).
- mfrnn: `activity_dimension` on g of shape (64, 1) and ranks (1, 64) (the spectra are
  computed once per g), and on the full (64, 64) meshgrid (4096 spectra); first call
  (compilation + run) and second call (run) are timed separately (the meshgrid once).
- numpy/scipy loop, per g: Delta0 by brentq on the energy condition (Gauss-Hermite, 150
  nodes), tau(Delta) by cumulative trapezoid (sqrt substitution at the top, log spacing
  at the bottom), Delta(tau) on a uniform grid by interpolation, C^x(w) by FFT (step 0.1,
  2^14 points, |w| < 8), then for
  every rank the double integral of Psi^phi and Psi^x (Eq. 38 / I22) on the FFT's
  frequency grid (numpy, vectorised over the 2-d grid).
- estimator: `participation_ratio` (cross-trajectory, Gram matrices) on activity of 16
  trajectories x 80 samples x 4000 units, against numpy forming the 16 covariance
  matrices (N x N) for the same cross-block estimate.
Accuracies are max relative deviations from mfrnn (whose half-resolution check is
reported too).
"""

import argparse
import json
import os
import pathlib
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)
import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import mfrnn
import numpy as np
from scipy import integrate, optimize


GH_Z, GH_W = np.polynomial.hermite_e.hermegauss(150)
GH_W = GH_W / GH_W.sum()


def _logcosh(x):
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2 * ax)) - np.log(2)


def _two_point(f, d0, d):
    d = np.atleast_1d(d)[:, None, None]
    x = np.sqrt(d) * GH_Z[None, :, None] + np.sqrt(np.maximum(d0 - d, 0)) * GH_Z[None, None, :]
    return (f(x) @ GH_W) ** 2 @ GH_W


def scipy_point(g, kappas):
    """PR^phi, PR^x for one g and an array of kappa = 1 / effective rank."""
    def energy(d0):
        p = _logcosh(np.sqrt(d0) * GH_Z)
        return g * g * (GH_W @ p**2 - (GH_W @ p) ** 2) - d0 * d0 / 2

    d0 = optimize.brentq(energy, 1e-6, 200.0, xtol=1e-13, rtol=1e-13)
    V = lambda d: -0.5 * d * d + g * g * _two_point(_logcosh, d0, d)
    v0 = -0.5 * d0 * d0 + g * g * (GH_W @ _logcosh(np.sqrt(d0) * GH_Z) ** 2)
    s = np.linspace(0, np.sqrt(d0 / 2), 400)
    w_up = np.maximum(v0 - V(d0 - s**2), 1e-300)
    slope = g * g * (GH_W @ np.tanh(np.sqrt(d0) * GH_Z) ** 2) - d0
    tau_up = integrate.cumulative_trapezoid(
        np.where(s > 0, 2 * s / np.sqrt(2 * w_up), 2 / np.sqrt(2 * slope)), s, initial=0.0
    )
    d_low = np.geomspace(d0 / 2, 1e-6 * d0, 600)
    w_low = np.maximum(V(0.0) - V(d_low), 1e-300)
    tau_low = tau_up[-1] - integrate.cumulative_trapezoid(
        d_low / np.sqrt(2 * w_low), np.log(d_low), initial=0.0
    )
    tau = np.concatenate([tau_up, tau_low[1:]])
    delta = np.concatenate([d0 - s**2, d_low[1:]])
    h, n_fft = 0.1, 2**14
    grid = h * np.arange(n_fft // 2)
    prof = np.interp(grid, tau, delta, right=0.0)
    full = np.concatenate([prof, [0.0], prof[:0:-1]])
    cx = h * np.real(np.fft.fft(full))
    w = 2 * np.pi * np.fft.fftfreq(n_fft, h)
    keep = np.abs(w) < 8.0
    w, cx = w[keep], cx[keep]
    dw = 2 * np.pi / (n_fft * h)
    cphi = (1 + w**2) * cx / g**2
    dphi = GH_W @ (1 / np.cosh(np.sqrt(d0) * GH_Z) ** 2)
    phi2 = GH_W @ np.tanh(np.sqrt(d0) * GH_Z) ** 2
    nu = (g * dphi) ** 2
    X = (1 + 1j * w[:, None]) * (1 + 1j * w[None, :])
    den = np.abs(X - nu) ** 2
    base_phi = np.einsum("i,j,ij->", cphi, cphi, np.abs(X) ** 2 / den)
    extra_phi = np.einsum("i,j,ij->", cphi, cphi, nu**2 / den)
    base_x = np.einsum("i,j,ij->", cx, cx, np.abs(X) ** 2 / den)
    extra_x = np.einsum("i,j,ij->", cx, cx, nu**2 / den)
    norm = (dw / (2 * np.pi)) ** 2
    pr_phi, pr_x = [], []
    for kappa in kappas:  # the same 2-d integrals per effective rank
        pr_phi.append(phi2**2 / (norm * (base_phi + kappa * extra_phi)))
        pr_x.append(d0**2 / (norm * ((2 + kappa) * base_x - extra_x)))
    return np.array(pr_phi), np.array(pr_x)


def _timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def finite_size(sizes, out, spectrum="flat"):
    """Simulated / theoretical PR^phi against N (see the module docstring)."""
    results = {"g": 2.0, "phi": "tanh", "spectrum": spectrum, "key": 7,
               "n_trajectories": 16, "t_transient": 40.0, "t_block": 20.0, "dt": 0.5,
               "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), "points": []}
    rng = np.random.default_rng(0)
    for rank in (None, 1.0, 0.25):
        ens = mfrnn.RandomModeEnsemble(2.0, rank, spectrum=spectrum)
        for n in sizes:
            n_networks = max(4, 32000 // n)
            start = time.perf_counter()
            cmp = mfrnn.compare_dimension(
                ens, n, key=jax.random.key(7), n_networks=n_networks, n_trajectories=16,
                t_transient=40.0, t_block=20.0, dt=0.5, max_lag=10.0,
            )
            theory = float(cmp.theory.dimension.pr_phi)
            ratio = np.asarray(cmp.pr_phi) / theory
            # pooled = sum(num) / sum(den); per network pr = num / den with num nearly
            # fixed, so resample the harmonic mean for the pooled ratio's error.
            boot = [1.0 / np.mean(1.0 / rng.choice(ratio, n_networks)) for _ in range(2000)]
            four = [1.0 / np.mean(1.0 / rng.choice(ratio, 4, replace=False)) for _ in range(2000)]
            point = {
                "effective_rank": rank, "n": n, "n_networks": n_networks,
                "pooled_ratio": float(cmp.pooled_pr_phi) / theory,
                "pooled_ratio_err": float(np.std(boot)),
                "pooled_ratio_x": float(cmp.pooled_pr_x / cmp.theory.dimension.pr_x),
                "mean_ratio": float(np.mean(ratio)),
                "ratio_cv": float(np.std(ratio, ddof=1) / np.mean(ratio)),
                "ratios": ratio.tolist(),
                "delta0_ratio": float(np.mean(cmp.delta0) / cmp.theory.dimension.delta0),
                "pass_probability_4_networks": float(np.mean(np.abs(np.array(four) - 1) < 0.15)),
                "max_re_gain_eigenvalue": _edge(ens, n, n_networks, float(cmp.theory.nu)),
                "seconds": time.perf_counter() - start,
            }
            results["points"].append(point)
            print(f"rank {rank}, N = {n}: pooled PR_sim / PR_theory = "
                  f"{point['pooled_ratio']:.3f} +- {point['pooled_ratio_err']:.3f}, mean of "
                  f"per-network ratios {point['mean_ratio']:.3f} (scatter "
                  f"{point['ratio_cv']:.2f}; {n_networks} networks, "
                  f"{point['seconds']:.0f} s); a 15 % check of 4 networks passes in "
                  f"{100 * point['pass_probability_4_networks']:.0f} % of draws", flush=True)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def _edge(ensemble, n, n_networks, nu):
    """Per network of `compare_dimension(key=7)`: the largest real part of the
    eigenvalues of <phi'> J (factored couplings only: M x M; None for dense ones)."""
    out = []
    for key_net in jax.random.split(jax.random.key(7), n_networks):
        net = ensemble.sample(n, key=jax.random.split(key_net)[0])
        if not isinstance(net, mfrnn.RandomModeNetwork) or 2 * net.n_modes >= n:
            return None
        eig = np.asarray(mfrnn.coupling_spectra(net).eigenvalues)
        out.append(float(np.max(eig.real)) * np.sqrt(nu) / float(ensemble.g))
    return out


@eqx.filter_jit
def _trajectories(net, x0s, ts):
    """Tsit5 at fixed step 0.5, as `compare_dimension`; states after ts[0]."""
    def one(x0):
        return mfrnn.simulate(
            net, x0, ts, solver=dfx.Tsit5(), stepsize_controller=dfx.ConstantStepSize(),
            dt0=0.5, max_steps=None,
        ).ys[1:]

    return jax.vmap(one)(x0s)


def equilibration(n, rank, out, n_networks=32, n_trajectories=8, t_end=160.0, window=20.0):
    """Pooled PR^phi / theory in consecutive windows after the start (x = J phi(y), as
    in `compare_dimension`), per network and pooled (harmonic mean of the per-network
    ratios: tr C is nearly the same for every network)."""
    ens = mfrnn.RandomModeEnsemble(2.0, rank, spectrum=mfrnn.ModeSpectrum.flat)
    theory = mfrnn.activity_dimension(ens)
    delta0, target = float(theory.delta0), float(theory.pr_phi)
    per_window = int(round(window / 0.5))
    n_windows = int(round(t_end / window))
    ts = jnp.asarray(0.5 * np.arange(n_windows * per_window + 1), jnp.float32)
    ratios = []
    start = time.perf_counter()
    for key_net in jax.random.split(jax.random.key(31), n_networks):
        k_sample, k_x0 = jax.random.split(key_net)
        net = mfrnn.to_dtype(ens.sample(n, key=k_sample), jnp.float32)
        if isinstance(net, mfrnn.RandomModeNetwork) and 2 * net.n_modes >= n:
            net = mfrnn.DenseNetwork(net.dense_matrix(), net.phi, tau=net.tau)
        ys = np.sqrt(delta0) * jax.random.normal(k_x0, (n_trajectories, n), jnp.float32)
        x0s = jax.vmap(lambda y: net.recurrent(net.phi(y)))(ys)
        rates = net.phi(_trajectories(net, x0s, ts))
        rates = rates.reshape(n_trajectories, n_windows, per_window, n)
        ratios.append([float(mfrnn.participation_ratio(rates[:, w], mean=0.0).pr) / target
                       for w in range(n_windows)])
        print(f"network {len(ratios)}: " + " ".join(f"{r:.2f}" for r in ratios[-1])
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    ratios = np.array(ratios)
    pooled = 1.0 / np.mean(1.0 / ratios, axis=0)
    print("window start (tau): " + " ".join(f"{window * w:.0f}" for w in range(n_windows)))
    print("pooled PR^phi / theory: " + " ".join(f"{p:.3f}" for p in pooled))
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": n, "effective_rank": rank, "g": 2.0, "key": 31,
                               "n_trajectories": n_trajectories, "window": window,
                               "pooled_ratio": pooled.tolist(), "ratios": ratios.tolist()},
                              indent=2))
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 x 8 grid, for tests")
    parser.add_argument("--out", default=None)
    parser.add_argument("--finite-size", action="store_true",
                        help="simulated / theoretical PR against N instead (slow)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--spectrum", default="flat", choices=["flat", "exponential"],
                        help="mode spectrum for --finite-size")
    parser.add_argument("--equilibration", action="store_true",
                        help="pooled PR in windows up to 160 tau after the start instead")
    parser.add_argument("--rank", type=float, default=0.25, help="for --equilibration")
    parser.add_argument("--n", type=int, default=4000, help="for --equilibration")
    args = parser.parse_args()
    if args.equilibration:
        equilibration(args.n, args.rank,
                      args.out or "benchmarks/results/dimension_equilibration.json")
        return
    if args.finite_size:
        finite_size(args.sizes, args.out or "benchmarks/results/dimension_finite_size.json",
                    args.spectrum)
        return
    args.out = args.out or "benchmarks/results/dimension.json"
    n = 8 if args.quick else 64
    gs = np.linspace(1.1, 4.0, n)
    ranks = np.geomspace(0.01, 100.0, n)
    results = {"grid": [n, n], "g_range": [1.1, 4.0], "rank_range": [0.01, 100.0],
               "device": str(jax.devices()[0]), "platform": platform.platform(),
               "cpu_count": os.cpu_count()}

    ens = mfrnn.RandomModeEnsemble(jnp.asarray(gs)[:, None], jnp.asarray(ranks)[None, :])
    run = lambda e: mfrnn.activity_dimension(e, throw=False)
    sol, t_first = _timed(lambda: run(ens))
    _, t_run = _timed(lambda: run(ens))
    G, R = np.meshgrid(gs, ranks, indexing="ij")
    mesh = mfrnn.RandomModeEnsemble(jnp.asarray(G), jnp.asarray(R))
    sol_mesh, t_mesh = _timed(lambda: run(mesh))  # one call (its compilation is minor)
    pr_phi, pr_x = np.asarray(sol.pr_phi), np.asarray(sol.pr_x)
    results["mfrnn"] = {
        "first_call_s": t_first, "run_s": t_run, "compile_s": t_first - t_run,
        "meshgrid_call_s": t_mesh,
        "all_converged": bool(np.all(mfrnn.result_codes(sol) == 0)),
        "max_half_resolution_change": float(np.nanmax(np.asarray(sol.error))),
        "meshgrid_max_abs_diff": float(np.nanmax(np.abs(np.asarray(sol_mesh.pr_phi) - pr_phi))),
    }
    print(f"mfrnn: first call {t_first:.1f} s, run {t_run:.3f} s; meshgrid run {t_mesh:.2f} s",
          flush=True)

    start = time.perf_counter()
    base = [scipy_point(g, 1.0 / ranks) for g in gs]
    t_scipy = time.perf_counter() - start
    b_phi = np.array([b[0] for b in base])
    b_x = np.array([b[1] for b in base])
    results["scipy_loop"] = {
        "run_s": t_scipy,
        "max_rel_err_pr_phi": float(np.max(np.abs(b_phi / pr_phi - 1))),
        "max_rel_err_pr_x": float(np.max(np.abs(b_x / pr_x - 1))),
    }
    r = results["mfrnn"]
    r["speedup_vs_scipy"] = t_scipy / t_run
    r["speedup_vs_scipy_with_compile"] = t_scipy / t_first
    r["meshgrid_speedup_vs_scipy"] = t_scipy / t_mesh
    print(f"scipy loop: {t_scipy:.2f} s; mfrnn x{r['speedup_vs_scipy']:.0f} "
          f"(x{r['speedup_vs_scipy_with_compile']:.1f} with compilation, meshgrid "
          f"x{r['meshgrid_speedup_vs_scipy']:.1f}); scipy deviation "
          f"{results['scipy_loop']['max_rel_err_pr_phi']:.1e}", flush=True)

    # Simulation-side estimator at N = 4000.
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(16, 80, 4000)).astype(np.float32))
    est = lambda: mfrnn.participation_ratio(xs, mean=0.0).pr
    _, t_est_first = _timed(est)
    _, t_est = _timed(est)

    def numpy_cross():
        x = np.asarray(xs, np.float64)
        covs = [b.T @ b / b.shape[0] for b in x]
        total = sum(covs)
        frob = np.sum(total * total) - sum(np.sum(c * c) for c in covs)
        traces = np.array([np.trace(c) for c in covs])
        return (traces.sum() ** 2 - np.sum(traces**2)) / (4000 * frob)

    _, t_np = _timed(numpy_cross)
    results["estimator_n4000"] = {
        "shape": [16, 80, 4000], "first_call_s": t_est_first, "run_s": t_est,
        "numpy_covariance_matrices_s": t_np, "speedup_vs_numpy": t_np / t_est,
    }
    print(f"estimator N = 4000: {t_est:.3f} s (first {t_est_first:.2f} s), numpy N x N "
          f"covariances {t_np:.2f} s", flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
