"""The compiled programs of a training run, and where they are kept.

A run compiles four programs (`step.py`): `start`, `evaluation_batch`, `sample_batches`
and `train_steps`. What they are is decided by what the run trains (the task, network
spec, config, member count and chunk length) and by the code that builds them, so each
has an identity: a hash of those, of mfrnn's sources, of the versions of JAX and its
companions, of JAX's settings and of the machine. By identity they are kept

- in memory, for the rest of the process (a second `fit` of the same shapes compiles
  nothing, traces nothing);
- where the persistent compilation cache is in use (`compilation_cache_scope`), as
  serialised executables in its folder (`mfrnn-programs/`), so that a later process
  reads them back without tracing, lowering or compiling: the same executable, hence
  bit-identical parameters.

The programs of tasks defined outside mfrnn (whose code, and the code it calls, could
change unseen) are kept in memory by their task's class, and across processes by JAX's
own persistent cache only, which traces and lowers them first. A program that JAX's
cache returned is not stored by mfrnn: XLA:CPU writes such an executable again without
all of its kernels.

Compile options (CPU): XLA's older loop emitters (`xla_cpu_use_fusion_emitters` off)
compile these programs in about half the time at the same run time; `start` is compiled
at LLVM -O1, which keeps the initial networks bit-identical to `init_network`'s, the two
programs that only draw trials at -O0 (threefry at -O2 compiles for seconds), the
training steps at -O1 (as fast as -O2 here, compiled faster).
"""

import base64
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import pathlib
import pickle
import platform
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np

from .._compilation_cache import (
    compilation_cache_scope,
    persistent_cache_folder,
    PROGRAM_HIT_EVENT,
)
from .._programs import abstract_value, output_shapes, Program, run_split, split_arrays
from .config import start
from .step import evaluation_batch, sample_batches, train_steps


# Name -> (function, LLVM optimisation level).
PROGRAMS = {
    "start": (start, 1),
    "evaluation": (evaluation_batch, 0),
    "sample": (sample_batches, 0),
    "train": (train_steps, 1),
}
_FORMAT = 2  # of the stored programs and of the identity; bump when either changes
_MAGIC = b"MFRNN-PROGRAM-1\n"  # then the header's length, the header, the zlib payload
_FOLDER = "mfrnn-programs"
_LOOP_ONLY = ("n_steps", "eval_every", "checkpoint_every", "target_accuracy", "target_loss")
_MEMORY: dict[tuple, Program] = {}
_MEMORY_SIZE = 64
_LOCK = threading.Lock()


def _int(value) -> np.ndarray:
    return np.asarray(value, np.int32)


def _source_fingerprint() -> str:
    """Hash of mfrnn's sources as this process imported them."""
    root = pathlib.Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


_SOURCES = _source_fingerprint()  # at import: the code that runs, not later edits


def _versions() -> dict:
    out = {"python": sys.version}
    for name in ("jax", "jaxlib", "equinox", "optax", "diffrax", "jaxtyping", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _machine() -> dict:
    """The backend, its devices and (CPU code is compiled for the host) the host CPU."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    backend = jax.devices()[0].client
    return dict(platform=backend.platform, version=backend.platform_version,
                devices=sorted({d.device_kind for d in jax.devices()}),
                machine=platform.machine(), processor=platform.processor(),
                cpu_flags=hashlib.sha256(flags.encode()).hexdigest())


_ENVIRONMENT: dict = {}


def _settings() -> list:
    """JAX's settings (global and those of the current context) that can change a
    program, as text; the cache's own and logging ones left out."""
    skip = ("cache", "log", "dump", "traceback", "pprint", "explain", "profil")
    values = sorted((k, repr(v)) for k, v in jax.config.values.items()
                    if not any(s in k for s in skip))
    try:
        from jax._src.config import trace_context
        context = [repr(v) for v in trace_context()]
    except Exception:  # (private API) only the global settings then
        context = []
    # Objects without a stable text (the axis environment: empty outside transforms).
    context = [type(v).__name__ if " at 0x" in v else v for v in context]
    return [values, context, os.environ.get("XLA_FLAGS", "")]


def options(opt_level: int | None) -> dict | None:
    """XLA compile options of a program compiled at LLVM level `opt_level`."""
    out = {} if opt_level is None else {"xla_backend_optimization_level": opt_level}
    if jax.default_backend() == "cpu":
        out["xla_cpu_use_fusion_emitters"] = False
    return out or None


def identity(name, task, spec, config, key, n_seeds, n_chunk=None) -> tuple:
    """The identity of program `name` of a run: `(memory key, file name)`. The file name
    (a hash of the description) is None for a task defined outside mfrnn, whose code is
    not covered, or a description without a stable text; in memory, such a program is
    kept by its task's class (a class defined again is another program)."""
    if not _ENVIRONMENT:
        _ENVIRONMENT.update(versions=_versions(), machine=_machine())
    arrays = [str(abstract_value(x)) for x in jtu.tree_leaves(task) if eqx.is_array(x)]
    description = dict(
        format=_FORMAT, program=name, sources=_SOURCES, options=options(PROGRAMS[name][1]),
        settings=_settings(), task=[type(task).__module__, type(task).__qualname__,
                                    task.spec(), arrays],
        spec=dataclasses.asdict(spec), key=str(abstract_value(key)),
        # The settings that only the loop reads (it sets `n_chunk`) are no part of them.
        config={k: v for k, v in dataclasses.asdict(config).items() if k not in _LOOP_ONLY},
        n_seeds=n_seeds, n_chunk=n_chunk if name in ("sample", "train") else None,
        **_ENVIRONMENT,
    )
    text = json.dumps(description, sort_keys=True, default=repr)
    stable = type(task).__module__.startswith("mfrnn.") and " at 0x" not in text
    return (type(task), text), (hashlib.sha256(text.encode()).hexdigest() if stable else None)


_JAX_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_THREAD = threading.local()  # .jax_hit: JAX's persistent cache returned the last compile


def _on_event(event, **kwargs):
    if event == _JAX_HIT_EVENT:
        _THREAD.jax_hit = True


_LISTENING: list = []  # registered with jax.monitoring at the first compile, not at import


def _lower(fun, args):
    """`fun(*args)` traced and lowered (the arrays of `args` may be ShapeDtypeStructs)."""
    dynamic, structure = split_arrays(args)
    return run_split.lower(fun, structure, [abstract_value(x) for x in dynamic])


def _compile(lowered, opt_level):
    """A lowered program compiled with `options(opt_level)`: the `jax.stages.Compiled`,
    and whether JAX's persistent cache returned it (XLA:CPU writes an executable read
    back from a cache without all of its kernels: such a one is not stored again)."""
    with _LOCK:
        if not _LISTENING:
            jax.monitoring.register_event_listener(_on_event)
            _LISTENING.append(True)
    _THREAD.jax_hit = False
    try:
        compiled = lowered.compile(options(opt_level))
    except jax.errors.JaxRuntimeError as e:  # an XLA without the option
        if "xla_cpu_use_fusion_emitters" not in str(e):
            raise
        compiled = lowered.compile(None if opt_level is None
                                   else {"xla_backend_optimization_level": opt_level})
    return compiled, _THREAD.jax_hit


def _in_tree(n: int):
    """The input tree of a compiled `run_split`: its `n` arrays."""
    return jtu.tree_structure(((list(range(n)),), {}))


def _path(folder, ident) -> pathlib.Path:
    return pathlib.Path(folder) / _FOLDER / f"{ident}.program"


# Sentinels that pytrees compare by identity (equinox's MISSING, in a Module's node
# data): pickled by name, so that a tree read back equals the one the code builds.
_SENTINELS = (("equinox._module._flatten", "MISSING"),)


class _TreePickler(pickle.Pickler):
    def persistent_id(self, obj):
        for module, name in _SENTINELS:
            if module in sys.modules and obj is getattr(sys.modules[module], name, None):
                return module, name
        return None


class _TreeUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        module, name = pid
        return getattr(sys.modules[module], name)


def _tree_text(tree) -> str | None:
    """An output tree as text that `_tree` reads back equal to it, or None."""
    buffer = io.BytesIO()
    try:
        _TreePickler(buffer).dump(tree)
        if _TreeUnpickler(io.BytesIO(buffer.getvalue())).load() != tree:
            return None
    except Exception:
        return None
    return base64.b64encode(buffer.getvalue()).decode()


def _tree(text: str):
    return _TreeUnpickler(io.BytesIO(base64.b64decode(text))).load()


def _store(folder, ident, compiled) -> None:
    """Write a compiled program to the cache folder (atomically; skipped when the
    executable cannot be serialised), with its output tree where that can be stored
    (a later process then loads it without tracing anything)."""
    from jax.experimental.serialize_executable import serialize

    try:
        payload, in_tree, out_tree = serialize(compiled)
    except Exception:
        return
    n_in = in_tree.num_leaves
    if str(in_tree) != str(_in_tree(n_in)):
        return
    header = json.dumps(dict(ident=ident, n_in=n_in, out_tree=str(out_tree),
                             tree=_tree_text(out_tree))).encode()
    path = _path(folder, ident)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(_MAGIC + len(header).to_bytes(8, "little") + header
                    + zlib.compress(payload, 1))
        os.replace(tmp, path)
    except OSError:  # a read-only or full folder: the run goes on without it
        tmp.unlink(missing_ok=True)


def _load(folder, ident, out_tree=None) -> Program | None:
    """The program stored under `ident`, if there is one whose outputs have the tree
    `out_tree`; without `out_tree`, one that was stored with its tree."""
    from jax.experimental.serialize_executable import deserialize_and_load

    path = _path(folder, ident)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            return None
        start_at = len(_MAGIC) + 8
        size = int.from_bytes(data[len(_MAGIC):start_at], "little")
        header = json.loads(data[start_at:start_at + size])
        if out_tree is None and header["tree"] is not None:
            out_tree = _tree(header["tree"])
        if header["ident"] != ident or header["out_tree"] != str(out_tree):
            return None
        payload = zlib.decompress(data[start_at + size:])
        compiled = deserialize_and_load(payload, _in_tree(header["n_in"]), out_tree)
    except Exception:  # a truncated or foreign file: compile again (and overwrite it)
        return None
    jax.monitoring.record_event(PROGRAM_HIT_EVENT)
    return Program(compiled, None)


def _load_all(folder, files, trees=None) -> dict[str, Program]:
    """The programs `files` (name -> identity) found in the folder, read at once
    (deserialising an executable releases the GIL); `trees`: their output trees, else
    those stored with them."""
    names = list(files)
    with ThreadPoolExecutor(len(names)) as pool:
        programs = pool.map(lambda name: _load(folder, files[name], trees and trees[name]),
                            names)
        return {name: p for name, p in zip(names, programs) if p is not None}


def _remember(ident, program) -> None:
    with _LOCK:
        _MEMORY[ident] = program
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.pop(next(iter(_MEMORY)))


def clear_memory() -> None:
    """Forget the programs kept in memory."""
    with _LOCK:
        _MEMORY.clear()


def run_programs(task, spec, config, key, n_seeds, trainable, optim=None, n_chunk=None,
                 names=tuple(PROGRAMS)) -> dict[str, Program]:
    """The programs `names` of a run, from memory, from the cache folder or compiled
    (concurrently: XLA releases the GIL). `key`: the run's key (its dtype, the PRNG
    implementation, and its shape are part of the programs)."""
    n_members = n_seeds * len(config.learning_rates)
    memory, files = {}, {}
    for name in names:
        memory[name], files[name] = identity(name, task, spec, config, key, n_seeds, n_chunk)
    with _LOCK:
        found = {name: _MEMORY[memory[name]] for name in names if memory[name] in _MEMORY}
    folder = persistent_cache_folder()
    ours = folder is not None and all(files[name] is not None for name in names)
    if ours and len(found) < len(names):
        # Programs stored with their output trees: nothing is traced.
        loaded = _load_all(folder, {name: files[name] for name in names if name not in found})
        for name, program in loaded.items():
            found[name] = program
            _remember(memory[name], program)
    if len(found) == len(names):
        return found
    start_args = (task, spec, config, key, n_seeds, trainable)
    eval_args = (key, task, config)
    models, opt_states, keys = output_shapes(start, *start_args)
    eval_key, eval_batch = output_shapes(evaluation_batch, *eval_args)
    if ours:
        # Output trees (a stored program without its own is checked against them): the
        # training batches are the evaluation batch's kind; the steps return the
        # members, the mean training loss and the evaluation's loss, accuracy and
        # per-trial correctness.
        trees = dict(start=(models, opt_states, keys), evaluation=(eval_key, eval_batch),
                     sample=eval_batch, train=(models, opt_states, 0, (0, 0, 0)))
        missing = {name: files[name] for name in names if name not in found}
        for name, program in _load_all(
            folder, missing, {name: jtu.tree_structure(trees[name]) for name in missing}
        ).items():
            found[name] = program
            _remember(memory[name], program)
    missing = [name for name in names if name not in found]
    if not missing:
        return found
    args = dict(start=start_args, evaluation=eval_args)
    if "sample" in missing or "train" in missing:
        args["sample"] = (keys, _int(0), task, config, n_chunk)
        data = output_shapes(sample_batches, *args["sample"])
        args["train"] = (models, opt_states, np.zeros(n_members, bool), keys, _int(0),
                         _int(0), data, eval_key, eval_batch, np.asarray(False), task,
                         config, trainable, optim)
    # Programs stored by mfrnn skip JAX's cache (unless one is configured: then what it
    # returns is not stored again); the others use it.
    scope = contextlib.nullcontext() if ours else compilation_cache_scope()
    # Lowered here one after another (Python, which holds the GIL), each compiled as
    # soon as it is lowered, alongside the lowering of the next (XLA releases the GIL,
    # and compiles a program on one core): the largest first, on a core of its own
    # where there are two, while the others compile one after another.
    order = sorted(missing, key=("train", "sample", "evaluation", "start").index)
    with scope, ThreadPoolExecutor(min(len(order), os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(_compile, _lower(PROGRAMS[name][0], args[name]),
                                     PROGRAMS[name][1]) for name in order}
        for name in order:
            compiled, from_jax_cache = futures[name].result()
            found[name] = Program(compiled, None)
            _remember(memory[name], found[name])
            if ours and not from_jax_cache:
                _store(folder, files[name], compiled)
    return found
