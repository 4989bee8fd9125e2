"""Ahead-of-time compiled programs: compile a function for the shapes of its arguments
(concrete arrays or `jax.ShapeDtypeStruct`s), with XLA options, in any thread, and
keep the executable for later calls with the same shapes and static arguments.

Training uses it to compile its programs concurrently (XLA releases the GIL) and to
compile the ones that only draw random numbers at a lower LLVM optimisation level:
threefry at -O2 costs seconds of compilation and saves microseconds of run time.
(-O0 compiles fastest but skips fused multiply-adds, so its normal draws differ from
eager ones in the last bit; -O1 draws the same numbers.)
"""

import collections
import functools as ft
import threading

import equinox as eqx
import jax
import jax.tree_util as jtu


class _Dynamic:
    """Marks where an array sits among the static leaves."""

    def __repr__(self):
        return "<dynamic>"


_DYNAMIC = _Dynamic()
_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64
_LOCK = threading.Lock()


def _is_dynamic(x) -> bool:
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def _split(args):
    leaves, treedef = jtu.tree_flatten(args)
    dynamic = [x for x in leaves if _is_dynamic(x)]
    static = tuple(_DYNAMIC if _is_dynamic(x) else x for x in leaves)
    return dynamic, (treedef, static)


@ft.partial(jax.jit, static_argnums=(0, 1))
def _run(fun, structure, dynamic):
    treedef, static = structure
    it = iter(dynamic)
    leaves = [next(it) if x is _DYNAMIC else x for x in static]
    return fun(*jtu.tree_unflatten(treedef, leaves))


def _aval(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=getattr(x, "weak_type", False))


class Program:
    """`fun` compiled for one argument signature; call it with arrays of that signature
    (static leaves are those it was compiled with)."""

    def __init__(self, compiled, structure):
        self._compiled = compiled
        self._structure = structure

    def __call__(self, *args):
        dynamic, _ = _split(args)
        return self._compiled(dynamic)


def output_shapes(fun, *args):
    """`jax.eval_shape` of `fun(*args)`, traced as `compiled` traces it (the trace is
    reused when it compiles)."""
    dynamic, structure = _split(args)
    return _run.eval_shape(fun, structure, [_aval(x) for x in dynamic])


def compiled(fun, *args, opt_level: int | None = None) -> Program:
    """`fun(*args)` compiled (or fetched from the in-process cache); array leaves of
    `args` may be `jax.ShapeDtypeStruct`s. `opt_level`: LLVM's (None: XLA's default)."""
    dynamic, structure = _split(args)
    avals = [_aval(x) for x in dynamic]
    key = (fun, structure, tuple(avals), opt_level)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    options = None if opt_level is None else {"xla_backend_optimization_level": opt_level}
    program = Program(_run.lower(fun, structure, avals).compile(options), structure)
    with _LOCK:
        _CACHE[key] = program
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return program


def clear_programs() -> None:
    """Forget every compiled program (the next call compiles, or reads the persistent
    cache)."""
    with _LOCK:
        _CACHE.clear()
