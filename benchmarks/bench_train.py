"""Benchmark: training, mfrnn (JAX: one jitted step, BPTT through lax.scan) vs PyTorch
(the same network, loss, optimiser and data, BPTT through a Python loop), in one run.

    python benchmarks/bench_train.py [--quick] [--out benchmarks/results/train.json]

Cases (issue #5):
- perceptual decision, rank one (J = m n^T / N trained), N = 500, tau = 100 ms,
  dt = 20 ms (65 steps a trial), 800 trials per epoch (25 batches of 32), as the
  Ostojic-lab low-rank tutorial;
- context-dependent decision, dense J, N = 512, 83 steps a trial, same epochs.

Both sides: float32, masked MSE, Adam (lr 1e-2 rank one / 5e-4 dense), global-norm
clipping at 1, no recurrent noise. Reported: seconds per epoch (best over the epochs
run, after compilation), compile time, and time to criterion (held-out accuracy >= 85 %
at coherence >= 12.8 % for the decision task, >= 90 % for context; evaluated every
epoch on 512 trials; includes compilation). mfrnn samples trials inside its jitted step; PyTorch gets the same
trials pre-generated as tensors (its data time is not counted). torch is optional:
without it the PyTorch column is skipped.
"""

import argparse
import json
import os
import pathlib
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import mfrnn
from mfrnn._train import init_members, make_step


try:
    import torch
except ImportError:  # optional baseline
    torch = None


BATCH = 32
EPOCH_BATCHES = 25  # 800 trials


def _mfrnn_side(task, spec, config, epochs_max, target):
    models, opt_states, keys, filter_spec, optim = init_members(task, spec, config, 0, 1)
    done = jnp.zeros(1, bool)
    eval_key = jr.key(12345)

    def epoch(models, opt_states, start):
        for k in range(EPOCH_BATCHES):
            models, opt_states, loss, _, _ = make_step(
                models, opt_states, done, keys, jnp.asarray(start + k), task, config,
                filter_spec, optim)
        jax.block_until_ready(loss)
        return models, opt_states

    t0 = time.perf_counter()
    models, opt_states = epoch(models, opt_states, 0)  # includes compilation
    first_epoch = time.perf_counter() - t0
    # Time to criterion, from a fresh start, compile included (cached now: add it back).
    models, opt_states, *_ = init_members(task, spec, config, 0, 1)
    t0 = time.perf_counter()
    reached, epochs = None, 0
    per_epoch = []
    while epochs < epochs_max:
        te = time.perf_counter()
        models, opt_states = epoch(models, opt_states, epochs * EPOCH_BATCHES)
        per_epoch.append(time.perf_counter() - te)
        epochs += 1
        member = jax.tree_util.tree_map(lambda x: x[0] if eqx.is_array(x) else x, models)
        ev = mfrnn.evaluate(member, task, key=eval_key, batch=512)
        acc = _criterion_accuracy(ev.correct, ev.info)
        if acc >= target:
            reached = epochs
            break
    to_criterion = time.perf_counter() - t0
    steady = min(per_epoch)
    compile_s = max(first_epoch - steady, 0.0)
    return dict(
        seconds_per_epoch=steady, compile_seconds=compile_s, epochs_to_criterion=reached,
        seconds_to_criterion=(to_criterion + compile_s) if reached else None,
        final_accuracy=acc, epochs_run=epochs,
    )


def _criterion_accuracy(correct, info):
    """Accuracy on the trials the criterion counts: |coherence| >= 12.8 % for the
    perceptual decision (the issue's criterion; 0 % is chance by construction), all
    trials for the context task."""
    correct = np.asarray(correct)
    if "coh_relevant" in info or "coherence" not in info:
        return float(np.mean(correct))
    return float(np.mean(correct[np.abs(np.asarray(info["coherence"])) >= 12.8]))


def _torch_side(task, spec, config, epochs_max, target, seed=0):
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    n, alpha = spec.n, task.dt / spec.tau
    gen = torch.Generator().manual_seed(seed)

    def param(*shape, scale):
        return torch.nn.Parameter(torch.randn(*shape, generator=gen) * scale)

    W_in = param(n, task.n_in, scale=1.0)
    W_out = param(n, task.n_out, scale=1.0 / np.sqrt(n))
    if spec.rank is not None:
        m = param(n, spec.rank, scale=1.0)
        nv = param(n, spec.rank, scale=1.0)
        params = [m, nv, W_in, W_out]

        def recurrent(r):
            return (r @ nv) @ m.T / n
    else:
        J = param(n, n, scale=spec.g / np.sqrt(n))
        bias = torch.nn.Parameter(torch.zeros(n))
        params = [J, bias, W_in, W_out]

        def recurrent(r):
            return r @ J.T + bias

    opt = torch.optim.Adam(params, lr=config.learning_rates[0])

    def forward(u):
        x = torch.zeros(u.shape[0], n)
        zs = []
        for k in range(u.shape[1]):
            x = x + alpha * (-x + recurrent(torch.tanh(x)) + u[:, k] @ W_in.T)
            zs.append(torch.tanh(x) @ W_out)
        return torch.stack(zs, dim=1)

    def batches(epoch):
        u, y, mask, info = task.sample(jr.key(1000 + epoch), BATCH * EPOCH_BATCHES)
        to = lambda a: torch.from_numpy(np.array(a, np.float32))
        return to(u), to(y), to(mask)

    ev_u, ev_y, ev_mask, ev_info = task.sample(jr.key(12345), 512)
    ev_u_t = torch.from_numpy(np.array(ev_u, np.float32))

    def epoch(u, y, mask):
        for b in range(EPOCH_BATCHES):
            sl = slice(b * BATCH, (b + 1) * BATCH)
            z = forward(u[sl])
            loss = torch.sum(mask[sl] * (z - y[sl]) ** 2) / torch.sum(mask[sl])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()

    per_epoch, reached, epochs, data_seconds = [], None, 0, 0.0
    t0 = time.perf_counter()
    while epochs < epochs_max:
        td = time.perf_counter()
        u, y, mask = batches(epochs)
        data_seconds += time.perf_counter() - td  # not counted: PyTorch gets data for free
        te = time.perf_counter()
        epoch(u, y, mask)
        per_epoch.append(time.perf_counter() - te)
        epochs += 1
        with torch.no_grad():
            z = forward(ev_u_t).numpy()
        acc = _criterion_accuracy(task.accuracy(jnp.asarray(z), ev_y, ev_mask, ev_info), ev_info)
        if acc >= target:
            reached = epochs
            break
    to_criterion = time.perf_counter() - t0 - data_seconds
    return dict(seconds_per_epoch=min(per_epoch), epochs_to_criterion=reached,
                seconds_to_criterion=to_criterion if reached else None, final_accuracy=acc,
                epochs_run=epochs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    parser.add_argument("--out", default="benchmarks/results/train.json")
    args = parser.parse_args()
    epochs_max = 2 if args.quick else 40
    cases = [
        ("perceptual_decision_rank1_N500", mfrnn.PerceptualDecision(),
         mfrnn.NetworkSpec(n=500, rank=1, g=0.0), 1e-2, ("J", "W_in", "W_out"), 0.85),
        ("context_decision_dense_N512", mfrnn.ContextDecision(),
         mfrnn.NetworkSpec(n=512, g=0.9), 5e-4, ("J", "W_in", "W_out", "bias"), 0.90),
    ]
    results = {}
    for name, task, spec, lr, train, target in cases:
        config = mfrnn.TrainConfig(learning_rate=lr, batch_size=BATCH, train=train,
                                   n_steps=10**9)
        print(f"{name}: mfrnn...", flush=True)
        ours = _mfrnn_side(task, spec, config, epochs_max, target)
        print(f"  {ours}", flush=True)
        row = dict(task=task.spec(), n=spec.n, rank=spec.rank, steps_per_trial=task.n_steps,
                   trials_per_epoch=BATCH * EPOCH_BATCHES, target_accuracy=target, mfrnn=ours)
        if torch is not None:
            print(f"{name}: torch...", flush=True)
            theirs = _torch_side(task, spec, config, epochs_max, target)
            print(f"  {theirs}", flush=True)
            row["torch"] = theirs
            row["speedup_per_epoch"] = theirs["seconds_per_epoch"] / ours["seconds_per_epoch"]
            if ours["seconds_to_criterion"] and theirs["seconds_to_criterion"]:
                row["speedup_to_criterion"] = (theirs["seconds_to_criterion"]
                                               / ours["seconds_to_criterion"])
        results[name] = row
    meta = dict(device=str(jax.devices()[0]), platform=platform.platform(),
                cpu_count=os.cpu_count(), jax=jax.__version__,
                torch=None if torch is None else torch.__version__, quick=args.quick)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(meta=meta, results=results), indent=2))
    print(json.dumps({k: {kk: v.get(kk) for kk in ("speedup_per_epoch", "speedup_to_criterion")}
                      for k, v in results.items()}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
