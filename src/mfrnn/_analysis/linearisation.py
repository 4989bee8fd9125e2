"""Linearisation at a fixed point: eigen-decomposition of the Jacobian
`(-1 + J diag(phi'(x*))) / tau`, its dominant modes, their time constants and how they
align with the readout and input vectors."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from .._networks import AbstractRateNetwork, LowRankNetwork
from .._solution import summary_repr
from .fixed_points import check_network


class Linearisation(eqx.Module):
    """The linearised dynamics `d(dx)/dt = A dx` at one state.

    - `eigenvalues`: all n eigenvalues of A, decreasing real part.
    - `right`, `left`: the `n_modes` dominant right eigenvectors (n, modes) with unit
      norm, and left eigenvectors scaled so that `left[:, i] . right[:, i] = 1` (a
      perturbation dx excites mode i with amplitude `left[:, i] . dx`).
    - `time_constants`: `-1 / Re(lambda)` of those modes (negative: growth time of an
      unstable mode; inf: marginal).
    - `readout_projection`: |cosine| between each right eigenvector and each readout
      column `W_out[:, o]` (modes, n_out): how much the mode shows in the output.
    - `input_projection`: `left . W_in[:, s]` (modes, n_in): the amplitude with which a
      unit step of input s excites the mode.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    eigenvalues: Complex[Array, " n"]
    right: Complex[Array, "n modes"]
    left: Complex[Array, "n modes"]
    time_constants: Float[Array, " modes"]
    readout_projection: Float[Array, "modes n_out"] | None
    input_projection: Complex[Array, "modes n_in"] | None


def _low_rank_modes(network: LowRankNetwork, x):
    """Nonzero part of `-1 + m n^T D / N`: for `A_r = n^T D m / N` (R x R) with
    `A_r w = lambda w`, the full right vector is `m w` and the left one `w_l^T n^T D / N`."""
    gain = np.asarray(network.phi.derivative(x))
    m, nv = np.asarray(network.m), np.asarray(network.n_vectors)
    size = network.n
    reduced = nv.T @ (gain[:, None] * m) / size
    lam, w = np.linalg.eig(reduced)
    w_left = np.linalg.inv(w)  # rows: left eigenvectors with w_left @ w = 1
    right = m @ w
    # left . right = w_l^T A_r w = lambda: divide it out (a lambda = 0 mode is
    # degenerate with the -1 bulk and keeps its unnormalised left vector).
    scale = np.where(np.abs(lam) > 1e-12, lam, 1.0)
    left = ((gain[:, None] * nv) @ w_left.T) / size / scale[None, :]
    return lam, right, left


def linearise(
    network: AbstractRateNetwork,
    x: Float[ArrayLike, " n"],
    *,
    n_modes: int = 3,
) -> Linearisation:
    """Eigen-decomposition of the Jacobian of `network` at the state `x` (a fixed point),
    on the host with numpy. A low-rank network without random part goes through the
    R x R form: its modes are `m w` with eigenvalues of `(-1 + n^T diag(phi') m / N) / tau`,
    and every other eigenvalue is `-1 / tau` (those N - R modes are not returned).

    **Arguments:**

    - `x`: the state (n,), e.g. `fps.points[i]` of [`mfrnn.find_fixed_points`][].
    - `n_modes`: how many modes (largest real part first) to describe.

    ```python
    lin = mfrnn.linearise(net, fps.points[0], n_modes=3)
    lin.time_constants, lin.readout_projection
    ```
    """
    check_network(network)
    x = jnp.asarray(x, network.bias.dtype)
    if x.shape != (network.n,):
        raise ValueError(f"`x` must have shape ({network.n},), got {x.shape}.")
    tau = float(network.tau)
    if isinstance(network, LowRankNetwork) and network.J_random is None:
        if not isinstance(n_modes, int) or not 1 <= n_modes <= network.rank:
            raise ValueError(
                f"`n_modes` must be in [1, rank={network.rank}] for a low-rank network, got {n_modes!r}."
            )
        lam, right, left = _low_rank_modes(network, x)
        lam = (lam - 1.0) / tau
        rest = np.full(network.n - network.rank, -1.0 / tau)
        all_eig = np.concatenate([lam, rest])
    else:
        if not isinstance(n_modes, int) or not 1 <= n_modes <= network.n:
            raise ValueError(f"`n_modes` must be in [1, n={network.n}], got {n_modes!r}.")
        A = np.asarray(network.jacobian(x))
        lam, right = np.linalg.eig(A)
        left = np.linalg.inv(right).T
        all_eig = lam
    order = np.argsort(-lam.real, kind="stable")[:n_modes]
    lam, right, left = lam[order], right[:, order], left[:, order]
    norm = np.linalg.norm(right, axis=0)
    right, left = right / norm, left * norm  # keep left . right = 1
    with np.errstate(divide="ignore"):
        tc = -1.0 / lam.real
    readout = None
    if network.W_out is not None:
        w = np.asarray(network.W_out)
        readout = np.abs(right.conj().T @ w) / np.linalg.norm(w, axis=0)[None, :]
    inputs = None if network.W_in is None else left.T @ np.asarray(network.W_in)
    return Linearisation(
        eigenvalues=jnp.asarray(all_eig[np.argsort(-all_eig.real, kind="stable")].astype(complex)),
        right=jnp.asarray(right.astype(complex)),
        left=jnp.asarray(left.astype(complex)),
        time_constants=jnp.asarray(tc),
        readout_projection=None if readout is None else jnp.asarray(readout),
        input_projection=None if inputs is None else jnp.asarray(inputs.astype(complex)),
    )
