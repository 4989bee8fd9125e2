import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._custom_types import ArrayOrSequence
from .._misc import check_finite, check_nonnegative, check_positive, is_concrete
from .._networks import LowRankNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .base import (
    AbstractEnsemble,
    check_covariance,
    check_phi,
    check_rank_and_inputs,
    check_size,
    gaussian_loadings,
)
from .low_rank import network_from_loadings, loading_index


class MixtureEnsemble(AbstractEnsemble):
    """Gaussian-mixture low-rank populations (Beiran et al. 2021; Dubreuil, Valente et
    al. 2022): a fraction `fractions[p]` of units draws its loadings
    `(m_1..m_R, n_1..n_R, I_1..I_S)` from N(`means[p]`, `covs[p]`); plus `g chi`.

    ```python
    ens = mfrnn.MixtureEnsemble(rank=1, fractions=[0.5, 0.5], means=jnp.zeros((2, 2)),
                                covs=jnp.stack([c1, c2]))
    ```

    **Grids.** As for [`mfrnn.LowRankEnsemble`][], `means` (*batch, P, k), `covs`
    (*batch, P, k, k), `g` and `bias` may carry leading grid axes (broadcast against each
    other); `fractions` stay one per population, shape (P,). A phase diagram over the
    first population's overlap Cov(m, n) is one call:

    ```python
    smn = jnp.linspace(0.5, 3.5, 20)
    covs = jnp.tile(jnp.array([[1.0, 0.8], [0.8, 16.0]]), (20, 2, 1, 1))  # (20, 2, 2, 2)
    covs = covs.at[:, 0, 0, 1].set(smn).at[:, 0, 1, 0].set(smn)
    ens = mfrnn.MixtureEnsemble(1, fractions=[0.5, 0.5], means=jnp.zeros((2, 2)), covs=covs)
    pd = mfrnn.phase_diagram(ens)  # fields of shape (20, ...)
    ```

    and over a population's gain, `ens.with_gains(gains)` with `gains` of shape
    (*batch, P). `sample` needs an unbatched ensemble: vmap over a batched one.
    """

    fractions: Float[Array, " populations"]
    means: Float[Array, "*batch populations k"]
    covs: Float[Array, "*batch populations k k"]
    g: Float[Array, "*batch"]
    bias: Float[Array, "*batch"]
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
        check_rank_and_inputs(rank, n_inputs)
        dtype = jnp.result_type(float)
        k = 2 * rank + n_inputs
        self.fractions = jnp.asarray(fractions, dtype)
        self.means = jnp.asarray(means, dtype)
        self.covs = jnp.asarray(covs, dtype)
        p = self.fractions.shape[-1] if self.fractions.ndim else 0
        if self.fractions.ndim != 1 or p < 1:
            raise ValueError(f"`fractions` must be a 1-d array, got shape {self.fractions.shape}.")
        if self.means.shape[-2:] != (p, k):
            raise ValueError(
                f"`means` must have shape (*batch, populations, 2 * rank + n_inputs) = "
                f"(..., {p}, {k}), got {self.means.shape}."
            )
        if self.covs.shape[-3:] != (p, k, k):
            raise ValueError(
                f"`covs` must have shape (*batch, populations, k, k) = (..., {p}, {k}, {k}) "
                f"for rank {rank}, {n_inputs} inputs, got {self.covs.shape}."
            )
        _batch_shape(self.means, self.covs)
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
        # Every matrix, grid cells included; the first failing one is named `covs[..., p]`.
        check_covariance("covs", self.covs)
        check_nonnegative("g", self.g)
        check_finite("bias", self.bias)
        check_positive("tau", self.tau)
        check_phi(self.phi)

    @property
    def n_populations(self) -> int:
        return self.fractions.shape[-1]

    def with_gains(self, gains) -> "MixtureEnsemble":
        """Gain modulation: population p's transfer function becomes phi(gains[p] x).
        Equivalent (rescale x of those units) to scaling their m and I loadings, and
        rows of the random part, by gains[p]; this returns that ensemble for the
        loadings. Exact for g = 0 and bias = 0 (a uniform g and bias cannot be
        scaled per population).

        `gains` has shape (*batch, P): its leading axes are a grid, broadcast against the
        ensemble's; the result has `means` (*batch, P, k) and `covs` (*batch, P, k, k)."""
        gains = jnp.asarray(gains, self.means.dtype)
        P, k = self.n_populations, self.means.shape[-1]
        if gains.ndim < 1 or gains.shape[-1] != P:
            raise ValueError(
                f"`gains` must have shape (*batch, populations) = (..., {P}), "
                f"got shape {gains.shape}."
            )
        batch = _batch_shape(self.means, self.covs, gains[..., None])
        idx = loading_index(self.rank, self.n_inputs)
        drive = np.zeros(k, bool)
        drive[idx["m"] + idx["I"]] = True
        # Same-rank arrays throughout (jax_numpy_rank_promotion="raise" safe).
        scale = jnp.where(
            jnp.broadcast_to(drive, batch + (P, k)),
            jnp.broadcast_to(gains[..., None], batch + (P, k)),
            1.0,
        )
        means = jnp.broadcast_to(self.means, batch + (P, k)) * scale
        covs = jnp.broadcast_to(self.covs, batch + (P, k, k))
        covs = covs * scale[..., :, None] * scale[..., None, :]
        return MixtureEnsemble(
            self.rank,
            fractions=self.fractions,
            means=means,
            covs=covs,
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
        check_size(n)
        if self.means.ndim != 2 or self.covs.ndim != 3 or self.g.ndim or self.bias.ndim:
            raise ValueError(
                "`sample` needs an unbatched ensemble (means (P, k), covs (P, k, k), scalar "
                f"g and bias), got means {self.means.shape}, covs {self.covs.shape}; "
                "vmap over a batched one."
            )
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
        return network_from_loadings(self, loads, k_rand)


def _batch_shape(*arrays) -> tuple[int, ...]:
    """The broadcast grid shape of `means` (..., P, k), `covs` (..., P, k, k) and
    optionally `gains[..., None]` (..., P, 1)."""
    names = ("means", "covs", "gains")
    cores = (2, 3, 2)
    shapes = [a.shape[: a.ndim - c] for a, c in zip(arrays, cores)]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(f"`{n}` {s}" for n, s in zip(names, shapes))
        raise ValueError(f"The grid (leading batch) axes do not broadcast: {listed}.") from None
