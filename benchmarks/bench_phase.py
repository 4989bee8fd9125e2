"""Benchmark: phase diagrams of rank-one + random networks, mfrnn (`phase_diagram`: one
call, compiled stages over dense batches) vs a scipy loop solving the same equations
point by point.

    python benchmarks/bench_phase.py [--case zero_mean|mo_means|mixture_input] [--quick]
                                     [--n N] [--scipy-n 20] [--repeats 3] [--out ...]

Cases (tanh, 61 quadrature nodes, g in [0.1, 3] on the first axis, an n x n grid):
- `zero_mean` (issue #4, the default): zero-mean loadings (sigma_m = 1, sigma_n = 3),
  sigma_mn in [0, 2.9]; n = 200. Output `benchmarks/results/phase.json`.
- `mo_means` (Mastrogiuseppe & Ostojic 2018): mean overlap, M_m = 1.1,
  s_m = s_n = 1, M_n in [0, 3]; n = 200. Output `benchmarks/results/phase_mo_means.json`.
- `mixture_input`: two equal populations of rank-one loadings (m, n, I), means
  (0, 0.5, 1) and (0, -0.5, -1), covariances Var (m, n, I) = (1, 17, 1), Cov(m, n) = 3
  and (0.25, 1, 0.25), Cov(m, n) = 0.3; one constant input u in [0, 2]; n = 100.
  Output `benchmarks/results/phase_mixture_input.json`.
Per point: fixed points from kappa = 0, +-kappa guesses with bulk radius and outliers;
where none is stable, the chaotic state from the kappa = 0 guess, its kappa-stability
and, if unstable, the chaotic state from a kappa != 0 guess.
- mfrnn: `phase_diagram` (61-node trapezoid quadrature); compile time reported apart
  (a first run compiles; `--repeats` more with slightly changed values are timed).
- Both sides are timed `--repeats` times and their rates come from the fastest run (on
  a shared 2-core machine single runs vary by ~10 %); every time is in the JSON.
- scipy loop, per point: `scipy.optimize.fsolve` on the same residuals with 61-node
  Gauss-Hermite averages (two-point averages on the 61 x 61 product rule), the same
  stability formulas, the same labelling (-1: the loop's solvers failed). `zero_mean`
  uses a specialised one-population loop (kappa = 0 chaos solved with kappa held at 0);
  the other cases a general Gaussian-mixture one (populations vectorised in numpy) with
  the equations of mfrnn's low-rank theory: per population p, s = (kappa, u),
  x ~ N(mu_p = b + a^p_(m,I).s, L_p + D), L_p = s^T Sigma^p_(m,I) s. The loop runs on a
  `--scipy-n` x `--scipy-n` sub-grid (spread over the full grid) because the full grid
  takes hours; its rate (points/s) is compared, and its labels are checked against
  mfrnn's at those points (where both converged).
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time


# `--host-devices K` splits the CPU into K XLA devices before JAX starts (XLA runs these
# vmapped solves on one thread per device): phase_diagram shards each batch over them.
if "--host-devices" in sys.argv:
    _k = sys.argv[sys.argv.index("--host-devices") + 1]
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_k}"
    ).strip()

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


# ----------------------------------------------------------------------------------
# General cases: one point of a Gaussian mixture of rank-R loadings (m, n, I) per
# population, in numpy (populations vectorised), the equations of mfrnn's lowrank module.

Z3 = Z[None, :, None]  # shared node of the two-point rule
Z2 = Z[None, None, :]  # private node


def nodes(mu, delta):
    """Per population the Gauss-Hermite nodes of N(mu_p, delta_p): (P, 61)."""
    return mu[:, None] + np.sqrt(np.maximum(delta, 0.0))[:, None] * Z


class MixturePoint:
    """One grid point: fractions (P,), means (P, k), covs (P, k, k), loadings ordered
    (m_1..m_R, n_1..n_R, I_1..I_S), random part g, bias b, constant inputs u (S,)."""

    def __init__(self, fractions, means, covs, g, rank, inputs=(), bias=0.0):
        R = rank
        self.w = np.asarray(fractions, float)
        means, covs = np.asarray(means, float), np.asarray(covs, float)
        self.u = np.asarray(inputs, float).reshape(-1)
        S = self.u.size
        i_m, i_n = np.arange(R), np.arange(R, 2 * R)
        iw = np.concatenate([i_m, np.arange(2 * R, 2 * R + S)])  # loadings that drive x
        self.R, self.g, self.g2, self.bias = R, float(g), float(g) ** 2, float(bias)
        self.M_w = means[:, iw]  # (P, R + S)
        self.C_w = covs[:, iw][:, :, iw]  # (P, R + S, R + S)
        self.a_n, self.a_m = means[:, i_n], means[:, i_m]  # (P, R)
        self.C_nw = covs[:, i_n][:, :, iw]  # (P, R, R + S)
        self.C_mw = covs[:, i_m][:, :, iw]
        self.c_nm = covs[:, i_n][:, :, i_m]  # (P, R, R)
        second = self.a_n**2 + np.diagonal(covs[:, i_n][:, :, i_n], 0, 1, 2)
        self.scale = np.sqrt(self.w @ second) + 0.5  # (R,): |kappa| <= RMS of n, + 0.5
        self.tol = 1e-6 * np.max(self.scale)

    # --- statistics of x and the residuals

    def stats(self, kappa):
        """mu_p, L_p (P,) and Cov_p(n, x), Cov_p(m, x) (P, R) at s = (kappa, u)."""
        s = np.concatenate([kappa, self.u])
        mu = self.bias + self.M_w @ s
        L = np.einsum("i,pij,j->p", s, self.C_w, s)
        return mu, L, self.C_nw @ s, self.C_mw @ s

    def kappa_map(self, t, k_n):
        """sum_p alpha_p (a^p_n <phi>_p + Cov_p(n, x) <phi'>_p), from t = tanh(nodes)."""
        m1, m1p = t @ W, (1.0 - t * t) @ W
        return self.w @ (self.a_n * m1[:, None] + k_n * m1p[:, None])

    @staticmethod
    def kappa_norm(kappa, nonzero):
        # On a kappa != 0 branch the residual is divided by |kappa| (kappa = 0 no root).
        return np.sqrt(np.sum(kappa**2) + 1e-300) if nonzero else 1.0

    def static_residual(self, y, nonzero):
        kappa, D = y[: self.R], y[self.R]
        mu, L, k_n, _ = self.stats(kappa)
        t = np.tanh(nodes(mu, L + D))
        e_k = (kappa - self.kappa_map(t, k_n)) / self.kappa_norm(kappa, nonzero)
        return np.append(e_k, D - self.g2 * (self.w @ ((t * t) @ W)))

    @staticmethod
    def two_point(mu, top, low, with_Phi=True):
        """[phi] and [Phi] per population (variances top, covariance low): shared part
        sqrt|low| z1, private parts sqrt(top - |low|) z2, on the 61 x 61 product rule."""
        x = (mu[:, None, None] + np.sqrt(np.abs(low))[:, None, None] * Z3
             + np.sqrt(np.maximum(top - np.abs(low), 0.0))[:, None, None] * Z2)
        flip = (low < 0)[:, None]  # the other point has -z1: nodes reversed

        def corr(f):
            F = f(x) @ W  # (P, 61): private part averaged
            return (F * np.where(flip, F[:, ::-1], F)) @ W

        return corr(np.tanh), (corr(Phi) if with_Phi else None)

    def potential_gap(self, mu, L, d_inf, q, with_energy=True, x_top=None):
        """(V(D0) - V(D_inf)) / q^2 and V'(D_inf), D0 = D_inf + q; x_top: the nodes
        of N(mu_p, L_p + D0) if already at hand."""
        d0 = d_inf + q
        top, low = L + d0, L + d_inf
        c_phi, c_Phi = self.two_point(mu, top, low, with_energy)
        e_inf = d_inf - self.g2 * (self.w @ c_phi)
        if not with_energy:
            return None, e_inf
        x_top = nodes(mu, top) if x_top is None else x_top
        v_top = -0.5 * d0**2 + self.g2 * (self.w @ (Phi(x_top) ** 2 @ W))
        v_inf = -0.5 * d_inf**2 + self.g2 * (self.w @ c_Phi)
        return (v_top - v_inf) / q**2, e_inf

    def chaos_residual(self, y, nonzero):
        R = self.R
        kappa, d_inf, q = y[:R], y[R], np.exp(y[R + 1])
        mu, L, k_n, _ = self.stats(kappa)
        x_top = nodes(mu, L + d_inf + q)
        energy, e_inf = self.potential_gap(mu, L, d_inf, q, x_top=x_top)
        t = np.tanh(x_top)
        e_k = (kappa - self.kappa_map(t, k_n)) / self.kappa_norm(kappa, nonzero)
        return np.concatenate([e_k, [e_inf, energy]])

    # --- stability (Stein's lemma, as mfrnn's gain averages and latent matrix)

    def gains(self, mu, delta):
        """Per population: <phi'>, <phi''>, <phi'''>, <phi phi'>, <phi'^2 + phi phi''>,
        <phi'^2>."""
        t = np.tanh(nodes(mu, delta))
        s = 1.0 - t * t
        d1, d2, d3 = s @ W, (-2.0 * t * s) @ W, (s * (6.0 * t * t - 2.0)) @ W
        pp1, pp2, s2 = (t * s) @ W, (s * s - 2.0 * t * t * s) @ W, (s * s) @ W
        return d1, d2, d3, pp1, pp2, s2

    def latent_matrix(self, k_n, k_m, d1, d2, d3):
        """A = sum_p alpha_p E_p[n m^T phi'] (R x R)."""
        outer = lambda u, v: u[:, :, None] * v[:, None, :]
        e = ((outer(self.a_n, self.a_m) + self.c_nm) * d1[:, None, None]
             + (outer(self.a_n, k_m) + outer(k_n, self.a_m)) * d2[:, None, None]
             + outer(k_n, k_m) * d3[:, None, None])
        return np.tensordot(self.w, e, 1)

    def fixed_point_stability(self, kappa, D):
        """Bulk radius and the leading outlier eigenvalue (z - 1) of a fixed point:
        [[A, g^2 B], [C^T, g^2 d]] with B = E[n phi''], C = E[phi phi' m],
        d = E[phi'^2 + phi phi'']."""
        mu, L, k_n, k_m = self.stats(kappa)
        d1, d2, d3, pp1, pp2, s2 = self.gains(mu, L + D)
        A = self.latent_matrix(k_n, k_m, d1, d2, d3)
        B = self.w @ (self.a_n * d2[:, None] + k_n * d3[:, None])
        C = self.w @ (self.a_m * pp1[:, None] + k_m * pp2[:, None])
        M = np.block([[A, self.g2 * B[:, None]], [C[None, :], self.g2 * (self.w @ pp2)]])
        bulk = self.g * np.sqrt(self.w @ s2)
        return bulk, np.max(np.linalg.eigvals(M).real) - 1.0

    def chaos_kappa_stability(self, kappa, delta0):
        """Leading eigenvalue of -1 + A with the chaotic state's time-averaged gains."""
        mu, L, k_n, k_m = self.stats(kappa)
        d1, d2, d3, *_ = self.gains(mu, L + delta0)
        return np.max(np.linalg.eigvals(self.latent_matrix(k_n, k_m, d1, d2, d3)).real) - 1.0

    # --- solves

    def initial_variance(self, kappa):
        """30 iterations of D <- g^2 sum_p alpha_p <phi^2>_p with kappa held."""
        mu, L, _, _ = self.stats(kappa)
        D = 0.5 * min(self.g2, 1.0)
        for _ in range(30):
            t = np.tanh(nodes(mu, L + D))
            D = self.g2 * (self.w @ ((t * t) @ W))
        return D

    def solve_fixed(self, k0):
        nonzero = bool(np.any(k0 != 0))
        fn = lambda y: self.static_residual(y, nonzero)
        y0 = np.append(k0, self.initial_variance(k0))
        # fsolve's first steps can jump over the root (kappa's residual is flat far out);
        # if so, once more with a small initial step bound (mfrnn: trust region + Newton).
        for factor in (100.0, 1.0):
            y = optimize.fsolve(fn, y0, factor=factor, full_output=True)[0]
            kappa, D = y[: self.R], y[self.R]
            ok = bool(np.all(np.isfinite(y)) and np.max(np.abs(fn(y))) < 1e-8
                      and D >= -1e-10 and not (nonzero and np.sum(kappa**2) < 1e-12))
            if ok:
                break
        bulk, out = self.fixed_point_stability(kappa, D)
        _, L, _, _ = self.stats(kappa)
        quiescent = bool(np.all(L + max(D, 0.0) <= 1e-12) and np.sum(kappa**2) <= 1e-12)
        return dict(ok=ok, kappa=kappa, bulk=bulk, stable=bool(bulk < 1 and out < 0),
                    quiescent=quiescent)

    def chaos_guess(self, k0):
        """(D_inf, log q) with kappa held at k0: the root in log q of the energy balance
        / q^2 (> 0 at small q above onset, -> -inf at large q), D_inf from V'(D_inf) = 0."""
        mu, L, _, _ = self.stats(k0)
        d_start = self.initial_variance(k0)
        scale = 1.0 + d_start + self.g2

        def reduced(lq):
            q = np.exp(lq)
            d = optimize.newton(lambda d: self.potential_gap(mu, L, d, q, False)[1], d_start,
                                tol=1e-8, maxiter=16, disp=False)
            return self.potential_gap(mu, L, d, q)[0], d

        try:
            lq = optimize.brentq(lambda lq: reduced(lq)[0], np.log(1e-4 * scale),
                                 np.log(1e3 * scale), xtol=2e-2)
        except ValueError:  # no sign change in the bracket
            lq = np.log(scale)
        return reduced(lq)[1], lq

    def solve_chaos(self, k0):
        nonzero = bool(np.any(k0 != 0))
        fn = lambda y: self.chaos_residual(y, nonzero)
        y = optimize.fsolve(fn, np.concatenate([k0, self.chaos_guess(k0)]),
                            full_output=True)[0]
        R = self.R
        kappa, d_inf, q = y[:R], y[R], np.exp(y[R + 1])
        ok = bool(np.all(np.isfinite(y)) and np.max(np.abs(fn(y))) < 1e-8 and d_inf >= -1e-10
                  and not (nonzero and np.sum(kappa**2) < 1e-12))
        stable = ok and self.chaos_kappa_stability(kappa, d_inf + q) < 0
        return dict(ok=ok, kappa=kappa, stable=bool(stable))

    def phase(self):
        """Phase code (0..3; -1 when the solvers failed), labelled as mfrnn's phase
        diagram: stability decides, not which root a solver landed on."""
        R, eye = self.R, np.eye(self.R)
        guesses = np.concatenate([np.zeros((1, R)), eye * self.scale, -eye * self.scale])
        fixed = [self.solve_fixed(k) for k in guesses]
        size = lambda s: np.sqrt(np.sum(s["kappa"] ** 2))
        nonzero = [s["ok"] and size(s) > self.tol for s in fixed]
        if any(nz and s["stable"] for nz, s in zip(nonzero, fixed)):
            return 1  # (with inputs the kappa = 0 guess may land here too)
        zero = fixed[0]
        if zero["ok"] and not nonzero[0] and zero["stable"]:
            return 0 if zero["quiescent"] else 1
        # kappa = 0 destabilised by an outlier only: a kappa != 0 fixed point must exist.
        missing = zero["bulk"] < 1 and not zero["stable"] and not any(nonzero)
        if not zero["ok"] or missing:
            return -1
        chaos = self.solve_chaos(np.zeros(R))
        if chaos["ok"] and size(chaos) <= self.tol and chaos["stable"]:
            return 2
        for r in range(R):  # kappa != 0 chaos: + along each latent axis
            chaos = self.solve_chaos(0.1 * self.scale[r] * eye[r])
            if chaos["ok"] and size(chaos) > self.tol:
                return 3
        return -1


# ----------------------------------------------------------------------------------
# The cases: the second axis, the library's phase diagram over the grid, one scipy point.

PHI_J = mfrnn.Tanh(order=61)

# mixture_input: loadings (m, n, I) of two equal populations.
MIX_FRACTIONS = np.array([0.5, 0.5])
MIX_MEANS = np.array([[0.0, 0.5, 1.0], [0.0, -0.5, -1.0]])
MIX_COVS = np.array([
    [[1.0, 3.0, 0.0], [3.0, 17.0, 0.0], [0.0, 0.0, 1.0]],
    [[0.25, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 0.25]],
])


def zero_mean_library(G, Y):
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.asarray(Y), sigma_m=SIGMA_M, sigma_n=SIGMA_N, g=jnp.asarray(G), phi=PHI_J
    )
    return mfrnn.phase_diagram(ens, throw=False)


def mo_means_library(G, Y):
    ens = mfrnn.LowRankEnsemble.rank_one(
        mean_m=1.1, mean_n=jnp.asarray(Y), sigma_m=1.0, sigma_n=1.0, g=jnp.asarray(G), phi=PHI_J
    )
    return mfrnn.phase_diagram(ens, throw=False)


def mo_means_point(g, mean_n):
    return MixturePoint([1.0], [[1.1, mean_n]], [np.eye(2)], g, rank=1).phase()


def mixture_input_library(G, Y):
    ens = mfrnn.MixtureEnsemble(
        rank=1, n_inputs=1, fractions=MIX_FRACTIONS, means=MIX_MEANS, covs=MIX_COVS,
        g=jnp.asarray(G), phi=PHI_J,
    )
    return mfrnn.phase_diagram(ens, inputs=jnp.asarray(Y)[..., None], throw=False)


def mixture_input_point(g, u):
    return MixturePoint(MIX_FRACTIONS, MIX_MEANS, MIX_COVS, g, rank=1, inputs=[u]).phase()


# case: (second axis, its range, default n, library over the grid, scipy label at a point)
CASES = {
    "zero_mean": ("sigma_mn", (0.0, 2.9), 200, zero_mean_library,
                  lambda g, y: scipy_point(g, y)[0]),
    "mo_means": ("mean_n", (0.0, 3.0), 200, mo_means_library, mo_means_point),
    "mixture_input": ("u", (0.0, 2.0), 100, mixture_input_library, mixture_input_point),
}


def phase_counts(labels):
    """Counts of the labels -1..4 (and any other present), named by `mfrnn.PHASE_NAMES`;
    -1 is "failed"."""
    names = tuple(mfrnn.PHASE_NAMES)
    labels = np.asarray(labels)
    counts = {}
    for code in sorted(set(range(-1, len(names) - 1)) | set(np.unique(labels).tolist())):
        if 0 <= code < len(names):
            name = names[code]
        else:
            name = "failed" if code == -1 else f"phase_{code}"
        counts[name] = counts.get(name, 0) + int(np.sum(labels == code))
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=tuple(CASES), default="zero_mean")
    parser.add_argument("--quick", action="store_true",
                        help="8 x 8 grid, 4 x 4 sub-grid, for tests")
    parser.add_argument("--n", type=int, default=None,
                        help="grid is n x n (default 200; 100 for mixture_input)")
    parser.add_argument("--scipy-n", type=int, default=20, help="scipy sub-grid size")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each side (rates from the fastest)")
    parser.add_argument("--host-devices", type=int, default=1,
                        help="CPU cores as XLA devices (phase_diagram shards over them)")
    parser.add_argument("--out", default=None,
                        help="default benchmarks/results/phase.json for zero_mean, else "
                             "benchmarks/results/phase_{case}.json")
    args = parser.parse_args()
    axis_name, (y_lo, y_hi), n_default, library, scipy_label = CASES[args.case]
    n, sn = (8, 4) if args.quick else (args.n or n_default, args.scipy_n)
    g_axis = np.linspace(0.1, 3.0, n)
    y_axis = np.linspace(y_lo, y_hi, n)
    G, Y = np.meshgrid(g_axis, y_axis, indexing="ij")

    start = time.perf_counter()
    pd = library(G, Y)
    jax.block_until_ready(pd)
    first = time.perf_counter() - start
    runs = []
    base = Y
    for k in range(1, max(args.repeats, 1) + 1):
        Y = base * (1.0 - 1e-3 * k)  # new values, same compiled code
        start = time.perf_counter()
        pd = library(G, Y)
        jax.block_until_ready(pd)
        runs.append(time.perf_counter() - start)
    run = min(runs)
    compile_s = max(first - run, 0.0)

    idx = np.unique(np.linspace(0, n - 1, sn).round().astype(int))
    scipy_runs = []
    for _ in range(max(args.repeats, 1)):
        start = time.perf_counter()
        labels = np.array([[scipy_label(G[i, j], Y[i, j]) for j in idx] for i in idx])
        scipy_runs.append(time.perf_counter() - start)
    scipy_s = min(scipy_runs)
    n_scipy = labels.size
    phase = np.asarray(pd.phase)
    ours = phase[np.ix_(idx, idx)]
    ok = np.asarray(pd.success)[np.ix_(idx, idx)]
    both = ok & (labels >= 0)
    agree = float(np.mean((labels == ours)[both])) if np.any(both) else None

    rate = G.size / run
    scipy_rate = n_scipy / scipy_s
    results = {
        "benchmark": "phase",
        "case": args.case,
        "device": str(jax.devices()[0]),
        "device_count": jax.device_count(),
        "platform": platform.platform(),
        "grid": [n, n],
        "axes": {"g": [0.1, 3.0], axis_name: [y_lo, y_hi]},
        "mfrnn": {
            "seconds_run": run,
            "seconds_run_all": runs,
            "seconds_compile": compile_s,
            "points_per_second": rate,
            "points_per_second_with_compile": G.size / first,
            "failed_points": int(np.sum(~np.asarray(pd.success))),
            "phase_counts": phase_counts(phase),
        },
        "scipy": {"points": n_scipy, "seconds": scipy_s, "seconds_all": scipy_runs,
                  "points_per_second": scipy_rate,
                  "failed_points": int(np.sum(labels < 0)), "phase_counts": phase_counts(labels)},
        "ratio_points_per_second": rate / scipy_rate,
        "ratio_with_compile": (G.size / first) / scipy_rate,
        "label_agreement_on_scipy_subgrid": agree,
        "compared_points": int(np.sum(both)),
    }
    default_out = "phase.json" if args.case == "zero_mean" else f"phase_{args.case}.json"
    if args.host_devices > 1:
        default_out = default_out.replace(".json", f"_{args.host_devices}dev.json")
    out = pathlib.Path(args.out or f"benchmarks/results/{default_out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
