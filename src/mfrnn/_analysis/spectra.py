"""Eigenvalue spectra of (trained) connectivity next to random-matrix theory: the
circular law of the initial ensemble, the Rajan-Abbott radius of E/I matrices, the
outliers of a low-rank part, and before against after training (Jarne's comparison)."""

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from .._networks import AbstractRateNetwork, LowRankNetwork
from .._solution import summary_repr
from .._training import NetworkSpec
from .fixed_points import check_network


def rajan_abbott_radius(frac_e: float, std_e: float, std_i: float) -> float:
    """Bulk radius `sqrt(f std_e^2 + (1 - f) std_i^2)` of a matrix whose columns of type
    c have entries of variance `std_c^2 / N` (Rajan & Abbott 2006).

    ??? cite "References"

        ```bibtex
        @article{rajan2006eigenvalue,
          title={Eigenvalue spectra of random matrices for neural networks},
          author={Rajan, Kanaka and Abbott, L. F.},
          journal={Physical Review Letters}, volume={97}, pages={188104}, year={2006}
        }
        ```
    """
    if not 0 < frac_e < 1:
        raise ValueError(f"`frac_e` must be in (0, 1), got {frac_e}.")
    if std_e < 0 or std_i < 0:
        raise ValueError(f"`std_e` and `std_i` must be non-negative, got {std_e}, {std_i}.")
    return math.sqrt(frac_e * std_e**2 + (1 - frac_e) * std_i**2)


def initial_bulk_radius(spec: NetworkSpec) -> float:
    """Theory radius of the eigenvalue bulk of the initial J that `init_network` draws for
    `spec`: the circular law `g` for a dense (or the random part of a low-rank) J; for
    Dale's law the Rajan-Abbott radius of `|N(0, g^2/N)|` columns, inhibitory ones scaled
    to balance, which is `g sqrt(f (pi/2 - 1))`."""
    if not isinstance(spec, NetworkSpec):
        raise ValueError(f"`spec` must be a NetworkSpec, got {type(spec).__name__}.")
    if spec.dale is None:
        return float(spec.g)
    f = spec.frac_e
    # Entries |z| g c / sqrt(N), c^2 = pi (1 - f) / 2; Var|z| = 1 - 2/pi; the
    # inhibitory columns carry an extra factor f / (1 - f).
    c = math.sqrt(math.pi * (1 - f) / 2)
    s = math.sqrt(1 - 2 / math.pi) * spec.g * c
    return rajan_abbott_radius(f, s, s * f / (1 - f))


def low_rank_outliers(
    m: Float[ArrayLike, "n rank"], n: Float[ArrayLike, "n rank"]
) -> Complex[Array, " rank"]:
    """Nonzero eigenvalues of `m n^T / N`: those of the R x R overlap matrix `n^T m / N`.
    With an independent random part of radius g they remain outliers wherever |lambda| > g
    (for large N)."""
    m, n = np.asarray(m, float), np.asarray(n, float)
    if m.ndim == 1:
        m, n = m[:, None], n[:, None]
    if m.shape != n.shape:
        raise ValueError(f"`m` and `n` must have the same shape, got {m.shape} and {n.shape}.")
    ev = np.linalg.eigvals(n.T @ m / m.shape[0])
    return jnp.asarray(ev[np.argsort(-np.abs(ev), kind="stable")].astype(complex))


def _truncated(delta: np.ndarray, rank: int):
    u, s, vt = np.linalg.svd(delta)
    size = delta.shape[0]
    # delta ~ (u s) vt = m n^T / N with m = u s sqrt(N), n = vt^T sqrt(N).
    return u[:, :rank] * s[:rank] * math.sqrt(size), vt[:rank].T * math.sqrt(size)


class ConnectivitySpectrum(eqx.Module):
    """Eigenvalues of a network's J with the theory drawn over them.

    - `eigenvalues`: of J, decreasing modulus; `initial_eigenvalues`: of the initial J
      (None if not given).
    - `bulk_radius`: the theory radius of the initial ensemble's bulk (circular law or
      Rajan-Abbott; nan if unknown).
    - `predicted_outliers`: eigenvalues expected from the low-rank part: of `n^T m / N`
      for a low-rank network; of the rank-`rank` truncation of `J - J_initial` for a
      dense one (valid when that change is independent of the initial bulk).
    - `outliers`: eigenvalues of J outside `bulk_radius` (the `rank` largest at most).
    - `spectral_radius`: max |eigenvalue|.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    eigenvalues: Complex[Array, " n"]
    initial_eigenvalues: Complex[Array, " n"] | None
    bulk_radius: float = eqx.field(static=True)
    predicted_outliers: Complex[Array, " rank"]
    outliers: Complex[Array, " k"]
    spectral_radius: float = eqx.field(static=True)


def connectivity_spectrum(
    network: AbstractRateNetwork,
    *,
    initial: AbstractRateNetwork | None = None,
    spec: NetworkSpec | None = None,
    bulk_radius: float | None = None,
    rank: int | None = None,
) -> ConnectivitySpectrum:
    """Spectrum of the connectivity J of `network` (numpy; O(N^3)) with theory.

    **Arguments:**

    - `initial`: the network before training (its spectrum and, for dense networks, the
      reference for `J - J_initial`).
    - `spec`: the [`mfrnn.NetworkSpec`][] that drew the initial network: gives the bulk
      radius (`initial_bulk_radius`). Or give `bulk_radius` directly.
    - `rank`: how many outliers to predict (default: the network's rank if low rank,
      else the number of singular values of `J - J_initial` above the bulk radius, at
      most 10).

    ```python
    spec = mfrnn.connectivity_spectrum(result.member(0), initial=initial, spec=result.spec)
    spec.eigenvalues, spec.bulk_radius, spec.predicted_outliers
    ```
    """
    check_network(network)
    if rank is not None and (not isinstance(rank, int) or rank < 0 or rank > network.n):
        raise ValueError(f"`rank` must be an integer in [0, n], got {rank!r}.")
    if initial is not None:
        check_network(initial)
        if initial.n != network.n:
            raise ValueError(f"`initial` has {initial.n} units, the network {network.n}.")
    if bulk_radius is None:
        bulk_radius = initial_bulk_radius(spec) if spec is not None else float("nan")
    J = np.asarray(network.dense_matrix(), float)
    ev = np.linalg.eigvals(J)
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    ev0 = None
    if initial is not None:
        ev0 = np.linalg.eigvals(np.asarray(initial.dense_matrix(), float))
        ev0 = ev0[np.argsort(-np.abs(ev0), kind="stable")]
    if isinstance(network, LowRankNetwork):
        r = network.rank if rank is None else rank
        predicted = np.asarray(low_rank_outliers(network.m, network.n_vectors))[:r]
    elif initial is not None:
        delta = J - np.asarray(initial.dense_matrix(), float)
        if rank is None:
            sv = np.linalg.svd(delta, compute_uv=False)
            edge = bulk_radius if np.isfinite(bulk_radius) else 0.0
            r = int(min(10, max(1, np.sum(sv > max(edge, 1e-12)))))
        else:
            r = rank
        m, nv = _truncated(delta, r)
        predicted = np.asarray(low_rank_outliers(m, nv))
    else:
        r = 0 if rank is None else rank
        predicted = np.zeros(0, complex)
    if np.isfinite(bulk_radius):
        predicted = predicted[np.abs(predicted) > bulk_radius]
        outliers = ev[np.abs(ev) > bulk_radius][: max(r, 1) if r else 0]
    else:
        outliers = np.zeros(0, complex)
    return ConnectivitySpectrum(
        eigenvalues=jnp.asarray(ev.astype(complex)),
        initial_eigenvalues=None if ev0 is None else jnp.asarray(ev0.astype(complex)),
        bulk_radius=float(bulk_radius),
        predicted_outliers=jnp.asarray(predicted.astype(complex)),
        outliers=jnp.asarray(outliers.astype(complex)),
        spectral_radius=float(np.max(np.abs(ev))),
    )


def jacobian_bulk_radius(g: float, gain: Float[ArrayLike, " n"]) -> float:
    """Radius of the random bulk of `-1 + J diag(phi')` about -1 for `J ~ N(0, g^2/N)`:
    `g sqrt(mean(phi'^2))` (the circular law with column scales phi'_j), in units of 1/tau."""
    gain = np.asarray(gain, float)
    return float(g * np.sqrt(np.mean(gain**2)))
