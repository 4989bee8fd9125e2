import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._custom_types import ArrayOrSequence
from .._misc import check_finite, check_nonnegative, check_positive, is_concrete
from .._networks import LowRankNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .base import AbstractEnsemble, check_covariance, check_phi, check_size, gaussian_loadings
from .low_rank import _network_from_loadings, loading_index


class MixtureEnsemble(AbstractEnsemble):
    """Gaussian-mixture low-rank populations (Beiran et al. 2021; Dubreuil, Valente et
    al. 2022): a fraction `fractions[p]` of units draws its loadings
    `(m_1..m_R, n_1..n_R, I_1..I_S)` from N(`means[p]`, `covs[p]`); plus `g chi`.

    ```python
    ens = mfrnn.MixtureEnsemble(rank=1, fractions=[0.5, 0.5], means=jnp.zeros((2, 2)),
                                covs=jnp.stack([c1, c2]))
    ```
    """

    fractions: Float[Array, " populations"]
    means: Float[Array, "populations k"]
    covs: Float[Array, "populations k k"]
    g: Float[Array, ""]
    bias: Float[Array, ""]
    phi: AbstractNonlinearity
    tau: Float[Array, ""]
    rank: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)

    def __init__(
        self,
        rank: int,
        *,
        fractions: ArrayOrSequence,
        means: ArrayOrSequence,
        covs: ArrayOrSequence,
        n_inputs: int = 0,
        g: ArrayLike = 0.0,
        bias: ArrayLike = 0.0,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ):
        if not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"`rank` must be a positive integer, got {rank!r}.")
        if not isinstance(n_inputs, (int, np.integer)) or n_inputs < 0:
            raise ValueError(f"`n_inputs` must be a non-negative integer, got {n_inputs!r}.")
        dtype = jnp.result_type(float)
        k = 2 * rank + n_inputs
        self.fractions = jnp.asarray(fractions, dtype)
        self.means = jnp.asarray(means, dtype)
        self.covs = jnp.asarray(covs, dtype)
        p = self.fractions.shape[-1] if self.fractions.ndim else 0
        if self.fractions.ndim != 1 or p < 1:
            raise ValueError(f"`fractions` must be a 1-d array, got shape {self.fractions.shape}.")
        if self.means.shape != (p, k):
            raise ValueError(
                f"`means` must have shape (populations, 2 * rank + n_inputs) = ({p}, {k}), "
                f"got {self.means.shape}."
            )
        if self.covs.shape != (p, k, k):
            raise ValueError(
                f"`covs` must have shape ({p}, {k}, {k}) for rank {rank}, {n_inputs} inputs, "
                f"got {self.covs.shape}."
            )
        self.g = jnp.asarray(g, dtype)
        self.bias = jnp.asarray(bias, dtype)
        self.phi = phi
        self.tau = jnp.asarray(tau, dtype)
        self.rank = int(rank)
        self.n_inputs = int(n_inputs)

    def __check_init__(self):
        check_nonnegative("fractions", self.fractions)
        if is_concrete(self.fractions) and not np.isclose(
            float(np.sum(np.asarray(self.fractions))), 1.0, atol=1e-6
        ):
            raise ValueError(
                f"`fractions` must sum to 1, got sum {float(np.sum(np.asarray(self.fractions)))}."
            )
        check_finite("means", self.means)
        for p in range(self.covs.shape[0]):
            check_covariance(f"covs[{p}]", self.covs[p])
        check_nonnegative("g", self.g)
        check_finite("bias", self.bias)
        check_positive("tau", self.tau)
        check_phi(self.phi)

    @property
    def n_populations(self) -> int:
        return self.fractions.shape[0]

    def with_gains(self, gains) -> "MixtureEnsemble":
        """Gain modulation: population p's transfer function becomes phi(gains[p] x).
        Equivalent (rescale x of those units) to scaling their m and I loadings, and
        rows of the random part, by gains[p]; this returns that ensemble for the
        loadings. Exact for g = 0 and bias = 0 (a uniform g and bias cannot be
        scaled per population)."""
        gains = jnp.asarray(gains, self.means.dtype)
        if gains.shape != self.fractions.shape:
            raise ValueError(
                f"`gains` must have one entry per population {self.fractions.shape}, "
                f"got shape {gains.shape}."
            )
        idx = loading_index(self.rank, self.n_inputs)
        drive = np.zeros(self.means.shape[-1], bool)
        drive[idx["m"] + idx["I"]] = True
        scale = jnp.where(drive[None, :], gains[:, None], 1.0)  # (P, k)
        return MixtureEnsemble(
            self.rank,
            fractions=self.fractions,
            means=self.means * scale,
            covs=self.covs * scale[:, :, None] * scale[:, None, :],
            n_inputs=self.n_inputs,
            g=self.g,
            bias=self.bias,
            phi=self.phi,
            tau=self.tau,
        )

    def population_sizes(self, n: int) -> np.ndarray:
        """Units per population: floor(alpha_p n), remainders to the largest fractional parts."""
        check_size(n)
        exact = np.asarray(self.fractions, dtype=float) * n
        sizes = np.floor(exact).astype(int)
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[: n - sizes.sum()]] += 1
        return sizes

    def population_labels(self, n: int) -> np.ndarray:
        """Population index of each unit, in the order `sample` uses (contiguous blocks)."""
        return np.repeat(np.arange(self.n_populations), self.population_sizes(n))

    def sample(self, n: int, *, key: PRNGKeyArray) -> LowRankNetwork:
        """A [`mfrnn.LowRankNetwork`][]; unit order follows `population_labels(n)`."""
        sizes = self.population_sizes(n)
        k_load, k_rand = jr.split(key)
        keys = jr.split(k_load, self.n_populations)
        loads = jnp.concatenate(
            [
                gaussian_loadings(self.means[p], self.covs[p], int(sizes[p]), keys[p])
                for p in range(self.n_populations)
            ],
            axis=0,
        )
        return _network_from_loadings(self, loads, k_rand)
