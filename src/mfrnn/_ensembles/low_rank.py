import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._custom_types import ArrayOrSequence
from .._misc import check_finite, check_nonnegative, check_positive
from .._networks import LowRankNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .base import (
    AbstractEnsemble,
    check_covariance,
    check_nonempty,
    check_phi,
    check_rank_and_inputs,
    check_size,
    gaussian_loadings,
    is_zero,
    random_part,
)


def loading_index(rank: int, n_inputs: int) -> dict[str, list[int]]:
    """Positions of m_r, n_r and I_s in the loading vector `(m_1..m_R, n_1..n_R, I_1..I_S)`."""
    return {
        "m": list(range(rank)),
        "n": list(range(rank, 2 * rank)),
        "I": list(range(2 * rank, 2 * rank + n_inputs)),
    }



class LowRankEnsemble(AbstractEnsemble):
    """Rank-R plus random connectivity `J = m n^T / N + g chi`, `chi_ij ~ N(0, 1/N)`.

    Each unit i draws its loadings `(m_1i..m_Ri, n_1i..n_Ri, I_1i..I_Si)` from one
    Gaussian with mean `mean` and covariance `cov` (size 2R + S). This covers both
    conventions of docs/theory/lowrank.md: zero-mean loadings with covariance overlap sigma_mn
    (Beiran / Dubreuil / Valente) and the Mastrogiuseppe-Ostojic mean overlap M_m M_n.
    Input vectors I_s become the columns of `W_in`. See `LowRankEnsemble.rank_one`.
    """

    mean: Float[Array, " k"]
    cov: Float[Array, "k k"]
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
        mean: ArrayOrSequence | None = None,
        cov: ArrayOrSequence | None = None,
        n_inputs: int = 0,
        g: ArrayLike = 0.0,
        bias: ArrayLike = 0.0,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ):
        check_rank_and_inputs(rank, n_inputs)
        dtype = jnp.result_type(float)
        k = 2 * rank + n_inputs
        self.mean = jnp.zeros(k, dtype) if mean is None else jnp.asarray(mean, dtype)
        self.cov = jnp.eye(k, dtype=dtype) if cov is None else jnp.asarray(cov, dtype)
        if self.mean.shape[-1:] != (k,):
            raise ValueError(
                f"`mean` must have length 2 * rank + n_inputs = {k}, got shape {self.mean.shape}."
            )
        if self.cov.shape[-2:] != (k, k):
            raise ValueError(
                f"`cov` must have shape ({k}, {k}) for rank {rank} and {n_inputs} inputs, "
                f"got {self.cov.shape}."
            )
        self.g = jnp.asarray(g, dtype)
        self.bias = jnp.asarray(bias, dtype)
        self.phi = phi
        self.tau = jnp.asarray(tau, dtype)
        self.rank = int(rank)
        self.n_inputs = int(n_inputs)

    def __check_init__(self):
        check_finite("mean", self.mean)
        check_covariance("cov", self.cov)
        check_nonempty("g", self.g)
        check_nonnegative("g", self.g)
        check_finite("bias", self.bias)
        check_positive("tau", self.tau)
        check_phi(self.phi)

    @classmethod
    def rank_one(
        cls,
        *,
        sigma_mn: ArrayLike = 0.0,
        sigma_m: ArrayLike = 1.0,
        sigma_n: ArrayLike = 1.0,
        mean_m: ArrayLike = 0.0,
        mean_n: ArrayLike = 0.0,
        g: ArrayLike = 0.0,
        sigma_I: ArrayLike | None = None,
        mean_I: ArrayLike = 0.0,
        sigma_mI: ArrayLike = 0.0,
        sigma_nI: ArrayLike = 0.0,
        bias: ArrayLike = 0.0,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ) -> "LowRankEnsemble":
        """Rank one, optionally with one input vector I (when `sigma_I` is given).

        `sigma_m`, `sigma_n`, `sigma_I` are standard deviations; `sigma_mn`, `sigma_mI`,
        `sigma_nI` covariances. Mastrogiuseppe-Ostojic: `mean_m=M_m, mean_n=M_n,
        sigma_m=s_m, sigma_n=s_n`; zero-mean convention: `sigma_mn=...`.

        ```python
        ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, g=0.5)
        ```
        """
        # Every argument may be an array over a parameter grid: broadcast, then stack
        # into `mean` (..., k) and `cov` (..., k, k).
        with_input = sigma_I is not None
        names = [mean_m, mean_n, sigma_m, sigma_n, sigma_mn]
        if with_input:
            names += [mean_I, sigma_I, sigma_mI, sigma_nI]
        arrays = jnp.broadcast_arrays(*[jnp.asarray(x, float) for x in names])
        if with_input:
            mm, mn, sm, sn, smn, mI, sI, smI, snI = arrays
            mean = jnp.stack([mm, mn, mI], axis=-1)
            rows = [[sm**2, smn, smI], [smn, sn**2, snI], [smI, snI, sI**2]]
        else:
            mm, mn, sm, sn, smn = arrays
            mean = jnp.stack([mm, mn], axis=-1)
            rows = [[sm**2, smn], [smn, sn**2]]
        cov = jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)
        n_inputs = int(with_input)
        return cls(1, mean=mean, cov=cov, n_inputs=n_inputs, g=g, bias=bias, phi=phi, tau=tau)

    def sample(self, n: int, *, key: PRNGKeyArray) -> LowRankNetwork:
        """A [`mfrnn.LowRankNetwork`][]: loadings drawn i.i.d. per unit, `J_random`
        only when `g` is not (concretely) zero."""
        check_size(n)
        if self.mean.ndim != 1:
            raise ValueError("`sample` needs an unbatched ensemble; vmap over a batched one.")
        k_load, k_rand = jr.split(key)
        loads = gaussian_loadings(self.mean, self.cov, n, k_load)
        return network_from_loadings(self, loads, k_rand)


def network_from_loadings(ens, loads, key) -> LowRankNetwork:
    """Shared by the low-rank and mixture ensembles."""
    idx = loading_index(ens.rank, ens.n_inputs)
    n = loads.shape[0]
    J_random = None if is_zero(ens.g) else random_part(ens.g, n, key, loads.dtype)
    W_in = loads[:, idx["I"]] if ens.n_inputs else None
    return LowRankNetwork(
        loads[:, idx["m"]],
        loads[:, idx["n"]],
        ens.phi,
        J_random=J_random,
        bias=jnp.full((n,), ens.bias, loads.dtype),
        W_in=W_in,
        tau=ens.tau,
    )
