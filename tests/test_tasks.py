"""Task generators: targets and masks follow from the inputs (checked independently of
the generator's own bookkeeping), go cues are present, noise has the stated power."""

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn


BATCH = 64


def _sample(task, key, batch=BATCH):
    return tuple(
        {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)
        for x in task.sample(key, batch)
    )


def _clean(task):
    """The same task without input noise, so inputs can be read exactly."""
    spec = task.spec()
    spec["kwargs"]["input_noise"] = 0.0
    return mfrnn.task_from_spec(spec)


@pytest.mark.parametrize("name", mfrnn.TASK_NAMES)
def test_shapes_spec_and_perfect_output(name, getkey):
    task = _clean(mfrnn.make_task(name))
    u, y, mask, info = _sample(task, getkey())
    assert u.shape == (BATCH, task.n_steps, task.n_in)
    assert y.shape == mask.shape == (BATCH, task.n_steps, task.n_out)
    assert np.all(np.isfinite(u)) and set(np.unique(mask)) <= {0.0, 1.0, 5.0}
    assert mfrnn.task_from_spec(task.spec()) == task
    # The target itself is scored correct; the mask is never empty.
    assert np.all(np.asarray(task.accuracy(y, y, mask, info)))
    assert np.all(mask.sum(axis=(1, 2)) > 0)
    assert np.all(info["response_on"] < info["response_off"])
    assert np.all(info["response_off"] <= task.n_steps)


@pytest.mark.parametrize("gate", ["and", "or", "xor", "not"])
def test_logic_gate_truth_table(gate, getkey):
    task = _clean(mfrnn.LogicGate(gate))
    u, y, mask, info = _sample(task, getkey())
    a = u.max(axis=1)[:, 0]
    b = u.max(axis=1)[:, 1] if task.n_in == 2 else np.zeros(BATCH)
    expected = {"and": a * b, "or": np.maximum(a, b), "xor": np.abs(a - b), "not": 1 - a}[gate]
    assert set(np.unique(a)) == {0.0, 1.0}  # all combinations occur
    on = int(round(task.stim_on / task.dt))
    resp = on + int(round((task.stim_duration + task.mem_gap) / task.dt))
    np.testing.assert_array_equal(y[:, resp:, 0], np.broadcast_to(expected[:, None], y[:, resp:, 0].shape))
    assert np.all(y[:, :resp] == 0)
    # Scored: before the stimulus and from the response onset on; not in between.
    assert np.all(mask[:, :on] == 1) and np.all(mask[:, resp:] == 1)
    assert np.all(mask[:, on:resp] == 0)
    # A wrong gate's output is scored wrong on the trials where the gates differ.
    wrong = np.broadcast_to((1 - expected)[:, None, None], y.shape) * (np.arange(y.shape[1]) >= resp)[None, :, None]
    assert not np.any(np.asarray(task.accuracy(wrong, y, mask, info)))


def _last_sign(u_channel):
    """Sign of the most recent nonzero input, step by step (0 before any)."""
    out = np.zeros_like(u_channel)
    last = 0.0
    for k, v in enumerate(u_channel):
        if v != 0:
            last = np.sign(v)
        out[k] = last
    return out


def test_flipflop3_holds_last_pulse_sign(getkey):
    task = _clean(mfrnn.FlipFlop(3))
    u, y, mask, info = _sample(task, getkey())
    assert np.all(u[:, 0] != 0)  # first step pulsed on every channel
    for i in range(BATCH):
        for b in range(3):
            np.testing.assert_array_equal(y[i, :, b], _last_sign(u[i, :, b]))
    # Unscored steps are exactly the grace period after each pulse onset.
    grace = int(round(task.grace / task.dt))
    onsets = (u != 0) & (np.roll(u, 1, axis=1) == 0)
    onsets[:, 0] = u[:, 0] != 0
    expected = np.ones_like(mask)
    for i, k, b in zip(*np.nonzero(onsets)):
        expected[i, k: k + grace, b] = 0
    np.testing.assert_array_equal(mask, expected)
    flipped = y.copy()
    flipped[:, -1, 0] *= -1
    assert not np.any(np.asarray(task.accuracy(flipped, y, mask, info)))


def test_set_reset_flipflop(getkey):
    task = _clean(mfrnn.SetResetFlipFlop())
    u, y, mask, info = _sample(task, getkey())
    state = np.zeros((BATCH, task.n_steps))
    last = np.zeros(BATCH)
    for k in range(task.n_steps):
        last = np.where(u[:, k, 0] > 0, 1.0, np.where(u[:, k, 1] > 0, 0.0, last))
        state[:, k] = last
    np.testing.assert_array_equal(y[..., 0], state)
    assert np.all(u.sum(axis=-1) <= 1)  # never set and reset at once
    np.testing.assert_array_equal(info["last"], state[:, -1])


def test_time_reproduction_and_oscillation(getkey):
    task = _clean(mfrnn.TimeReproduction())
    u, y, mask, info = _sample(task, getkey())
    shift = int(round((task.pulse + task.mem_gap) / task.dt))
    np.testing.assert_allclose(y[:, shift:, 0], u[:, :-shift, 0], atol=1e-12)
    assert set(np.unique(info["present"])) == {0.0, 1.0}

    task = _clean(mfrnn.FiniteOscillation())
    u, y, mask, info = _sample(task, getkey())
    cued = u.max(axis=(1, 2)) > 0
    assert np.all(y[~cued] == 0) and np.all(np.abs(y[cued]).max(axis=(1, 2)) > 0.29)
    start = int(np.argmax(np.abs(y[cued][0, :, 0]) > 0))
    cue_on = int(round(task.cue_on / task.dt))
    assert cue_on < start <= cue_on + int(round(task.delay / task.dt)) + 1
    assert np.all(y[:, -int(round(task.stop_before / task.dt)):] == 0)


def test_sine_frequency_follows_input(getkey):
    task = _clean(mfrnn.SineWave())
    u, y, mask, info = _sample(task, getkey())
    j = np.round((u[:, 0, 0] - 0.25) * task.n_freqs)
    omega = 0.1 + 0.5 * j / (task.n_freqs - 1)
    t = task.dt * (np.arange(task.n_steps) + 1) / task.time_unit
    np.testing.assert_allclose(y[..., 0], np.sin(omega[:, None] * t[None]), atol=1e-6)
    assert np.all(np.ptp(u, axis=1) == 0)  # static input


def _check_go_cue(u, y, mask, info):
    """Fixation input on exactly until the response; output 0 before it, +-choice in
    it, and scored there and while fixating (padding after the response is not)."""
    t = np.arange(u.shape[1])
    on, off = info["response_on"][:, None], info["response_off"][:, None]
    fixating = t[None] < on
    np.testing.assert_array_equal(u[..., 0], fixating.astype(float))
    responding = (t[None] >= on) & (t[None] < off)
    np.testing.assert_array_equal(y[..., 0], np.where(responding, info["choice"][:, None], 0.0))
    # Fixation scored with weight 1, the decision with 5 (neurogym's recipe).
    np.testing.assert_array_equal(mask[..., 0], np.where(responding, 5.0, fixating * 1.0))
    labels = np.where(responding, np.where(info["choice"][:, None] > 0, 2, 1), 0)
    np.testing.assert_array_equal(info["labels"], labels)


def test_perceptual_decision(getkey):
    task = _clean(mfrnn.PerceptualDecision())
    u, y, mask, info = _sample(task, getkey())
    _check_go_cue(u, y, mask, info)
    evidence = u[..., 1].sum(axis=1)
    strong = np.abs(info["coherence"]) > 0
    np.testing.assert_array_equal(np.sign(evidence[strong]), info["choice"][strong])
    assert set(np.abs(np.unique(info["coherence"]))) == set(task.coherences)
    # Answering the opposite choice is always wrong.
    assert not np.any(np.asarray(task.accuracy(-y, y, mask, info)))


def test_context_decision_uses_cued_modality(getkey):
    task = _clean(mfrnn.ContextDecision())
    u, y, mask, info = _sample(task, getkey())
    _check_go_cue(u, y, mask, info)
    ctx_motion = u[..., 1].max(axis=1) > 0
    ctx_colour = u[..., 2].max(axis=1) > 0
    assert np.all(ctx_motion ^ ctx_colour)
    # Context cue on from the end of fixation to the end of the trial.
    start = int(round(task.fixation / task.dt))
    assert np.all(u[:, start:, 1] + u[:, start:, 2] == 1) and np.all(u[:, :start, 1:3] == 0)
    relevant = np.where(ctx_motion, u[..., 3].sum(axis=1), u[..., 4].sum(axis=1))
    np.testing.assert_array_equal(np.sign(relevant), info["choice"])
    # Both congruent and incongruent trials occur; the irrelevant input alone would
    # be right only on congruent ones.
    irrelevant = np.where(ctx_motion, u[..., 4].sum(axis=1), u[..., 3].sum(axis=1))
    assert 0.3 < np.mean(np.sign(irrelevant) == info["choice"]) < 0.7


def test_match_to_sample_and_romo(getkey):
    task = _clean(mfrnn.DelayedMatchToSample(delay_min=400.0, delay_max=1000.0))
    u, y, mask, info = _sample(task, getkey())
    _check_go_cue(u, y, mask, info)
    first = np.argmax(u[..., 1:].sum(-1) > 0, axis=1)
    sample = np.argmax(u[np.arange(BATCH), first, 1:], axis=-1)
    last = u.shape[1] - 1 - np.argmax((u[..., 1:].sum(-1) > 0)[:, ::-1], axis=1)
    test = np.argmax(u[np.arange(BATCH), last, 1:], axis=-1)
    np.testing.assert_array_equal(np.where(sample == test, 1.0, -1.0), info["choice"])
    assert len(np.unique(info["response_on"])) > 5  # variable delay, padded
    assert np.all(mask[np.arange(u.shape[1])[None] >= info["response_off"][:, None]] == 0)

    task = _clean(mfrnn.ParametricWorkingMemory(delay_min=500.0, delay_max=1000.0))
    u, y, mask, info = _sample(task, getkey())
    _check_go_cue(u, y, mask, info)
    stim = u[..., 1]
    on = stim > 0
    first_on = np.argmax(on, axis=1)
    last_on = u.shape[1] - 1 - np.argmax(on[:, ::-1], axis=1)
    f1 = 10 + 24 * (2 * stim[np.arange(BATCH), first_on] - 1)
    f2 = 10 + 24 * (2 * stim[np.arange(BATCH), last_on] - 1)
    np.testing.assert_allclose(f1, info["f1"], atol=1e-9)
    np.testing.assert_allclose(f2, info["f2"], atol=1e-9)
    np.testing.assert_array_equal(np.where(f1 > f2, 1.0, -1.0), info["choice"])


def test_input_noise_in_physical_units(getkey):
    """Per-step std is sigma / sqrt(dt): the same noise power at any dt."""
    for dt in (10.0, 40.0):
        task = mfrnn.PerceptualDecision(dt=dt, input_noise=2.0)
        key = getkey()
        noisy = np.asarray(task.sample(key, 256)[0])
        clean = np.asarray(_clean(task).sample(key, 256)[0])
        std = np.std(noisy - clean)
        assert abs(std - 2.0 / math.sqrt(dt)) < 0.03 * 2.0 / math.sqrt(dt)


def test_bad_task_input():
    with pytest.raises(ValueError, match="Unknown task"):
        mfrnn.make_task("flipflop7")
    with pytest.raises(ValueError, match="stimulus"):
        mfrnn.PerceptualDecision(stimulus=-100.0)
    with pytest.raises(ValueError, match="input_noise"):
        mfrnn.ContextDecision(input_noise=float("nan"))
    with pytest.raises(ValueError, match="gate"):
        mfrnn.LogicGate("nand")
    with pytest.raises(ValueError, match="delay_max"):
        mfrnn.DelayedMatchToSample(delay_min=500.0, delay_max=100.0)
    with pytest.raises(ValueError, match="batch"):
        mfrnn.FlipFlop(3).sample(jr.key(0), 0)
    with pytest.raises(ValueError, match="coherences"):
        mfrnn.PerceptualDecision(coherences=(150.0,))
    with pytest.raises(ValueError, match="Unknown task"):
        mfrnn.task_from_spec({"name": "nope", "kwargs": {}})


def test_neurogym_adapter(getkey):
    try:
        task = mfrnn.NeurogymTask("ContextDecisionMaking-v0", dt=100.0, n_trials=200)
    except ImportError:
        pytest.skip("neurogym is not installed (optional extra)")
    u, y, mask, info = _sample(task, getkey())
    assert u.shape[1] == task.n_steps and y.shape[-1] == task.n_actions == 3
    # Go cue: the fixation input is on until the decision period, off after.
    t = np.arange(task.n_steps)
    np.testing.assert_array_equal(u[..., 0] * (t[None] < info["response_off"][:, None]),
                                  (t[None] < info["response_on"][:, None]).astype(float))
    # Padding is not scored; the decision period weighs 5.
    assert np.all(mask[t[None] >= info["response_off"][:, None]] == 0)
    assert np.all(np.asarray(task.accuracy(y, y, mask, info)))
    assert jnp.all(mfrnn.task_from_spec(task.spec()).inputs == task.inputs)
    # It trains (cross-entropy on neurogym's action labels), and by name.
    task = mfrnn.make_task("neurogym:PerceptualDecisionMaking-v0", dt=100.0, n_trials=500)
    config = mfrnn.TrainConfig(n_steps=60, batch_size=32, learning_rate=1e-2, loss="xent",
                               eval_every=20)
    result = mfrnn.fit(task, mfrnn.NetworkSpec(n=32), config, key=jr.key(0))
    assert result.history["accuracy"][-1][0] > 0.7


def test_training_criteria_and_defaults_live_on_the_tasks():
    # The published stopping criteria (docs/guide/tasks.md): MSE tasks at a loss,
    # decision tasks at an accuracy; exactly one per task.
    expected = {
        "and": ("loss", 1e-3), "xor": ("loss", 1e-3), "flipflop1": ("loss", 1e-3),
        "flipflop3": ("loss", 9e-3), "flipflop": ("loss", 9e-3), "sine": ("loss", 5e-2),
        "time_reproduction": ("loss", 1e-3), "oscillation": ("loss", 1e-3),
        "perceptual_decision": ("accuracy", 0.85), "context_decision": ("accuracy", 0.9),
        "match_to_sample": ("accuracy", 0.9), "parametric_wm": ("accuracy", 0.85),
    }
    for name in mfrnn.TASK_NAMES:
        task = mfrnn.make_task(name)
        assert (task.target_loss is None) != (task.target_accuracy is None), name
        if name in expected:
            kind, value = expected[name]
            assert getattr(task, f"target_{kind}") == value, name
        assert task.initial_g == (1.5 if name == "match_to_sample" else 0.9)
        assert task.initial_gain() == task.initial_g and task.initial_gain(rank=2) == 0.0
        assert task.held_out() is task  # generators draw fresh trials every time


def test_psychometric_curve_groups_as_the_task_says():
    import matplotlib.pyplot as plt

    task = mfrnn.ContextDecision()
    info = {"coherence": np.array([-5.0, 5.0, 5.0, -5.0, 15.0, 5.0]),
            "context": np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])}
    chose_plus = np.array([False, True, True, True, True, False])
    curve = mfrnn.psychometric_curve(task, info, chose_plus)
    np.testing.assert_array_equal(curve.evidence, [-5.0, 5.0, 15.0])
    np.testing.assert_array_equal(curve.fraction_plus, [[0.0, 0.5, np.nan], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(curve.n_trials, [[1, 2, 0], [1, 1, 1]])
    assert curve.group_names == ("motion context", "colour context")
    assert "relevant" in curve.xlabel
    ungrouped = mfrnn.psychometric_curve(mfrnn.PerceptualDecision(), info, chose_plus)
    assert ungrouped.fraction_plus.shape == (1, 3) and ungrouped.group_names == ()
    assert mfrnn.psychometric_curve(mfrnn.make_task("xor"), info, chose_plus) is None
    assert mfrnn.psychometric_curve(task, info, None) is None
    fig = mfrnn.plotting.plot_psychometric(curve.evidence, curve.fraction_plus,
                                           group_names=curve.group_names, xlabel=curve.xlabel)
    assert len(fig.axes[0].lines) == 3  # two curves and the chance line
    plt.close("all")
