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


def check_phi(phi) -> None:
    if not isinstance(phi, AbstractNonlinearity):
        raise ValueError(
            f"`phi` must be an AbstractNonlinearity (e.g. mfrnn.Tanh()), got {phi!r}."
        )


def check_covariance(name: str, cov) -> None:
    if not is_concrete(cov):
        return
    c = np.asarray(cov, dtype=float)
    if not np.all(np.isfinite(c)):
        raise ValueError(f"`{name}` must be finite.")
    if not np.allclose(c, np.swapaxes(c, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError(f"`{name}` must be symmetric.")
    eig = np.linalg.eigvalsh(c)
    scale = max(1.0, float(np.max(np.abs(eig))))
    if np.min(eig) < -1e-10 * scale:
        raise ValueError(
            f"`{name}` must be positive semi-definite; smallest eigenvalue {np.min(eig):.3g}."
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
