"""Phase boundaries of a rank-one + random ensemble as curves in the plane of any two of
its fields, from the boundary functions of `_theory/phase.py` (docs/theory/phase-diagrams.md)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._ensembles import LowRankEnsemble
from ._nonlinearities import AbstractNonlinearity, Tanh
from ._solution import raise_if_failed, RESULTS, summary_repr
from ._theory import (
    fixed_point_chaos_boundary,
    kappa_instability_g,
    kappa_instability_overlap,
)


# The fields of `LowRankEnsemble.rank_one` (without inputs) a boundary plane can take,
# with its defaults.
RANK_ONE_FIELDS = {
    "g": 0.0, "sigma_mn": 0.0, "sigma_m": 1.0, "sigma_n": 1.0, "mean_m": 0.0, "mean_n": 0.0,
    "bias": 0.0,
}
# The kappa = 0 state loses stability along kappa where the overlap
# sigma_mn + mean_m mean_n reaches its critical value: each of these fields solved for.
_SOLVE_OVERLAP = {
    "sigma_mn": lambda o, f: o - f["mean_m"] * f["mean_n"],
    "mean_m": lambda o, f: (o - f["sigma_mn"]) / f["mean_n"],
    "mean_n": lambda o, f: (o - f["sigma_mn"]) / f["mean_m"],
}


class PhaseBoundary(eqx.Module):
    """A boundary curve in a plane of two ensemble fields.

    - `name`: `"kappa"` (the kappa = 0 state unstable along kappa: the pitchfork for
      g < 1, the g_BB curve above) or `"chaos"` (a fixed point loses stability to chaos,
      g_C); `label` describes it in words.
    - `x`, `y`: the curve's points in the plane's two fields, NaN where it is undefined.
    - `result`: per point, [`mfrnn.RESULTS`][] of the boundary solve.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    name: str = eqx.field(static=True)
    label: str = eqx.field(static=True)
    x: Float[Array, " point"]
    y: Float[Array, " point"]
    result: RESULTS


def _boundary(name, label, axes, values, result) -> PhaseBoundary:
    ok = result == RESULTS.successful
    x, y = (jnp.where(ok, jnp.asarray(values[a], float), jnp.nan) for a in axes)
    return PhaseBoundary(name=name, label=label, x=x, y=y, result=result)


def _kappa_line(axes, values, phi) -> PhaseBoundary | None:
    label = "kappa = 0 unstable (pitchfork, g_BB)"
    # Along one axis, solve the other (an overlap field) for the critical overlap.
    for along, solved in (axes, axes[::-1]):
        if solved in _SOLVE_OVERLAP:
            g = jnp.broadcast_to(jnp.asarray(values["g"], float), np.shape(values[along]))
            critical = kappa_instability_overlap(g, phi, throw=False)
            with np.errstate(divide="ignore", invalid="ignore"):
                line = _SOLVE_OVERLAP[solved](np.asarray(critical.value), values)
            line = np.where(np.isfinite(line), line, np.nan)  # mean_m or mean_n = 0
            return _boundary("kappa", label, axes, {**values, solved: line}, critical.result)
    if "g" in axes:  # the overlap is fixed in this plane: g_BB, a line at constant g
        other = axes[1 - axes.index("g")]
        overlap = values["sigma_mn"] + values["mean_m"] * values["mean_n"]
        g_bb = kappa_instability_g(jnp.full(np.shape(values[other]), overlap), phi,
                                   throw=False)
        return _boundary("kappa", label, axes, {**values, "g": g_bb.value}, g_bb.result)
    return None


def phase_boundaries(
    axes: dict[str, Float[ArrayLike, " point"]],
    fields: dict[str, float] | None = None,
    *,
    phi: AbstractNonlinearity = Tanh(),
    throw: bool = True,
) -> tuple[PhaseBoundary, ...]:
    """The phase boundaries of `LowRankEnsemble.rank_one(**fields, phi=phi)` in the
    plane of two of its fields, as curves to draw over a [`mfrnn.phase_diagram`][].

    - The kappa-instability of the kappa = 0 state, `(sigma_mn + mean_m mean_n)
      <phi'>_{0, Delta0(g)} = 1` ([`mfrnn.kappa_instability_overlap`][],
      [`mfrnn.kappa_instability_g`][]), where the plane changes the overlap or g, and
      with no bias (odd phi).
    - The fixed point -> chaos boundary g_C ([`mfrnn.fixed_point_chaos_boundary`][]),
      where g is one of the two fields.

    **Arguments:**

    - `axes`: the plane, `{x field: values, y field: values}` in that order; each curve
      is computed at the values of one of them (the other is solved for). Fields:
      `g`, `sigma_mn`, `sigma_m`, `sigma_n`, `mean_m`, `mean_n`, `bias`.
    - `fields`: the other fields' values (`rank_one`'s defaults otherwise).
    - `phi`: the nonlinearity.
    - `throw`: raise if a boundary point failed; with `False` such points are NaN
      (check each curve's `result`).

    **Returns:** the curves that exist in this plane, as [`mfrnn.PhaseBoundary`][]s.

    ```python
    lines = mfrnn.phase_boundaries({"g": jnp.linspace(0.1, 3, 120),
                                    "sigma_mn": jnp.linspace(0, 2.9, 60)},
                                   {"sigma_n": 3.0})
    ```
    """
    fields = dict(fields or {})
    unknown = sorted(set(axes) - set(RANK_ONE_FIELDS) | set(fields) - set(RANK_ONE_FIELDS))
    if unknown:
        raise ValueError(f"Unknown fields {unknown}; expected some of {list(RANK_ONE_FIELDS)}.")
    if len(axes) != 2:
        raise ValueError(f"`axes` must name two fields, got {list(axes)}.")
    if set(axes) & set(fields):
        raise ValueError(f"{sorted(set(axes) & set(fields))} are axes: leave them out of `fields`.")
    values = {**RANK_ONE_FIELDS, **fields, **{k: np.asarray(v, float) for k, v in axes.items()}}
    names = tuple(axes)
    lines = []
    if "bias" not in axes and values["bias"] == 0:  # else kappa = 0 is no solution
        line = _kappa_line(names, values, phi)
        if line is not None:
            lines.append(line)
    if "g" in axes:
        other = names[1 - names.index("g")]
        # g_C does not depend on the ensemble's own g: any value will do.
        ensemble = LowRankEnsemble.rank_one(
            **{**values, "g": 1.0, other: jnp.asarray(values[other])}, phi=phi
        )
        chaos = fixed_point_chaos_boundary(ensemble, throw=False)
        lines.append(_boundary("chaos", "fixed point -> chaos", names,
                               {**values, "g": chaos.value}, chaos.result))
    if throw:
        lines = [raise_if_failed(line, lambda s: s.x) for line in lines]
    return tuple(lines)
