import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._misc import check_finite, check_nonnegative, check_positive, is_concrete
from .._networks import DenseNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .base import AbstractEnsemble, check_phi, check_size


class EIEnsemble(AbstractEnsemble):
    """Excitatory/inhibitory random network (Rajan & Abbott 2006).

    A fraction `frac_e` of columns is excitatory. Entry `J_ij = (mean_c + std_c xi_ij) /
    sqrt(N)` with c the type of column j, xi ~ N(0, 1). The bulk radius is
    `sqrt(frac_e std_e^2 + (1 - frac_e) std_i^2)`; with balanced means
    (`frac_e mean_e + (1 - frac_e) mean_i = 0`) set `zero_row_sum=True` to subtract each
    row's mean of the random part, which removes the O(1) escaping eigenvalues
    (docs/theory/pitfalls.md).

    Signs are not clipped: with large `std_c` some entries have the "wrong" sign, as in
    Rajan & Abbott's model.
    """

    frac_e: Float[Array, ""]
    mean_e: Float[Array, ""]
    mean_i: Float[Array, ""]
    std_e: Float[Array, ""]
    std_i: Float[Array, ""]
    bias: Float[Array, ""]
    phi: AbstractNonlinearity
    tau: Float[Array, ""]
    zero_row_sum: bool = eqx.field(static=True)

    def __init__(
        self,
        frac_e: ArrayLike = 0.8,
        *,
        mean_e: ArrayLike = 0.0,
        mean_i: ArrayLike = 0.0,
        std_e: ArrayLike = 1.0,
        std_i: ArrayLike = 1.0,
        zero_row_sum: bool = False,
        bias: ArrayLike = 0.0,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ):
        dtype = jnp.result_type(float)
        self.frac_e = jnp.asarray(frac_e, dtype)
        self.mean_e = jnp.asarray(mean_e, dtype)
        self.mean_i = jnp.asarray(mean_i, dtype)
        self.std_e = jnp.asarray(std_e, dtype)
        self.std_i = jnp.asarray(std_i, dtype)
        self.bias = jnp.asarray(bias, dtype)
        self.phi = phi
        self.tau = jnp.asarray(tau, dtype)
        self.zero_row_sum = bool(zero_row_sum)

    def __check_init__(self):
        check_finite("frac_e", self.frac_e)
        if is_concrete(self.frac_e) and not np.all(
            (np.asarray(self.frac_e) > 0) & (np.asarray(self.frac_e) < 1)
        ):
            raise ValueError(f"`frac_e` must lie in (0, 1), got {np.asarray(self.frac_e)}.")
        check_finite("mean_e", self.mean_e)
        check_finite("mean_i", self.mean_i)
        check_nonnegative("std_e", self.std_e)
        check_nonnegative("std_i", self.std_i)
        check_finite("bias", self.bias)
        check_positive("tau", self.tau)
        check_phi(self.phi)

    def bulk_radius(self) -> Float[Array, ""]:
        """Radius of the eigenvalue disk, `sqrt(f std_e^2 + (1 - f) std_i^2)`."""
        return jnp.sqrt(self.frac_e * self.std_e**2 + (1 - self.frac_e) * self.std_i**2)

    def n_excitatory(self, n: int) -> int:
        check_size(n)
        return int(np.round(float(self.frac_e) * n))

    def sample(self, n: int, *, key: PRNGKeyArray) -> DenseNetwork:
        """A [`mfrnn.DenseNetwork`][]; columns `[:n_excitatory(n)]` are excitatory."""
        n_e = self.n_excitatory(n)
        dtype = self.std_e.dtype
        is_e = jnp.arange(n) < n_e
        mean = jnp.where(is_e, self.mean_e, self.mean_i)
        std = jnp.where(is_e, self.std_e, self.std_i)
        noise = std[None, :] * jr.normal(key, (n, n), dtype)
        if self.zero_row_sum:
            noise = noise - noise.mean(axis=1, keepdims=True)
        J = (mean[None, :] + noise) / np.sqrt(n)
        return DenseNetwork(J, self.phi, bias=jnp.full((n,), self.bias, dtype), tau=self.tau)
