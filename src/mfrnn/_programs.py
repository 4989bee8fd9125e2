"""Ahead-of-time programs: a function split into its array leaves (lowered for their
shapes: concrete arrays or `jax.ShapeDtypeStruct`s) and its static leaves, so that it can
be lowered and compiled with XLA options in any thread and called later as a `Program`.
Training builds its programs on these (`_training/programs.py`)."""

import functools as ft

import equinox as eqx
import jax
import jax.tree_util as jtu


class _Dynamic:
    """Marks where an array sits among the static leaves."""

    def __repr__(self):
        return "<dynamic>"


_DYNAMIC = _Dynamic()


def _is_dynamic(x) -> bool:
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def split_arrays(args):
    leaves, treedef = jtu.tree_flatten(args)
    dynamic = [x for x in leaves if _is_dynamic(x)]
    static = tuple(_DYNAMIC if _is_dynamic(x) else x for x in leaves)
    return dynamic, (treedef, static)


@ft.partial(jax.jit, static_argnums=(0, 1))
def run_split(fun, structure, dynamic):
    treedef, static = structure
    it = iter(dynamic)
    leaves = [next(it) if x is _DYNAMIC else x for x in static]
    return fun(*jtu.tree_unflatten(treedef, leaves))


def abstract_value(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=getattr(x, "weak_type", False))


class Program:
    """`fun` compiled for one argument signature; call it with arrays of that signature
    (static leaves are those it was compiled with)."""

    def __init__(self, compiled, structure):
        self._compiled = compiled
        self._structure = structure

    def __call__(self, *args):
        dynamic, _ = split_arrays(args)
        return self._compiled(dynamic)


def output_shapes(fun, *args):
    """`jax.eval_shape` of `fun(*args)`, traced as `run_split` traces it (the trace is
    reused when it compiles)."""
    dynamic, structure = split_arrays(args)
    return run_split.eval_shape(fun, structure, [abstract_value(x) for x in dynamic])
