import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._misc import check_finite, check_nonnegative, check_positive
from .._networks import DenseNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .base import AbstractEnsemble, check_nonempty, check_phi, check_size, random_part


class GaussianEnsemble(AbstractEnsemble):
    """Random network `J_ij ~ N(0, g^2 / N)` (phi outside the gain, docs/conventions.md),
    uniform bias `b` and quenched static input `I_i ~ N(0, input_std^2)`.

    ```python
    net = mfrnn.GaussianEnsemble(g=2.0).sample(1000, key=jr.key(0))
    ```
    """

    g: Float[Array, ""]
    bias: Float[Array, ""]
    input_std: Float[Array, ""]
    phi: AbstractNonlinearity
    tau: Float[Array, ""]

    def __init__(
        self,
        g: ArrayLike,
        bias: ArrayLike = 0.0,
        input_std: ArrayLike = 0.0,
        *,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ):
        for name, value in (("bias", bias), ("input_std", input_std)):
            if isinstance(value, AbstractNonlinearity):
                raise ValueError(
                    f"`{name}` got the nonlinearity {value!r}: pass it by keyword, "
                    "`GaussianEnsemble(g, phi=...)` (bias and input_std come second and "
                    "third)."
                )
        dtype = jnp.result_type(float)
        self.g = jnp.asarray(g, dtype)
        self.bias = jnp.asarray(bias, dtype)
        self.input_std = jnp.asarray(input_std, dtype)
        self.phi = phi
        self.tau = jnp.asarray(tau, dtype)

    def __check_init__(self):
        check_nonempty("g", self.g)
        check_nonnegative("g", self.g)
        check_finite("bias", self.bias)
        check_nonnegative("input_std", self.input_std)
        check_positive("tau", self.tau)
        check_phi(self.phi)

    def sample(self, n: int, *, key: PRNGKeyArray, self_couplings: bool = True) -> DenseNetwork:
        """A [`mfrnn.DenseNetwork`][] of `n` units. `self_couplings=False` zeroes the
        diagonal of J (an O(1/N) effect, docs/theory/pitfalls.md)."""
        check_size(n)
        if self.g.ndim or self.bias.ndim or self.input_std.ndim:
            raise ValueError("`sample` needs a scalar ensemble; vmap over a batched one.")
        kJ, kI = jr.split(key)
        dtype = self.g.dtype
        J = random_part(self.g, n, kJ, dtype)
        if not self_couplings:
            J = J * (1.0 - jnp.eye(n, dtype=dtype))
        bias = self.bias + self.input_std * jr.normal(kI, (n,), dtype)
        return DenseNetwork(J, self.phi, bias=bias, tau=self.tau)
