"""Dimension of simulated activity, spectra of sampled connectivity, and the random-mode
theory next to simulation in one call.

The participation ratio `PR = (tr C)^2 / tr C^2` needs `tr C^2`, which a sample
covariance over a record of length T overestimates by about `N^2 tau_c / T` (each of
the N^2 entries carries sampling noise): PR comes out biased low. The estimators here
use products of covariances of *different* blocks (independent trajectories, or time
blocks of one), `tr(C_a C_b)`, a != b, whose noise averages out. Everything is computed
from Gram matrices of the samples (T x T per pair of blocks), never N x N.
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float, PRNGKeyArray

from .._ensembles import RandomModeEnsemble
from .._networks import AbstractRateNetwork, DenseNetwork, RandomModeNetwork
from .._simulate import simulate
from .._solution import summary_repr
from .._theory.dimension import random_mode_spectra, RandomModeSpectra
from .dynamics import half_time


def _blocks(xs, n_blocks, mean) -> Array:
    """(blocks, time, n), centred: on `mean` if given, else the pooled per-unit mean."""
    xs = jnp.asarray(xs)
    if xs.ndim == 2:
        if n_blocks is None:
            n_blocks = 4
        if not isinstance(n_blocks, int) or n_blocks < 2:
            raise ValueError(f"`n_blocks` must be an integer >= 2, got {n_blocks!r}.")
        length = xs.shape[0] // n_blocks
        if length < 2:
            raise ValueError(f"`xs` has {xs.shape[0]} samples: too few for {n_blocks} blocks.")
        xs = xs[: length * n_blocks].reshape(n_blocks, length, xs.shape[1])
    elif xs.ndim == 3:
        if n_blocks is not None:
            raise ValueError("`n_blocks` splits one trajectory (time, n); `xs` has blocks already.")
        if xs.shape[0] < 2:
            raise ValueError(f"`xs` needs at least 2 blocks or trajectories, got {xs.shape[0]}.")
    else:
        raise ValueError(f"`xs` must have shape (time, n) or (blocks, time, n), got {xs.shape}.")
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        xs = xs.astype(jnp.result_type(float))
    centre = jnp.mean(xs, axis=(0, 1)) if mean is None else jnp.asarray(mean, xs.dtype)
    return xs - jnp.broadcast_to(centre, xs.shape)


def _cross_grams(xs):
    """Per block a: `G_a = X_a Z^T` (time x blocks*time), Z all blocks stacked, and the
    squared Frobenius norms of its (a, b) blocks = T^2 tr(C_a C_b)."""
    k, t, n = xs.shape
    z = xs.reshape(k * t, n)

    def per_block(x_a):
        g = jnp.matmul(x_a, z.T, precision=jax.lax.Precision.HIGHEST)
        return jnp.sum(g.reshape(t, k, t) ** 2, axis=(0, 2))

    return jax.lax.map(per_block, xs)  # (k, k)


class ParticipationRatio(eqx.Module):
    """Participation ratio of the activity covariance, divided by N.

    - `pr`: cross-block estimate `mean_{a!=b} tr C_a tr C_b / (N mean_{a!=b} tr C_a C_b)`.
    - `pr_naive`: same-block estimate `mean_a (tr C_a)^2 / (N mean_a tr C_a^2)`, biased low
      by about `N tau_c / T` relative (for comparison).
    - `trace`: mean over blocks of `tr C_a / N` (the mean variance per unit).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    pr: Float[Array, ""]
    pr_naive: Float[Array, ""]
    trace: Float[Array, ""]


def _cross_sums(xs):
    """Of centred blocks (k, t, n): `sum_{a!=b} tr C_a tr C_b`, `sum_{a!=b} tr C_a C_b`,
    the per-block traces `tr C_a` and the same-block `tr C_a^2`."""
    k, t, _ = xs.shape
    frob = _cross_grams(xs) / t**2  # tr(C_a C_b)
    traces = jnp.sum(xs**2, axis=(1, 2)) / t  # tr C_a
    off = ~jnp.eye(k, dtype=bool)
    cross_num = jnp.sum(jnp.where(off, traces[:, None] * traces[None, :], 0.0))
    cross_den = jnp.sum(jnp.where(off, frob, 0.0))
    return cross_num, cross_den, traces, jnp.diagonal(frob)


@eqx.filter_jit
def participation_ratio(
    xs: Float[ArrayLike, "*blocks time n"],
    *,
    n_blocks: int | None = None,
    mean: Float[ArrayLike, "*unit"] | None = None,
) -> ParticipationRatio:
    """PR / N of simulated activity with the unbiased cross-block estimator.

    **Arguments:**

    - `xs`: `(blocks, time, n)` independent trajectories (or time blocks), or one
      trajectory `(time, n)`, then cut into `n_blocks` consecutive blocks (default 4;
      neighbouring blocks are correlated only over a correlation time at their border).
    - `mean`: the known mean activity (e.g. 0 for odd phi and no input, where the
      stationary mean vanishes by symmetry); None subtracts the sample mean pooled over
      all blocks. A per-block mean must not be subtracted: it removes the variance of
      the slow collective modes and biases PR upward (by tens of percent for blocks of
      ~100 tau).
    """
    xs = _blocks(xs, n_blocks, mean)
    n = xs.shape[2]
    cross_num, cross_den, traces, same = _cross_sums(xs)
    return ParticipationRatio(
        pr=cross_num / (n * cross_den),
        pr_naive=jnp.sum(traces**2) / (n * jnp.sum(same)),
        trace=jnp.mean(traces) / n,
    )


@eqx.filter_jit
def _network_sums(xs, phi):
    """Cross-trajectory sums (numerator, denominator of PR) for x and phi(x), mean 0."""
    return _cross_sums(phi(xs)), _cross_sums(xs)


def covariance_spectrum(
    xs: Float[ArrayLike, "*blocks time n"], *, mean: Float[ArrayLike, "*unit"] | None = None
) -> Float[Array, " n"]:
    """Eigenvalues of the activity covariance pooled over all blocks, sorted in
    decreasing order (length n; from the samples' Gram matrix when there are fewer
    samples than units, the rest being zeros). `mean` as in
    [`mfrnn.participation_ratio`][]."""
    xs = jnp.asarray(xs)
    if xs.ndim not in (2, 3):
        raise ValueError(f"`xs` must have shape (time, n) or (blocks, time, n), got {xs.shape}.")
    xs = _blocks(xs[None] if xs.ndim == 2 else xs, None, mean)
    z = xs.reshape(-1, xs.shape[-1])
    samples, n = z.shape
    small = z @ z.T if samples < n else z.T @ z
    eig = jnp.linalg.eigvalsh(small / samples)[::-1]
    return jnp.concatenate([jnp.maximum(eig, 0.0), jnp.zeros(n - eig.shape[0], eig.dtype)])


class CouplingSpectra(eqx.Module):
    """Spectra of a sampled connectivity matrix J.

    - `eigenvalues`: complex, sorted by decreasing modulus (n).
    - `singular_values`: decreasing (n).
    - `pr_s`: `(sum s^2)^2 / (n sum s^4)`, comparable to `alpha PR_D / (1 + 2 alpha PR_D)`.
    - `gain`: `sqrt(sum s^2 / n) = sqrt(n mean J_ij^2)`, comparable to g_eff.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    eigenvalues: Complex[Array, " n"]
    singular_values: Float[Array, " n"]
    pr_s: Float[Array, ""]
    gain: Float[Array, ""]


def coupling_spectra(network: AbstractRateNetwork) -> CouplingSpectra:
    """Eigenvalues and singular values of a network's J (numpy, on the host: not for
    grid programs). A [`mfrnn.RandomModeNetwork`][] with M < N modes is never formed:
    the non-zero eigenvalues of `L D R^T` are those of `D R^T L` (M x M) and its singular
    values those of `R_L D R_R^T` from QR factorisations of L and R."""
    if not isinstance(network, AbstractRateNetwork):
        raise ValueError(f"`network` must be an AbstractRateNetwork, got {type(network).__name__}.")
    n = network.n
    if isinstance(network, RandomModeNetwork) and network.n_modes < n:
        left, d, right = (np.asarray(a, float) for a in (network.L, network.D, network.R))
        eig = np.linalg.eigvals((d[:, None] * right.T) @ left)
        q_l = np.linalg.qr(left, mode="r")
        q_r = np.linalg.qr(right, mode="r")
        sv = np.linalg.svd((q_l * d[None, :]) @ q_r.T, compute_uv=False)
        pad = n - eig.shape[0]
        eig = np.concatenate([eig, np.zeros(pad, complex)])
        sv = np.concatenate([sv, np.zeros(n - sv.shape[0])])
    else:
        J = np.asarray(network.dense_matrix(), float)
        eig = np.linalg.eigvals(J)
        sv = np.linalg.svd(J, compute_uv=False)
    eig = eig[np.argsort(-np.abs(eig), kind="stable")]
    s2 = sv**2
    return CouplingSpectra(
        eigenvalues=jnp.asarray(eig),
        singular_values=jnp.asarray(np.sort(sv)[::-1]),
        pr_s=jnp.asarray(np.sum(s2) ** 2 / (n * np.sum(s2**2))),
        gain=jnp.asarray(np.sqrt(np.sum(s2) / n)),
    )


class PCAutocorrelation(eqx.Module):
    """Population autocorrelation of the leading principal components:
    `tr C(tau) C(0) / tr C(0)^2` (each PC's autocorrelation weighted by its squared
    variance), the simulation side of the theory's normalised `Psi(tau, 0)`.

    - `lags`, `profile`: the normalised profile (cross-block estimate).
    - `tau_half`: first lag where it falls to 1/2 (linear interpolation; NaN if never).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    lags: Float[Array, " lag"]
    profile: Float[Array, " lag"]
    tau_half: Float[Array, ""]


def pc_autocorrelation(
    xs: Float[ArrayLike, "*blocks time n"],
    dt: float,
    *,
    max_lag: float,
    n_blocks: int | None = None,
    mean: Float[ArrayLike, "*unit"] | None = None,
) -> PCAutocorrelation:
    """`tr C_a(tau) C_b(0) / tr C_a(0) C_b(0)` averaged over pairs of different blocks a
    != b (samples spaced `dt`), for lags up to `max_lag`. `xs`, `n_blocks`, `mean` as in
    [`mfrnn.participation_ratio`][]."""
    if not dt > 0:
        raise ValueError(f"`dt` must be positive, got {dt}.")
    xs = _blocks(xs, n_blocks, mean)
    n_lag = int(round(max_lag / dt)) + 1
    if not 1 <= n_lag < xs.shape[1]:
        raise ValueError(
            f"`max_lag` must be in [0, {(xs.shape[1] - 1) * dt}) for blocks of "
            f"{xs.shape[1]} samples, got {max_lag}."
        )
    profile = _pc_profile(xs, n_lag) if xs.shape[1] <= xs.shape[2] else _pc_profile_cov(xs, n_lag)
    return PCAutocorrelation(
        lags=dt * jnp.arange(n_lag, dtype=profile.dtype),
        profile=profile,
        tau_half=half_time(profile, 0.5, dt),
    )


@eqx.filter_jit
def _pc_profile(xs, n_lag: int):
    k, t, n = xs.shape
    z = xs.reshape(k * t, n)

    def per_block(args):
        a, x_a = args
        g = jnp.matmul(x_a, z.T, precision=jax.lax.Precision.HIGHEST)  # (t, k t)
        own = jax.lax.dynamic_slice_in_dim(g, a * t, t, axis=1)
        h = g @ g.T - own @ own.T  # sum over b != a of G_ab G_ab^T
        # sum_t H[t + lag, t] for each lag.
        rows = jnp.arange(t)[:, None] + jnp.arange(n_lag)[None, :]
        picked = h[jnp.minimum(rows, t - 1), jnp.arange(t)[:, None]]
        return jnp.sum(jnp.where(rows < t, picked, 0.0), 0)

    sums = jnp.sum(jax.lax.map(per_block, (jnp.arange(k), xs)), 0)
    values = sums / (t - jnp.arange(n_lag))
    return values / values[0]


@eqx.filter_jit
def _pc_profile_cov(xs, n_lag: int):
    # More samples than units: lagged N x N covariances, O(lags T N^2) per block.
    k, t, n = xs.shape
    zero = jnp.einsum("ktn,ktm->knm", xs, xs) / t
    others = jnp.sum(zero, 0)[None] - zero  # sum over b != a of C_b(0)

    def per_lag(lag):
        shifted = jnp.roll(xs, -lag, axis=1)
        valid = (jnp.arange(t) < t - lag)[None, :, None]
        lagged = jnp.einsum("ktn,ktm->knm", shifted * valid, xs) / (t - lag)
        return jnp.sum(lagged * others)

    values = jax.lax.map(per_lag, jnp.arange(n_lag))
    return values / values[0]


class DimensionComparison(eqx.Module):
    """Theory and simulation of one random-mode ensemble point.

    - `theory`: its [`mfrnn.RandomModeSpectra`][] (`theory.dimension.pr_phi`, ...).
    - `pooled_pr_phi`, `pooled_pr_x`: the ensemble's PR / N, `sum (tr C)^2 / (N sum tr
      C^2)` with both sums over networks (cross-trajectory terms): the ratio of disorder
      averages that the theory computes. Compare these with the theory.
    - `pr_phi`, `pr_x`: cross-trajectory PR / N per network. They scatter from network
      to network (quenched disorder: at N = 4000 and g = 2 by about 13 % iid, 20 % at
      effective rank 1 and 30 % at 0.25, skewed upward), so their plain mean is biased
      above the ensemble's PR by about the squared relative scatter.
    - `delta0`: variance of x per network (about the known mean 0), the single-unit
      Delta0 (theory: `theory.dimension.delta0`, the SCS value at g_eff).
    - `pc_tau_half_phi`, `pc_tau_half_x`: half time of `tr C(tau) C(0) / tr C(0)^2` per
      network (theory: `theory.pc_tau_half_phi`, `theory.pc_tau_half_x`).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    theory: RandomModeSpectra
    pooled_pr_phi: Float[Array, ""]
    pooled_pr_x: Float[Array, ""]
    pr_phi: Float[Array, " networks"]
    pr_x: Float[Array, " networks"]
    delta0: Float[Array, " networks"]
    pc_tau_half_phi: Float[Array, " networks"]
    pc_tau_half_x: Float[Array, " networks"]


@eqx.filter_jit
def _run(network, x0s, ts, dt):
    def one(x0):
        return simulate(
            network, x0, ts, solver=dfx.Tsit5(), stepsize_controller=dfx.ConstantStepSize(),
            dt0=dt, max_steps=None,
        ).ys[1:]

    return jax.vmap(one)(x0s)


def compare_dimension(
    ensemble: RandomModeEnsemble,
    n: int,
    *,
    key: PRNGKeyArray,
    n_networks: int = 4,
    n_trajectories: int = 16,
    t_transient: float = 40.0,
    t_block: float = 50.0,
    dt: float = 0.25,
    save_dt: float = 0.5,
    max_lag: float = 20.0,
    dtype=jnp.float32,
) -> DimensionComparison:
    """Sample `n_networks` networks of `n` units from `ensemble`, integrate
    `n_trajectories` independent trajectories of each (an ODE solve: Tsit5 at fixed step
    `dt`, batched, not an Euler map, whose step shifts PR at O(dt)), and measure PR^phi,
    PR^x, Delta0 and the leading-PC timescale next to the theory
    ([`mfrnn.random_mode_spectra`][] of the same point).

    Each trajectory starts from `x = J phi(y)`, `y ~ N(0, Delta0)` (the theory's
    variance), runs `t_transient` (in units of tau) and is sampled every `save_dt` for
    `t_block`; PR uses the cross-trajectory estimator with the mean known to be 0 (odd
    phi). The slow collective modes need about 40 tau to build up from such a start
    (the ensemble's PR is still 25 % high at 20 tau, 13 % at 30 tau at g = 2), hence
    the default transient. Networks with collective modes at the edge of stability (near
    onset, e.g. a few percent of draws at g = 2, N = 4000, effective rank 0.25) take
    hundreds of tau instead, and they carry much of the ensemble's tr C^2
    (docs/theory/random-modes.md). The records may be short: the cross-trajectory
    estimator has no bias from the record length (only noise: records shorter than the
    leading PCs' timescale sample them a few times), and trajectories are integrated as
    one batch, so more of them cost little where J is dense.

    Compare `pooled_pr_phi` and `pooled_pr_x` with the theory: the PR of a single
    network depends on its draw of J (the few slowest collective modes carry much of
    tr C^2), and the theory is the ratio of averages over draws. `dtype` sets the
    simulation precision (float32: half the memory traffic); the theory runs in the
    ensemble's. A sampled J with `2 M >= N` modes is applied as a dense matrix (then
    cheaper than the factors).
    """
    if not isinstance(ensemble, RandomModeEnsemble):
        raise ValueError(
            f"`ensemble` must be a RandomModeEnsemble, got {type(ensemble).__name__}."
        )
    if n_networks < 1:
        raise ValueError(f"`n_networks` must be positive, got {n_networks}.")
    if n_trajectories < 2:
        raise ValueError(f"`n_trajectories` must be >= 2 (cross estimator), got {n_trajectories}.")
    if not (dt > 0 and save_dt > 0 and t_block > max_lag and t_transient >= 0):
        raise ValueError("Need `dt`, `save_dt` > 0, `t_transient` >= 0 and `t_block` > `max_lag`.")
    theory = random_mode_spectra(ensemble)
    delta0 = float(theory.dimension.delta0)
    if not np.isfinite(delta0) or delta0 <= 0:
        raise ValueError(
            "The ensemble is not chaotic (g_eff <= 1): there is no activity to compare."
        )
    tau = float(ensemble.tau)
    every = max(1, int(round(save_dt / dt)))
    n_save = int(round(t_block / (every * dt)))
    start = int(round(t_transient / dt))
    ts = tau * dt * jnp.concatenate([jnp.zeros(1), start + every * jnp.arange(n_save + 1.0)])
    step = tau * dt
    lag_dt = every * dt  # sampling interval in units of tau
    out = {name: [] for name in ("sums_phi", "sums_x", "delta0", "pc_phi", "pc_x")}
    for key_net in jr.split(key, n_networks):
        k_sample, k_x0 = jr.split(key_net)
        net = ensemble.sample(n, key=k_sample)
        net = jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, net)
        if isinstance(net, RandomModeNetwork) and 2 * net.n_modes >= n:
            net = DenseNetwork(net.dense_matrix(), net.phi, tau=net.tau)
        # x0 = J phi(y): starts with the J J^T structure of the collective covariance,
        # so less of the slow collective transient is left.
        ys = np.sqrt(delta0) * jr.normal(k_x0, (n_trajectories, n), dtype)
        x0s = jax.vmap(lambda y: net.recurrent(net.phi(y)))(ys)
        xs = _run(net, x0s, ts.astype(dtype), step)
        rates = net.phi(xs)
        sums_phi, sums_x = _network_sums(xs, net.phi)
        out["sums_phi"].append(jnp.stack(sums_phi[:2]))
        out["sums_x"].append(jnp.stack(sums_x[:2]))
        out["delta0"].append(jnp.mean(xs.astype(jnp.result_type(float)) ** 2))
        out["pc_phi"].append(pc_autocorrelation(rates, lag_dt, max_lag=max_lag, mean=0.0).tau_half)
        out["pc_x"].append(pc_autocorrelation(xs, lag_dt, max_lag=max_lag, mean=0.0).tau_half)
    arr = {k: jnp.stack([jnp.asarray(v, jnp.result_type(float)) for v in vals])
           for k, vals in out.items()}
    # (networks, 2): sum_{a!=b} tr C_a tr C_b and sum_{a!=b} tr C_a C_b per network.
    num_phi, den_phi = arr["sums_phi"].T
    num_x, den_x = arr["sums_x"].T
    return DimensionComparison(
        theory=theory,
        pooled_pr_phi=jnp.sum(num_phi) / (n * jnp.sum(den_phi)),
        pooled_pr_x=jnp.sum(num_x) / (n * jnp.sum(den_x)),
        pr_phi=num_phi / (n * den_phi),
        pr_x=num_x / (n * den_x),
        delta0=arr["delta0"],
        pc_tau_half_phi=arr["pc_phi"],
        pc_tau_half_x=arr["pc_x"],
    )
