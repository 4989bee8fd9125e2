"""Low-rank / mixture mean-field theory (issue 4): published numbers, closed forms,
finite networks, reduced ODE, phase labels against simulation, gradients, failures."""

import json
import os
import pathlib
import subprocess
import sys

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn
from mfrnn.cli import main


ROOT = pathlib.Path(__file__).resolve().parents[1]
# One phi for everything that builds a phase diagram, so the compilation is shared.
PHI = mfrnn.Tanh(order=61)


def mo(g, **kw):
    """Mastrogiuseppe & Ostojic 2018: M_m = 1.1, M_n = 2, s_m = s_n = 1."""
    return mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=2.0, g=g, **kw)


def test_mastrogiuseppe_ostojic_published_boundaries():
    g_c = mfrnn.fixed_point_chaos_boundary(mo(1.7))
    assert round(float(g_c.value), 3) == 1.796
    # The fixed point there is the kappa != 0 one, on the g_C side of bulk radius 1.
    assert abs(float(g_c.kappa[0])) > 0.3
    g_bb = mfrnn.kappa_instability_g(2.2)
    assert round(float(g_bb.value), 3) == 2.136
    # Second method: the chaotic kappa != 0 branch exists just below g_BB and the
    # kappa = 0 chaotic state turns stable along kappa just above it.
    sol = mfrnn.solve_lowrank(
        mo(jnp.array([2.12, 2.15])), jnp.array([[0.2], [0.0]]), branch=mfrnn.Branch.chaotic, throw=False
    )
    assert mfrnn.result_codes(sol)[0, 0] == 0 and float(sol.kappa[0, 0, 0]) > 0.05
    assert mfrnn.result_codes(sol)[1, 0] != 0  # flagged: no kappa != 0 chaos above g_BB
    assert float(sol.outlier[0, 1]) > 0 > float(sol.outlier[1, 1])  # kappa = 0 state
    # Pitchfork / g_BB curve: overlap = 1 for g < 1, and 2.2 at g_BB.
    curve = mfrnn.kappa_instability_overlap(jnp.array([0.5, float(g_bb.value)]))
    np.testing.assert_allclose(curve.value, [1.0, 2.2], rtol=1e-8)


def test_chaos_boundary_line_from_defaults():
    # The M&O line M_m = 1.1, M_n in [0, 3] from an ensemble g far from the boundary:
    # every point converges. Below M_m M_n = 1 only kappa = 0 is a fixed point, whose
    # bulk radius is g (Delta0 = 0): g_C = 1 exactly. Above, g_C grows with M_n.
    mean_n = np.linspace(0.0, 3.0, 30)
    line_ens = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=mean_n, g=2.0)
    line = mfrnn.fixed_point_chaos_boundary(line_ens, throw=False)
    assert np.all(mfrnn.result_codes(line) == 0)
    below = mean_n * 1.1 < 1.0
    np.testing.assert_allclose(np.asarray(line.value)[below], 1.0, rtol=1e-10)
    assert np.all(np.diff(np.asarray(line.value)[~below]) > 0)
    assert np.all(np.abs(np.asarray(line.kappa[~below, 0])) > 0)
    # Second method: on either side of g_C the fixed point of that branch is stable /
    # unstable by its own bulk radius.
    i = 20
    kappa = line.kappa[i]
    for factor, stable in ((0.99, True), (1.01, False)):
        ens = mfrnn.LowRankEnsemble.rank_one(
            mean_m=1.1, mean_n=mean_n[i], g=factor * line.value[i]
        )
        sol = mfrnn.solve_lowrank(ens, kappa[None], throw=False)
        assert bool(sol.bulk_radius[0] < 1.0) == stable
    # The gradient of g_C along the line, against central differences.
    def g_c(m_n):
        ens = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=m_n, g=2.0)
        return mfrnn.fixed_point_chaos_boundary(ens).value

    fd = (g_c(2.0 + 1e-5) - g_c(2.0 - 1e-5)) / 2e-5
    np.testing.assert_allclose(jax.grad(g_c)(2.0), fd, rtol=1e-6)


def test_zero_mean_fixed_point_closed_form_and_g_independence():
    # phi = erf(sqrt(pi) x / 2): <phi'>_{0, D} = 1 / sqrt(1 + pi D / 2), so
    # sigma_mn <phi'> = 1 gives Delta0 = 2 (sigma_mn^2 - 1) / pi for every g.
    g = jnp.array([0.0, 0.3, 0.6, 0.9])
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=1.8, sigma_n=2.0, g=g, phi=mfrnn.Erf())
    sol = mfrnn.solve_lowrank(ens, jnp.array([[1.5]]))
    delta0 = sol.delta0[:, 0, 0]
    np.testing.assert_allclose(delta0, 2 * (1.8**2 - 1) / np.pi, rtol=1e-10)
    phi2 = jax.vmap(lambda d: mfrnn.Erf().gaussian_second_moment(0.0, d))(delta0)
    np.testing.assert_allclose(sol.kappa[:, 0, 0] ** 2, delta0 - g**2 * phi2, rtol=1e-9)
    # Outlier at g = 0 (docs/theory/lowrank.md): -1 + (sigma_mn / s_m^2) E[m^2 phi'(m kappa)].
    k = float(sol.kappa[0, 0, 0])
    z, w = np.polynomial.hermite_e.hermegauss(120)
    e = np.sum(w * z**2 * np.exp(-np.pi * (z * k) ** 2 / 4)) / np.sqrt(2 * np.pi)
    assert float(sol.outlier[0, 0]) == pytest.approx(-1 + 1.8 * e, abs=1e-9)
    assert bool(jnp.all(sol.stable))


def test_outlier_matches_finite_network_jacobian():
    # The outlier of -1 + J diag(phi') includes the random field's response (the extra
    # row of the outlier equation); the bare latent Jacobian A misses it by ~0.09 here.
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=1.3, sigma_n=3.0, g=0.6)
    sol = mfrnn.solve_lowrank(ens, jnp.array([[1.0]]))
    theory = float(sol.eigenvalues[0].real.max()) + 1.0
    assert theory > float(sol.bulk_radius[0])  # a real outlier, outside the bulk
    from mfrnn._theory.meanfield import chaos_kappa_stability, points, stats

    p, _ = points(ens, None)
    k = sol.kappa[0]
    eig, _ = chaos_kappa_stability(p, k, sol.delta0[0, 0] - stats(p, k).L[0])
    bare = float(eig[0].real) + 1
    found = []
    for seed in range(3):
        net = mfrnn.to_dtype(ens.sample(6000, key=jr.key(seed)), jnp.float32)
        x = net.m[:, 0] * sol.kappa[0, 0].astype(jnp.float32)
        x = jax.lax.fori_loop(0, 300, lambda _, x: x + 0.25 * (-x + net.recurrent(net.phi(x))), x)
        gain = net.phi.derivative(x)
        # Power iteration: the outlier (0.6) dominates the bulk (radius 0.48).
        v = jax.lax.fori_loop(
            0, 150, lambda _, v: (w := net.recurrent(gain * v)) / jnp.linalg.norm(w),
            jnp.ones_like(x),
        )
        found.append(float(v @ net.recurrent(gain * v)))
    median = float(np.median(found))
    assert median == pytest.approx(theory, abs=0.03)
    assert abs(median - theory) < abs(median - bare)


def test_theory_vs_simulation_kappa():
    # g = 0: each network's kappa equals the sample-exact root of its own vectors.
    zero = mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, sigma_n=3.0, phi=PHI)
    c = mfrnn.compare_lowrank(zero, 4000, key=jr.key(0), n_networks=3, t1=40.0, dt=0.2)
    np.testing.assert_allclose(c.kappa, c.sample_kappa, atol=1e-4)
    # ... and the average over networks is close to the N -> inf theory.
    assert float(jnp.mean(c.kappa)) == pytest.approx(float(c.theory.kappa[0]), rel=0.04)
    # g > 0, mean-overlap convention (less sampling noise): within 3 %.
    c = mfrnn.compare_lowrank(
        mo(0.8, phi=PHI), 4000, key=jr.key(1), n_networks=3, t1=60.0, dt=0.2,
        dtype=jnp.float32,
    )
    assert int(c.theory.phase) == 1
    assert float(jnp.mean(c.kappa)) == pytest.approx(float(c.theory.kappa[0]), rel=0.03)
    # Delta0 = s_m^2 kappa^2 + g^2 <phi^2>: twice kappa's relative sampling error.
    assert float(jnp.mean(c.delta0)) == pytest.approx(float(c.theory.delta0[0]), rel=0.08)
    assert float(jnp.max(c.temporal_variance)) < 1e-6


@pytest.mark.parametrize(
    "g, sigma_mn, phase",
    [(0.5, 0.5, "quiescent"), (0.5, 2.5, "fixed_point"), (2.5, 0.5, "chaotic"),
     (2.5, 3.0, "chaotic_kappa")],
)
def test_phase_labels_agree_with_simulation(g, sigma_mn, phase):
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=sigma_mn, sigma_n=3.0, g=g, phi=PHI)
    c = mfrnn.compare_lowrank(
        ens, 1500, key=jr.key(2), n_networks=2, t1=150.0, dt=0.2, dtype=jnp.float32
    )
    assert bool(c.theory.success)
    assert mfrnn.PHASE_NAMES[int(c.theory.phase)] == phase
    fluctuating = bool(jnp.all(c.temporal_variance > 0.05))
    structured = bool(jnp.all(jnp.abs(c.kappa) > 0.25))
    quiet = bool(jnp.all(c.delta0 < 1e-6))
    measured = {
        (True, False, False): "quiescent",
        (False, True, False): "fixed_point",
        (False, False, True): "chaotic",
        (False, True, True): "chaotic_kappa",
    }.get((quiet, structured, fluctuating))
    assert measured == phase
    if phase == "chaotic_kappa":
        # kappa fluctuates in time at N = 1500: compare the network average.
        measured_kappa = float(jnp.mean(jnp.abs(c.kappa)))
        assert measured_kappa == pytest.approx(abs(float(c.theory.kappa[0])), rel=0.15)


def _two_populations(gain1=1.0):
    # Zero means; population 1 has overlap 3.2, population 2 overlap 0.8.
    def cov(smn):
        return [[1.0, smn], [smn, 16.0]]

    ens = mfrnn.MixtureEnsemble(
        1, fractions=[0.5, 0.5], means=np.zeros((2, 2)), covs=[cov(3.2), cov(0.8)]
    )
    return ens.with_gains(jnp.array([gain1, 1.0]))


def test_mixture_reduced_ode_fixed_point_and_effective_coupling():
    ens = _two_populations()
    fp = mfrnn.solve_lowrank(ens, jnp.array([[1.0]]))
    kappa = fp.kappa[0]
    # With zero means the effective coupling is exactly 1 at the fixed point.
    nm, _ = mfrnn.effective_couplings(ens, kappa)
    assert float(nm[0, 0]) == pytest.approx(1.0, abs=1e-10)
    # The reduced ODE (diffrax) relaxes to the root-solved fixed point.
    sol = dfx.diffeqsolve(
        dfx.ODETerm(mfrnn.LatentDynamics(ens)), dfx.Tsit5(), 0.0, 60.0, 0.1,
        jnp.array([0.3]), stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
    )
    assert float(sol.ys[-1, 0]) == pytest.approx(float(kappa[0]), abs=1e-7)
    assert float(fp.outlier[0]) < -0.5  # strongly stable (pitfall 18)
    # The full sampled network: kappa within sampling tolerance, per-population Delta0.
    # g = 0: no N x N matrix, so N = 8000 is cheap and halves the sampling variance.
    c = mfrnn.compare_lowrank(ens, 8000, key=jr.key(3), n_networks=4, t1=30.0, dt=0.2)
    np.testing.assert_allclose(c.kappa, c.sample_kappa, atol=1e-4)
    # The theory's state is +kappa or -kappa (symmetric); the networks start on it.
    assert abs(float(c.theory.kappa[0])) == pytest.approx(float(kappa[0]), rel=1e-8)
    assert float(jnp.mean(c.kappa)) == pytest.approx(float(c.theory.kappa[0]), rel=0.05)
    np.testing.assert_allclose(jnp.mean(c.delta0, 0), fp.delta0[0], rtol=0.1)


def test_gain_modulation_switches_the_dynamics():
    # Population 1's gain at 0.2 drops the effective coupling at kappa = 0 from
    # 0.5 (3.2 + 0.8) = 2 to 0.5 (0.64 + 0.8) = 0.72 < 1: the structured state vanishes.
    on, off = _two_populations(1.0), _two_populations(0.2)
    zero = jnp.zeros(1)
    assert float(mfrnn.effective_couplings(on, zero)[0][0, 0]) == pytest.approx(2.0)
    assert float(mfrnn.effective_couplings(off, zero)[0][0, 0]) == pytest.approx(0.72)
    assert [mfrnn.PHASE_NAMES[int(mfrnn.phase_diagram(e).phase)] for e in (on, off)] == [
        "fixed_point", "quiescent"
    ]


def test_gradients_match_finite_differences():
    def kappa_fp(g, smn):
        ens = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=2.0, sigma_mn=smn, g=g)
        return mfrnn.solve_lowrank(ens, jnp.array([[1.0]])).kappa[0, 0]

    def kappa_chaos(g, smn):
        ens = mfrnn.LowRankEnsemble.rank_one(mean_m=1.1, mean_n=2.0, sigma_mn=smn, g=g)
        return mfrnn.solve_lowrank(ens, jnp.array([[0.3]]), branch=mfrnn.Branch.chaotic).kappa[0, 0]

    for fn, point in ((kappa_fp, (1.2, 0.3)), (kappa_chaos, (1.95, 0.1))):
        grad = jax.grad(fn, argnums=(0, 1))(*point)
        for i in range(2):
            h = 1e-4
            e = np.eye(2)[i] * h
            fd = (fn(*(np.array(point) + e)) - fn(*(np.array(point) - e))) / (2 * h)
            assert float(grad[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


def test_failures_are_flagged_never_kappa_zero():
    # No kappa != 0 fixed point below the pitchfork: the nonzero guess fails visibly.
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=0.5, sigma_n=3.0, g=0.5)
    sol = mfrnn.solve_lowrank(ens, jnp.array([[1.0]]), throw=False)
    assert mfrnn.result_names(sol)[0] == "static_not_converged"
    with pytest.raises(Exception, match="static"):
        mfrnn.solve_lowrank(ens, jnp.array([[1.0]]))
    with pytest.raises(ValueError, match="kappa0"):
        mfrnn.solve_lowrank(ens, jnp.zeros((1, 2)))
    with pytest.raises((ValueError, TypeError), match="branch"):  # jaxtyping checks first
        mfrnn.solve_lowrank(ens, branch="static")
    with pytest.raises(ValueError, match="g"):
        mfrnn.LowRankEnsemble.rank_one(sigma_mn=0.5, g=-1.0)
    with pytest.raises((ValueError, TypeError), match="ensemble"):  # jaxtyping checks first
        mfrnn.phase_diagram(mfrnn.GaussianEnsemble(1.0))
    with pytest.raises(ValueError, match="g = 0"):
        mfrnn.LatentDynamics(mfrnn.LowRankEnsemble.rank_one(sigma_mn=0.5, g=0.5))


def test_cli_lowrank_and_phase(tmp_path, capsys):
    assert main(["lowrank", "--g", "1.85", "--sigma-mn", "0", "--mean-m", "1.1", "--mean-n",
                 "2", "--sigma-n", "1", "--order", "61", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("kappa", "delta0", "delta_inf", "regime", "bulk_radius", "outlier", "converged"):
        assert key in out
    assert out["regime"] == "chaotic_kappa" and out["converged"]
    assert out["delta0"] > out["delta_inf"] > 0
    assert main(["phase", "--g", "0.3:2.7:4", "--sigma-mn", "0.3:2.7:4", "--out",
                 str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed_points"] == 0
    data = np.load(tmp_path / "phase.npz")
    # Corners: quiescent (0.3, 0.3), fixed point (0.3, 2.7), chaotic (2.7, 0.3).
    assert [int(data["phase"][i, j]) for i, j in ((0, 0), (0, 3), (3, 0))] == [0, 1, 2]
    assert (tmp_path / "phase.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        main(["phase", "--g", "3:1:4"])


def test_phase_diagram_sharded_across_forced_host_devices():
    # Sharded in a process with two forced host devices; compared with this process's
    # unsharded run (whose compilation the other tests share).
    code = """
import json, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import mfrnn
assert jax.device_count() == 2
G, S = jnp.meshgrid(jnp.array([0.5, 2.5, 1.0]), jnp.array([0.5, 2.5, 1.5]), indexing="ij")
ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G, phi=mfrnn.Tanh(order=61))
from mfrnn._theory import phase
shard, devices = phase._shard, set()
def spy(tree, n):  # every stage's batch is split across both devices
    out = shard(tree, n)
    devices.update(d for x in jax.tree.leaves(out) for d in x.sharding.device_set)
    return out
phase._shard = spy
a = mfrnn.phase_diagram(ens, throw=False)
print(json.dumps(dict(phase=a.phase.tolist(), kappa=a.kappa.tolist(), devices=len(devices))))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    sharded = json.loads(run.stdout.strip().splitlines()[-1])
    assert sharded["devices"] == 2
    G, S = jnp.meshgrid(jnp.array([0.5, 2.5, 1.0]), jnp.array([0.5, 2.5, 1.5]), indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G, phi=PHI)
    plain = mfrnn.phase_diagram(ens, throw=False)
    np.testing.assert_array_equal(sharded["phase"], plain.phase)
    np.testing.assert_allclose(sharded["kappa"], plain.kappa, atol=1e-9)
    # g = 0.5: quiescent, fixed point, fixed point; g = 2.5, sigma_mn = 0.5: chaotic.
    assert plain.phase[0].tolist() == [0, 1, 1] and int(plain.phase[1, 0]) == 2
