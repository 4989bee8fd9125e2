"""Random-mode ensembles and networks (issue 12): sampled statistics, the factored J,
bad input, and the simulation-side estimators against exact references."""

import jax
import jax.numpy as jnp
import jax.random as jr
import mfrnn
import numpy as np
import pytest


@pytest.mark.parametrize(
    "spectrum,rank",
    [("exponential", 0.3), ("exponential", 2.0), ("power_law", 0.5), ("low_rank_cut", 0.25),
     ("flat", 0.5)],
)
def test_sampled_gain_and_effective_rank(spectrum, rank, getkey):
    n, g = 400, 1.7
    ens = mfrnn.RandomModeEnsemble(g, rank, spectrum=spectrum)
    net = ens.sample(n, key=getkey())
    assert isinstance(net, mfrnn.RandomModeNetwork)
    m = net.n_modes
    d = np.asarray(net.D)
    # The mode strengths themselves: (M / N) <D^2> = g^2 exactly, and the effective rank
    # of the drawn spectrum is the requested one up to the midpoint discretisation.
    per_unit = m / n
    np.testing.assert_allclose(per_unit * np.mean(d**2), g**2, rtol=1e-12)
    np.testing.assert_allclose(per_unit * np.mean(d**2) ** 2 / np.mean(d**4), rank, rtol=1e-9)
    # J itself: N Var J_ij = g^2 and the singular-value participation ratio (Eq. 13)
    # within sampling error (a few percent at N = 1000).
    spec = mfrnn.coupling_spectra(net)
    np.testing.assert_allclose(float(spec.gain), g, rtol=0.02)
    np.testing.assert_allclose(float(spec.pr_s), rank / (1 + 2 * rank), rtol=0.06)


@pytest.mark.parametrize("spectrum,rank", [("flat", 0.25), ("flat", 1.0), ("exponential", 0.25)])
def test_kappa_is_the_fourth_cumulant_of_the_sampled_coupling(spectrum, rank):
    """kappa = 1 / (alpha PR_D) is the fourth alternating free cumulant of J, the only
    structure the dimension sees: (1/N) tr (J J^T)^2 = (2 + kappa) g^4. With Gaussian L,
    R (not orthonormal: L^T L is a Wishart matrix, far from I_M at alpha ~ 1), for a flat
    spectrum tr(P Q P Q) / M = 1 + 2 alpha with P = R^T R, Q = L^T L free, hence 2 + 1 /
    alpha; orthonormal modes would give 1 / alpha instead (kappa - 2). N = 2000."""
    n, g = 2000, 2.0
    ens = mfrnn.RandomModeEnsemble(g, rank, spectrum=spectrum)
    kappas, orthonormal = [], []
    for i in range(2):
        net = ens.sample(n, key=jr.key(i))
        left, d, right = (np.asarray(a) for a in (net.L, net.D, net.R))
        dpd = d[:, None] * (right.T @ right) * d[None, :]  # D R^T R D, M x M
        a = dpd @ (left.T @ left)
        kappas.append(np.sum(a * a.T) / n / g**4 - 2)  # tr (J J^T)^2 = tr (D P D Q)^2
        orthonormal.append(np.sum(d**4) / n / g**4 - 2)
    np.testing.assert_allclose(np.mean(kappas), 1 / rank, rtol=0.02)
    np.testing.assert_allclose(np.mean(orthonormal), 1 / rank - 2, rtol=1e-9, atol=1e-9)


def test_iid_limit_samples_a_dense_gaussian_matrix(getkey):
    ens = mfrnn.RandomModeEnsemble(1.5)
    net = ens.sample(400, key=getkey())
    assert isinstance(net, mfrnn.DenseNetwork)
    spec = mfrnn.coupling_spectra(net)
    np.testing.assert_allclose(float(spec.gain), 1.5, rtol=0.01)
    np.testing.assert_allclose(float(spec.pr_s), 0.5, rtol=0.04)  # Eq. 13 at rank inf
    # Circular law: radius g.
    assert abs(float(np.abs(spec.eigenvalues[0])) - 1.5) < 0.1


def test_factored_matvec_spectra_and_mode_parameters(getkey):
    ens = mfrnn.RandomModeEnsemble(2.0, 0.4, spectrum="flat")
    net = ens.sample(250, key=getkey())
    assert net.n_modes == 100
    J = np.asarray(net.dense_matrix())
    r = np.asarray(jr.normal(getkey(), (250,)))
    np.testing.assert_allclose(np.asarray(net.recurrent(jnp.asarray(r))), J @ r, rtol=1e-12)
    # Factored spectra against the dense matrix's.
    spec = mfrnn.coupling_spectra(net)
    sv = np.linalg.svd(J, compute_uv=False)
    np.testing.assert_allclose(spec.singular_values, sv, atol=1e-10)
    eig = np.linalg.eigvals(J)
    top = eig[np.argsort(-np.abs(eig))][:100]
    np.testing.assert_allclose(np.sort_complex(spec.eigenvalues[:100]), np.sort_complex(top),
                               atol=1e-8)
    # (alpha, beta, scale) <-> (g, effective rank) round trip, and PR_D = tanh(b) / b.
    exp = mfrnn.RandomModeEnsemble(jnp.array([1.5, 2.5]), jnp.array([0.2, 0.7]))
    alpha, beta, scale = exp.mode_parameters()
    np.testing.assert_allclose(np.tanh(beta) / beta, [0.2, 0.7], rtol=1e-12)
    back = mfrnn.RandomModeEnsemble.from_modes(alpha, beta, scale)
    np.testing.assert_allclose(back.g, [1.5, 2.5], rtol=1e-12)
    np.testing.assert_allclose(back.effective_rank, [0.2, 0.7], rtol=1e-12)
    power = mfrnn.RandomModeEnsemble(2.0, 0.5, spectrum="power_law")
    _, p, _ = power.mode_parameters()
    np.testing.assert_allclose((1 - 4 * p) / (1 - 2 * p) ** 2, 0.5, rtol=1e-12)
    # Differentiable: d beta / d PR_D from the implicit function theorem.
    db = jax.grad(lambda r: mfrnn.RandomModeEnsemble(1.0, r).mode_parameters()[1])(0.3)
    fd = (float(mfrnn.RandomModeEnsemble(1.0, 0.3 + 1e-6).mode_parameters()[1])
          - float(mfrnn.RandomModeEnsemble(1.0, 0.3 - 1e-6).mode_parameters()[1])) / 2e-6
    np.testing.assert_allclose(float(db), fd, rtol=1e-6)


def test_overlaps_are_sampled_and_checked(getkey):
    d = np.tile([1.0, 2.0], 200)
    rho = np.tile([0.6, -0.3], 200)  # <D rho> = 0
    ens = mfrnn.RandomModeEnsemble.from_spectrum(d, alpha=0.5, overlaps=rho)
    net = ens.sample(800, key=getkey())
    cov = np.sum(np.asarray(net.L) * np.asarray(net.R), axis=0)  # N Cov(l_a, r_a) / N
    np.testing.assert_allclose(np.mean(cov[0::2]), 0.6, atol=0.01)
    np.testing.assert_allclose(np.mean(cov[1::2]), -0.3, atol=0.01)
    with pytest.raises(ValueError, match="overlaps"):
        mfrnn.activity_dimension(ens)
    with pytest.raises(ValueError, match=r"<D rho> = 0"):
        mfrnn.RandomModeEnsemble.from_spectrum(d, overlaps=np.full(400, 0.5))
    with pytest.raises(ValueError, match="overlaps"):
        mfrnn.RandomModeEnsemble.from_spectrum(d, overlaps=np.tile([1.4, -0.7], 200))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="effective_rank"):
        mfrnn.RandomModeEnsemble(2.0, 0.0)
    with pytest.raises(ValueError, match="effective_rank"):
        mfrnn.RandomModeEnsemble(2.0, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        mfrnn.RandomModeEnsemble(2.0, 0.001, spectrum="flat").sample(100, key=jr.key(0))
    with pytest.raises(ValueError, match="finite"):
        mfrnn.RandomModeEnsemble.from_spectrum([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="finite"):
        mfrnn.RandomModeEnsemble.from_spectrum([1.0, np.inf])
    with pytest.raises(ValueError, match="PR_D"):
        mfrnn.RandomModeEnsemble(2.0, 3.0, alpha=1.0)
    with pytest.raises(ValueError, match="spectrum"):
        mfrnn.RandomModeEnsemble(2.0, 0.5, spectrum="gamma")
    with pytest.raises(ValueError, match="g"):
        mfrnn.RandomModeEnsemble(-1.0, 0.5)
    with pytest.raises(ValueError, match="odd"):
        mfrnn.activity_dimension(mfrnn.RandomModeEnsemble(2.0, 0.5, phi=mfrnn.ReLU()))


def test_large_network_simulates_with_factored_coupling(getkey):
    # N = 20 000 with M = 400 modes: J is never formed (it would be 3.2 GB).
    ens = mfrnn.RandomModeEnsemble(2.0, 0.02, spectrum="flat")
    net = mfrnn.to_dtype(ens.sample(20_000, key=getkey()), jnp.float32)
    x0 = jr.normal(getkey(), (20_000,), jnp.float32)
    xs = mfrnn.simulate(net, x0, jnp.linspace(0.0, 2.0, 3)).ys
    assert xs.shape == (3, 20_000) and bool(jnp.all(jnp.isfinite(xs)))


def _correlated_blocks(rng, lam, n_blocks, n_time, taus=None, dt=1.0):
    """Blocks of Gaussian activity with covariance Q diag(lam) Q^T; independent samples
    (taus None) or PCs as AR(1) = sampled OU processes with correlation times taus."""
    n = lam.shape[0]
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    out = np.empty((n_blocks, n_time, n))
    for b in range(n_blocks):
        z = rng.normal(size=(n_time, n))
        if taus is not None:
            a = np.exp(-dt / taus)
            for t in range(1, n_time):
                z[t] = a * z[t - 1] + np.sqrt(1 - a * a) * z[t]
        out[b] = (z * np.sqrt(lam)) @ q.T
    return out


def test_participation_ratio_estimators_on_exact_gaussian_data():
    rng = np.random.default_rng(0)
    n = 300
    lam = 1.0 / (1.0 + np.arange(n) / 10.0) ** 2
    exact = np.sum(lam) ** 2 / (n * np.sum(lam**2))
    xs = _correlated_blocks(rng, lam, 8, 150)
    est = mfrnn.participation_ratio(xs, mean=0.0)
    np.testing.assert_allclose(float(est.pr), exact, rtol=0.03)
    # The naive estimator is biased low by ~ (tr C)^2 / T in tr C^2.
    naive = np.sum(lam) ** 2 / (n * (np.sum(lam**2) + np.sum(lam) ** 2 / 150))
    np.testing.assert_allclose(float(est.pr_naive), naive, rtol=0.05)
    assert float(est.pr_naive) < float(est.pr)
    # One trajectory cut into blocks; the pooled-mean variant.
    one = mfrnn.participation_ratio(xs.reshape(-1, n), n_blocks=4)
    np.testing.assert_allclose(float(one.pr), exact, rtol=0.05)
    # Eigenvalues of the pooled covariance, through the Gram matrix when T < N.
    few = xs[:2, :100]
    spec = mfrnn.covariance_spectrum(few, mean=0.0)
    z = few.reshape(-1, n)
    ref = np.sort(np.linalg.eigvalsh(z.T @ z / z.shape[0]))[::-1]
    np.testing.assert_allclose(spec, np.maximum(ref, 0.0), atol=1e-10)
    with pytest.raises(ValueError, match="n_blocks"):
        mfrnn.participation_ratio(xs[0], n_blocks=1)
    with pytest.raises(ValueError, match="xs"):
        mfrnn.participation_ratio(xs[:1])


def test_pc_autocorrelation_on_exact_ou_modes():
    # tr C(tau) C(0) / tr C(0)^2 = sum lam^2 e^{-tau / tau_k} / sum lam^2 for OU PCs.
    rng = np.random.default_rng(1)
    dt = 0.5
    lam = np.concatenate([np.full(5, 4.0), np.full(55, 0.2)])
    taus = np.concatenate([np.full(5, 6.0), np.full(55, 1.0)])
    xs = _correlated_blocks(rng, lam, 6, 3000, taus=taus, dt=dt)
    est = mfrnn.pc_autocorrelation(xs, dt, max_lag=10.0, mean=0.0)
    lags = np.asarray(est.lags)
    exact = (lam**2 @ np.exp(-lags[None, :] / taus[:, None])) / np.sum(lam**2)
    np.testing.assert_allclose(est.profile, exact, atol=0.03)
    fine = np.linspace(0.0, 10.0, 100_001)
    curve = (lam**2 @ np.exp(-fine[None, :] / taus[:, None])) / np.sum(lam**2)
    half = fine[np.argmax(curve <= 0.5)]
    assert abs(float(est.tau_half) - half) < 0.3


@pytest.mark.parametrize("rank", [None, 1.0, 0.25])
def test_psi_matches_the_linear_response_of_a_sampled_coupling(rank):
    """The kappa term of Eq. 38 against random-matrix numerics, without the paper's
    derivation: with phi = <phi'> x + eta and eta independent across units, the rate
    cross-spectrum of a sampled J is `c(w) G G^H`, `G = (1 - S^phi(w) J)^-1`, so
    `tr(C(w1) C(w2)) / N` over `C^phi(w1) C^phi(w2)` must be `Psi^phi / C^phi_12` (the
    psi of (w1, -w2): the same integral). Frequencies away from the pole at w = 0,
    where N = 800 is already large; kappa = 0, 1, 4 change the value by a factor 2."""
    n = 800
    ens = mfrnn.RandomModeEnsemble(2.0, rank, spectrum="flat")
    spec = mfrnn.random_mode_spectra(ens)
    nu = float(spec.nu)
    J = np.asarray(ens.sample(n, key=jr.key(0)).dense_matrix())
    eye = np.eye(n)
    for w1, w2 in [(1.0, 1.0), (0.7, 2.0)]:
        resolvent = [np.linalg.inv(eye - np.sqrt(nu) / 2.0 / (1 + 1j * w) * J) for w in (w1, w2)]
        a1, a2 = (r @ r.conj().T for r in resolvent)
        # tr(A1 A2) / N, each A normalised by its single-unit value 1 / (1 - |g S^phi|^2).
        four = np.sum(a1 * a2.T).real / n * (1 - nu / (1 + w1**2)) * (1 - nu / (1 + w2**2))
        c1, c2 = np.asarray(spec.power_spectrum(np.array([w1, w2]), "phi"))
        np.testing.assert_allclose(four, float(spec.psi(w1, -w2, "phi")) / (c1 * c2), rtol=0.08)
