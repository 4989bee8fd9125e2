"""Small networks reach the published criteria (docs/guide/tasks.md) within the test budget:
logic gates and the 1-bit flip-flop MSE < 1e-3 (Jarne), perceptual decision >= 85 %
correct at coherence >= 12.8 % (rank one, as the Ostojic-lab tutorial), context-
dependent decision >= 90 %. Short trials keep CI fast; full sizes are in the benchmark.
Scored on fresh trials (with input noise), not on the training batches.
"""

import jax.random as jr
import numpy as np
import pytest

import mfrnn


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    # `fit` keeps its programs in the user's persistent cache by default: not here
    # (tests/test_compilation_cache.py tests the cache).
    monkeypatch.setenv("MFRNN_NO_COMPILATION_CACHE", "1")


def _train_and_evaluate(task, spec, config, loss="mse"):
    result = mfrnn.fit(task, spec, config, key=jr.key(0))
    ev = mfrnn.evaluate(result.member(0), task, key=jr.key(99), batch=512, loss=loss)
    return result, ev


@pytest.mark.parametrize("gate", ["and", "or", "xor", "not"])
def test_logic_gates_reach_mse_criterion(gate):
    task = mfrnn.LogicGate(gate, stim_on=100.0, stim_duration=100.0, mem_gap=200.0,
                           duration=600.0)
    config = mfrnn.TrainConfig(n_steps=1500, batch_size=32, learning_rate=1e-2,
                               eval_every=25, target_loss=5e-4)
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=64), config, key=jr.key(0))
    # The evaluation batch (256 trials) is drawn apart from the training batches.
    assert result.steps_to_criterion[0] is not None
    assert result.history["loss"][-1][0] < 1e-3 and result.history["accuracy"][-1][0] == 1.0


def test_flipflop_reaches_mse_criterion():
    task = mfrnn.SetResetFlipFlop(first=100.0, pulse=100.0, gap=300.0, n_turns=3, grace=100.0)
    config = mfrnn.TrainConfig(n_steps=1500, batch_size=32, learning_rate=1e-2,
                               eval_every=25, target_loss=5e-4)
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=64), config, key=jr.key(0))
    assert result.history["loss"][-1][0] < 1e-3 and result.history["accuracy"][-1][0] > 0.98


def test_rank_one_perceptual_decision():
    task = mfrnn.PerceptualDecision(fixation=100.0, stimulus=400.0, delay=100.0, decision=100.0)
    spec = mfrnn.NetworkSpec(n=64, rank=1, g=0.0)
    config = mfrnn.TrainConfig(n_steps=1500, batch_size=32, learning_rate=1e-2, eval_every=25,
                               target_accuracy=0.9, train=("J", "W_in", "W_out"))
    result, ev = _train_and_evaluate(task, spec, config)
    strong = [row for row in ev.by_condition if abs(row["coherence"]) >= 12.8]
    acc = sum(r["accuracy"] * r["n"] for r in strong) / sum(r["n"] for r in strong)
    assert acc >= 0.85, ev.by_condition
    # Psychometric curve: P(+1) rises with signed coherence.
    c = ev.info["coherence"]
    assert np.mean(ev.chose_plus[c >= 25.6]) > 0.9 and np.mean(ev.chose_plus[c <= -25.6]) < 0.1
    # Training kept J = m n^T / N of rank one, with no random part.
    net = result.member(0)
    assert isinstance(net, mfrnn.LowRankNetwork) and net.rank == 1 and net.J_random is None
    J = np.asarray(net.dense_matrix())
    np.testing.assert_allclose(J, np.outer(net.m[:, 0], net.n_vectors[:, 0]) / 64, atol=1e-7)
    assert np.linalg.matrix_rank(J, tol=1e-6 * np.abs(J).max()) == 1
    assert np.all(np.asarray(net.bias) == 0)  # bias was not in `train`


def test_context_dependent_decision():
    task = mfrnn.ContextDecision(fixation=100.0, context=200.0, stimulus=400.0, delay=100.0,
                                 decision=100.0)
    config = mfrnn.TrainConfig(n_steps=2000, batch_size=32, learning_rate=1e-2, eval_every=25,
                               target_accuracy=0.93)
    result, ev = _train_and_evaluate(task, mfrnn.NetworkSpec(n=64), config)
    assert ev.accuracy >= 0.90, ev.by_condition
    # It uses the cued modality: accurate on incongruent trials too.
    incongruent = ev.info["congruent"] == 0
    assert np.mean(ev.correct[incongruent]) >= 0.85
