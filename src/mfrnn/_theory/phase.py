"""Phase diagrams of low-rank plus random networks and their boundaries (docs: phase
diagrams).

The phase of a grid point is decided by stability criteria: the bulk radius and
outliers of each fixed point, and the latent Jacobian of the kappa = 0 chaotic state;
never by which root a solver landed on.

A diagram runs in stages, each one jit-compiled program over a dense batch of the points
that need it: fixed points everywhere (Newton from the default guesses); retries from
converged neighbours where they look incomplete; the kappa = 0 chaotic state where no
fixed point is stable (solved once per distinct random-field problem: it does not
depend on the n-loadings when kappa = 0 solves its own equation, so it runs with the
n-loadings zeroed); the kappa != 0 chaotic states where that one is unstable along
kappa. Newton runs in queues (`queued_newton`): a slot whose point converged takes the
next, so no point waits for the slowest of a batch. Chaotic solves start from coarse
guesses on a sub-lattice of the grid only; the other points start from a converged
neighbour's state, a few Newton steps away.
"""

import contextvars
import functools as ft
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._ensembles import GaussianEnsemble, LowRankEnsemble, MixtureEnsemble
from .._ensembles.low_rank import loading_index
from .._jit import jit
from .._misc import check_tolerance, tolerances
from .._nonlinearities import AbstractNonlinearity, Tanh
from .._solution import raise_if_failed, RESULTS, summary_repr, vmap_batch
from .branches import Branch
from .dmft import solve_dmft
from .meanfield import (
    chaos_guess,
    chaos_residual,
    chaos_result,
    check_common,
    check_point,
    check_point_on_host,
    default_guesses,
    kappa_scale,
    LowRankSolution,
    map_points,
    newton,
    outlier_matrix,
    Point,
    point_arrays,
    points,
    fixed_point_result,
    fixed_point_start,
    LADDER,
    QUICK_NEWTON_STEPS,
    static_linear_solver,
    static_residual,
    stats,
    trust_region,
    zero_chaos_solution,
)
from .queue import queued_newton


# Phase codes of `PhaseDiagram.phase`; a failed cell is -1, so PHASE_NAMES[-1] names it.
QUIESCENT_PHASE, FIXED_POINT_PHASE, CHAOTIC_PHASE, CHAOTIC_KAPPA_PHASE = 0, 1, 2, 3
CONTINUOUS_ATTRACTOR_PHASE = 4
FAILED_PHASE = -1
PHASE_NAMES = (
    "quiescent", "fixed_point", "chaotic", "chaotic_kappa", "continuous_attractor", "failed"
)


class PhaseDiagram(eqx.Module):
    """Per grid point: the phase and the order parameters of the selected state.

    - `phase`: 0 quiescent (stable kappa = 0 fixed point), 1 heterogeneous fixed point
      with kappa != 0 (+-kappa when symmetric), 2 chaos with kappa = 0, 3 chaos with
      kappa != 0, 4 continuous attractor (a stable ring or sphere of fixed points, from
      rank two with rotation-symmetric loadings), -1 failed (see `result`); names in
      `mfrnn.PHASE_NAMES` (`PHASE_NAMES[-1] == "failed"`).
    - `kappa`, `delta0`, `delta_inf`: of that state (per population for the deltas);
      NaN where the point failed. On a continuous attractor, `kappa` is one point of
      the manifold and `|kappa|` its radius.
    - `manifold_dimension`: of that manifold (1 a ring, R - 1 a sphere), else 0.
    - `bulk_radius`: of the fixed point that decided the phase (the kappa = 0 one
      unless a kappa != 0 fixed point is stable); > 1 means chaos.
    - `outlier`: its leading outlier eigenvalue (in chaos: of the latent Jacobian with
      time-averaged gains of the kappa = 0 chaotic state; on a continuous attractor:
      the leading one transverse to it).
    - `success`: the phase and order parameters are trustworthy; `result` says why not.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    phase: Int[Array, "*batch"]
    kappa: Float[Array, "*batch rank"]
    delta0: Float[Array, "*batch populations"]
    delta_inf: Float[Array, "*batch populations"]
    bulk_radius: Float[Array, "*batch"]
    outlier: Float[Array, "*batch"]
    manifold_dimension: Int[Array, "*batch"]
    success: Bool[Array, "*batch"]
    result: RESULTS


# ----------------------------------------------------------------------------------
# Stages: each maps one point; `_run` batches, pads, chunks and shards them.


def _size(kappa):
    return jnp.sqrt(jnp.sum(kappa**2, axis=-1))


def _tolerance(p):
    return 1e-6 * jnp.max(kappa_scale(p))


class _FixedStage(eqx.Module):
    chosen: LowRankSolution  # the stable kappa != 0 fixed point, else the kappa = 0 one
    branch_kappa: Float[Array, " rank"]  # the largest kappa != 0 fixed point, stable or not
    has_fp: Bool[Array, ""]
    zero_stable: Bool[Array, ""]
    static_failed: Bool[Array, ""]


def _fixed_guesses(p: Point, hint) -> Float[Array, "guesses rank"]:
    """kappa = 0 and +-kappa along each axis at the scale, a third and a tenth of it
    (Newton from a guess far outside a small branch diverges). A nonzero `hint` (a
    converged neighbour's branch, on a retry) replaces the first pair at a third."""
    guesses = default_guesses(p, Branch.fixed_point)
    third = guesses[1:] / 3.0
    third = third.at[0].set(jnp.where(jnp.any(hint != 0), hint, third[0]))
    third = third.at[p.rank].set(jnp.where(jnp.any(hint != 0), -hint, third[p.rank]))
    return jnp.concatenate([guesses, third, guesses[1:] / 10.0])


def _fixed_entries(p: Point, hint, odd):
    """Newton starts (kappa, D) of the fixed-point guesses of one point, whether each is
    a kappa != 0 solve, and, where the point is `odd` (kappa -> -kappa maps its roots
    to roots), the earlier guess whose negative each one is, whose root negated is its
    own (-1: solve it)."""
    ks = _fixed_guesses(p, hint)
    starts = jax.vmap(lambda k: fixed_point_start(p, k, False))(ks)
    nonzero = jnp.any(ks != 0, -1)
    earlier = jnp.arange(ks.shape[0])[None, :] < jnp.arange(ks.shape[0])[:, None]
    negated = jnp.all(ks[None, :, :] == -ks[:, None, :], -1) & earlier & nonzero[:, None]
    source = jnp.where(jnp.any(negated, 1), jnp.argmax(negated, 1), -1)
    return starts, nonzero, jnp.where(odd, source, -1)


def _odd_points(flat: Point) -> np.ndarray:
    """Per point: whether kappa -> -kappa maps the fixed points to fixed points (odd
    phi, no bias, no input: mu and the kappa map are odd in kappa, Delta even)."""
    odd = (np.asarray(flat.bias) == 0) & np.all(np.asarray(flat.inputs) == 0, -1)
    return odd & _is_odd(flat.phi)


def _fixed_result_stage(p: Point, y, nonzero, rtol, atol, max_steps) -> LowRankSolution:
    """The fixed point at a converged Newton iterate of one guess, with its checks and
    stability."""
    return fixed_point_result(p, y, jnp.asarray(True), nonzero, rtol, atol)


def _fixed_stage(p: Point, fixed: LowRankSolution, computed) -> _FixedStage:
    """The choice among the fixed points of a point's guesses (`fixed`, one per guess,
    evaluated where Newton converged: `computed`; zeros elsewhere)."""
    fixed = eqx.tree_at(
        lambda f: (f.kappa, f.bulk_radius, f.outlier),
        fixed,
        replace_fn=lambda x: jnp.where(computed.reshape(-1, *(1,) * (x.ndim - 1)), x, jnp.nan),
    )
    f_ok = computed & (fixed.result == RESULTS.successful)
    f_nonzero = f_ok & (_size(fixed.kappa) > _tolerance(p))
    stable_kappa = f_nonzero & fixed.stable
    has_fp = jnp.any(stable_kappa)
    # The reference fixed point: the one from kappa = 0, else (where kappa = 0 is no
    # root, e.g. with inputs, and Newton from it failed) any converged one.
    ref = jnp.where(f_ok[0], 0, jnp.argmax(f_ok))
    zero_fp = jax.tree.map(lambda x: x[ref], fixed)
    zero_stable = f_ok[ref] & ~f_nonzero[ref] & zero_fp.stable
    # kappa = 0 destabilised by an outlier only: a kappa != 0 fixed point must exist.
    missing_fp = (zero_fp.bulk_radius < 1.0) & ~zero_fp.stable & ~jnp.any(f_nonzero)
    static_failed = ~has_fp & (~jnp.any(f_ok) | missing_fp)
    pick = jnp.where(has_fp, jnp.argmax(stable_kappa), ref)
    # The largest kappa != 0 root; of equal ones (+-kappa of a symmetric ensemble, equal
    # to rounding) the one with kappa_1 > 0, so that rounding does not pick the branch.
    size = jnp.where(f_nonzero, _size(fixed.kappa), -1.0)
    tied = size >= (1.0 - 1e-6) * jnp.max(size)
    positive = tied & (fixed.kappa[:, 0] > 0)
    largest = jnp.argmax(jnp.where(jnp.any(positive), positive, tied))
    chosen = jax.tree.map(lambda x: x[pick], fixed)
    chosen = eqx.tree_at(
        lambda c: c.result,
        chosen,
        RESULTS.where(f_ok[pick], chosen.result, RESULTS.static_not_converged),
    )
    return _FixedStage(
        chosen=chosen,
        branch_kappa=jnp.where(jnp.any(f_nonzero), fixed.kappa[largest], 0.0),
        has_fp=has_fp,
        zero_stable=zero_stable,
        static_failed=static_failed,
    )


def _zero_chaos_state_stage(p: Point, delta_inf, q, residual, ok) -> LowRankSolution:
    # delta_inf of the first population = L + D_inf, L at kappa = 0 from the inputs.
    d_inf = delta_inf - stats(p, jnp.zeros(p.rank, p.means.dtype)).L[0]
    return zero_chaos_solution(p, d_inf, q, residual, ok)


def _chaos_kappas(p: Point, hint) -> Float[Array, "guesses rank"]:
    """The kappa guesses of a chaotic solve: `hint` (a fixed point's kappa, whose branch
    the chaotic one continues past g_C, or a converged neighbour's kappa; where it is 0,
    the first axis guess; where it is all NaN, kappa = 0 itself, held by its equation)
    and, from rank two, +kappa along each latent axis before it."""
    ks = default_guesses(p, Branch.chaotic)[1 : p.rank + 1]
    held = jnp.all(jnp.isnan(hint))
    hint = jnp.where(jnp.all(jnp.isfinite(hint)) & jnp.any(hint != 0), hint, ks[0])
    hint = jnp.where(held, 0.0, hint)
    return hint[None] if p.rank == 1 else jnp.concatenate([ks, hint[None]])


def _chaos_guess_stage(p: Point, hint, start) -> Float[Array, "guesses 2"]:
    """Starts (delta_inf of the first population, q) for each kappa guess: the coarse
    guess, or `start` for the hint where it is finite. A program of its own: points
    that start from a converged neighbour (most of a grid) skip it."""
    ks = _chaos_kappas(p, hint)
    d_inf, log_q, _ = jax.vmap(lambda k: chaos_guess(p, k, order=41))(ks)
    L = jax.vmap(lambda k: stats(p, k).L[0])(ks)
    starts = jnp.stack([d_inf + L, jnp.exp(log_q)], -1)
    given = jnp.all(jnp.isfinite(start))
    return starts.at[-1].set(jnp.where(given, start, starts[-1]))


def _chaos_entries(p: Point, hint, starts):
    """Newton starts y = (kappa, D_inf, log q) of the kappa guesses of one point, from
    (delta_inf of the first population, q) starts, and whether each is a kappa != 0
    solve."""
    ks = _chaos_kappas(p, hint)
    L = jax.vmap(lambda k: stats(p, k).L[0])(ks)
    y0 = jnp.concatenate([ks, (starts[:, :1] - L[:, None]), jnp.log(starts[:, 1:])], -1)
    return y0, jnp.any(ks != 0, -1)


@jit
def _queue(entries, residual, p: Point, extra, count, settings, slots, n_dev, least_squares,
           stall):
    """Newton solves from `entries(point, *extra) -> (starts, nonzero)` (several per
    point) for the first `count` points of the batch `p`, as one queue
    (`queued_newton`): no point waits for another. With several devices each runs its
    own queue on its share (`count` per device)."""
    rtol, atol, max_steps = settings

    def local(arrays, extra, count):
        one = lambda a, e: entries(eqx.tree_at(point_arrays, p, a), *e)
        y0, nonzero, *source = jax.vmap(one)(arrays, extra)
        size, guesses, dim = y0.shape
        per_entry = jax.tree.map(lambda x: jnp.repeat(x, guesses, 0), arrays)
        # Problems of the first `count` points, those with a mirror source left out.
        valid = jnp.repeat(jnp.arange(size) < count[0], guesses)
        active = valid & (source[0].reshape(-1) < 0) if source else valid
        order = jnp.argsort(~active, stable=True)

        def fn(y, args):
            a, nz = args
            return residual(y, (eqx.tree_at(point_arrays, p, a), nz))

        problems = jax.tree.map(lambda x: x[order], (per_entry, nonzero.reshape(-1)))
        y, ok, _ = queued_newton(
            fn, y0.reshape(size * guesses, dim)[order], problems, jnp.sum(active),
            rtol, atol, max_steps, slots, least_squares, stall,
        )
        back = jnp.argsort(order)
        y, ok = y[back].reshape(size, guesses, dim), ok[back].reshape(size, guesses)
        if source:  # the negated root of the source guess (kappa -> -kappa)
            mirrored = source[0] >= 0
            src = jnp.maximum(source[0], 0)
            sign = jnp.where(jnp.arange(dim) < p.rank, -1.0, 1.0).astype(y.dtype)
            pick = jax.vmap(lambda x, i: x[i])
            y = jnp.where(mirrored[..., None], pick(y, src) * sign[None, None], y)
            ok = jnp.where(mirrored, pick(ok, src), ok)
        return y, ok, nonzero

    if n_dev > 1:
        mesh, spec = _grid_mesh(n_dev)
        # Per-device queues are independent: no collective, so no varying-axis checks.
        local = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return local(point_arrays(p), extra, count)


def _chaos_finish_stage(p: Point, hint, y, converged, rtol, atol, max_steps):
    """The chaotic states at the queue's iterates, with their checks and stability."""
    nonzero = jnp.any(_chaos_kappas(p, hint) != 0, -1)
    sol = jax.vmap(lambda yy, c, nz: chaos_result(p, yy, c, nz, atol))(y, converged, nonzero)
    return sol, _tolerance(p)


@jit
def _stage(fn, p: Point, extra, settings):
    return jax.vmap(lambda arrays, e: fn(eqx.tree_at(point_arrays, p, arrays), *e, *settings))(
        point_arrays(p), extra
    )


# A diagram of at most this many points (one point from the command line) compiles its
# stages for blocks of this size, with quick compile options (`_jit.py`): compiling
# is most of its time.
_SMALL_GRID = 64
_SMALL = contextvars.ContextVar("small_grid", default=False)
# Points per compiled call of a stage without Newton loops (those run in queues). On
# CPU the chaotic guesses waste most on padding in large chunks (their calls are small
# and each point costs ~1 ms), while the static stages pay a call's overhead in small
# ones (256 points a call: 3x slower than 2048).
_CHUNK = {"cpu": {"static": 2048, "chaos": 32}}
_CHUNK_ACCELERATOR = {"static": 4096, "chaos": 4096}


def _run(fn, flat: Point, index, extra=(), settings=(), n_dev=1, kind="static"):
    """`fn(point, *extra[i], *settings)` on the points `index` of the flat batch `flat`
    (numpy arrays), in padded chunks of one size per `kind` of stage ("static" or
    "chaos"); results as numpy arrays."""
    index = np.asarray(index)
    n = index.size
    if n == 0:
        return None
    small = _SMALL.get()
    size = _CHUNK.get(jax.default_backend(), _CHUNK_ACCELERATOR)[kind]
    size = min(size, _SMALL_GRID) if small else size
    size += (-size) % n_dev
    stage = _stage.pick(small)
    padded = -(-n // size) * size
    take = np.concatenate([index, np.repeat(index[-1:], padded - n)])
    extra = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], padded - n, 0)]), extra)

    def chunk(i):
        sl = take[i : i + size]
        arrays = tuple(jnp.asarray(a[sl]) for a in point_arrays(flat))
        e = jax.tree.map(lambda x: jnp.asarray(x[i : i + size]), extra)
        if n_dev > 1:
            arrays, e = _shard((arrays, e), n_dev)
        p = eqx.tree_at(point_arrays, flat, arrays)
        return _to_host(stage(fn, p, e, settings))

    key = _signature(stage, fn, settings, size, n_dev, trees=(point_arrays(flat), flat, extra))
    out = _in_parallel(chunk, range(0, padded, size), n_dev, key)
    return jax.tree.map(lambda *x: np.concatenate(x)[:n], *out)


def _workers(n_dev: int) -> int:
    """Threads that dispatch a stage's calls: one per core on a single CPU device (each
    call's small vmapped program keeps one core busy); one otherwise (accelerators, or
    CPU cores already split into devices)."""
    if jax.default_backend() != "cpu" or n_dev > 1 or jax.process_count() > 1:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Signatures of the stage and queue programs already run in this process (`_in_parallel`).
_READY: set = set()


def _signature(*parts, trees=()) -> tuple:
    """A hashable key of a program's call: `parts` (functions, settings, sizes) and the
    structure, trailing shapes and dtypes of `trees` (blocks differ in length only)."""
    leaves, treedef = jax.tree.flatten(trees)
    dtype = lambda x: x.dtype if hasattr(x, "dtype") else np.result_type(x)
    return (*parts, treedef, tuple((np.shape(x)[1:], dtype(x)) for x in leaves))


def _in_parallel(call, items, n_dev: int, key=None) -> list:
    """`[call(item) for item in items]`, the calls after the first on a thread per core
    (`_workers`): XLA releases the GIL while a program runs. Unless the program `key`
    ran before, the first call runs alone, so that it is compiled once, not once per
    thread (and a small wave of Newton solves does not wait for it each time)."""
    items = list(items)
    workers = min(_workers(n_dev), len(items))
    if workers <= 1:
        return [call(x) for x in items]
    if key is not None and key in _READY:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(call, items))
    first = call(items[0])
    if key is not None:
        _READY.add(key)
    if len(items) == 1:
        return [first]
    with ThreadPoolExecutor(min(workers, len(items) - 1)) as pool:
        return [first, *pool.map(call, items[1:])]


def _grid_mesh(n_devices: int):
    """A one-axis mesh ("grid") over the first devices, and the spec splitting a leading
    point axis over it."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:n_devices]), ("grid",))
    return mesh, jax.sharding.PartitionSpec("grid")


def _shard(tree, n_devices: int):
    """Split the leading (point) axis of every host array across the devices, of every
    process when running under `jax.distributed` (each process holds the same batch)."""
    spec = jax.sharding.NamedSharding(*_grid_mesh(n_devices))
    put = lambda x: jax.make_array_from_callback(x.shape, spec, lambda i: x[i])
    return jax.tree.map(lambda x: put(np.asarray(x)), tree)


def _to_host(tree):
    """Results as numpy on every process (gathered across processes when needed)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def _is_odd(phi) -> bool:
    x = np.linspace(0.1, 4.0, 9)
    with jax.ensure_compile_time_eval():
        a, b = np.asarray(phi(jnp.asarray(x))), np.asarray(phi(jnp.asarray(-x)))
    return bool(np.all(a == -b)) and float(np.asarray(phi(jnp.zeros(())))) == 0.0


def _random_field_keys(flat: Point):
    """Per point: whether kappa = 0 solves the kappa equation exactly (no input
    covariance with n at kappa = 0, and zero-mean n or an odd phi at zero mean drive),
    and the statistics the kappa = 0 chaotic state depends on then: g, fractions, the
    mean drive and the input variances."""
    idx = loading_index(flat.rank, flat.n_inputs)
    i_I, i_n = np.array(idx["I"], dtype=int), np.array(idx["n"])
    u = flat.inputs[:, None, :]  # (N, 1, S)
    mu0 = flat.bias[:, None] + np.sum(flat.means[..., i_I] * u, -1)
    cov_nI = flat.covs[..., i_n, :][..., i_I]
    k_n0 = np.einsum("bprs,bs->bpr", cov_nI, flat.inputs)
    cov_II = flat.covs[..., i_I, :][..., i_I]
    L0 = np.einsum("bs,bpst,bt->bp", flat.inputs, cov_II, flat.inputs)
    # kappa = 0 gives sum_p alpha_p (a_n <phi> + k_n <phi'>) with a_n the means of n.
    centred_n = np.all(flat.means[..., i_n] == 0, (-2, -1))
    odd_at_zero = np.all(mu0 == 0, -1) & _is_odd(flat.phi)
    zero_root = np.all(k_n0 == 0, (-2, -1)) & (centred_n | odd_at_zero)
    keys = np.concatenate([flat.g[:, None], flat.fractions, mu0, L0], axis=1)
    return zero_root, keys


# ----------------------------------------------------------------------------------
# The diagram.


class _Report:
    """One line per finished stage on stderr (a large grid takes minutes)."""

    def __init__(self, size: int, on: bool):
        self.size, self.on, self.start = size, on, time.perf_counter()

    def __call__(self, stage: str, points: int, **extra):
        if self.on:
            more = "".join(f", {k} {v}" for k, v in extra.items())
            print(
                f"phase_diagram ({self.size} points): {stage}: {points} points{more}, "
                f"{time.perf_counter() - self.start:.1f} s",
                file=sys.stderr, flush=True,
            )


def _nan_where(x, failed):
    failed = failed.reshape(failed.shape + (1,) * (x.ndim - failed.ndim))
    return np.where(failed, np.nan, x)


def _scatter(full, index, part):
    full = np.array(full, copy=True)
    full[index] = part
    return full


def _patch(first, index, part):
    return jax.tree.map(lambda a, b: _scatter(a, index, b), first, part)


# Retries: rounds with the nearest converged grid neighbours' solutions as guesses.
_RETRY_ROUNDS = 2
# Newton queues (`queued_newton`): points per compiled call, and slots.
# Per stage. On CPU a chaotic wave's slowest problem sets its iterations, each costing
# all slots: few slots waste least on the small waves (chaotic queue, mixture_input
# 100^2: 32 slots 1.4 s, 16 1.2-1.35 s, 8 1.1 s); static slots matter little (64-1024).
_QUEUE = {"cpu": {"fixed": (2048, 64), "chaos": (2048, 8)}}
_QUEUE_ACCELERATOR = {"fixed": (65536, 8192), "chaos": (32768, 4096)}
# Chaotic solves from coarse guesses on every _SEED_STRIDE-th grid point per axis; the
# others start from a converged neighbour within two cells (`_neighbours`).
_SEED_STRIDE = 4
# Fixed-point guesses stop at this Newton step unless their steps shrank tenfold: most
# +-kappa guesses have no root (zero_mean 200^2: 155 000 of 280 000 ran to the cap).
_FIXED_STALL = 5


def _neighbours(batch, index, usable, round_: int):
    """For each flat `index` of the grid `batch`, the flat index of its `round_`-th
    nearest grid neighbour (within two cells per axis) where `usable`; -1 if none."""
    if index.size == 0 or len(batch) == 0:
        return np.full(index.shape, -1)
    steps = np.stack(np.meshgrid(*[np.arange(-2, 3)] * len(batch), indexing="ij"), -1)
    steps = steps.reshape(-1, len(batch))
    steps = steps[np.argsort(np.sum(steps**2, 1), kind="stable")][1:]
    cells = np.stack(np.unravel_index(index, batch), -1)[:, None, :] + steps[None]
    inside = np.all((cells >= 0) & (cells < np.array(batch)), -1)
    flat = np.ravel_multi_index(tuple(np.clip(cells, 0, np.array(batch) - 1).T), batch).T
    ok = inside & usable[flat]
    rank = np.cumsum(ok, 1) - 1
    hit = ok & (rank == round_)
    return np.where(np.any(hit, 1), flat[np.arange(index.size), np.argmax(hit, 1)], -1)


def _chaos_pick(sol, tol, nonzero: bool):
    """Per point, the guess whose chaotic solve converged (with kappa != 0 if
    `nonzero`), preferring the last (the hint's); `found` says whether any did."""
    ok = sol.result._value == 0
    if nonzero:
        with np.errstate(over="ignore", invalid="ignore"):  # diverged iterates: not ok
            ok = ok & (np.sqrt(np.sum(sol.kappa**2, -1)) > tol[:, None])
    # Where none converged, the hint's (its last iterate).
    pick = np.where(ok[:, -1] | ~np.any(ok, 1), ok.shape[1] - 1, np.argmax(ok, 1))
    rows = np.arange(ok.shape[0])
    return jax.tree.map(lambda x: x[rows, pick], sol), np.any(ok, 1)


def _solve_chaotic(flat: Point, index, hints, starts, settings, n_dev, nonzero: bool,
                   ladder: bool = False):
    """Chaotic solves at the points `index` from kappa `hints` and (delta_inf, q)
    `starts` (NaN: the coarse guess, computed for those points only). Returns the picked
    solutions, whether each converged, and each point's kappa tolerance.

    With `ladder` (the last retry of failed points) Newton starts from the coarse
    guess's Delta0 with q / Delta0 on `LADDER`, as rows of their own: the coarse rule's
    error, amplified by 1/q near the onset, can put q far enough off that Newton leaves
    the root. The same compiled programs run; the first rung that converged is kept."""
    guesses = 1 if flat.rank == 1 else flat.rank + 1
    full = np.broadcast_to(starts[:, None, :], (index.size, guesses, 2)).copy()
    need = np.nonzero((guesses > 1) | ~np.all(np.isfinite(starts), -1) | ladder)[0]
    if need.size:
        full[need] = _run(
            _chaos_guess_stage, flat, index[need], (hints[need], starts[need]), (), n_dev,
            "chaos",
        )
    if not ladder:
        return _chaotic_newton(flat, index, hints, full, settings, n_dev, nonzero)
    k = LADDER.size
    rows = np.repeat(np.arange(index.size), k)
    full = full[rows]
    delta0 = full[..., 0] + full[..., 1]  # kept: the coarse guess gets Delta0 roughly right
    full[..., 1] = delta0 * np.tile(LADDER, index.size)[:, None]
    full[..., 0] = delta0 - full[..., 1]
    sol, found, tol = _chaotic_newton(flat, index[rows], hints[rows], full, settings, n_dev,
                                      nonzero)
    found = found.reshape(index.size, k)
    pick = np.arange(index.size) * k + np.where(np.any(found, 1), np.argmax(found, 1), k // 2)
    return jax.tree.map(lambda x: x[pick], sol), np.any(found, 1), tol[pick]


def _chaotic_newton(flat: Point, index, hints, starts, settings, n_dev, nonzero: bool):
    """`_solve_chaotic` from (delta_inf, q) `starts` for every kappa guess."""
    y, converged, _ = _run_queue(
        _chaos_entries, chaos_residual, flat, index, (hints, starts), settings, n_dev, "chaos"
    )
    sol, tol = _run(
        _chaos_finish_stage, flat, index, (hints, y, converged), settings, n_dev, "chaos"
    )
    return (*_chaos_pick(sol, tol, nonzero), tol)


def _run_queue(entries, residual, flat: Point, index, extra, settings, n_dev, kind,
               least_squares=False, stall=None):
    """`_queue` over the points `index` in blocks of at most a fixed size (one
    compilation), each device taking an equal share of a block. On a multi-core CPU
    the blocks run side by side (`_in_parallel`), at least one per core, after a small
    first block where the program has not run yet (it compiles)."""
    capacity, slots = _QUEUE.get(jax.default_backend(), _QUEUE_ACCELERATOR)[kind]
    small = _SMALL.get()
    capacity = min(capacity, _SMALL_GRID) if small else capacity
    per = -(-capacity // n_dev)
    capacity = per * n_dev
    run = ft.partial(_queue.pick(small), entries, residual, settings=settings, slots=slots, n_dev=n_dev,
                     least_squares=least_squares, stall=stall)
    key = _signature(run.func, entries, residual, settings, slots, n_dev, least_squares, stall,
                     capacity, trees=(flat, extra))
    workers = _workers(n_dev)
    # A first block of `slots` problems compiles the program alone, unless it ran before.
    solo = workers > 1 and key not in _READY
    first = min(index.size, capacity, slots) if solo else 0
    rest = index.size - first
    blocks = -(-rest // capacity)
    blocks = -(-blocks // workers) * workers if rest else 0
    bounds = np.concatenate([[0], first + np.linspace(0, rest, blocks + 1).round().astype(int)])
    bounds = np.unique(bounds)

    def block(lo_hi):
        part = np.arange(*lo_hi)
        shares = np.array_split(part, n_dev)
        take = np.full(capacity, part[-1])
        for d, share in enumerate(shares):
            take[d * per : d * per + share.size] = share
        count = np.array([share.size for share in shares], np.int32)
        arrays = tuple(a[index[take]] for a in point_arrays(flat))
        tree = (arrays, jax.tree.map(lambda x: x[take], extra), count)
        if n_dev > 1:
            tree = _shard(tree, n_dev)
        arrays, e, c = jax.tree.map(jnp.asarray, tree)
        out = _to_host(run(eqx.tree_at(point_arrays, flat, arrays), e, c))
        back = np.concatenate([d * per + np.arange(share.size) for d, share in enumerate(shares)])
        return tuple(x[back] for x in out)

    out = _in_parallel(block, zip(bounds[:-1], bounds[1:]), n_dev, key)
    return tuple(np.concatenate(x) for x in zip(*out))


def _fixed_points(flat: Point, index, hints, settings, n_dev) -> _FixedStage:
    """Fixed points at the points `index` (`_fixed_guesses`, with `hints`)."""
    rtol, atol, max_steps = settings
    quick = (rtol, atol, min(max_steps, QUICK_NEWTON_STEPS))
    odd = _odd_points(flat)[index]
    y, converged, nonzero = _run_queue(
        _fixed_entries, static_residual, flat, index, (hints, odd), quick, n_dev, "fixed",
        flat.rank >= 2, _FIXED_STALL,
    )
    # Checks and stability of the converged guesses only (most guesses find no root).
    rows, guess = np.nonzero(converged)
    if rows.size == 0:  # one evaluation for the results' structure, masked anyway
        rows, guess = np.zeros(1, int), np.zeros(1, int)
    part = _run(
        _fixed_result_stage, flat, index[rows], (y[rows, guess], nonzero[rows, guess]),
        settings, n_dev,
    )
    fixed = jax.tree.map(lambda x: np.zeros(converged.shape + x.shape[1:], x.dtype), part)
    fixed = jax.tree.map(lambda full, x: _scatter(full, (rows, guess), x), fixed, part)
    return _run(_fixed_stage, flat, index, (fixed, converged), (), n_dev)


def phase_diagram(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    *,
    inputs: Float[ArrayLike, "*batch n_inputs"] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 24,
    shard: bool = True,
    progress: bool = False,
    throw: bool = True,
) -> PhaseDiagram:
    """Phases and order parameters over a parameter grid.

    Per point: the fixed points from kappa = 0 and +-kappa guesses, their bulk radius and
    outliers; if none is stable, the chaotic state with kappa = 0 and its stability
    along kappa, and if that is unstable the chaotic states with kappa != 0. Labels
    follow from stability (see [`mfrnn.PhaseDiagram`][]); failed points get the label
    -1 and NaN order parameters. Each stage is one compiled program over a dense
    batch of the points that need it (see the module notes).

    **Arguments:**

    - `ensemble`: fields as arrays over a grid, e.g.
      `LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G)` with `G, S = meshgrid(...)`.
    - `inputs`: constant inputs, broadcast against the grid.
    - `rtol`, `atol`, `max_steps`: Newton settings.
    - `shard`: with several devices, split each batch across them (jax.sharding).
    - `progress`: report each stage (points, seconds) on stderr as it finishes.
    - `throw`: raise if any point failed, as every entry point does; with `False`,
      failed points get the label -1 (check `success` and `result`).

    ```python
    G, S = jnp.meshgrid(jnp.linspace(0.2, 3, 40), jnp.linspace(0, 3, 40), indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G)
    pd = mfrnn.phase_diagram(ens, throw=False)  # a large grid: keep the failed cells
    ```
    """
    rtol, atol = check_common(ensemble, rtol, atol, max_steps)
    point, batch = points(ensemble, inputs)
    size = int(np.prod(batch))
    if size == 0:
        raise ValueError(
            f"The grid is empty (batch shape {batch}): every array field of `ensemble` "
            "and `inputs` needs at least one value."
        )
    flat = eqx.tree_at(
        point_arrays,
        point,
        tuple(np.asarray(a).reshape((size,) + a.shape[len(batch) :]) for a in point_arrays(point)),
    )
    check_point_on_host(flat)  # stages carry no checks: they stay cacheable
    small = _SMALL.set(size <= _SMALL_GRID)
    try:
        return _phase_diagram(flat, batch, size, rtol, atol, max_steps, shard, progress, throw)
    finally:
        _SMALL.reset(small)


def _phase_diagram(flat, batch, size, rtol, atol, max_steps, shard, progress, throw):
    n_dev = jax.device_count() if shard else 1
    settings = (rtol, atol, max_steps)
    everything = np.arange(size)

    R, P = flat.rank, flat.fractions.shape[-1]
    report = _Report(size, progress)

    # 1. Fixed points; retries where the first pass looks incomplete, with converged
    # neighbours' branches as extra guesses (the same compiled program).
    no_hint = np.zeros((size, R), flat.means.dtype)
    fs = _fixed_points(flat, everything, no_hint, settings, n_dev)
    for round_ in range(_RETRY_ROUNDS):
        bad = np.nonzero(fs.static_failed)[0]
        has_branch = ~fs.static_failed & np.any(fs.branch_kappa != 0, -1)
        nb = _neighbours(batch, bad, has_branch, round_)
        redo = bad[nb >= 0]
        if redo.size == 0:
            break
        hint = fs.branch_kappa[nb[nb >= 0]]
        fs = _patch(fs, redo, _fixed_points(flat, redo, hint, settings, n_dev))
    chosen = fs.chosen
    need = ~fs.has_fp & ~fs.zero_stable & ~fs.static_failed
    report("fixed points", size)

    # 2. The kappa = 0 chaotic state where no fixed point is stable.
    dtype = flat.means.dtype
    c_kappa = np.full((size, R), np.nan, dtype)
    c_delta0 = np.full((size, P), np.nan, dtype)
    c_delta_inf = np.full((size, P), np.nan, dtype)
    c_outlier = np.full((size,), np.nan, dtype)
    zero_chaos_stable = np.zeros(size, bool)
    has_chaos_kappa = np.zeros(size, bool)

    def store(index, sol, usable, outlier=True):
        c_kappa[index] = sol.kappa
        c_delta0[index] = sol.delta0
        c_delta_inf[index] = sol.delta_inf
        if outlier:
            c_outlier[index] = sol.outlier
            zero_chaos_stable[index] = usable & sol.stable

    def chaos(index, hints, nonzero):
        """Chaotic solves at `index`: first from the hints and coarse guesses on a
        sub-lattice of the grid, then in waves from the nearest converged neighbour's
        solution (no coarse guess; Newton starts close); then retries."""
        n = index.size
        no_start = np.full((n, 2), np.nan, dtype)
        sol, found, tol = None, np.zeros(n, bool), np.zeros(n, dtype)
        guessed = np.zeros(n, bool)  # tried from its own hint and coarse guess
        pending = np.ones(n, bool)
        converged = np.zeros(size, bool)
        kappa = np.zeros((size, R), dtype)
        start = np.full((size, 2), np.nan, dtype)

        def attempt(rows, h, s0, ladder=False):
            nonlocal sol, found, tol
            part = _solve_chaotic(flat, index[rows], h, s0, settings, n_dev, nonzero, ladder)
            if sol is None:
                sol = jax.tree.map(lambda x: np.repeat(x[:1], n, 0), part[0])
            sol, found, tol = _patch((sol, found, tol), rows, part)
            pending[rows] = False
            converged[index[rows]], kappa[index[rows]] = found[rows], sol.kappa[rows]
            with np.errstate(invalid="ignore"):  # NaN where a solve failed: unused
                q = sol.delta0[rows, 0] - sol.delta_inf[rows, 0]
            start[index[rows]] = np.stack([sol.delta_inf[rows, 0], q], -1)

        def from_guess(rows):
            guessed[rows] = True
            attempt(rows, hints[rows], no_start[rows])

        cells = np.stack(np.unravel_index(index, batch), -1) if batch else np.zeros((n, 0))
        seeds = np.all(cells % _SEED_STRIDE == 0, -1)
        from_guess(np.nonzero(seeds)[0] if np.any(seeds) else np.arange(n))
        while np.any(pending):
            rows = np.nonzero(pending)[0]
            nb = _neighbours(batch, index[rows], converged, 0)
            if np.any(nb >= 0):
                rows, nb = rows[nb >= 0], nb[nb >= 0]
                attempt(rows, kappa[nb], start[nb])
            else:  # none near a solved point: seed again, sparsely unless few are left
                sparse = _SEED_STRIDE ** max(len(batch), 1)
                from_guess(rows if rows.size <= sparse else rows[::sparse])
        # Failed from a neighbour's start: their own guesses; then other neighbours.
        retry = np.nonzero(~found & ~guessed)[0]
        if retry.size:
            from_guess(retry)
        for round_ in range(_RETRY_ROUNDS):
            bad = np.nonzero(~found)[0]
            nb = _neighbours(batch, index[bad], converged, round_)
            if not np.any(nb >= 0):
                break
            attempt(bad[nb >= 0], kappa[nb[nb >= 0]], start[nb[nb >= 0]])
        bad = np.nonzero(~found)[0]
        if bad.size:  # last: a ladder of starts (`_solve_chaotic`)
            attempt(bad, hints[bad], no_start[bad], ladder=True)
        return sol, found, tol

    zero_root, keys = _random_field_keys(flat)
    shared = np.nonzero(need & zero_root)[0]
    if shared.size:
        # Solved once per distinct (g, fractions, input variances).
        _, first, inverse = np.unique(
            keys[shared], axis=0, return_index=True, return_inverse=True
        )
        inverse = inverse.reshape(-1)
        # The chaotic stage's own program (no second compilation) on the points with
        # their n-loadings zeroed: the kappa = 0 state's equations do not involve n,
        # and kappa = 0 becomes a well-conditioned root even where sigma_mn <phi'> = 1.
        i_n = np.array(loading_index(R, flat.n_inputs)["n"])
        means, covs = flat.means.copy(), flat.covs.copy()
        means[..., i_n], covs[..., i_n, :], covs[..., :, i_n] = 0, 0, 0
        no_n = eqx.tree_at(lambda t: (t.means, t.covs), flat, (means, covs))
        reps = shared[first]
        held = (np.full((reps.size, R), np.nan, dtype), np.full((reps.size, 2), np.nan, dtype))
        zero, ok, _ = _solve_chaotic(no_n, reps, *held, settings, n_dev, nonzero=False)
        if not np.all(ok):  # a ladder of starts (`_solve_chaotic`)
            bad = np.nonzero(~ok)[0]
            part = _solve_chaotic(
                no_n, reps[bad], *(x[bad] for x in held), settings, n_dev, False, ladder=True
            )
            zero, ok = _patch((zero, ok), bad, part[:2])
        with np.errstate(invalid="ignore"):
            q = zero.delta0[:, 0] - zero.delta_inf[:, 0]
        extra = tuple(x[inverse] for x in (zero.delta_inf[:, 0], q, zero.residual, ok))
        sol = _run(_zero_chaos_state_stage, flat, shared, extra=extra, n_dev=n_dev)
        store(shared, sol, sol.result._value == 0)
        report("chaos, kappa = 0 (shared)", shared.size)
    own = np.nonzero(need & ~zero_root)[0]
    if own.size:
        # From the fixed point continued from kappa = 0: where kappa = 0 is no root
        # (inputs, biased phi), the chaotic kappa has its sign and roughly its size.
        sol, found, tol = chaos(own, chosen.kappa[own], nonzero=False)
        small = np.sqrt(np.sum(sol.kappa**2, -1)) <= tol
        store(own, sol, found & small)
        # The state found there has kappa != 0 already: no further guesses needed.
        has_chaos_kappa[own] = found & ~small
        report("chaos from the fixed points' kappa", own.size)

    # 3. The kappa != 0 chaotic states where kappa = 0 chaos is unstable along kappa.
    axes = np.nonzero(need & ~zero_chaos_stable & ~has_chaos_kappa)[0]
    if axes.size:
        sol, found, _ = chaos(axes, fs.branch_kappa[axes], nonzero=True)
        has_chaos_kappa[axes] = found
        store(axes[found], jax.tree.map(lambda x: x[found], sol), None, outlier=False)
        report("chaos, kappa != 0", axes.size)

    chaos_failed = need & ~zero_chaos_stable & ~has_chaos_kappa
    # No chaotic state where no stable fixed point was found: perhaps one was missed
    # (several branches). Retry the fixed points from neighbours' stable ones.
    for round_ in range(_RETRY_ROUNDS):
        bad = np.nonzero(chaos_failed)[0]
        nb = _neighbours(batch, bad, fs.has_fp, round_)
        redo = bad[nb >= 0]
        if redo.size == 0:
            break
        part = _fixed_points(flat, redo, fs.chosen.kappa[nb[nb >= 0]], settings, n_dev)
        found = part.has_fp
        fs = _patch(fs, redo[found], jax.tree.map(lambda x: x[found], part))
        chaos_failed[redo[found]] = False
        need[redo[found]] = False
    chosen = fs.chosen
    failed = fs.static_failed | chaos_failed
    report("done", size, failed=int(np.sum(failed)))
    phase = np.where(
        fs.has_fp,
        FIXED_POINT_PHASE,
        np.where(
            fs.zero_stable,
            np.where(chosen.regime == 0, QUIESCENT_PHASE, FIXED_POINT_PHASE),
            np.where(zero_chaos_stable, CHAOTIC_PHASE, CHAOTIC_KAPPA_PHASE),
        ),
    )
    phase = np.where(fs.has_fp & (chosen.manifold_dimension > 0), CONTINUOUS_ATTRACTOR_PHASE, phase)
    phase = np.where(failed, FAILED_PHASE, phase)
    kappa = np.where(need[:, None], c_kappa, chosen.kappa)
    delta0 = np.where(need[:, None], c_delta0, chosen.delta0)
    delta_inf = np.where(need[:, None], c_delta_inf, chosen.delta_inf)
    outlier = np.where(need, c_outlier, chosen.outlier)
    result = jax.vmap(
        lambda static, chaos: RESULTS.where(
            static,
            RESULTS.static_not_converged,
            RESULTS.where(chaos, RESULTS.chaotic_not_converged, RESULTS.successful),
        )
    )(jnp.asarray(fs.static_failed), jnp.asarray(chaos_failed))
    shape = lambda x: jnp.asarray(x.reshape(batch + x.shape[1:]))
    sol = PhaseDiagram(
        phase=shape(phase),
        kappa=shape(_nan_where(kappa, failed)),
        delta0=shape(_nan_where(delta0, failed)),
        delta_inf=shape(_nan_where(delta_inf, failed)),
        bulk_radius=shape(chosen.bulk_radius),
        outlier=shape(outlier),
        manifold_dimension=shape(np.where(need | failed, 0, chosen.manifold_dimension)),
        success=shape(~failed),
        result=jax.tree.map(shape, result),
    )
    return raise_if_failed(sol, lambda s: s.kappa) if throw else sol


# ----------------------------------------------------------------------------------
# Boundaries.


class BoundarySolution(eqx.Module):
    """A phase boundary: the critical `value` (g or overlap), the state there, `result`."""

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    value: Float[Array, "*batch"]
    kappa: Float[Array, "*batch rank"]
    delta0: Float[Array, "*batch"]
    result: RESULTS


def _check_phi(phi):
    if not isinstance(phi, AbstractNonlinearity):
        raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")


@eqx.filter_jit
def kappa_instability_overlap(
    g: Float[ArrayLike, "*batch"], phi: AbstractNonlinearity = Tanh(), *, throw: bool = True
) -> BoundarySolution:
    """Overlap (sigma_mn, or M_m M_n) above which the kappa = 0 state is unstable along
    kappa: `overlap <phi'>_{0, Delta0_SCS(g)} = 1`. For g < 1 (Delta0 = 0) it is the
    pitchfork overlap = 1/phi'(0); for g > 1 the chaos(kappa = 0) -> chaos(kappa != 0)
    boundary (the g_BB curve). Needs odd phi, no bias and no input (kappa = 0 a solution).
    """
    _check_phi(phi)
    g = jnp.asarray(g, jnp.result_type(float))
    sol = solve_dmft(GaussianEnsemble(g, phi=phi), throw=False)
    dphi = vmap_batch(lambda d: phi.gaussian_mean(0.0, d, "dphi"), g.ndim)(sol.delta0)
    out = BoundarySolution(
        value=1.0 / dphi, kappa=jnp.zeros(g.shape + (1,), g.dtype), delta0=sol.delta0,
        result=sol.result,
    )
    return raise_if_failed(out, lambda s: s.value) if throw else out


def _gbb_residual(delta, args):
    overlap, phi = args
    return overlap * phi.gaussian_mean(0.0, delta, "dphi") - 1.0


@eqx.filter_jit
def kappa_instability_g(
    overlap: Float[ArrayLike, "*batch"],
    phi: AbstractNonlinearity = Tanh(),
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 80,
    throw: bool = True,
) -> BoundarySolution:
    """g_BB(overlap): the g above which chaos has kappa = 0 (the kappa != 0 chaotic
    branches end), from `overlap <phi'>_{0, Delta0} = 1` and the SCS energy balance
    `Delta0^2 / 2 = g^2 (<Phi^2> - <Phi>^2)_{0, Delta0}` (odd phi, no bias or input).
    Mastrogiuseppe & Ostojic 2018, M_m M_n = 2.2: g_BB = 2.136. Overlap <= 1: no
    boundary (result `no_onset`)."""
    _check_phi(phi)
    dtype = jnp.result_type(float)
    rtol, atol = tolerances(rtol, atol, dtype)
    check_tolerance(rtol, atol, max_steps)
    overlap = jnp.asarray(overlap, dtype)

    def one(o):
        # <phi'> falls from phi'(0) as Delta0 grows: bracket in log Delta0.
        ok_overlap = o * phi.derivative(0.0) > 1.0
        o_safe = jnp.where(ok_overlap, o, 2.0)
        sol = optx.root_find(
            lambda ld, a: _gbb_residual(jnp.exp(ld), a),
            optx.Bisection(rtol=1e-3, atol=1e-3, flip=True),
            jnp.asarray(0.0, dtype),
            args=(jax.lax.stop_gradient(o_safe), phi),
            options=dict(lower=jnp.log(1e-8), upper=jnp.log(1e4)),
            max_steps=200,
            throw=False,
        )
        fine = optx.root_find(
            _gbb_residual, optx.Newton(rtol, atol), jnp.exp(sol.value), args=(o_safe, phi),
            max_steps=max_steps, throw=False,
        )
        d0 = fine.value
        var_Phi = phi.gaussian_second_moment(0.0, d0, "Phi") - phi.gaussian_mean(0.0, d0, "Phi") ** 2
        g = d0 / jnp.sqrt(2.0 * var_Phi)
        ok = ok_overlap & (fine.result == optx.RESULTS.successful) & jnp.isfinite(g)
        return BoundarySolution(
            value=jnp.where(ok_overlap, g, jnp.nan), kappa=jnp.zeros((1,), dtype), delta0=d0,
            result=RESULTS.where(ok, RESULTS.successful, RESULTS.no_onset),
        )

    out = vmap_batch(one, overlap.ndim)(overlap)
    return raise_if_failed(out, lambda s: s.value) if throw else out


def _boundary_residual(y, args):
    # Unknowns (kappa, D, g): the fixed-point equations and bulk radius = 1.
    p, nonzero = args
    R = p.rank
    q = _with_g(p, y[R + 1])
    fixed = static_residual(y[: R + 1], (q, nonzero))
    bulk = outlier_matrix(q, y[:R], y[R])[0]
    return jnp.concatenate([fixed, (bulk - 1.0)[None]])


# Continuation in g along a fixed-point branch: first and largest step, the smallest
# step before the branch counts as lost, and the largest g searched.
_STEP, _MAX_STEP, _MIN_STEP, _G_MAX = 0.05, 0.2, 1e-4, 50.0


def _with_g(p: Point, g) -> Point:
    return eqx.tree_at(lambda t: t.g, p, jnp.asarray(g, p.g.dtype))


def _follow_branch(p: Point, kappa0, rtol, atol, max_steps):
    """Follow the fixed point that starts from `kappa0` at g = 0 up in g (warm-started
    Newton, adaptive step) until its bulk radius reaches 1. Returns the bracket
    (g_lo, y_lo, r_lo), (g_hi, y_hi, r_hi) with y = (kappa, D), the branch's nonzero
    flag, and a code: 0 crossed, 1 no fixed point at g = 0 or branch lost, 2 no
    crossing below _G_MAX."""
    R = p.rank
    p0 = _with_g(p, 0.0)
    linear_solver = static_linear_solver(p)

    def root(k):  # the fixed point at g = 0 (D = 0 there) from the guess k
        nz = jnp.any(k != 0)
        y = trust_region(static_residual, jnp.append(k, 0.0), (p0, nz), linear_solver)
        sol = newton(static_residual, y, (p0, nz), rtol, atol, max_steps, linear_solver)
        ok = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
        return sol.value, ok & ~(nz & (jnp.sum(sol.value[:R] ** 2) < 1e-12))

    # From kappa0 and, where it finds no kappa != 0 root at g = 0, from kappa = 0.
    ys, found = jax.vmap(root)(jnp.stack([kappa0, jnp.zeros_like(kappa0)]))
    y0 = jnp.where(found[0], ys[0], jnp.where(found[1], ys[1], 0.0))
    ok0 = found[0] | found[1]
    nonzero = jnp.any(y0[:R] != 0)
    dtype = y0.dtype
    zero = jnp.asarray(0.0, dtype)

    def bulk(g, y):
        return outlier_matrix(_with_g(p, g), y[:R], y[R])[0]

    def cond(c):
        return c["code"] < 0

    def body(c):
        g_new = c["g"] + c["step"]
        args = (_with_g(p, g_new), nonzero)
        sol = newton(static_residual, c["y"], args, rtol, atol, 16, linear_solver)
        y_new = sol.value
        ok = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(y_new))
        # A kappa != 0 branch that collapses to kappa = 0 has merged: treat as lost.
        ok = ok & ~(nonzero & (jnp.sum(y_new[:R] ** 2) < 1e-12))
        r_new = jnp.where(ok, bulk(g_new, y_new), c["r"])
        crossed = ok & (r_new >= 1.0)
        advance = ok & ~crossed
        step = jnp.where(ok, jnp.minimum(1.5 * c["step"], _MAX_STEP), 0.5 * c["step"])
        code = jnp.where(crossed, 0, jnp.where(step < _MIN_STEP, 1, -1))
        code = jnp.where(advance & (g_new >= _G_MAX), 2, code)
        return dict(
            g=jnp.where(advance, g_new, c["g"]),
            y=jnp.where(advance, y_new, c["y"]),
            r=jnp.where(advance, r_new, c["r"]),
            g_hi=g_new, y_hi=y_new, r_hi=r_new,
            step=jnp.where(crossed, c["step"], step),
            code=code,
        )

    init = dict(
        g=zero, y=y0, r=zero, g_hi=zero, y_hi=y0, r_hi=zero,
        step=jnp.asarray(_STEP, dtype), code=jnp.where(ok0, -1, 1),
    )
    out = jax.lax.while_loop(cond, body, init)
    return out, nonzero


@eqx.filter_jit
def fixed_point_chaos_boundary(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa0: Float[ArrayLike, " rank"] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 80,
    throw: bool = True,
) -> BoundarySolution:
    """g_C: the g at which a fixed-point branch loses stability to chaos,
    `g sqrt(<phi'^2>) = 1`. The branch is the fixed point at g = 0 reached from `kappa0`
    (default: +kappa along the first latent axis; the kappa = 0 branch where no such
    root exists), followed up in g by continuation until its bulk radius crosses 1;
    then the crossing is solved jointly with the fixed-point equations by Newton. The
    ensemble's own g is not used. Failed points return NaN: `no_onset` where the
    radius stays below 1 up to g = 50, `static_not_converged` where the branch is lost
    (it ends in a saddle-node) or the final solve fails.
    Mastrogiuseppe & Ostojic 2018 (M_m = 1.1, M_n = 2, s_m = s_n = 1): g_C = 1.796.
    """
    rtol, atol = check_common(ensemble, rtol, atol, max_steps)
    point, batch = points(ensemble, None)

    def one(p):
        p = check_point(p)
        guess = default_guesses(p, Branch.fixed_point)[1] if kappa0 is None else kappa0
        guess = jnp.asarray(guess, p.g.dtype)
        R = p.rank
        path, nonzero = jax.lax.stop_gradient(_follow_branch(p, guess, rtol, atol, max_steps))
        # Linear interpolation of the bracket in the bulk radius: Newton's start.
        w = (1.0 - path["r"]) / jnp.where(path["r_hi"] > path["r"], path["r_hi"] - path["r"], 1.0)
        w = jnp.clip(w, 0.0, 1.0)
        g0 = path["g"] + w * (path["g_hi"] - path["g"])
        y0 = jnp.concatenate([path["y"] + w * (path["y_hi"] - path["y"]), g0[None]])
        sol = optx.root_find(
            _boundary_residual, optx.Newton(rtol, atol), y0, args=(p, nonzero),
            max_steps=max_steps, throw=False,
        )
        g_c = sol.value[R + 1]
        crossed = path["code"] == 0
        ok = crossed & (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
        # The root must be this crossing, not another one Newton wandered to.
        width = path["g_hi"] - path["g"]
        ok = ok & (g_c >= path["g"] - width) & (g_c <= path["g_hi"] + width)
        nan = jnp.asarray(jnp.nan, g_c.dtype)
        code = jnp.where(ok, 0, jnp.where(path["code"] == 2, 2, 1))
        return BoundarySolution(
            value=jnp.where(ok, g_c, nan),
            kappa=jnp.where(ok, sol.value[:R], nan),
            delta0=jnp.where(ok, stats(p, sol.value[:R]).L[0] + sol.value[R], nan),
            result=RESULTS.where(
                code == 0,
                RESULTS.successful,
                RESULTS.where(code == 2, RESULTS.no_onset, RESULTS.static_not_converged),
            ),
        )

    out = map_points(one, point, batch)
    return raise_if_failed(out, lambda s: s.value) if throw else out
