"""Rate networks `tau dx/dt = -x + J phi(x) + bias + W_in u(t)` and their readouts.

A network is an unbatched vector field `(t, x, args)` in diffrax's convention; `args`
is the input signal `u` (any callable `u(t) -> (n_in,)`, or None). Batch with `vmap`.
"""

import abc

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._misc import check_finite, check_positive, is_concrete
from ._nonlinearities import AbstractNonlinearity, Tanh
from ._options import DaleConstraint, DaleConstraintLike, option


def _matvec(a, b):
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


class PiecewiseConstantInput(eqx.Module):
    """Input `u(t) = values[k]` for `t0 + k dt <= t < t0 + (k + 1) dt` (right-continuous;
    held at the last value after the grid ends). The form training and the Euler scan use.

    With an adaptive diffrax solver pass `jump_ts=input.jump_times()` to the
    `PIDController` so steps do not straddle the jumps.
    """

    values: Float[Array, "steps n_in"]
    dt: Float[Array, ""]
    t0: Float[Array, ""]

    def __init__(self, values: ArrayLike, dt: ArrayLike, t0: ArrayLike = 0.0):
        values = jnp.asarray(values)
        if values.ndim != 2:
            raise ValueError(f"`values` must have shape (steps, n_in), got {values.shape}.")
        check_positive("dt", dt)
        self.values = values
        self.dt = jnp.asarray(dt, dtype=values.dtype)
        self.t0 = jnp.asarray(t0, dtype=values.dtype)

    def __call__(self, t) -> Float[Array, "*batch n_in"]:
        # The 1e-6 guards against t landing a rounding error below a grid point.
        k = jnp.floor((t - self.t0) / self.dt + 1e-6).astype(int)
        return self.values[jnp.clip(k, 0, self.values.shape[0] - 1)]

    def jump_times(self) -> Float[Array, " steps"]:
        return self.t0 + self.dt * jnp.arange(1, self.values.shape[0] + 1)


class AbstractRateNetwork(eqx.Module):
    """`tau dx/dt = -x + J phi(x) + bias + W_in u(t)`, readout `z = W_out^T phi(x)`.

    Concrete networks say how `J r` is applied (`recurrent`). `__call__(t, x, args)` is
    the vector field dx/dt on one state, with `args` the input signal `u(t)` or None.
    """

    phi: eqx.AbstractVar[AbstractNonlinearity]
    bias: eqx.AbstractVar[Float[Array, " n"]]
    W_in: eqx.AbstractVar[Float[Array, "n n_in"] | None]
    W_out: eqx.AbstractVar[Float[Array, "n n_out"] | None]
    tau: eqx.AbstractVar[Float[Array, ""]]

    @abc.abstractmethod
    def recurrent(self, r: Float[Array, " n"]) -> Float[Array, " n"]:
        """`J r`."""

    @abc.abstractmethod
    def dense_matrix(self) -> Float[Array, "n n"]:
        """J as a dense matrix (for analysis of small networks; O(N^2) memory)."""

    @property
    def n(self) -> int:
        return self.bias.shape[0]

    def drive(self, t, x: Float[Array, " n"], args) -> Float[Array, " n"]:
        """`-x + J phi(x) + bias + W_in u(t)`, i.e. tau dx/dt."""
        h = -x + self.recurrent(self.phi(x)) + self.bias
        if args is not None:
            if self.W_in is None:
                raise ValueError("An input signal was given but the network has no `W_in`.")
            h = h + _matvec(self.W_in, jnp.asarray(args(t) if callable(args) else args))
        return h

    def __call__(self, t, x: Float[Array, " n"], args) -> Float[Array, " n"]:
        return self.drive(t, x, args) / self.tau

    def readout(self, x: Float[Array, " n"]) -> Float[Array, " n_out"]:
        """`W_out^T phi(x)`."""
        if self.W_out is None:
            raise ValueError("The network has no `W_out`.")
        return _matvec(self.W_out.T, self.phi(x))

    def jacobian(self, x: Float[Array, " n"]) -> Float[Array, "n n"]:
        """d(dx/dt)/dx = (-1 + J diag(phi'(x))) / tau."""
        J = self.dense_matrix()
        return (-jnp.eye(self.n, dtype=J.dtype) + J * self.phi.derivative(x)[None, :]) / self.tau


def _check_common(n: int, bias, W_in, W_out) -> None:
    if bias.shape != (n,):
        raise ValueError(f"`bias` must have shape ({n},), got {bias.shape}.")
    if W_in is not None and (W_in.ndim != 2 or W_in.shape[0] != n):
        raise ValueError(f"`W_in` must have shape ({n}, n_in), got {W_in.shape}.")
    if W_out is not None and (W_out.ndim != 2 or W_out.shape[0] != n):
        raise ValueError(f"`W_out` must have shape ({n}, n_out), got {W_out.shape}.")


def _as_optional(x):
    return None if x is None else jnp.asarray(x)


def _set_common(net, size: int, dtype, phi, bias, W_in, W_out, tau) -> None:
    """Assign and check the fields every network has (inside its __init__)."""
    net.phi = phi
    net.bias = jnp.zeros(size, dtype) if bias is None else jnp.asarray(bias)
    net.W_in = _as_optional(W_in)
    net.W_out = _as_optional(W_out)
    net.tau = jnp.asarray(tau, dtype=dtype)
    _check_common(size, net.bias, net.W_in, net.W_out)


class DenseNetwork(AbstractRateNetwork):
    """A rate network with a dense connectivity matrix `J` (`J[i, j]`: from j to i)."""

    J: Float[Array, "n n"]
    phi: AbstractNonlinearity
    bias: Float[Array, " n"]
    W_in: Float[Array, "n n_in"] | None
    W_out: Float[Array, "n n_out"] | None
    tau: Float[Array, ""]

    def __init__(
        self,
        J: ArrayLike,
        phi: AbstractNonlinearity = Tanh(),
        *,
        bias: ArrayLike | None = None,
        W_in: ArrayLike | None = None,
        W_out: ArrayLike | None = None,
        tau: ArrayLike = 1.0,
    ):
        J = jnp.asarray(J)
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"`J` must be a square matrix, got shape {J.shape}.")
        if not isinstance(phi, AbstractNonlinearity):
            raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")
        check_finite("J", J)
        check_positive("tau", tau)
        self.J = J
        _set_common(self, J.shape[0], J.dtype, phi, bias, W_in, W_out, tau)

    def recurrent(self, r):
        return _matvec(self.J, r)

    def dense_matrix(self):
        return self.J


class LowRankNetwork(AbstractRateNetwork):
    """`J = m n^T / N (+ J_random)`, applied as `m (n^T r) / N`: never forms N x N unless
    a random part is given. Latent variables `kappa_r = <n_r, phi(x)> / N`.
    """

    m: Float[Array, "n rank"]
    n_vectors: Float[Array, "n rank"]
    J_random: Float[Array, "n n"] | None
    phi: AbstractNonlinearity
    bias: Float[Array, " n"]
    W_in: Float[Array, "n n_in"] | None
    W_out: Float[Array, "n n_out"] | None
    tau: Float[Array, ""]

    def __init__(
        self,
        m: ArrayLike,
        n: ArrayLike,
        phi: AbstractNonlinearity = Tanh(),
        *,
        J_random: ArrayLike | None = None,
        bias: ArrayLike | None = None,
        W_in: ArrayLike | None = None,
        W_out: ArrayLike | None = None,
        tau: ArrayLike = 1.0,
    ):
        m = jnp.asarray(m)
        n_vec = jnp.asarray(n)
        if m.ndim == 1:
            m = m[:, None]
        if n_vec.ndim == 1:
            n_vec = n_vec[:, None]
        if m.shape != n_vec.shape:
            raise ValueError(
                f"`m` and `n` must have the same shape (N, rank), got {m.shape} and {n_vec.shape}."
            )
        if not isinstance(phi, AbstractNonlinearity):
            raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")
        size = m.shape[0]
        if J_random is not None:
            J_random = jnp.asarray(J_random)
            if J_random.shape != (size, size):
                raise ValueError(
                    f"`J_random` must have shape ({size}, {size}), got {J_random.shape}."
                )
        check_positive("tau", tau)
        self.m = m
        self.n_vectors = n_vec
        self.J_random = J_random
        _set_common(self, size, m.dtype, phi, bias, W_in, W_out, tau)

    @property
    def rank(self) -> int:
        return self.m.shape[1]

    def kappa(self, x: Float[Array, " n"]) -> Float[Array, " rank"]:
        """Latent variables `kappa_r = n_r . phi(x) / N`."""
        return _matvec(self.n_vectors.T, self.phi(x)) / self.n

    def recurrent(self, r):
        out = _matvec(self.m, _matvec(self.n_vectors.T, r)) / self.n
        if self.J_random is not None:
            out = out + _matvec(self.J_random, r)
        return out

    def dense_matrix(self):
        J = _matvec(self.m, self.n_vectors.T) / self.n
        return J if self.J_random is None else J + self.J_random


class DaleNetwork(AbstractRateNetwork):
    """Dense network obeying Dale's law: column j of J has the sign `signs[j]` (+1
    excitatory, -1 inhibitory).

    `constraint`, a [`mfrnn.DaleConstraint`][]:

    - `DaleConstraint.sign` (default): `J = |W| diag(signs)`; W is unconstrained, so
      gradient steps can never break the law.
    - `DaleConstraint.projection`: `J = W`, and `project()` (called after every
      optimiser update) zeroes the entries with the wrong sign.
    """

    W: Float[Array, "n n"]
    signs: Float[Array, " n"]
    constraint: DaleConstraint = eqx.field(static=True)
    phi: AbstractNonlinearity
    bias: Float[Array, " n"]
    W_in: Float[Array, "n n_in"] | None
    W_out: Float[Array, "n n_out"] | None
    tau: Float[Array, ""]

    def __init__(
        self,
        W: ArrayLike,
        signs: ArrayLike,
        phi: AbstractNonlinearity = Tanh(),
        *,
        constraint: DaleConstraintLike = DaleConstraint.sign,
        bias: ArrayLike | None = None,
        W_in: ArrayLike | None = None,
        W_out: ArrayLike | None = None,
        tau: ArrayLike = 1.0,
    ):
        W = jnp.asarray(W)
        signs = jnp.asarray(signs, dtype=W.dtype)
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"`W` must be a square matrix, got shape {W.shape}.")
        if signs.shape != (W.shape[0],):
            raise ValueError(f"`signs` must have shape ({W.shape[0]},), got {signs.shape}.")
        if is_concrete(signs) and not np.all(np.abs(np.asarray(signs)) == 1):
            raise ValueError("`signs` must be +1 (excitatory) or -1 (inhibitory).")
        constraint = option(DaleConstraint, constraint, "constraint")
        check_finite("W", W)
        check_positive("tau", tau)
        self.W = W
        self.signs = signs
        self.constraint = constraint
        _set_common(self, W.shape[0], W.dtype, phi, bias, W_in, W_out, tau)

    def dense_matrix(self):
        if self.constraint == DaleConstraint.sign:
            return jnp.abs(self.W) * self.signs[None, :]
        return self.W

    def recurrent(self, r):
        return _matvec(self.dense_matrix(), r)

    def project(self) -> "DaleNetwork":
        """The same network with wrong-sign entries of W set to 0 (projection mode)."""
        if self.constraint == DaleConstraint.sign:
            return self
        W = jnp.where(self.W * self.signs[None, :] >= 0, self.W, 0.0)
        return eqx.tree_at(lambda net: net.W, self, W)

    def as_dense(self) -> DenseNetwork:
        """The equivalent DenseNetwork (J formed once, e.g. before a time loop)."""
        return DenseNetwork(self.dense_matrix(), self.phi, bias=self.bias, W_in=self.W_in,
                            W_out=self.W_out, tau=self.tau)


class RandomModeNetwork(AbstractRateNetwork):
    """`J = L diag(D) R^T = sum_a D_a l_a r_a^T` (random-mode model of Clark, Marschall,
    van Meegen & Litwin-Kumar 2025), applied as `L (D * (R^T r))`: a matvec costs
    O(N M) for M modes and N x N is never formed unless `dense_matrix` is called.
    """

    L: Float[Array, "n modes"]
    D: Float[Array, " modes"]
    R: Float[Array, "n modes"]
    phi: AbstractNonlinearity
    bias: Float[Array, " n"]
    W_in: Float[Array, "n n_in"] | None
    W_out: Float[Array, "n n_out"] | None
    tau: Float[Array, ""]

    def __init__(
        self,
        L: ArrayLike,
        D: ArrayLike,
        R: ArrayLike,
        phi: AbstractNonlinearity = Tanh(),
        *,
        bias: ArrayLike | None = None,
        W_in: ArrayLike | None = None,
        W_out: ArrayLike | None = None,
        tau: ArrayLike = 1.0,
    ):
        L = jnp.asarray(L)
        R = jnp.asarray(R)
        D = jnp.asarray(D, dtype=L.dtype)
        if L.ndim != 2 or L.shape != R.shape:
            raise ValueError(
                f"`L` and `R` must have the same shape (N, modes), got {L.shape} and {R.shape}."
            )
        if D.shape != (L.shape[1],):
            raise ValueError(f"`D` must have shape ({L.shape[1]},), got {D.shape}.")
        if not isinstance(phi, AbstractNonlinearity):
            raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")
        check_finite("D", D)
        check_positive("tau", tau)
        self.L = L
        self.D = D
        self.R = R
        _set_common(self, L.shape[0], L.dtype, phi, bias, W_in, W_out, tau)

    @property
    def n_modes(self) -> int:
        return self.D.shape[0]

    def recurrent(self, r):
        return _matvec(self.L, self.D * _matvec(self.R.T, r))

    def dense_matrix(self):
        return _matvec(self.L * self.D[None, :], self.R.T)


def spectral_radius(network: AbstractRateNetwork) -> float:
    """Largest |eigenvalue| of the dense J (numpy; small networks only)."""
    J = np.asarray(network.dense_matrix())
    return float(np.max(np.abs(np.linalg.eigvals(J))))


