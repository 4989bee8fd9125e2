"""Population structure -> mean-field theory (issue 13): EM against a known mixture, the
mixture's latent dynamics against a large sampled network, resampling a trained
rank-one perceptual-decision network, `mfrnn populations`, bad input."""

import json

import jax.numpy as jnp
import jax.random as jr
import mfrnn
import numpy as np
import pytest
from mfrnn.cli import main


def _two_populations():
    # Loadings (m, n, I, w): population 0 integrates its input (cov(n, I) > 0), 1 does not.
    c0 = np.array([[1.0, 0.8, 0.0, 0.5], [0.8, 4.0, 1.5, 0.0],
                   [0.0, 1.5, 1.0, 0.0], [0.5, 0.0, 0.0, 2.0]])
    c1 = np.array([[0.5, -0.2, 0.1, 0.0], [-0.2, 1.0, 0.0, 0.0],
                   [0.1, 0.0, 2.0, 0.3], [0.0, 0.0, 0.3, 1.0]])
    means = np.array([[1.0, 0.5, 0.0, 0.0], [-1.5, 0.0, 1.0, 2.0]])
    return mfrnn.MixtureEnsemble(1, fractions=[0.3, 0.7], means=means, covs=[c0, c1],
                                 n_inputs=2, tau=100.0)


def _as_trained(net):
    """A sampled mixture network with its second input column as the readout w = N W_out."""
    return mfrnn.LowRankNetwork(net.m, net.n_vectors, W_in=net.W_in[:, :1],
                                W_out=net.W_in[:, 1:] / net.n, tau=net.tau)


def test_em_recovers_a_known_mixture_and_bic_picks_it(getkey):
    ens = _two_populations()
    net = _as_trained(ens.sample(3000, key=getkey()))
    X, names = mfrnn.network_loadings(net)
    assert names == ("m1", "n1", "I1", "w1")
    fits = [mfrnn.fit_populations(net, k, key=getkey()) for k in (1, 2, 3)]
    bic = [float(f.bic) for f in fits]
    assert int(np.argmin(bic)) == 1
    two = fits[1]
    assert bool(two.result == mfrnn.RESULTS.successful)
    # Sampling errors at 900 / 2100 units: a few per cent.
    np.testing.assert_allclose(two.weights, [0.7, 0.3], atol=0.01)
    np.testing.assert_allclose(two.means, np.asarray(ens.means)[::-1], atol=0.12)
    np.testing.assert_allclose(two.covs, np.asarray(ens.covs)[::-1], atol=0.35)
    truth = np.asarray(ens.population_labels(3000))
    assert np.mean(np.asarray(two.labels) == 1 - truth) > 0.97
    # One population: the sample mean and (biased) covariance exactly.
    one = fits[0]
    np.testing.assert_allclose(one.means[0], np.mean(np.asarray(X), 0), atol=1e-10)
    np.testing.assert_allclose(one.covs[0], np.cov(np.asarray(X).T, bias=True), rtol=1e-5)
    # The theory's ensemble drops the readout; a resampled network keeps it.
    theory = two.ensemble()
    assert theory.n_inputs == 1 and theory.means.shape == (2, 3)
    resampled = two.sample(500, key=getkey())
    assert resampled.W_in.shape == (500, 1) and resampled.W_out.shape == (500, 1)


def test_mixture_latent_dynamics_match_a_large_network(getkey):
    ens = _two_populations()
    net = _as_trained(ens.sample(80000, key=getkey()))
    # Input pulses of four amplitudes for 10 of 25 steps of 20 ms (tau = 100 ms).
    dt, steps = 20.0, 25
    u = jnp.where(jnp.arange(steps)[None, :, None] < 10,
                  jnp.array([-2.0, -0.5, 0.5, 2.0])[:, None, None], 0.0)
    fit = mfrnn.fit_populations(net, 2, key=getkey())
    theory = mfrnn.latent_trajectories(fit.ensemble(), fit.theory_inputs(u), dt=dt)
    true = mfrnn.latent_trajectories(ens, jnp.concatenate(
        [u, jnp.zeros_like(u)], -1), dt=dt)
    measured = mfrnn.latent_trajectories(net, u, dt=dt)
    assert theory.shape == measured.shape == (4, steps + 1, 1)
    scale = float(jnp.max(jnp.abs(true)))
    assert scale > 0.3
    # N = 80000: kappa agrees with the N -> inf theory to ~1/sqrt(N) relative; the
    # fitted mixture adds its estimation error (~1/sqrt(24000) per parameter).
    assert float(jnp.max(jnp.abs(measured - true))) < 0.03 * scale
    assert float(jnp.max(jnp.abs(theory - measured))) < 0.06 * scale


def test_resampled_rank_one_decision_network_keeps_its_accuracy(tmp_path, capsys):
    task = mfrnn.PerceptualDecision(fixation=100.0, stimulus=400.0, delay=100.0, decision=100.0)
    spec = mfrnn.NetworkSpec(n=128, rank=1, g=0.0)
    config = mfrnn.TrainConfig(n_steps=600, batch_size=32, learning_rate=1e-2, eval_every=25,
                               target_accuracy=0.9, train=("J", "W_in", "W_out"),
                               dtype="float64")
    run = tmp_path / "pd"
    result = mfrnn.fit(task, spec, config, key=jr.key(0), checkpoint=run / "checkpoint.mfrnn")
    net = result.member(0)
    # Resampled at N = 2048: close to the mixture's mean-field limit (at N = 128 the
    # sampling noise of the overlaps alone moves the networks off the task).
    pa = mfrnn.population_analysis(net, task, max_populations=1, key=jr.key(0), n_resamples=3,
                                   n=2048, batch=512)
    assert pa.trained_accuracy > 0.75
    assert float(jnp.mean(pa.accuracy[0])) >= 0.9 * pa.trained_accuracy
    # The mixture's theory has the trained network's fixed point under the fixation input.
    fit = pa.fits[0]
    u = jnp.array([1.0, 0.0])
    theory = mfrnn.solve_lowrank(fit.ensemble(), inputs=fit.theory_inputs(u), throw=False)
    latent = mfrnn.find_latent_fixed_points(net, u)
    assert latent.n_stable >= 1 and bool(jnp.any(theory.stable))

    # Same sizes as above: the CLI reuses the compiled programs.
    assert main(["populations", str(run), "--max-populations", "1", "--resamples", "3",
                 "--n", "2048", "--trials", "512", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trained_accuracy"] == pytest.approx(pa.trained_accuracy)
    rows = out["populations"]
    assert [r["n_populations"] for r in rows] == [1]
    np.testing.assert_allclose(rows[0]["accuracies"], pa.accuracy[0])  # same keys, same nets
    assert rows[0]["bic"] == pytest.approx(float(pa.bic[0]))
    assert (run / "populations.png").stat().st_size > 5000
    with pytest.raises(SystemExit) as info:
        main(["populations", str(run), "--max-populations", "40"])
    assert info.value.code == 2 and "too large for N = 128" in capsys.readouterr().err


def test_bad_population_input(getkey):
    dense = mfrnn.DenseNetwork(jnp.eye(8), W_out=jnp.ones((8, 1)))
    with pytest.raises(ValueError, match="needs a low-rank network.*DenseNetwork"):
        mfrnn.fit_populations(dense, 1, key=getkey())
    net = _as_trained(_two_populations().sample(20, key=getkey()))
    with pytest.raises(ValueError, match="`n_populations` = 5 is too large for N = 20"):
        mfrnn.fit_populations(net, 5, key=getkey())
    with pytest.raises(ValueError, match="readout"):
        mfrnn.fit_populations(mfrnn.LowRankNetwork(net.m, net.n_vectors), 1, key=getkey())
    with pytest.raises(ValueError, match="`inputs` must have the ensemble's n_inputs"):
        mfrnn.latent_trajectories(_two_populations(), jnp.zeros((1, 5, 1)), dt=1.0)
