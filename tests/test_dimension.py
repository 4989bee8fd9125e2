"""Dimension of activity of random-mode networks (issue 12): the theory against the PRL
formula by scipy quadrature, an independent Fourier transform of the DMFT profile, the
low-rank and near-onset limits, gradients, grids, and sampled networks."""

import functools as ft
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import mfrnn
import numpy as np
import pytest
from helpers import finite_difference, scipy_gaussian_mean
from scipy import integrate


# One grid for the limit checks: g on its own axis, the effective rank on the other (the
# g-dependent spectra are computed once per g).
G = jnp.array([0.8, 1.05, 1.2, 2.0, 3.0])[:, None]  # 0.8: quiescent
RANKS = jnp.array([jnp.inf, 4.0, 1.0, 0.25, 1e-3, 1e-4])[None, :]


@pytest.fixture(scope="module")
def grid():
    return mfrnn.random_mode_spectra(mfrnn.RandomModeEnsemble(G, RANKS))


def _spectrum_numpy(spec, i, j):
    """C^x(w) of point (i, j) from the stored DMFT profile, re-implemented in numpy:
    trapezoid sum over the grid Delta(k h) plus the closed-form exponential tail."""
    profile = np.asarray(spec.profile[i, j])
    h = float(spec.step[i, j])
    a, rho, k = np.asarray(spec.tail[i, j])
    taus = h * np.arange(profile.shape[0])
    t_c = h * profile.shape[0]

    n = np.arange(12)[:, None]
    coeff, ratio = a * (n + 1) * rho**n, np.exp(-(n + 1) * k * h)

    def cx(w):
        w = np.atleast_1d(np.asarray(w, float))
        body = 2 * np.cos(np.outer(w, taus)) @ profile - profile[0]
        geometric = np.exp(1j * w * t_c) / (1 - ratio * np.exp(1j * w * h))
        return h * (body + 2 * np.sum(coeff * np.real(geometric), axis=0))

    return cx


def _quad(f, lo, hi, points=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return integrate.quad(f, lo, hi, points=points, epsabs=1e-13, epsrel=1e-11,
                              limit=400)[0]


@pytest.mark.parametrize("i,j", [(3, 0), (4, 2)])
def test_pr_against_prl_formula_by_scipy_quadrature(grid, i, j):
    """PRL (Clark, Abbott & Litwin-Kumar 2023) at kappa = 0 and the uncompact Psi^x of
    the PRX (Eq. I22) with its kappa, both as double integrals by scipy on the same
    DMFT spectrum."""
    g = float(G[i, 0])
    kappa = float(1 / RANKS[0, j])
    d = grid.dimension
    delta0 = float(d.delta0[i, j])
    dphi = scipy_gaussian_mean(lambda x: 1 / np.cosh(x) ** 2, 0.0, delta0)
    phi2 = scipy_gaussian_mean(lambda x: np.tanh(x) ** 2, 0.0, delta0)
    cx_array = _spectrum_numpy(grid, i, j)
    cx = ft.lru_cache(maxsize=None)(lambda w: float(cx_array(w)[0]))  # quad repeats nodes
    cphi = lambda w: (1 + w**2) * cx(w) / g**2
    s_phi = lambda w: dphi / (1 + 1j * w)
    s_x = lambda w: 1 / (1 + 1j * w)
    w_max = 25.0

    def psi_phi(w1, w2):
        gain = g**2 * s_phi(w1) * s_phi(w2)
        return (1 + kappa * abs(gain) ** 2) / abs(1 - gain) ** 2 * cphi(w1) * cphi(w2)

    def psi_x(w1, w2):
        u = g**2 * s_x(w1) * s_x(w2) / (1 - g**2 * s_phi(w1) * s_phi(w2))
        c12 = cx(w1) * cx(w2)
        return (c12 + (1 + kappa) * abs(u) ** 2 * cphi(w1) * cphi(w2)
                + 2 * np.real(u * dphi**2 * c12))

    def double(psi):
        inner = lambda w1: _quad(lambda w2: float(psi(w1, w2)), -w_max, w_max, [0.0])
        return _quad(inner, -w_max, w_max, [0.0]) / (2 * np.pi) ** 2

    pr_phi = phi2**2 / double(psi_phi)
    pr_x = delta0**2 / double(psi_x)
    np.testing.assert_allclose(float(d.pr_phi[i, j]), pr_phi, rtol=1e-6)
    np.testing.assert_allclose(float(d.pr_x[i, j]), pr_x, rtol=1e-6)
    # Parseval on the same spectrum: int C^x dw / 2pi = Delta0, int C^phi = <phi^2>.
    np.testing.assert_allclose(_quad(cx, -w_max, w_max, [0.0]) / (2 * np.pi), delta0, rtol=1e-9)
    np.testing.assert_allclose(_quad(cphi, -w_max, w_max, [0.0]) / (2 * np.pi), phi2, rtol=1e-8)


def _autocorrelation():
    # The grid's own calls on the same shapes (throw=False, with the solution passed):
    # its compiled programs are reused instead of compiling the solve again (~5 s).
    zeros = jnp.zeros_like(G)
    gauss = mfrnn.GaussianEnsemble(G, zeros, zeros)
    return mfrnn.dmft_autocorrelation(gauss, mfrnn.solve_dmft(gauss, throw=False), throw=False)


def test_spectrum_is_the_fourier_transform_of_the_dmft_profile(grid):
    # Reference: Delta(tau) from dmft_autocorrelation (its own profile evaluation) on a
    # fine grid, transformed by numpy: independent of the grid and tail used here.
    acs = _autocorrelation()
    w = np.array([0.0, 0.05, 0.3, 1.0, 2.5])
    spectra = {which: np.asarray(grid.power_spectrum(jnp.asarray(w), which))
               for which in ("x", "phi")}
    # One tau grid for both g (one compiled profile evaluation), to 40 slowest tail times.
    h = 0.01
    tau = np.arange(0.0, 40.0 / float(np.min(acs.tail_rate[2:4, 0])), h)
    weights = np.full(tau.shape, h)
    weights[0] = h / 2
    for i in (2, 3):
        g = float(G[i, 0])
        ac = jax.tree.map(lambda x: x[i, 0], acs)
        delta = np.asarray(ac(jnp.asarray(tau)))
        ref = 2 * np.cos(np.outer(w, tau)) @ (weights * delta)
        np.testing.assert_allclose(spectra["x"][i, 0], ref, rtol=0, atol=1e-8 * ref[0])
        np.testing.assert_allclose(spectra["phi"][i, 0], (1 + w**2) * ref / g**2,
                                   atol=1e-8 * ref[0])
    # Psi at a few frequency pairs: the closed form with this spectrum.
    psi = np.asarray(grid.psi(jnp.array([0.1, 0.5]), jnp.array([-0.2, 1.0]))[3, 0])
    assert np.all(psi > 0)


def test_low_rank_and_near_onset_limits(grid):
    d = grid.dimension
    pr_phi, pr_x = (np.asarray(a)[1:] for a in (d.pr_phi, d.pr_x))
    rank = np.asarray(d.effective_rank)[1:]
    # Low effective rank: PR^a ~ K^a(g) alpha PR_D (ratio 10 between ranks 1e-3, 1e-4),
    # and x lives in the span of the M = alpha PR_D N modes: PR^x <= effective rank.
    np.testing.assert_allclose(pr_phi[:, 4] / pr_phi[:, 5], 10.0, rtol=2e-3)
    np.testing.assert_allclose(pr_x[:, 4] / pr_x[:, 5], 10.0, rtol=2e-3)
    assert np.all(pr_x[:, 3:] < rank[:, 3:])
    # Dimension grows with the effective rank and with g.
    assert np.all(np.diff(pr_phi[:, :5], axis=1) < 0)
    assert np.all(np.diff(pr_phi, axis=0) > 0)
    # Near onset PR -> PR_iid / (1 + kappa): closer at g = 1.05 than at 1.2.
    ratio = pr_phi[:, 1:4] * (1 + 1 / rank[:, 1:4]) / pr_phi[:, :1]
    assert np.all(np.abs(ratio[0] - 1) < 0.05)
    assert np.all(np.abs(ratio[0] - 1) < np.abs(ratio[1] - 1))
    # PR_S (Eq. 13): 1/2 for iid, alpha PR_D / (1 + 2 alpha PR_D).
    np.testing.assert_allclose(d.pr_s[1], 1 / (2 + 1 / rank[0]))
    np.testing.assert_allclose(d.pr_s[1, 0], 0.5)
    # Every chaotic point converged (the half-resolution check).
    assert np.all(mfrnn.result_codes(d) == 0) and np.all(np.asarray(d.error)[1:] < 1e-6)
    # The quiescent row (g = 0.8): no activity, PR undefined, still successful.
    assert np.all(np.isnan(np.asarray(d.pr_phi)[0])) and not np.any(np.asarray(d.chaotic)[0])
    np.testing.assert_array_equal(np.asarray(d.delta0)[0], 0.0)
    # The leading-PC timescale: longer than the single-unit one, nearly rank independent.
    tau_pc = np.asarray(grid.pc_tau_half_phi)
    tau_unit = np.asarray(_autocorrelation().tau_half)[1:, 0]
    assert np.all(tau_pc[1:, 0] > tau_unit)
    np.testing.assert_allclose(tau_pc[3, :4], tau_pc[3, 0], rtol=0.05)
    profile = np.asarray(grid.psi_profile(jnp.array([0.0, tau_pc[3, 0]]))[3, 0])
    np.testing.assert_allclose(profile, [1.0, 0.5], atol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="resolution"):
        mfrnn.activity_dimension(mfrnn.RandomModeEnsemble(2.0), resolution=101)
    with pytest.raises(ValueError, match="n_freq"):
        mfrnn.activity_dimension(mfrnn.RandomModeEnsemble(2.0), n_freq=64)


def test_gradients_match_finite_differences():
    def pr(g, rank):
        sol = mfrnn.activity_dimension(mfrnn.RandomModeEnsemble(g, rank))
        return sol.pr_phi + 3.0 * sol.pr_x

    grad_g, grad_r = jax.grad(pr, argnums=(0, 1))(2.0, 0.5)
    np.testing.assert_allclose(float(grad_g), finite_difference(lambda g: pr(g, 0.5), 2.0),
                               rtol=1e-6)
    np.testing.assert_allclose(float(grad_r), finite_difference(lambda r: pr(2.0, r), 0.5),
                               rtol=1e-6)


# The check at ranks 1 and 0.25 is written out but not run: it is a draw, not a
# test (docs/theory/random-modes.md, "The edge of stability at g_eff = 2").
_RANKED = (
    "at g_eff = 2 and N = 4000 the rightmost collective modes of a network scatter across "
    "the pole of Psi, so a 15 % check of four networks passes in about 71 % (rank 1) and "
    "44 % (rank 0.25) of draws (docs/theory/random-modes.md)"
)


@pytest.mark.parametrize(
    "rank",
    [None, pytest.param(1.0, marks=pytest.mark.skip(reason=_RANKED)),
     pytest.param(0.25, marks=pytest.mark.skip(reason=_RANKED))],
    ids=["iid", "rank1", "rank0.25"],
)
def test_simulated_networks_match_theory(rank):
    """N = 4000, four networks, ODE (Tsit5) simulation in float32 (J kept factored at
    rank 0.25), cross-trajectory PR pooled over networks (the ratio of disorder averages
    the theory computes): within 15 % of the theory (tanh, g_eff = 2); Delta0 equal to
    the SCS value.

    Only the iid point runs. At g_eff = 2 the rim of the collective spectrum, sqrt(nu) =
    0.974, is 2.6 % from the pole, and at N = 4000 a network's rightmost modes scatter
    across it: typical networks lie 10-20 % above the theory and rare ones far below
    (equilibrating over hundreds of tau). With this key the pooled ratios are 1.08, 1.13
    and 0.94 (ranks inf, 1, 0.25), and 1.12, 1.15 and 1.03 for the same networks with
    six times the trajectory data: rank 1 sits on the tolerance. Measured in
    docs/theory/random-modes.md (`benchmarks/bench_dimension.py --finite-size`,
    `--equilibration`)."""
    ens = mfrnn.RandomModeEnsemble(2.0, rank, spectrum=mfrnn.ModeSpectrum.flat)
    cmp = mfrnn.compare_dimension(
        ens, 4000, key=jr.key(7), n_networks=4, n_trajectories=16, t_transient=40.0,
        t_block=20.0, dt=0.5, max_lag=10.0,
    )
    theory = cmp.theory.dimension
    np.testing.assert_allclose(cmp.pooled_pr_phi, theory.pr_phi, rtol=0.15)
    np.testing.assert_allclose(cmp.pooled_pr_x, theory.pr_x, rtol=0.15)
    np.testing.assert_allclose(np.mean(cmp.delta0), theory.delta0, rtol=0.02)
    # Per network: PR = num / den; pooled = sum num / sum den lies within their range.
    assert np.min(cmp.pr_phi) <= cmp.pooled_pr_phi <= np.max(cmp.pr_phi)


def test_cli_dimension(tmp_path, capsys, monkeypatch):
    import json

    from mfrnn.cli import main

    monkeypatch.setenv("MFRNN_NO_COMPILATION_CACHE", "1")
    assert main(["dimension", "--g", "2.0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["effective_rank"] is None and out["converged"]
    expected = mfrnn.activity_dimension(mfrnn.RandomModeEnsemble(2.0))
    np.testing.assert_allclose(out["pr_phi"], float(expected.pr_phi), rtol=1e-12)
    np.testing.assert_allclose(out["delta0"], float(expected.delta0), rtol=1e-12)
    with pytest.raises(SystemExit):
        main(["dimension", "--g", "2.0", "--effective-rank", "0", "--json"])
    assert "effective-rank" in capsys.readouterr().err
