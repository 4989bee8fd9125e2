"""Result codes and solution Modules.

Every entry point returns a Module with a `result` field, one [`mfrnn.RESULTS`][] code
per grid point. The codes, by name (`mfrnn.RESULT_NAMES`, in code order):

- `successful`;
- from optimistix/lineax: `max_steps_reached`, `singular`, `breakdown`, `stagnation`,
  `conlim`, `nonfinite_input`, `nonlinear_max_steps_reached`, `nonlinear_divergence`,
  `nonfinite`;
- mfrnn's own: `static_not_converged`, `chaotic_not_converged`,
  `lyapunov_not_converged`, `no_onset`.

`result` is an equinox enumeration holding an array, which cannot be indexed: take a
point with [`mfrnn.solution_at`][], or read every point at once with
[`mfrnn.result_names`][] and [`mfrnn.result_messages`][] (NumPy arrays of strings).

```python
pd = mfrnn.phase_diagram(ens, throw=False)     # a (G, S) grid, failures kept
mfrnn.result_names(pd)[i, j]                   # "successful", "chaotic_not_converged", ...
mfrnn.result_messages(pd)[i, j]                # "" where successful, else the message
point = mfrnn.solution_at(pd, i, j)            # every field at (i, j), `result` included
mfrnn.RESULTS[point.result]                    # its message
```
"""

import dataclasses

import equinox as eqx
import jax
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int


class RESULTS(optx.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    static_not_converged = (
        "The static (fixed-point) self-consistency did not converge: Newton found no "
        "root (kappa, Delta0) from its guesses within `max_steps`, or the fixed points "
        "it found cannot be the whole picture (kappa = 0 unstable through an outlier "
        "while no kappa != 0 root was found). With an unbounded phi and large g no "
        "finite Delta0 exists at all."
    )
    chaotic_not_converged = (
        "The chaotic DMFT self-consistency did not converge. Try a smaller `rtol` "
        "or larger `max_steps`; close to the onset the chaotic branch is hard to resolve."
    )
    lyapunov_not_converged = (
        "The Schroedinger eigenvalue problem of the DMFT Lyapunov exponent did not "
        "converge, or failed its self-test (|E1| of the zero mode not << |E0|). Try a "
        "larger `order` or `steps`."
    )
    no_onset = "No chaos onset: g^2 <phi'^2> = 1 has no solution on the static branch."


# Code names in code order. Equinox lists an enumeration's names only in a private
# attribute; everything else here goes through its public `==` and `RESULTS[item]`.
RESULT_NAMES: tuple[str, ...] = tuple(
    sorted(RESULTS._name_to_item, key=lambda name: int(RESULTS._name_to_item[name]._value))
)
_MESSAGES = tuple(RESULTS[getattr(RESULTS, name)] for name in RESULT_NAMES)


def _result_of(x):
    result = getattr(x, "result", x)
    if not isinstance(result, RESULTS):
        try:  # an optimistix code (e.g. from `optx.root_find`) as an mfrnn one
            result = RESULTS.promote(result)
        except ValueError:
            raise ValueError(
                "Expected a solution Module with a `result` field or an `mfrnn.RESULTS` "
                f"code, got {type(x).__name__}."
            ) from None
    if result.is_traced():
        raise ValueError("Result codes can be read only outside `jit`/`vmap` (this one is traced).")
    return result


def result_codes(x) -> np.ndarray:
    """Per grid point, the integer code of `x.result` (or of a `RESULTS` code `x`):
    `RESULT_NAMES[code]` is its name. A NumPy array of the batch shape."""
    result = _result_of(x)
    codes = None
    for code, name in enumerate(RESULT_NAMES):
        hit = np.asarray(result == getattr(RESULTS, name))
        codes = np.where(hit, code, 0 if codes is None else codes)
    return np.asarray(codes, np.int32)


def result_names(x) -> np.ndarray:
    """Per grid point, the name of the result code of a solution Module `x` (or of a
    `RESULTS` code): a NumPy array of strings, `"successful"` where it worked.

    ```python
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(jnp.linspace(1.0, 3.0, 5)), throw=False)
    mfrnn.result_names(sol)          # array(['successful', ...], dtype='<U...')
    ```
    """
    return np.asarray(np.asarray(RESULT_NAMES)[result_codes(x)])


def result_messages(x) -> np.ndarray:
    """Per grid point, the message of the result code of a solution Module `x` (or of
    a `RESULTS` code): a NumPy array of strings, `""` where it worked."""
    return np.asarray(np.asarray(_MESSAGES)[result_codes(x)])


def solution_at(solution, *index):
    """One grid point of a batched solution Module: every array field indexed with
    `index` on its leading (batch) axes, the `result` code included, so that
    `mfrnn.RESULTS[mfrnn.solution_at(sol, i, j).result]` is that point's message.
    Works on a `RESULTS` code alone as well.

    ```python
    point = mfrnn.solution_at(pd, 3, 5)   # a PhaseDiagram of the point (3, 5)
    ```
    """
    if not index:
        raise ValueError("`index` is empty: give one index per batch axis, e.g. (i, j).")
    index = index[0] if len(index) == 1 and isinstance(index[0], tuple) else index
    return jax.tree.map(lambda x: x[index] if eqx.is_array(x) else x, solution)


def _dtype_name(x) -> str:
    dtype = np.dtype(x.dtype)
    return "bool" if dtype == np.bool_ else f"{dtype.kind}{8 * dtype.itemsize}"


def _describe(value, indent: str) -> str:
    if isinstance(value, RESULTS):
        if value.is_traced():
            return "RESULTS(traced)"
        names = result_names(value)
        if names.ndim == 0:
            return str(names)
        kinds, counts = np.unique(names, return_counts=True)
        return "{" + ", ".join(f"{k}: {c}" for k, c in zip(kinds, counts)) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return summary_repr(value, indent)
    if eqx.is_array(value):
        shape = f"{_dtype_name(value)}[{','.join(map(str, value.shape))}]"
        if isinstance(value, jax.core.Tracer):
            return shape
        x = np.asarray(value)
        if x.ndim == 0:
            return f"{x.item():.6g}" if x.dtype.kind in "fc" else str(x.item())
        if x.size <= 8:
            short = {"float_kind": "{:.6g}".format, "complex_kind": "{:.6g}".format}
            return np.array2string(x, separator=", ", formatter=short).replace("\n", "")
        if x.dtype.kind in "fi" and x.size:
            finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x.ravel()
            if finite.size == 0:
                return f"{shape} (all nan)"
            text = f"{shape} (min {finite.min():.6g}, max {finite.max():.6g}"
            missing = x.size - finite.size
            return text + (f", {missing} nan)" if missing else ")")
        if x.dtype.kind == "b":
            return f"{shape} ({int(x.sum())} true)"
        return shape
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def summary_repr(module, indent: str = "") -> str:
    """A readable summary of a result Module, one field a line: scalars as values,
    small arrays in full, larger ones as dtype[shape] with their range, result codes by
    name (counted over a grid). Result Modules use it as their `__repr__`."""
    inner = indent + "  "
    lines = [f"{type(module).__name__}("]
    for field in dataclasses.fields(module):
        value = getattr(module, field.name, None)
        lines.append(f"{inner}{field.name}={_describe(value, inner)},")
    lines.append(f"{indent})")
    return "\n".join(lines)


# Regime codes of `DMFTSolution.regime`.
QUIESCENT, FIXED_POINT, CHAOTIC = 0, 1, 2
REGIME_NAMES = ("quiescent", "fixed_point", "chaotic")


class DMFTSolution(eqx.Module):
    """Stationary DMFT solution of a random network.

    - `delta0`: Delta(0), variance of x about its mean.
    - `delta_inf`: Delta(tau -> inf) (static part; = delta0 at a fixed point).
    - `delta0_static`: Delta0 of the static (fixed-point) branch, stable or not.
    - `bulk_radius`: `g sqrt(<phi'^2>)` on the static branch; > 1 means chaos.
    - `regime`: 0 quiescent (x = bias exactly), 1 fixed point, 2 chaotic.
    - `residual`: max |equation residual| at the returned solution.
    - `result`: [`mfrnn.RESULTS`][] code; check it when `throw=False`.
    """

    delta0: Float[Array, "*batch"]
    delta_inf: Float[Array, "*batch"]
    delta0_static: Float[Array, "*batch"]
    bulk_radius: Float[Array, "*batch"]
    regime: Int[Array, "*batch"]
    residual: Float[Array, "*batch"]
    result: RESULTS

    def __repr__(self):
        return summary_repr(self)


class OnsetSolution(eqx.Module):
    """Chaos onset `g_c` and the static Delta0 there; `result` as in DMFTSolution."""

    g_c: Float[Array, "*batch"]
    delta0: Float[Array, "*batch"]
    result: RESULTS

    def __repr__(self):
        return summary_repr(self)


def vmap_batch(fn, ndim: int):
    """`fn` on one grid point, vmapped over `ndim` leading batch axes of every argument."""
    for _ in range(ndim):
        fn = jax.vmap(fn)
    return fn


def raise_if_failed(solution, where):
    """Make `where(solution)` raise the result's message if any grid point failed."""
    result = solution.result
    return eqx.tree_at(
        where, solution, result.error_if(where(solution), result != RESULTS.successful)
    )
