"""Training mechanics: Dale's law, diffrax vs scan, vmapped members, checkpoints that
resume exactly (in-process and after a real SIGKILL), bad input."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfrnn
from mfrnn import cli


FF = dict(first=50.0, pulse=50.0, gap=150.0, n_turns=3, grace=50.0)


@pytest.fixture(autouse=True)
def _no_compilation_cache(monkeypatch):
    # `fit` keeps its programs in the user's persistent cache by default: not here
    # (tests/test_compilation_cache.py tests the cache).
    monkeypatch.setenv("MFRNN_NO_COMPILATION_CACHE", "1")


def _flipflop():
    return mfrnn.SetResetFlipFlop(**FF)


@pytest.mark.parametrize("constraint, loss", [("sign", "mse"), ("projection", "xent")])
def test_dale_law_holds_exactly_after_training(constraint, loss):
    task = mfrnn.PerceptualDecision(fixation=60.0, stimulus=200.0, delay=40.0, decision=60.0)
    spec = mfrnn.NetworkSpec(n=40, dale=constraint)
    # Two learning rates train as two vmapped members; W_in does not learn.
    config = mfrnn.TrainConfig(n_steps=40, batch_size=16, learning_rate=(3e-2, 1e-2),
                               eval_every=20, eval_batch=32, loss=loss,
                               train=("J", "W_out", "bias"))
    result = mfrnn.fit(task, spec, config, key=jr.key(0))
    assert np.all(np.isfinite(np.asarray(result.history["loss"])))
    assert result.n_members == 2 and result.learning_rates == [3e-2, 1e-2]
    second = result.member(1)
    assert np.all(np.asarray(second.dense_matrix() * second.signs[None, :]) >= 0)
    net = result.member(0)
    init = mfrnn.init_network(task, spec, key=jr.fold_in(jr.fold_in(jr.key(0), 0), -1 % 2**31))
    assert isinstance(net, mfrnn.DaleNetwork)
    J = np.asarray(net.dense_matrix())
    signs = np.asarray(net.signs)
    assert np.sum(signs > 0) == 32
    assert np.all(J * signs[None, :] >= 0)  # every column keeps its sign
    assert np.max(np.abs(J - np.asarray(init.dense_matrix()))) > 1e-3  # it did learn
    if constraint == "projection":
        assert np.sum(J == 0) > 0  # the projection was active
    np.testing.assert_array_equal(net.W_in, init.W_in)  # not in `train`
    assert net.W_out.shape == (40, 3 if loss == "xent" else 1)


def test_loss_regularisers():
    """The L2 penalties add exactly l2_rates <r^2> + l2_weights sum_p <p^2>."""
    task = mfrnn.PerceptualDecision(fixation=60.0, stimulus=200.0, delay=40.0, decision=60.0)
    net = mfrnn.init_network(task, mfrnn.NetworkSpec(n=16), key=jr.key(3), dtype=jnp.float64)
    u, y, mask, info = task.sample(jr.key(4), 8)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    base = mfrnn.TrainConfig(dtype="float64")
    reg = mfrnn.TrainConfig(dtype="float64", l2_rates=0.3, l2_weights=0.2)
    l0, (d0, _) = mfrnn.training_loss(params, static, task, base, (u, y, mask, info), key=jr.key(5))
    l1, (d1, _) = mfrnn.training_loss(params, static, task, reg, (u, y, mask, info), key=jr.key(5))
    _, r = mfrnn.run_trials(net, u, dt=task.dt)
    weights = sum(np.mean(np.asarray(p) ** 2) for p in (net.J, net.bias, net.W_in, net.W_out, net.tau))
    np.testing.assert_allclose(l1 - l0, 0.3 * np.mean(np.asarray(r) ** 2) + 0.2 * weights, rtol=1e-10)
    assert d0 == d1 == l0


def test_diffrax_path_matches_euler_scan(getkey):
    task = mfrnn.PerceptualDecision(dt=20.0, fixation=40.0, stimulus=200.0, delay=20.0,
                                    decision=60.0)
    spec = mfrnn.NetworkSpec(n=24)
    net = mfrnn.init_network(task, spec, key=getkey(), dtype=jnp.float64)
    u, y, mask, info = task.sample(getkey(), 4)

    def loss(net, solver):
        z, _ = mfrnn.run_trials(net, u, dt=task.dt, solver=solver)
        return jnp.mean((z - y) ** 2), z

    (l_e, z_e), g_e = eqx.filter_value_and_grad(loss, has_aux=True)(net, None)
    (l_d, z_d), g_d = eqx.filter_value_and_grad(loss, has_aux=True)(net, dfx.Euler())
    np.testing.assert_allclose(z_d, z_e, rtol=0, atol=1e-11)
    np.testing.assert_allclose(g_d.J, g_e.J, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(g_d.W_in, g_e.W_in, rtol=1e-8, atol=1e-14)
    # The scan's gradient is right: finite differences along a random direction.
    direction = jr.normal(getkey(), net.J.shape)
    eps = 1e-6
    plus = eqx.tree_at(lambda m: m.J, net, net.J + eps * direction)
    minus = eqx.tree_at(lambda m: m.J, net, net.J - eps * direction)
    fd = (loss(plus, None)[0] - loss(minus, None)[0]) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(g_e.J * direction), fd, rtol=1e-6)


@pytest.mark.parametrize("rank, dale", [(1, None), (None, "sign")])
def test_training_gradient_with_noise_matches_finite_differences(rank, dale, getkey):
    # The training forward pass has a hand-written adjoint: check every parameter of a
    # low-rank and a Dale network against central differences, with noise on.
    task = mfrnn.PerceptualDecision(dt=20.0, fixation=40.0, stimulus=200.0, delay=20.0,
                                    decision=60.0)
    spec = mfrnn.NetworkSpec(n=20, rank=rank, dale=dale)
    net = mfrnn.init_network(task, spec, key=getkey(), dtype=jnp.float64)
    u, y, mask, info = task.sample(getkey(), 3)
    key = getkey()

    def loss(net):
        z, r = mfrnn.run_trials(net, u, dt=task.dt, noise_std=0.1, key=key)
        return jnp.mean((z - y) ** 2) + 0.1 * jnp.mean(r**2)

    params, static = eqx.partition(net, eqx.is_inexact_array)
    grads = eqx.filter_grad(lambda p: loss(eqx.combine(p, static)))(params)
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    for leaf_g, leaf_p, path in zip(jax.tree.leaves(grads), jax.tree.leaves(params), paths):
        if leaf_p.ndim == 0:
            continue  # tau
        direction = jr.normal(getkey(), leaf_p.shape)
        eps = 1e-6

        def at(sign, path=path[0]):
            moved = jax.tree_util.tree_map_with_path(
                lambda q, x: x + sign * eps * direction if q == path else x, params
            )
            return loss(eqx.combine(moved, static))

        fd = (at(1.0) - at(-1.0)) / (2 * eps)
        np.testing.assert_allclose(jnp.sum(leaf_g * direction), fd, rtol=1e-6, atol=1e-12)


def test_interrupted_training_resumes_to_the_same_parameters(tmp_path):
    task = _flipflop()
    spec = mfrnn.NetworkSpec(n=32)
    config = mfrnn.TrainConfig(n_steps=30, batch_size=16, learning_rate=1e-2, eval_every=5,
                               eval_batch=32, checkpoint_every=10, noise_std=0.05)
    full = mfrnn.fit(task, spec, config, n_seeds=2, key=jr.key(0))
    # Member i of a vmapped run is the run of seed i alone: vmap changes only speed.
    alone = mfrnn.fit(task, spec, config, n_seeds=1, key=jr.key(0))
    np.testing.assert_allclose(full.member(0).J, alone.member(0).J, rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(full.member(1).J - full.member(0).J)) > 1e-2

    class Killed(Exception):
        pass

    def kill_at_25(result):
        if result.step == 25:
            raise Killed

    path = tmp_path / "run.mfrnn"
    with pytest.raises(Killed):
        mfrnn.fit(task, spec, config, n_seeds=2, key=jr.key(0), checkpoint=path,
                  callback=kill_at_25)
    assert mfrnn.load_checkpoint(path).step == 20  # steps 21-25 are lost
    resumed = mfrnn.fit(task, spec, config, n_seeds=2, key=jr.key(0), checkpoint=path,
                        resume=True)
    assert resumed.step == 30
    assert eqx.tree_equal(resumed.models, full.models)
    assert eqx.tree_equal(resumed.opt_states, full.opt_states)
    assert resumed.history["loss"] == full.history["loss"]
    # The file round-trips: same arrays, task and settings, no pickled code.
    loaded = mfrnn.load_checkpoint(path)
    assert eqx.tree_equal(loaded.models, full.models)
    assert loaded.task == task and loaded.spec == spec and loaded.config == config
    assert b"pickle" not in path.read_bytes()[:4096]


def test_eight_members_are_eight_single_member_runs():
    # One key per member: member i of a run of eight is the run of key i alone, within
    # float32 rounding over the run. Low rank: members vmapped (batched products); a dense
    # J maps them one after another (test_interrupted_training_...: 2 members vs 1).
    task = mfrnn.SetResetFlipFlop(first=40.0, pulse=40.0, gap=100.0, n_turns=2, grace=40.0)
    config = mfrnn.TrainConfig(n_steps=8, batch_size=8, learning_rate=1e-2, eval_every=4,
                               eval_batch=8)
    spec = mfrnn.NetworkSpec(n=16, rank=1, g=0.5)
    keys = jr.split(jr.key(7), 8)
    together = mfrnn.fit(task, spec, config, n_seeds=8, key=keys)
    assert together.config.dtype == "float32"
    for i in range(8):
        alone = mfrnn.fit(task, spec, config, key=keys[i:i + 1])  # compiled once
        for a, b in zip(jax.tree.leaves(together.member(i)), jax.tree.leaves(alone.member(0))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert np.max(np.abs(alone.member(0).m - together.member(0).m)) > 1e-3 or i == 0


@pytest.mark.parametrize("spec", [mfrnn.NetworkSpec(n=16), mfrnn.NetworkSpec(n=16, rank=1, g=0.0)],
                         ids=["dense", "rank1"])
def test_members_done_early_keep_their_parameters(spec):
    # Dense members run one after another and skip their steps once done; low-rank
    # ones are vmapped and keep their values. Either way a member that reached the
    # criterion is the single-member run of its key stopped at that step.
    task = mfrnn.SetResetFlipFlop(first=40.0, pulse=40.0, gap=100.0, n_turns=2, grace=40.0)
    config = mfrnn.TrainConfig(n_steps=60, batch_size=8, learning_rate=1e-2, eval_every=4,
                               eval_batch=8, target_loss=0.05)
    keys = jr.split(jr.key(7), 2)
    together = mfrnn.fit(task, spec, config, n_seeds=2, key=keys)
    steps = together.steps_to_criterion
    assert None not in steps and steps[0] != steps[1]
    first = int(np.argmin(steps))
    late = [h[first] for h, s in zip(together.history["train_loss"], together.history["step"])
            if s > steps[first]]
    assert late and np.all(np.isnan(late))
    for i in range(2):
        # (Alone, member i would be scored on its own evaluation batch: stop it there.)
        stop = dataclasses.replace(config, n_steps=steps[i], target_loss=None)
        alone = mfrnn.fit(task, spec, stop, key=keys[i:i + 1])
        for a, b in zip(jax.tree.leaves(together.member(i)), jax.tree.leaves(alone.member(0))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _header(path):
    data = pathlib.Path(path).read_bytes()
    start = data.index(b"\n") + 1
    size = int.from_bytes(data[start:start + 8], "little")
    return json.loads(data[start + 8:start + 8 + size])


def test_cli_train_killed_and_resumed_equals_uninterrupted(tmp_path):
    args = ["train", "--task", "flipflop1", "--n", "24", "--batch", "8", "--lr", "1e-2",
            "--eval-every", "100", "--checkpoint-every", "5", "--target-loss", "1e-12",
            "--no-progress", "--steps", "200", "--x64"]  # the tests run with x64
    for key, value in FF.items():
        args += ["--task-arg", f"{key}={value}"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli.main(args + ["--out", str(whole)]) == 0

    proc = subprocess.Popen([sys.executable, "-m", "mfrnn", *args, "--out", str(killed),
                             "--steps", "100000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint.mfrnn"
    deadline = time.time() + 240
    while time.time() < deadline:
        if ckpt.exists() and _header(ckpt)["step"] >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = _header(ckpt)["step"]
    assert 10 <= step < 200, step  # killed mid-run (steps take milliseconds here)
    assert cli.main(args + ["--out", str(killed), "--steps", "200", "--json"]) == 0
    a = mfrnn.load_checkpoint(whole / "checkpoint.mfrnn")
    b = mfrnn.load_checkpoint(ckpt)
    assert a.step == b.step == 200
    assert eqx.tree_equal(a.models, b.models)
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["step"] == 200
    for name in ("loss.png", "trials.png"):
        assert (killed / name).stat().st_size > 1000
    # `mfrnn evaluate DIR` reloads it and writes its own files.
    assert cli.main(["evaluate", str(killed), "--trials", "64"]) == 0
    evaluation = json.loads((killed / "evaluation.json").read_text())
    assert evaluation["members"][0]["by_condition"]


def test_bad_training_input(tmp_path):
    task = _flipflop()
    with pytest.raises(ValueError, match="`n`"):
        mfrnn.NetworkSpec(n=-5)
    with pytest.raises(ValueError, match="rank"):
        mfrnn.NetworkSpec(n=10, rank=20)
    with pytest.raises(ValueError, match="batch_size"):
        mfrnn.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="learning_rate"):
        mfrnn.TrainConfig(learning_rate=-1.0)
    with pytest.raises(ValueError, match="xent"):
        mfrnn.fit(task, mfrnn.NetworkSpec(n=8), mfrnn.TrainConfig(loss="xent"), key=jr.key(0))
    with pytest.raises(ValueError, match="low-rank"):
        mfrnn.fit(task, mfrnn.NetworkSpec(n=8), mfrnn.TrainConfig(train=("m",)), key=jr.key(0))
    with pytest.raises(ValueError, match="not an mfrnn checkpoint"):
        (tmp_path / "junk").write_bytes(b"hello")
        mfrnn.load_checkpoint(tmp_path / "junk")
    # A checkpoint of another network cannot be resumed by this run.
    path = tmp_path / "ff.mfrnn"
    config = mfrnn.TrainConfig(n_steps=2, batch_size=4, eval_every=1, eval_batch=8)
    mfrnn.fit(task, mfrnn.NetworkSpec(n=8), config, key=jr.key(0), checkpoint=path)
    with pytest.raises(ValueError, match="Incompatible checkpoint.*network spec"):
        mfrnn.fit(task, mfrnn.NetworkSpec(n=9), config, key=jr.key(0), checkpoint=path,
                  resume=True)
    with pytest.raises(SystemExit):
        cli.main(["train", "--task", "nope", "--out", str(tmp_path / "x")])
