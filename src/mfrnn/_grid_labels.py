"""Names of the fields a grid of ensembles sweeps, for axis labels (kept out of
`_theory/phase.py`: a label is not part of a solve)."""

import numpy as np
from jaxtyping import ArrayLike

from ._ensembles import loading_index, LowRankEnsemble, MixtureEnsemble
from ._theory.meanfield import points


def _loading_names(rank: int, n_inputs: int) -> list[str]:
    names = [""] * (2 * rank + n_inputs)
    for kind, positions in loading_index(rank, n_inputs).items():
        count = len(positions)
        for r, i in enumerate(positions):
            names[i] = kind if count == 1 else f"{kind}{r + 1}"
    return names


def _varying(array: np.ndarray, axis: int, n_batch: int) -> np.ndarray:
    """Per element of the core (trailing) shape: whether it changes along `axis`."""
    first = np.take(array, [0], axis=axis)
    return np.asarray(np.any(array != first, axis=tuple(range(n_batch))))


def grid_labels(
    ensemble: LowRankEnsemble | MixtureEnsemble, inputs: ArrayLike | None = None
) -> tuple[str, ...]:
    """One label per grid axis of `ensemble` (as [`mfrnn.phase_diagram`][] reads its
    grid): the fields that change along that axis, with the loadings by name:
    `"g"`, `"bias"`, `"cov(m, n)"`, `"var(n)"`, `"mean(m)"` (`m1`, `m2`, ... from rank
    two; `[population p]` for a mixture), `"u"` for `inputs`. An axis along which
    nothing changes is `"grid axis k"`.

    ```python
    G, S = jnp.meshgrid(jnp.linspace(0.1, 3, 40), jnp.linspace(0, 2.9, 40), indexing="ij")
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G)
    mfrnn.grid_labels(ens)    # ("g", "cov(m, n)")
    ```
    """
    point, batch = points(ensemble, inputs)
    n_batch = len(batch)
    loadings = _loading_names(point.rank, point.n_inputs)
    n_pop = point.fractions.shape[-1]
    arrays = {
        name: np.asarray(getattr(point, name))
        for name in ("g", "bias", "fractions", "means", "covs", "inputs")
    }

    def population(p):
        return f" [population {p}]" if n_pop > 1 else ""

    labels = []
    for axis in range(n_batch):
        names = []
        if batch[axis] > 1:
            for name, array in arrays.items():
                vary = _varying(array, axis, n_batch)
                for index in (i for i in np.ndindex(vary.shape) if vary[i]):
                    if name in ("g", "bias"):
                        names.append(name)
                    elif name == "fractions":
                        names.append(f"fraction{population(index[0])}")
                    elif name == "inputs":
                        names.append("u" if point.n_inputs == 1 else f"u{index[0] + 1}")
                    elif name == "means":
                        p, i = index
                        names.append(f"mean({loadings[i]}){population(p)}")
                    elif index[1] <= index[2]:  # covs: each symmetric pair once
                        p, i, j = index
                        pair = (
                            f"var({loadings[i]})"
                            if i == j
                            else f"cov({loadings[i]}, {loadings[j]})"
                        )
                        names.append(pair + population(p))
        if not names:
            labels.append(f"grid axis {axis}")
        else:
            labels.append(", ".join(names[:3]) + (", ..." if len(names) > 3 else ""))
    return tuple(labels)
