"""The random-mode ensemble `J = L diag(D) R^T` (Clark, Marschall, van Meegen &
Litwin-Kumar 2025): M = alpha N modes, entries of L and R iid N(0, 1/N)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._custom_types import ArrayOrSequence
from .._misc import check_finite, check_positive, is_concrete
from .._networks import DenseNetwork, RandomModeNetwork
from .._nonlinearities import AbstractNonlinearity, Tanh
from .._options import ModeSpectrum, ModeSpectrumLike, option
from .base import AbstractEnsemble, check_phi, check_size, random_part


def _exp_residual(beta, pr_d):
    # tanh(beta) / beta - PR_D, with its beta -> 0 limit 1 - beta^2 / 3.
    small = beta < 1e-4
    safe = jnp.where(small, 1.0, beta)
    ratio = jnp.where(small, 1.0 - beta**2 / 3.0, jnp.tanh(safe) / safe)
    return ratio - pr_d


def exponential_beta(pr_d: ArrayLike) -> Array:
    """beta of `D_a ∝ exp(-beta a / M)` with `PR_D = tanh(beta) / beta` (0 when
    PR_D = 1). Bisection on [0, 1 / PR_D + 1], differentiated implicitly."""
    pr_d = jnp.asarray(pr_d, jnp.result_type(float))

    def single(p):
        p_safe = jnp.clip(p, 1e-300, 1.0)
        # tanh(b) / b = p has its root in (0, 1 / p]; flip: the residual decreases.
        sol = optx.root_find(
            _exp_residual,
            optx.Bisection(rtol=1e-15, atol=1e-15, flip=True),
            0.5 / p_safe,
            args=p_safe,
            options=dict(lower=0.0, upper=1.0 / p_safe + 1.0),
            max_steps=256,
            throw=False,
        )
        return jnp.where(p_safe >= 1.0, 0.0, sol.value)

    flat = pr_d.reshape(-1)
    return jax.vmap(single)(flat).reshape(pr_d.shape)


def power_law_exponent(pr_d: ArrayLike) -> Array:
    """p of `D(s) ∝ s^-p` (s = a / M in (0, 1]) with `PR_D = (1 - 4p) / (1 - 2p)^2`,
    p in [0, 1/4): the positive root of `4 PR_D p^2 + 4 (1 - PR_D) p - (1 - PR_D) = 0`."""
    p = jnp.asarray(pr_d, jnp.result_type(float))
    one_minus = 1.0 - p
    # (sqrt(1 - P) - (1 - P)) / (2 P), written without cancellation as P -> 1.
    root = jnp.sqrt(jnp.maximum(one_minus, 0.0))
    return root * (1.0 - root) / (2.0 * p)


def _continuum_moments(spectrum: ModeSpectrum, shape):
    """(<D^2>, <D^4>) of the unit-scale spectrum shape over s in (0, 1]."""
    if spectrum == "exponential":
        beta = jnp.maximum(shape, 1e-8)
        m2 = -jnp.expm1(-2 * beta) / (2 * beta)
        m4 = -jnp.expm1(-4 * beta) / (4 * beta)
        return jnp.where(shape > 0, m2, 1.0), jnp.where(shape > 0, m4, 1.0)
    if spectrum == "power_law":
        return 1.0 / (1.0 - 2 * shape), 1.0 / (1.0 - 4 * shape)
    return jnp.ones_like(shape), jnp.ones_like(shape)


class RandomModeEnsemble(AbstractEnsemble):
    """Random-mode connectivity `J = L diag(D) R^T = sum_a D_a l_a r_a^T`, with M = alpha N
    modes and the entries of L and R iid N(0, 1/N) (Clark, Marschall, van Meegen &
    Litwin-Kumar 2025).

    Parameterised as users think of it: by the effective gain `g` (`g^2 = alpha <D^2> =
    N Var J_ij`) and the effective rank `alpha PR_D`, `PR_D = <D^2>^2 / <D^4>`
    (`effective_rank=None` or inf: the iid limit, J_ij ~ N(0, g^2 / N)). The spectrum
    shape, a [`mfrnn.ModeSpectrum`][], only matters for sampling; the theory depends on
    (g, effective rank):

    - `ModeSpectrum.exponential` (default): `D_a ∝ exp(-beta a / M)`,
      `PR_D = tanh(beta) / beta`; alpha = 1 below effective rank 1, equal D_a and
      alpha = effective rank above (the paper's simulations).
    - `ModeSpectrum.flat`: equal D_a, alpha = effective rank.
    - `ModeSpectrum.power_law`: `D_a ∝ (a / M)^-p`, `PR_D = (1 - 4p) / (1 - 2p)^2`
      (p < 1/4), alpha as for the exponential.
    - `ModeSpectrum.low_rank_cut`: alpha = 1, D_a constant for `a / N <= PR_D` and 0
      beyond (the zero modes are dropped when sampling).
    - `ModeSpectrum.array`, any array of D_a: [`mfrnn.RandomModeEnsemble.from_spectrum`][],
      optionally with input/output overlaps rho_a.

    Fields are arrays (vmap over grids, differentiate); `alpha` may be given to
    override the default (then `PR_D = effective_rank / alpha <= 1`).

    ```python
    ens = mfrnn.RandomModeEnsemble(g=2.0, effective_rank=0.5)
    net = ens.sample(4000, key=jr.key(0))     # a RandomModeNetwork: J kept factored
    ```

    ??? cite "References"

        ```bibtex
        @article{clark2025connectivity,
          title={Connectivity structure and dynamics of nonlinear recurrent neural networks},
          author={Clark, David G. and Marschall, Owen and van Meegen, Alexander and
                  Litwin-Kumar, Ashok},
          journal={Physical Review X}, volume={15}, pages={041019}, year={2025}
        }
        ```
    """

    g: Float[Array, "..."]
    effective_rank: Float[Array, "..."]
    alpha: Float[Array, "..."]
    values: Float[Array, " modes"] | None
    overlaps: Float[Array, " modes"] | None
    phi: AbstractNonlinearity
    tau: Float[Array, ""]
    spectrum: ModeSpectrum = eqx.field(static=True)

    def __init__(
        self,
        g: ArrayLike,
        effective_rank: ArrayLike | None = None,
        *,
        # Any string, checked below: an unknown name is a ValueError naming `spectrum`
        # (tests/test_random_mode.py) rather than a failed type check.
        spectrum: ModeSpectrum | str = ModeSpectrum.exponential,
        alpha: ArrayLike | None = None,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
        values: ArrayLike | None = None,
        overlaps: ArrayLike | None = None,
    ):
        spectrum = option(ModeSpectrum, spectrum, "spectrum")
        if spectrum == "array" and values is None:
            raise ValueError(
                "`spectrum=ModeSpectrum.array` needs `values`: use "
                "RandomModeEnsemble.from_spectrum(D)."
            )
        if spectrum != "array" and (values is not None or overlaps is not None):
            raise ValueError(
                "`values` and `overlaps` belong to an array spectrum: use "
                "RandomModeEnsemble.from_spectrum(D, overlaps=...)."
            )
        dtype = jnp.result_type(float)
        self.g = jnp.asarray(g, dtype)
        rank = jnp.inf if effective_rank is None else effective_rank
        self.effective_rank = jnp.asarray(rank, dtype)
        _check_rank(self.effective_rank)
        if alpha is None:
            if spectrum == "low_rank_cut":
                alpha = jnp.ones_like(self.effective_rank)
            elif spectrum == "flat":
                alpha = self.effective_rank
            else:
                alpha = jnp.maximum(self.effective_rank, 1.0)
        self.alpha = jnp.asarray(alpha, dtype)
        self.values = None if values is None else jnp.asarray(values, dtype)
        self.overlaps = None if overlaps is None else jnp.asarray(overlaps, dtype)
        self.phi = phi
        self.tau = jnp.asarray(tau, dtype)
        self.spectrum = spectrum

    def __check_init__(self):
        check_finite("g", self.g)
        if is_concrete(self.g) and np.any(np.asarray(self.g) < 0):
            raise ValueError(f"`g` must be non-negative, got {np.asarray(self.g)}.")
        _check_rank(self.effective_rank)
        check_positive("alpha", jnp.where(jnp.isinf(self.effective_rank), 1.0, self.alpha))
        check_positive("tau", self.tau)
        check_phi(self.phi)
        if all(is_concrete(x) for x in (self.effective_rank, self.alpha)):
            rank, alpha = np.asarray(self.effective_rank), np.asarray(self.alpha)
            finite = np.isfinite(rank)
            pr_d = np.where(finite, rank / np.where(finite, alpha, 1.0), 1.0)
            if np.any(pr_d > 1 + 1e-9):
                raise ValueError(
                    "`effective_rank` / `alpha` = PR_D must be <= 1 (PR_D = <D^2>^2 / "
                    f"<D^4>); got effective_rank {rank} with alpha {alpha}."
                )
            if self.spectrum == "flat" and np.any(finite & ~np.isclose(pr_d, 1.0)):
                raise ValueError(
                    "A flat spectrum has PR_D = 1: `alpha` must equal `effective_rank`."
                )
            if self.spectrum == "low_rank_cut" and np.any(finite & ~np.isclose(alpha, 1.0)):
                raise ValueError("The low-rank cut has `alpha` = 1 (PR_D = effective rank <= 1).")
        if self.values is not None:
            _check_values(self.values, self.overlaps)

    @classmethod
    def from_spectrum(
        cls,
        values: ArrayOrSequence,
        *,
        alpha: ArrayLike = 1.0,
        overlaps: ArrayOrSequence | None = None,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ) -> "RandomModeEnsemble":
        """An ensemble with the given mode strengths D_a (one array; resampled by quantile
        to M = alpha N modes when sampling) and optional input/output overlaps rho_a
        (`Cov(l_ia, r_ia) = rho_a / N`, Sec. VII of Clark et al. 2025), which must
        satisfy `<D rho> = 0` and |rho_a| <= 1.

        ```python
        ens = mfrnn.RandomModeEnsemble.from_spectrum(jnp.exp(-3 * jnp.linspace(0, 1, 500)))
        ```
        """
        d = jnp.asarray(values, jnp.result_type(float))
        rho = None if overlaps is None else jnp.asarray(overlaps, d.dtype)
        _check_values(d, rho)
        m2, m4 = jnp.mean(d**2), jnp.mean(d**4)
        alpha = jnp.asarray(alpha, d.dtype)
        return cls(
            jnp.sqrt(alpha * m2), alpha * m2**2 / m4, spectrum=ModeSpectrum.array, alpha=alpha,
            phi=phi, tau=tau, values=d, overlaps=rho,
        )

    @classmethod
    def from_modes(
        cls,
        alpha: ArrayLike,
        shape: ArrayLike,
        scale: ArrayLike,
        *,
        spectrum: ModeSpectrumLike = ModeSpectrum.exponential,
        phi: AbstractNonlinearity = Tanh(),
        tau: ArrayLike = 1.0,
    ) -> "RandomModeEnsemble":
        """The inverse of [`mfrnn.RandomModeEnsemble.mode_parameters`][]: from alpha, the
        shape parameter (exponential beta or power-law p) and the scale of `D(s) = scale
        exp(-beta s)` / `scale s^-p`, s = a / M in (0, 1]."""
        spectrum = option(ModeSpectrum, spectrum, "spectrum")
        if spectrum not in (ModeSpectrum.exponential, ModeSpectrum.power_law, ModeSpectrum.flat):
            raise ValueError(
                "`spectrum` must be ModeSpectrum.exponential, .power_law or .flat, got "
                f"{spectrum!r}."
            )
        dtype = jnp.result_type(float)
        alpha, shape, scale = (jnp.asarray(x, dtype) for x in (alpha, shape, scale))
        m2, m4 = _continuum_moments(spectrum, shape)
        return cls(
            scale * jnp.sqrt(alpha * m2), alpha * m2**2 / m4, spectrum=spectrum, alpha=alpha,
            phi=phi, tau=tau,
        )

    @property
    def pr_d(self) -> Array:
        """`PR_D = <D^2>^2 / <D^4>` (1 in the iid limit)."""
        finite = jnp.isfinite(self.effective_rank)
        return jnp.where(finite, self.effective_rank / jnp.where(finite, self.alpha, 1.0), 1.0)

    @property
    def kappa(self) -> Array:
        """`1 / (alpha PR_D)`, 0 in the iid limit: the only way the structure enters the
        dimension (Clark et al. 2025, Eq. 38)."""
        return 1.0 / self.effective_rank

    def mode_parameters(self) -> tuple[Array, Array, Array]:
        """`(alpha, shape, scale)` of the spectrum: shape is beta (exponential), p
        (power law) or 0 (flat, low-rank cut, array); `D(s) = scale f(s)`, s = a / M."""
        if self.spectrum == "exponential":
            shape = exponential_beta(self.pr_d)
        elif self.spectrum == "power_law":
            shape = power_law_exponent(self.pr_d)
        else:
            shape = jnp.zeros_like(self.pr_d)
        kind = self.spectrum if self.spectrum in ("exponential", "power_law") else "flat"
        m2, _ = _continuum_moments(kind, shape)
        if self.spectrum == "low_rank_cut":
            m2 = self.pr_d  # a fraction PR_D of the N modes is non-zero
        scale = self.g / jnp.sqrt(self.alpha * m2)
        return self.alpha, shape, scale

    def n_modes(self, n: int) -> int:
        """The number M of (non-zero) modes a network of `n` units gets."""
        check_size(n)
        rank, alpha = (np.asarray(x) for x in (self.effective_rank, self.alpha))
        if rank.ndim or alpha.ndim:
            raise ValueError("`sample` needs a scalar ensemble; vmap over a batched one.")
        if not np.isfinite(rank):
            return 0
        fraction = rank if self.spectrum == "low_rank_cut" else alpha
        m = int(round(float(fraction) * n))
        if m < 1:
            name = "effective_rank" if self.spectrum == "low_rank_cut" else "alpha"
            raise ValueError(
                f"`{name}` = {float(fraction):g} gives M = {m} < 1 modes for n = {n}; "
                "increase it or n."
            )
        return m

    def mode_strengths(self, m: int) -> Float[Array, " m"]:
        """D_a for M = `m` modes (midpoints s = (a - 1/2) / M), normalised so that
        `(M / N) <D^2> = g^2` holds with N = M / alpha exactly (low-rank cut: N =
        M / effective rank)."""
        s = (jnp.arange(m, dtype=self.g.dtype) + 0.5) / m
        if self.spectrum in ("exponential", "power_law"):
            # The shape parameter is solved on the M drawn modes themselves, so the sampled
            # spectrum has the requested PR_D (the midpoint rule converges like
            # M^-(1 - 4p) for a power law, whose <D^4> has an integrable singularity).
            shape = _discrete_shape(self.spectrum, s, self.pr_d)
            d = jnp.exp(-shape * s) if self.spectrum == "exponential" else s ** (-shape)
        elif self.spectrum == "array":
            assert self.values is not None
            d = self.values[_quantile_index(self.values.shape[0], m)]
        else:
            d = jnp.ones_like(s)
        per_unit = self.alpha if self.spectrum != "low_rank_cut" else self.effective_rank
        return d * self.g / jnp.sqrt(per_unit * jnp.mean(d**2))

    def sample(self, n: int, *, key: PRNGKeyArray) -> RandomModeNetwork | DenseNetwork:
        """A [`mfrnn.RandomModeNetwork`][] of `n` units with J kept factored (M =
        round(alpha n) modes); in the iid limit (infinite effective rank) a
        [`mfrnn.DenseNetwork`][] with J_ij ~ N(0, g^2 / n)."""
        m = self.n_modes(n)
        dtype = self.g.dtype
        if m == 0:
            return DenseNetwork(random_part(self.g, n, key, dtype), self.phi, tau=self.tau)
        k_l, k_r = jr.split(key)
        d = self.mode_strengths(m)
        left = jr.normal(k_l, (n, m), dtype)
        right = jr.normal(k_r, (n, m), dtype)
        if self.overlaps is not None:
            rho = self.overlaps[_quantile_index(self.overlaps.shape[0], m)]
            right = rho[None, :] * left + jnp.sqrt(1.0 - rho**2)[None, :] * right
        scale = 1.0 / np.sqrt(n)
        return RandomModeNetwork(left * scale, d, right * scale, self.phi, tau=self.tau)


def _discrete_residual(shape, args):
    kind, s, pr_d = args
    d = jnp.exp(-shape * s) if kind == "exponential" else s ** (-shape)
    return jnp.mean(d**2) ** 2 / jnp.mean(d**4) - pr_d


def _discrete_shape(kind: str, s, pr_d):
    """Shape parameter (beta or p) whose M-mode spectrum has participation ratio pr_d
    (decreasing in the shape; bisection, differentiated implicitly)."""
    upper = jnp.where(kind == "exponential", 1.0 / pr_d + 5.0, 10.0)
    sol = optx.root_find(
        lambda x, a: _discrete_residual(x, (kind, *a)),
        optx.Bisection(rtol=1e-14, atol=1e-14, flip=True),
        0.5 * upper,
        args=(s, pr_d),
        options=dict(lower=0.0, upper=upper),
        max_steps=256,
        throw=False,
    )
    return jnp.where(pr_d >= 1.0, 0.0, sol.value)


def _quantile_index(k: int, m: int) -> np.ndarray:
    """Index into K given values for each of M modes: same quantile (a - 1/2) / M."""
    return np.minimum(np.floor((np.arange(m) + 0.5) * k / m).astype(int), k - 1)


def _check_rank(rank) -> None:
    if is_concrete(rank):
        r = np.asarray(rank)
        if np.any(np.isnan(r)) or np.any(r <= 0):
            raise ValueError(
                f"`effective_rank` must be positive (None or inf for iid), got {r}."
            )


def _check_values(values, overlaps) -> None:
    if not is_concrete(values):
        return
    d = np.asarray(values, float)
    if d.ndim != 1 or d.size < 1:
        raise ValueError(f"The spectrum `values` must be a non-empty 1-d array, got {d.shape}.")
    if not np.all(np.isfinite(d)):
        raise ValueError("The spectrum `values` must be finite.")
    if not np.any(d != 0):
        raise ValueError("The spectrum `values` must have a non-zero mode.")
    if overlaps is None or not is_concrete(overlaps):
        return
    rho = np.asarray(overlaps, float)
    if rho.shape != d.shape:
        raise ValueError(
            f"`overlaps` must have the shape of the spectrum {d.shape}, got {rho.shape}."
        )
    if not np.all(np.isfinite(rho)) or np.any(np.abs(rho) > 1):
        raise ValueError("`overlaps` must be finite with |rho_a| <= 1 (a correlation).")
    d_rho = float(np.mean(d * rho))
    scale = float(np.sqrt(np.mean(d**2) * np.mean(rho**2))) or 1.0
    if abs(d_rho) > 1e-8 * scale:
        raise ValueError(
            f"`overlaps` must satisfy <D rho> = 0 (Clark et al. 2025, Sec. VII: otherwise the "
            f"mean coupling sum_a D_a rho_a / N adds an O(1) self-coupling); got <D rho> = "
            f"{d_rho:.3g}."
        )
