"""Phase-diagram grids (issue 11): accuracy of the staged solver against a high-order
reference, labels against an independent scipy loop, failures visible, stability
without an eigensolver."""

import importlib.util
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfrnn
from mfrnn._theory.eigen import hurwitz_stable, small_eigvals


ROOT = pathlib.Path(__file__).resolve().parents[1]
PHI = mfrnn.Tanh(order=61)  # shared with test_lowrank's compilations


def test_accuracy_against_high_order_reference():
    # All four phases, and variances up to Delta0 ~ 15 (sigma_mn = 5): the default rule
    # must keep 1e-7 there. Reference: per-point robust solves, 401 nodes, tight Newton.
    g = np.linspace(0.2, 3.0, 10)
    s = np.linspace(0.0, 5.0, 10)
    G, S = np.meshgrid(g, s, indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.asarray(S), sigma_m=2.0, sigma_n=3.0, g=jnp.asarray(G)
    )
    pd = mfrnn.phase_diagram(ens)
    assert bool(jnp.all(pd.success))
    assert set(np.unique(np.asarray(pd.phase)).tolist()) == {0, 1, 2, 3}
    assert float(jnp.max(pd.delta0)) > 12.0
    fine = mfrnn.Tanh(order=401)
    for branch, phases in ((mfrnn.Branch.fixed_point, (0, 1)), (mfrnn.Branch.chaotic, (2, 3))):
        where = np.isin(np.asarray(pd.phase), phases)
        # One guess per point (the diagram's state): vmap over the points.
        def reference(sigma_mn, g, kappa0):
            ens = mfrnn.LowRankEnsemble.rank_one(
                sigma_mn=sigma_mn, sigma_m=2.0, sigma_n=3.0, g=g, phi=fine
            )
            return mfrnn.solve_lowrank(
                ens, kappa0[None], branch=branch, rtol=1e-12, atol=1e-12, max_steps=60,
                throw=False,
            )

        ref = jax.vmap(reference)(
            jnp.asarray(S[where]), jnp.asarray(G[where]), jnp.asarray(np.asarray(pd.kappa)[where])
        )
        assert bool(jnp.all(ref.result == mfrnn.RESULTS.successful))
        for name in ("kappa", "delta0", "delta_inf"):
            ours = np.asarray(getattr(pd, name))[where]
            theirs = np.asarray(getattr(ref, name))[:, 0]
            np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9, err_msg=name)
    # A second method: the kappa = 0 chaotic state is the random network's (zero-mean
    # loadings, kappa = 0: no structured drive), whose DMFT uses its own equations (the
    # plain energy difference) and code. Its deep chaos (Delta_inf = 0, the correlation
    # spanning [0, 1]) is where a coarse rule for the energy integral loses digits.
    where = np.asarray(pd.phase) == 2
    scs = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(jnp.asarray(G[where])))
    np.testing.assert_allclose(np.asarray(pd.delta0)[where][:, 0], scs.delta0, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(pd.delta_inf)[where][:, 0], scs.delta_inf, atol=1e-9)


def _bench_phase():
    spec = importlib.util.spec_from_file_location("bench_phase", ROOT / "benchmarks" / "bench_phase.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labels_agree_with_an_independent_scipy_loop():
    # The benchmark's scipy loop (numpy Gauss-Hermite residuals, fsolve, the same
    # labelling) is a second implementation; it must agree wherever both converged.
    bench = _bench_phase()
    g = np.linspace(0.3, 2.8, 6)
    s = np.linspace(0.3, 2.9, 6)
    G, S = np.meshgrid(g, s, indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.asarray(S), sigma_m=bench.SIGMA_M, sigma_n=bench.SIGMA_N,
        g=jnp.asarray(G), phi=PHI,
    )
    pd = mfrnn.phase_diagram(ens, throw=False)
    theirs = np.array([[bench.scipy_point(a, b)[0] for b in s] for a in g])
    ours = np.asarray(pd.phase)
    both = (theirs >= 0) & np.asarray(pd.success)
    assert both.sum() >= 30
    assert set(ours[both].tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(ours[both], theirs[both])
    # Odd phi, no bias, no input: the -kappa guesses take the +kappa roots negated. A
    # bias of 1e-300 breaks the symmetry for the code, not for the numbers: full solves.
    biased = mfrnn.phase_diagram(eqx.tree_at(lambda e: e.bias, ens, jnp.asarray(1e-300)), throw=False)
    np.testing.assert_array_equal(np.asarray(biased.phase), ours)
    for name in ("kappa", "delta0", "delta_inf", "outlier"):
        np.testing.assert_allclose(getattr(biased, name), getattr(pd, name), rtol=1e-9, atol=1e-12)


def test_biased_kappa_zero_chaos_is_the_random_network():
    # Zero-mean n: kappa = 0 solves the kappa equation for any bias, so the kappa = 0
    # chaotic state is the biased random network's (its own DMFT equations and code).
    # The default rule and the accuracy test's grid shape (its compiled programs).
    g = np.linspace(0.2, 3.0, 10)
    s = np.linspace(0.0, 5.0, 10)
    G, S = np.meshgrid(g, s, indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.asarray(S), sigma_m=2.0, sigma_n=3.0, g=jnp.asarray(G), bias=0.3
    )
    pd = mfrnn.phase_diagram(ens)
    assert bool(jnp.all(pd.success))
    where = np.asarray(pd.phase) == 2
    assert where.sum() >= 10
    scs = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(jnp.asarray(G[where]), 0.3))
    np.testing.assert_allclose(np.asarray(pd.delta0)[where][:, 0], scs.delta0, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(pd.delta_inf)[where][:, 0], scs.delta_inf, rtol=1e-7)


def test_positive_rates_near_onset():
    # phi = 1 + tanh(x - 1): a large static variance over a small temporal one near the
    # onset, where a guess on the coarse rule sends Newton away (those cells failed).
    g = np.linspace(2.2, 2.6, 6)
    s = np.linspace(0.3, 2.9, 6)
    G, S = np.meshgrid(g, s, indexing="ij")
    phi = mfrnn.ShiftedTanh(1.0, order=61)
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.asarray(S), sigma_m=2.0, sigma_n=3.0, g=jnp.asarray(G), phi=phi
    )
    pd = mfrnn.phase_diagram(ens)
    assert bool(jnp.all(pd.success))
    where = np.asarray(pd.phase) == 2
    assert where.sum() >= 10
    # The random network's state, its own code at 301 nodes; 61 nodes are good to ~1e-4
    # at these variances (Delta0 ~ 5-8; 4e-3 at 10).
    scs = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(jnp.asarray(G[where]), phi=mfrnn.ShiftedTanh(1.0)))
    np.testing.assert_allclose(np.asarray(pd.delta0)[where][:, 0], scs.delta0, rtol=1e-3)
    q = np.asarray(pd.delta0 - pd.delta_inf)[where][:, 0]
    np.testing.assert_allclose(q, scs.delta0 - scs.delta_inf, rtol=2e-3)
    # A single point's chaotic solve (its own code: a trust region and Newton from the
    # coarse guess, then a ladder of q) finds the same states.
    row = jnp.asarray(G[:, 0])
    one = mfrnn.solve_lowrank(
        mfrnn.LowRankEnsemble.rank_one(sigma_mn=0.3, sigma_m=2.0, sigma_n=3.0, g=row, phi=phi),
        jnp.zeros((1, 1)), branch=mfrnn.Branch.chaotic,
    )
    scs = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(row, phi=mfrnn.ShiftedTanh(1.0)))
    np.testing.assert_allclose(np.asarray(one.delta0)[:, 0, 0], scs.delta0, rtol=1e-3)
    np.testing.assert_allclose(
        np.asarray(one.delta0 - one.delta_inf)[:, 0, 0], scs.delta0 - scs.delta_inf, rtol=2e-3
    )


def test_failed_cells_get_their_own_label_and_nan(capsys):
    ens = mfrnn.LowRankEnsemble.rank_one(
        sigma_mn=jnp.array([0.5, 2.5]), sigma_n=3.0, g=jnp.array([2.5, 2.5]), phi=PHI
    )
    # Newton cannot converge; the stages and the failures are reported as they finish.
    pd = mfrnn.phase_diagram(ens, max_steps=1, throw=False, progress=True)
    err = capsys.readouterr().err
    assert "fixed points: 2 points" in err and "done: 2 points, failed 2" in err
    assert mfrnn.PHASE_NAMES[-1] == "failed"
    assert np.all(np.asarray(pd.phase) == -1) and not np.any(np.asarray(pd.success))
    assert np.all(np.isnan(np.asarray(pd.kappa))) and np.all(np.isnan(np.asarray(pd.delta0)))
    with pytest.raises(Exception, match="did not converge"):  # the default, as everywhere
        mfrnn.phase_diagram(ens, max_steps=1)
    with pytest.raises(ValueError, match="empty"):
        mfrnn.phase_diagram(mfrnn.LowRankEnsemble.rank_one(g=jnp.zeros(0), phi=PHI))


def _primitives(jaxpr, out=None):
    out = set() if out is None else out
    for eqn in jaxpr.eqns:
        out.add(eqn.primitive.name)
        for sub in jax.core.subjaxprs(eqn.params) if hasattr(jax.core, "subjaxprs") else ():
            _primitives(sub, out)
        for value in eqn.params.values():
            for v in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(v, "jaxpr", None)
                if inner is not None:
                    _primitives(getattr(inner, "jaxpr", inner), out)
    return out


def test_rank_two_stability_runs_without_an_eigensolver():
    cov = np.eye(4)
    cov[0, 2] = cov[2, 0] = cov[1, 3] = cov[3, 1] = 2.0
    cov[2, 2] = cov[3, 3] = 9.0
    ens = mfrnn.LowRankEnsemble(2, cov=cov, g=0.5, phi=PHI)
    # The fixed point's outlier matrix is 3 x 3 (closed forms stop at 2 x 2).
    jaxpr = jax.make_jaxpr(lambda e: mfrnn.solve_lowrank(e, throw=False))(ens)
    names = _primitives(jaxpr.jaxpr)
    assert "while" in names and "lu" in names  # the walk reached inside the loops
    assert not any(n.startswith("eig") for n in names), names
    # The verdicts equal numpy's eigenvalues, also near the imaginary axis.
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 4):
        for _ in range(100):
            M = rng.normal(size=(k, k)) * rng.uniform(0.1, 3.0)
            M -= np.eye(k) * rng.uniform(-0.5, 2.0)
            ev = np.linalg.eigvals(M)
            assert bool(hurwitz_stable(jnp.asarray(M))) == bool(np.all(ev.real < 0))
            ours = np.asarray(small_eigvals(jnp.asarray(M)))
            assert np.max(np.min(np.abs(ours[:, None] - ev[None, :]), axis=0)) < 1e-8
