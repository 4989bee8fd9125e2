import abc

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._misc import is_concrete
from .._networks import AbstractRateNetwork
from .._nonlinearities import AbstractNonlinearity


class AbstractEnsemble(eqx.Module):
    """Connectivity statistics. Fields are arrays, so ensembles can be vmapped over
    parameter grids and differentiated; `sample` draws one concrete network."""

    phi: eqx.AbstractVar[AbstractNonlinearity]

    @abc.abstractmethod
    def sample(self, n: int, *, key: PRNGKeyArray) -> AbstractRateNetwork:
        """Draw a network of `n` units."""


def check_size(n) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}.")


def check_nonempty(name: str, x) -> None:
    if np.size(x) == 0:
        raise ValueError(
            f"`{name}` is empty (shape {np.shape(x)}): give at least one value."
        )


def check_phi(phi) -> None:
    if not isinstance(phi, AbstractNonlinearity):
        raise ValueError(
            f"`phi` must be an AbstractNonlinearity (e.g. mfrnn.Tanh()), got {phi!r}."
        )


def check_covariance(name: str, cov) -> None:
    """Finite, symmetric and positive semi-definite, checked when concrete. `cov` may
    carry leading batch axes (..., k, k): every matrix is checked and the first failing
    one is named by its index, e.g. `covs[2, 1]`."""
    if not is_concrete(cov):
        return
    c = np.asarray(cov, dtype=float)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"`{name}` must have square trailing axes (..., k, k), got {c.shape}.")

    def first(bad):
        # The name of the first failing matrix (plain `name` for a single matrix).
        if c.ndim == 2:
            return name, ()
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"{name}[{', '.join(map(str, index))}]", index

    finite = np.all(np.isfinite(c), axis=(-2, -1))
    if not np.all(finite):
        raise ValueError(f"`{first(~finite)[0]}` must be finite.")
    symmetric = np.all(
        np.isclose(c, np.swapaxes(c, -1, -2), rtol=1e-10, atol=1e-12), axis=(-2, -1)
    )
    if not np.all(symmetric):
        raise ValueError(f"`{first(~symmetric)[0]}` must be symmetric.")
    eig = np.linalg.eigvalsh(c)
    smallest = np.min(eig, axis=-1)
    scale = np.maximum(1.0, np.max(np.abs(eig), axis=-1))  # per matrix
    bad = smallest < -1e-10 * scale
    if np.any(bad):
        where, index = first(bad)
        raise ValueError(
            f"`{where}` must be positive semi-definite; smallest eigenvalue "
            f"{float(smallest[index]):.3g}."
        )


def is_zero(x) -> bool:
    """True only if x is concrete and zero: traced values keep the general path."""
    return is_concrete(x) and bool(np.all(np.asarray(x) == 0))


def covariance_sqrt(cov: Float[Array, "k k"]) -> Float[Array, "k k"]:
    """A square root S with S S^T = cov that also works for singular (PSD) cov."""
    eig, vec = jnp.linalg.eigh(cov)
    return vec * jnp.sqrt(jnp.maximum(eig, 0.0))[None, :]


def gaussian_loadings(
    mean: Float[Array, " k"], cov: Float[Array, "k k"], n: int, key: PRNGKeyArray
) -> Float[Array, "n k"]:
    z = jr.normal(key, (n, mean.shape[0]), mean.dtype)
    return mean[None, :] + z @ covariance_sqrt(cov).T


def random_part(g, n: int, key: PRNGKeyArray, dtype) -> Float[Array, "n n"]:
    return g * jr.normal(key, (n, n), dtype) / np.sqrt(n)


def check_rank_and_inputs(rank, n_inputs) -> None:
    """The rank and input count of a low-rank ensemble (plain integers: they fix shapes)."""
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"`rank` must be a positive integer, got {rank!r}.")
    if not isinstance(n_inputs, (int, np.integer)) or n_inputs < 0:
        raise ValueError(f"`n_inputs` must be a non-negative integer, got {n_inputs!r}.")
