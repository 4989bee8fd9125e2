"""`jit`: `eqx.filter_jit` with compile options chosen by the job's size on CPU.

A theory solve at one point (every array argument a scalar) spends seconds compiling
and milliseconds running, so on CPU it is compiled with XLA's loop emitters at LLVM -O0
(`mfrnn dmft --g 2`: its two programs compile in about a third of the time). A grid runs the
same program over many points, where run time counts: it gets XLA's defaults, whose
fusion emitters compile slower and run ~30 % faster (phase diagrams). Other backends
always get the defaults.
"""

import functools as ft

import equinox as eqx
import jax
import jax.numpy as jnp


QUICK_COMPILE_CPU = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0}


def quick_compile() -> bool:
    """Whether quick-compile options apply here (the CPU backend)."""
    return jax.default_backend() == "cpu"


class SizedJit:
    """`fun` jit-compiled twice over: `quick` (see the module notes) and `default`."""

    def __init__(self, fun, jitkwargs):
        self.default = eqx.filter_jit(fun, **jitkwargs)
        self.quick = eqx.filter_jit(fun, compiler_options=QUICK_COMPILE_CPU, **jitkwargs)
        ft.update_wrapper(self, fun)

    def pick(self, small: bool):
        """The quick version for a small job on CPU, else the default (also the one to
        call from inside another jit)."""
        return self.quick if small and quick_compile() else self.default

    def __call__(self, *args, **kwargs):
        arrays = jax.tree.leaves(eqx.filter((args, kwargs), eqx.is_array))
        # Traced (inside another program): options belong to the outermost jit only.
        traced = any(isinstance(x, jax.core.Tracer) for x in arrays)
        small = not traced and all(jnp.ndim(x) == 0 for x in arrays)
        return self.pick(small)(*args, **kwargs)


def jit(fun=None, **jitkwargs):
    """`eqx.filter_jit(fun, **jitkwargs)`, compiled with quick options on CPU when every
    array argument is a scalar (one point); `fun.pick(small)` chooses by the caller's
    own measure of size (a phase diagram of a few points)."""
    if fun is None:
        return ft.partial(jit, **jitkwargs)
    return SizedJit(fun, jitkwargs)
