"""Dimension of activity and collective spectra of random-mode networks (Clark,
Marschall, van Meegen & Litwin-Kumar 2025, Eqs. 11-13, 37-38, I22; the iid case is
Clark, Abbott & Litwin-Kumar 2023).

Single-unit statistics are those of the SCS network at g = g_eff (structure is invisible
there), so `solve_dmft` and the autocorrelation profile give `C^x(tau) = Delta(tau)`.
With `X = (1 + i w1)(1 + i w2)`, `nu = (g <phi'>)^2`, `C^phi(w) = (1 + w^2) C^x(w) / g^2`
and `kappa = 1 / (alpha PR_D)`, the participation ratios are `PR^a = C^a(0)^2 / D^a`,

    D^phi = int int C^phi_12 (|X|^2 + kappa nu^2) / |X - nu|^2,
    D^x   = int int C^x_12 ((2 + kappa) |X|^2 - nu^2) / |X - nu|^2   (dw1 dw2 / (2 pi)^2).

How they are evaluated: for fixed w1, `X - nu = (1 + i w1)(s1 + i w2)` with `s1 = 1 -
z1`, `z1 = nu / (1 + i w1)`, `Re s1 >= 1 - nu > 0`, so the w2 integral is done by
residues: `int dw2 / 2pi C(w2) / (s + i w2) = C^(s)`, the one-sided Laplace transform of
C(tau). With `|z1|^2 / Re s1 = nu^2 / (1 + w1^2 - nu)` (a Lorentzian of width the tail
rate k, `k^2 = 1 - nu`), what is left is one integral over w1:

    int dw2/2pi C(w2) |X|^2 / |X - nu|^2 = C(0) + 2 Re[z1 C^(s1)] + nu^2 Re C^(s1) / (1 + w1^2 - nu)

(and `nu^2 / |X - nu|^2` gives the last term alone). Only the w1 integral needs the power
spectrum `C(w1)`; `C^(s1)` is needed where `|Im s1| <= nu / 2`, so it does not oscillate.
Both come from Delta(tau) on a uniform grid up to the start of the closed-form tail,
`tau_c`, with the tail summed in closed form (geometric series): the trapezoid rule is
spectrally accurate for the cosine transform of the even, analytic Delta (aliasing only),
and Euler-Maclaurin corrections from the known derivatives of Delta at 0 fix the
one-sided Laplace sum. The w1 axis is mapped by `w = c sinh(v)` (c ~ k / 4: resolves the
width-k features near onset and the fast decay of C(w)). Convergence is checked against
the same sums with half the nodes on both axes.
"""

import functools as ft

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._chebyshev import chebyshev_nodes, interpolate
from .._ensembles import GaussianEnsemble, RandomModeEnsemble
from .._misc import is_concrete
from .._nonlinearities import AbstractNonlinearity
from .._options import Activity, ActivityLike, option
from .._solution import CHAOTIC, raise_if_failed, RESULTS, summary_repr, vmap_batch
from .autocorrelation import dmft_autocorrelation, TAIL_START
from .dmft import solve_dmft


# Relative change of PR between the full and the half resolution above which a point
# is flagged as not converged.
DIMENSION_RTOL = 1e-6
_L = float(-np.log(TAIL_START))  # the profile's y = q exp(-_L (1 - u)^2)
_TAIL_TERMS = 8  # series of the closed-form tail in rho_c e; rho_c ~ 1e-4 Delta0 / k^2


class DimensionSolution(eqx.Module):
    """Activity dimension of a random-mode ensemble in the limit N -> inf.

    - `pr_phi`, `pr_x`: participation ratios `(tr C)^2 / (N tr C^2)` of the rates
      phi(x) and of x, already divided by N (Clark et al. 2025, Eq. 38 and I22).
    - `delta0`: single-unit variance Delta0 (the SCS value at g = g_eff);
      `phi_variance`: `<phi^2>`.
    - `g`, `effective_rank`, `kappa` (= 1 / effective rank, 0 for iid).
    - `pr_s`: participation ratio of the squared singular values of J over N,
      `alpha PR_D / (1 + 2 alpha PR_D)` (Eq. 13; 1/2 for iid).
    - `error`: relative change of PR between full and half quadrature resolution.
    - `chaotic`: False below the chaos onset, where x = 0 and PR is undefined (NaN).
    - `result`: [`mfrnn.RESULTS`][] code per point.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    pr_phi: Float[Array, "..."]
    pr_x: Float[Array, "..."]
    delta0: Float[Array, "..."]
    phi_variance: Float[Array, "..."]
    g: Float[Array, "..."]
    effective_rank: Float[Array, "..."]
    kappa: Float[Array, "..."]
    pr_s: Float[Array, "..."]
    error: Float[Array, "..."]
    chaotic: Bool[Array, "..."]
    result: RESULTS


class RandomModeSpectra(eqx.Module):
    """Collective spectra of a random-mode ensemble (N -> inf), time in units of tau.

    Methods (vectorised over the ensemble's batch and over their frequency / lag
    arguments, which get appended to the batch shape):

    - `power_spectrum(omega, which="x")`: `C^x(w)` or (`which="phi"`) `C^phi(w)`,
      Fourier convention `C(w) = int dtau e^{-i w tau} C(tau)`.
    - `psi(omega1, omega2, which="phi")`: the two-frequency function Psi^a(w1, w2) whose
      double integral over `dw1 dw2 / (2 pi)^2` is `N tr C^2` per N^2 (Eq. 38).
    - `psi_profile(lags, which="phi")`: `Psi(tau, 0) / Psi(0, 0)` = `tr C(tau) C(0) /
      tr C(0)^2`, the autocorrelation of the leading principal components weighted by
      their squared variances.

    Fields: `pc_tau_half_phi`, `pc_tau_half_x`: lag where `psi_profile` falls to 1/2;
    `pr_s` (Eq. 13); `dimension`: the [`mfrnn.DimensionSolution`][]; the rest is the
    node data the methods use; `result` as in the dimension.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    dimension: DimensionSolution
    pc_tau_half_phi: Float[Array, "..."]
    pc_tau_half_x: Float[Array, "..."]
    pr_s: Float[Array, "..."]
    nu: Float[Array, "..."]
    step: Float[Array, "..."]
    profile: Float[Array, "... grid"]
    tail: Float[Array, "... 3"]
    omega: Float[Array, "... freq"]
    weights: Float[Array, "... freq"]
    cx: Float[Array, "... freq"]
    part_a_x: Float[Array, "... freq"]
    part_b_x: Float[Array, "... freq"]
    part_a_phi: Float[Array, "... freq"]
    part_b_phi: Float[Array, "... freq"]
    result: RESULTS

    def _map(self, fn, *args):
        return vmap_batch(fn, jnp.ndim(self.nu))(self, *args)

    def power_spectrum(self, omega: ArrayLike, which: ActivityLike = Activity.x) -> Array:
        which = _check_which(which)
        omega = jnp.asarray(omega, self.nu.dtype)

        def single(s):
            d = s.dimension
            cx = jnp.vectorize(lambda w: _cosine(s.profile, s.step, s.tail, w))(omega)
            cx = jnp.where(d.chaotic, cx, jnp.nan)
            return cx if which == "x" else (1.0 + omega**2) * cx / d.g**2

        return self._map(single)

    def psi(
        self, omega1: ArrayLike, omega2: ArrayLike, which: ActivityLike = Activity.phi
    ) -> Array:
        which = _check_which(which)
        w1, w2 = jnp.broadcast_arrays(*(jnp.asarray(w, self.nu.dtype) for w in (omega1, omega2)))

        def single(s):
            d = s.dimension
            spec = jnp.vectorize(lambda w: _cosine(s.profile, s.step, s.tail, w))
            c1, c2 = spec(w1), spec(w2)
            if which == "phi":
                c1, c2 = (1 + w1**2) * c1 / d.g**2, (1 + w2**2) * c2 / d.g**2
            X = (1 + 1j * w1) * (1 + 1j * w2)
            den = jnp.abs(X - s.nu) ** 2
            if which == "phi":
                ratio = (jnp.abs(X) ** 2 + d.kappa * s.nu**2) / den
            else:
                ratio = ((2 + d.kappa) * jnp.abs(X) ** 2 - s.nu**2) / den
            return jnp.where(d.chaotic, c1 * c2 * ratio, jnp.nan)

        return self._map(single)

    def psi_profile(self, lags: ArrayLike, which: ActivityLike = Activity.phi) -> Array:
        which = _check_which(which)
        lags = jnp.asarray(lags, self.nu.dtype)

        def single(s):
            m = _marginal(s, which)
            value = jnp.vectorize(lambda t: jnp.sum(m * jnp.cos(s.omega * t)))(lags)
            return jnp.where(s.dimension.chaotic, value / jnp.sum(m), jnp.nan)

        return self._map(single)


def _check_which(which) -> Activity:
    return option(Activity, which, "which")


def _marginal(s: RandomModeSpectra, which: ActivityLike):
    """Weights times `int dw2 / 2pi Psi(w1, w2)` at the w1 nodes."""
    kappa = s.dimension.kappa
    if which == "phi":
        cphi = (1 + s.omega**2) * s.cx / s.dimension.g**2
        return s.weights * cphi * (s.part_a_phi + (1 + kappa) * s.part_b_phi)
    return s.weights * s.cx * ((2 + kappa) * s.part_a_x + (1 + kappa) * s.part_b_x)


@ft.cache
def _differentiation_matrix(order: int) -> np.ndarray:
    """d/du on the Chebyshev-Lobatto nodes of [0, 1] (Trefethen, Spectral Methods)."""
    x = chebyshev_nodes(order)
    c = np.ones(order)
    c[0] = c[-1] = 2.0
    c = c * (-1.0) ** np.arange(order)
    diff = x[:, None] - x[None, :]
    matrix = np.outer(c, 1.0 / c) / (diff + np.eye(order))
    return matrix - np.diag(matrix.sum(axis=1))


def _invert_profile(tau_nodes, taus):
    """u with tau(u) = taus on the Chebyshev interpolant of the decreasing tau(u): Newton
    from the piecewise-linear inverse, not differentiated; one last Newton step carries
    the derivative (implicit function theorem)."""
    order = tau_nodes.shape[0]
    u_nodes = jnp.asarray(chebyshev_nodes(order), tau_nodes.dtype)
    dtau_nodes = jnp.asarray(_differentiation_matrix(order), tau_nodes.dtype) @ tau_nodes
    fixed = jax.lax.stop_gradient((tau_nodes, dtau_nodes, taus))

    def newton(_, u):
        t_nodes, dt_nodes, t = fixed
        step = (interpolate(t_nodes, u) - t) / interpolate(dt_nodes, u)
        return jnp.clip(u - step, 0.0, 1.0)

    u0 = jnp.interp(fixed[2], fixed[0][::-1], u_nodes[::-1])
    u = jax.lax.fori_loop(0, 10, newton, u0)
    u = jax.lax.stop_gradient(u)
    return u - (interpolate(tau_nodes, u) - taus) / jax.lax.stop_gradient(
        interpolate(dtau_nodes, u)
    )


def _tail_terms(tail, step):
    """Closed-form tail `y = a sum_n (n+1) rho^n e^{-(n+1) k t}`: coefficients and the
    per-step ratios on the grid of spacing `step`."""
    a, rho, k = tail[0], tail[1], tail[2]
    n = jnp.arange(_TAIL_TERMS, dtype=a.dtype)
    return a * (n + 1) * rho**n, jnp.exp(-(n + 1) * k * step)


def _cosine(profile, step, tail, w):
    """`C(w) = int dtau e^{-i w tau} Delta(tau)` by the trapezoid rule on the grid
    (profile[j] = Delta(j step), j < J) continued by the closed-form tail."""
    n_grid = profile.shape[0]
    taus = step * jnp.arange(n_grid, dtype=profile.dtype)
    body = 2.0 * jnp.sum(profile * jnp.cos(w * taus)) - profile[0]
    coeff, ratio = _tail_terms(tail, step)
    phase = jnp.exp(1j * w * step * n_grid)
    geometric = phase / (1.0 - ratio * jnp.exp(1j * w * step))
    return step * (body + 2.0 * jnp.sum(coeff * jnp.real(geometric)))


def _laplace(profile, step, tail, s, derivatives):
    """`int_0^inf Delta(tau) e^{-s tau} dtau` for complex s (Re s > 0): the trapezoid sum
    on the grid and the tail, plus the Euler-Maclaurin corrections of the endpoint 0
    from Delta(0), Delta''(0), Delta''''(0) (odd derivatives vanish)."""
    n_grid = profile.shape[0]
    taus = step * jnp.arange(n_grid, dtype=profile.dtype)
    body = jnp.sum(profile * jnp.exp(-s * taus)) - 0.5 * profile[0]
    coeff, ratio = _tail_terms(tail, step)
    tail_sum = jnp.sum(coeff * jnp.exp(-s * step * n_grid) / (1.0 - ratio * jnp.exp(-s * step)))
    d0, d2, d4 = derivatives
    f1 = -s * d0
    f3 = -(s**3) * d0 - 3 * s * d2
    f5 = -(s**5) * d0 - 10 * s**3 * d2 - 5 * s * d4
    corrections = step**2 / 12 * f1 - step**4 / 720 * f3 + step**6 / 30240 * f5
    return step * (body + tail_sum) + corrections


class _GPart(eqx.Module):
    """Everything that depends on g (and phi) only, for one g."""

    delta0: Array
    phi2: Array
    nu: Array
    chaotic: Array
    ok: Array
    result: RESULTS
    step: Array
    profile: Array
    tail: Array
    tau_c: Array
    omega: Array
    weights: Array
    cx: Array
    part_a_x: Array
    part_b_x: Array
    part_a_phi: Array
    part_b_phi: Array
    integrals: Array  # (resolution: full, half; P_x, Q_x, P_phi, Q_phi)


def _outer_parts(profile, step, tail, omega, g, d0, phi2, nu, derivatives):
    """C^x at the w1 nodes and the two parts of `int dw2 / 2pi Psi(w1, w2) / C(w1)`:
    `a = C(0) + 2 Re[z1 C^(s1)]`, `b = nu^2 Re C^(s1) / (1 + w1^2 - nu)`, for x and phi."""
    cx = jax.vmap(lambda w: _cosine(profile, step, tail, w))(omega)
    z = nu / (1 + 1j * omega)
    s = 1 - z
    lx = jax.vmap(lambda s_: _laplace(profile, step, tail, s_, derivatives))(s)
    lphi = ((1 - s**2) * lx + s * d0) / g**2
    lorentz = nu**2 / (1 + omega**2 - nu)
    a_x = d0 + 2 * jnp.real(z * lx)
    b_x = lorentz * jnp.real(lx)
    a_phi = phi2 + 2 * jnp.real(z * lphi)
    b_phi = lorentz * jnp.real(lphi)
    return cx, a_x, b_x, a_phi, b_phi


def _integrals(weights, omega, g, cx, a_x, b_x, a_phi, b_phi):
    """(A_x, B_x, A_phi, B_phi): `D^phi = A_phi + (1 + kappa) B_phi`,
    `D^x = (2 + kappa) A_x + (1 + kappa) B_x`."""
    cphi = (1 + omega**2) * cx / g**2
    return jnp.stack([
        jnp.sum(weights * cx * a_x), jnp.sum(weights * cx * b_x),
        jnp.sum(weights * cphi * a_phi), jnp.sum(weights * cphi * b_phi),
    ])


def _g_part(g, d0, chaotic, ok, result, tau_nodes, y_nodes, k, beta, phi, n_grid, n_freq) -> _GPart:
    dtype = d0.dtype
    order = tau_nodes.shape[0]
    u_nodes = jnp.asarray(chebyshev_nodes(order), dtype)
    # Harmless stand-ins off the chaotic regime (results there are masked).
    safe = chaotic & ok
    g = jnp.where(safe, g, 2.0)
    d0 = jnp.where(safe, d0, 1.0)
    tau_nodes = jnp.where(safe, tau_nodes, 10.0 * (1.0 - u_nodes) ** 2)
    y_nodes = jnp.where(safe, y_nodes, jnp.exp(-_L * (1.0 - u_nodes) ** 2))
    k = jnp.where(safe, k, 1.0)
    beta = jnp.where(safe, beta, 0.0)

    phi2 = phi.gaussian_second_moment(0.0, d0)
    dphi = phi.gaussian_mean(0.0, d0, "dphi")
    dphi2 = phi.gaussian_second_moment(0.0, d0, "dphi")
    nu = g**2 * dphi**2
    d2 = d0 - g**2 * phi2  # Delta''(0) = -V'(Delta0)
    derivatives = (d0, d2, d2 * (1 - g**2 * dphi2))  # Delta(0), Delta''(0), Delta''''(0)

    tau_c = tau_nodes[0]
    step = tau_c / n_grid
    taus = step * jnp.arange(n_grid, dtype=dtype)
    u = _invert_profile(tau_nodes, taus)
    q = y_nodes[-1]
    profile = q * jnp.exp(-_L * (1.0 - u) ** 2)  # Delta_inf = 0 for odd phi
    y_c = y_nodes[0]
    r_c = jnp.sqrt(k**2 + beta * y_c)
    rho = beta * y_c / (r_c + k) ** 2
    tail = jnp.stack([4 * k**2 * y_c / (r_c + k) ** 2, rho, k])

    # w1 nodes: w = c sinh(v), v in [0, V], trapezoid in v (weights cover both signs of
    # w1 and the 1 / 2pi); the top stays at half the coarse rule's Nyquist frequency.
    c = jax.lax.stop_gradient(0.25 * k)
    w_max = jax.lax.stop_gradient(np.pi * n_grid / (4.0 * tau_c))
    v = jnp.linspace(0.0, 1.0, n_freq, dtype=dtype) * jnp.arcsinh(w_max / c)
    omega = c * jnp.sinh(v)
    dv = v[1] - v[0]
    ends = jnp.ones(n_freq, dtype).at[0].set(0.5).at[-1].set(0.5)
    weights = ends * c * jnp.cosh(v) * dv / np.pi

    parts = _outer_parts(profile, step, tail, omega, g, d0, phi2, nu, derivatives)
    full = _integrals(weights, omega, g, *parts)
    # Half resolution on both axes: every other grid point and w1 node.
    half_w = 2 * weights[::2]
    coarse = _outer_parts(profile[::2], 2 * step, tail, omega[::2], g, d0, phi2, nu, derivatives)
    half = _integrals(half_w, omega[::2], g, *coarse)
    return _GPart(
        delta0=d0, phi2=phi2, nu=nu, chaotic=chaotic, ok=ok,
        result=RESULTS.where(
            ok, RESULTS.successful,
            RESULTS.where(result == RESULTS.successful, RESULTS.chaotic_not_converged, result),
        ),
        step=step, profile=profile,
        tail=tail, tau_c=tau_c, omega=omega, weights=weights, cx=parts[0],
        part_a_x=parts[1], part_b_x=parts[2], part_a_phi=parts[3], part_b_phi=parts[4],
        integrals=jnp.stack([full, half]),
    )


def _participation(integrals, d0, phi2, kappa):
    a_x, b_x, a_phi, b_phi = (integrals[..., i] for i in range(4))
    pr_phi = phi2**2 / (a_phi + (1 + kappa) * b_phi)
    pr_x = d0**2 / ((2 + kappa) * a_x + (1 + kappa) * b_x)
    return pr_phi, pr_x


def _check_ensemble(ensemble, name="activity_dimension") -> None:
    if not isinstance(ensemble, RandomModeEnsemble):
        raise ValueError(
            f"`ensemble` must be a RandomModeEnsemble, got {type(ensemble).__name__}."
        )
    if ensemble.overlaps is not None:
        raise ValueError(
            f"`{name}`: ensembles with input/output overlaps rho_a are not supported. "
            "Overlaps (Clark et al. 2025, Sec. VII, Eqs. 48-49) add a self-coupling kernel "
            "R(w) = alpha <D rho / (1 - D rho S^phi)> to the single-site problem, so the "
            "single-unit statistics are no longer the SCS ones this theory builds on, and "
            "the four-point function needs the joint law of (D, rho). Sample such "
            "networks and measure them with `mfrnn.participation_ratio` instead."
        )
    _check_odd(ensemble.phi)


def _check_odd(phi: AbstractNonlinearity) -> None:
    x = np.array([0.0, 0.37, 1.3, 2.9])
    try:
        values = np.asarray(phi(x)) + np.asarray(phi(-x))
    except Exception:  # traced parameters: checked per point (Delta_inf = 0)
        return
    if np.max(np.abs(values)) > 1e-12:
        raise ValueError(
            "`phi` must be odd (phi(-x) = -phi(x)): the random-mode dimension theory "
            "assumes zero-mean activity (Delta_inf = 0)."
        )


def _solve(ensemble: RandomModeEnsemble, n_grid: int, n_freq: int, spectra: bool):
    # The SCS solve and its profile run as their own (cached) programs.
    g = ensemble.g
    gauss = GaussianEnsemble(g, jnp.zeros_like(g), jnp.zeros_like(g), phi=ensemble.phi)
    sol = solve_dmft(gauss, throw=False)
    ac = dmft_autocorrelation(gauss, sol, throw=False)
    return _assemble(ensemble, sol, ac, n_grid, n_freq, spectra)


@eqx.filter_jit
def _assemble(ensemble, sol, ac, n_grid: int, n_freq: int, spectra: bool):
    g = ensemble.g
    phi = ensemble.phi
    chaotic = sol.regime == CHAOTIC
    ok = (sol.result == RESULTS.successful) & (
        ~chaotic | (jnp.abs(sol.delta_inf) <= 1e-8 * sol.delta0)
    )
    # Flattened and mapped in batches of 32: one point's sums hold n_freq x n_grid
    # complex values, so a vmap over thousands of g would not fit in memory.
    inputs = (g, sol.delta0, chaotic, ok, sol.result, ac.tau_nodes, ac.y_nodes, ac.tail_rate,
              ac.tail_beta)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[g.ndim:]), inputs)
    part = jax.lax.map(lambda a: _g_part(*a, phi, n_grid, n_freq), flat, batch_size=32)
    part = jax.tree.map(lambda x: x.reshape(g.shape + x.shape[1:]), part)

    kappa = jnp.asarray(ensemble.kappa)
    shape = jnp.broadcast_shapes(g.shape, kappa.shape)
    expand = lambda x: jnp.broadcast_to(x, shape + x.shape[g.ndim:])
    part = jax.tree.map(expand, part)
    kappa = jnp.broadcast_to(kappa, shape)
    rank = jnp.broadcast_to(ensemble.effective_rank, shape)
    g_full = jnp.broadcast_to(g, shape)
    pr_phi, pr_x = _participation(part.integrals[..., 0, :], part.delta0, part.phi2, kappa)
    half_phi, half_x = _participation(part.integrals[..., 1, :], part.delta0, part.phi2, kappa)
    error = jnp.maximum(jnp.abs(half_phi / pr_phi - 1), jnp.abs(half_x / pr_x - 1))
    error = jnp.where(jnp.isfinite(error), error, jnp.inf)
    good = part.ok & (~part.chaotic | (error <= DIMENSION_RTOL))
    # Failed DMFT points keep their code; a failed convergence check reads as an
    # unresolved chaotic solution.
    result = vmap_batch(
        lambda bad, r: RESULTS.where(bad, RESULTS.chaotic_not_converged, r), len(shape)
    )(part.ok & ~good, part.result)
    nan = jnp.asarray(jnp.nan, pr_phi.dtype)
    live = part.chaotic & part.ok
    dimension = DimensionSolution(
        pr_phi=jnp.where(live, pr_phi, nan),
        pr_x=jnp.where(live, pr_x, nan),
        delta0=jnp.where(part.ok, jnp.where(part.chaotic, part.delta0, 0.0), nan),
        phi_variance=jnp.where(part.ok, jnp.where(part.chaotic, part.phi2, 0.0), nan),
        g=g_full,
        effective_rank=rank,
        kappa=kappa,
        pr_s=1.0 / (2.0 + kappa),
        error=jnp.where(live, error, nan),
        chaotic=part.chaotic,
        result=result,
    )
    if not spectra:
        return dimension
    out = RandomModeSpectra(
        dimension=dimension,
        pc_tau_half_phi=jnp.zeros(shape, pr_phi.dtype),
        pc_tau_half_x=jnp.zeros(shape, pr_phi.dtype),
        pr_s=dimension.pr_s,
        nu=part.nu,
        step=part.step,
        profile=part.profile,
        tail=part.tail,
        omega=part.omega,
        weights=part.weights,
        cx=part.cx,
        part_a_x=part.part_a_x,
        part_b_x=part.part_b_x,
        part_a_phi=part.part_a_phi,
        part_b_phi=part.part_b_phi,
        result=dimension.result,
    )
    hi = jnp.broadcast_to(part.tau_c, shape)
    halves = [
        vmap_batch(lambda s, t: _half_time(s, t, which), len(shape))(out, hi)
        for which in ("phi", "x")
    ]
    halves = [jnp.where(live, h, nan) for h in halves]
    return eqx.tree_at(lambda s: (s.pc_tau_half_phi, s.pc_tau_half_x), out, tuple(halves))


def _half_time(s: RandomModeSpectra, hi, which: str):
    """Lag where Psi(tau, 0) / Psi(0, 0) = 1/2: bisection on [0, hi] (not
    differentiated), then one differentiable Newton step."""
    m = _marginal(s, which)
    total = jnp.sum(m)
    profile = lambda t: jnp.sum(m * jnp.cos(s.omega * t)) / total - 0.5
    fixed = jax.lax.stop_gradient(m), jax.lax.stop_gradient(total)

    def step(_, lohi):
        lo, hi_ = lohi
        mid = 0.5 * (lo + hi_)
        above = jnp.sum(fixed[0] * jnp.cos(jax.lax.stop_gradient(s.omega) * mid)) / fixed[1] > 0.5
        return jnp.where(above, mid, lo), jnp.where(above, hi_, mid)

    hi = jax.lax.stop_gradient(hi)
    lo, hi_ = jax.lax.fori_loop(0, 64, step, (jnp.zeros_like(hi), hi))
    t = jax.lax.stop_gradient(0.5 * (lo + hi_))
    slope = -jnp.sum(m * s.omega * jnp.sin(s.omega * t)) / total
    found = profile(jax.lax.stop_gradient(hi)) < 0
    return jnp.where(found, t - profile(t) / jax.lax.stop_gradient(slope), jnp.nan)


def _prepare(ensemble, resolution: int, n_freq: int, name: str):
    _check_ensemble(ensemble, name)
    if not (isinstance(resolution, int) and resolution >= 64 and resolution % 2 == 0):
        raise ValueError(f"`resolution` must be an even integer >= 64, got {resolution!r}.")
    if not (isinstance(n_freq, int) and n_freq >= 33 and n_freq % 2 == 1):
        raise ValueError(f"`n_freq` must be an odd integer >= 33, got {n_freq!r}.")
    if is_concrete(ensemble.g) and np.any(np.asarray(ensemble.g) < 0):
        raise ValueError("`g` must be non-negative.")


def activity_dimension(
    ensemble: RandomModeEnsemble,
    *,
    resolution: int = 1024,
    n_freq: int = 257,
    throw: bool = True,
) -> DimensionSolution:
    """Dimension of activity of a random-mode network as N -> inf: `PR^phi / N` and
    `PR^x / N` from the DMFT spectra (Clark, Marschall, van Meegen & Litwin-Kumar 2025,
    Eq. 38 and I22; `effective_rank=None` is the iid result of Clark, Abbott &
    Litwin-Kumar 2023).

    The single-unit statistics are the SCS ones at g = g_eff ([`mfrnn.solve_dmft`][]);
    the structure enters only through `kappa = 1 / (alpha PR_D)`. How the double
    frequency integrals are evaluated is described in this module's docstring; each
    point is checked against half the resolution (`error`, flagged above 1e-6).

    **Arguments:**

    - `ensemble`: a [`mfrnn.RandomModeEnsemble`][] with odd phi and no overlaps. Its `g`
      and `effective_rank` may be arrays that broadcast (e.g. `(G, 1)` and `(1, R)`): the
      g-dependent spectra are computed once per value of g, on g's own shape.
    - `resolution`: points of the uniform tau grid up to the tail (even); `n_freq`: w1
      nodes (odd). Keyword only.
    - `throw`: raise if a point failed; with False read `result` per point.

    **Returns:** a [`mfrnn.DimensionSolution`][]. Differentiable in `g` and
    `effective_rank` (implicit differentiation of the DMFT, no unrolled loop).

    ```python
    ens = mfrnn.RandomModeEnsemble(g=2.0, effective_rank=jnp.array([0.25, 1.0, jnp.inf]))
    mfrnn.activity_dimension(ens).pr_phi
    ```

    ??? cite "References"

        ```bibtex
        @article{clark2023dimension,
          title={Dimension of activity in random neural networks},
          author={Clark, David G. and Abbott, L. F. and Litwin-Kumar, Ashok},
          journal={Physical Review Letters}, volume={131}, pages={118401}, year={2023}
        }
        ```
    """
    _prepare(ensemble, resolution, n_freq, "activity_dimension")
    sol = _solve(ensemble, resolution, n_freq, False)
    return raise_if_failed(sol, lambda s: s.pr_phi) if throw else sol


def random_mode_spectra(
    ensemble: RandomModeEnsemble,
    *,
    resolution: int = 1024,
    n_freq: int = 257,
    throw: bool = True,
) -> RandomModeSpectra:
    """The collective spectra of a random-mode network as N -> inf: the power spectra
    `C^x(w)`, `C^phi(w)`, the two-frequency function Psi(w1, w2), its normalised time
    profile `Psi(tau, 0)` (the timescale of the leading principal components) and the
    singular-value participation ratio of J, `PR_S = alpha PR_D / (1 + 2 alpha PR_D)`
    (Clark et al. 2025, Eqs. 13, 38). Arguments as [`mfrnn.activity_dimension`][],
    whose solution is the `dimension` field.

    ```python
    spec = mfrnn.random_mode_spectra(mfrnn.RandomModeEnsemble(g=2.0, effective_rank=0.5))
    spec.power_spectrum(jnp.linspace(0, 3, 100), "phi"), spec.pc_tau_half_phi
    spec.psi_profile(jnp.linspace(0, 20, 100))
    ```
    """
    _prepare(ensemble, resolution, n_freq, "random_mode_spectra")
    out = _solve(ensemble, resolution, n_freq, True)
    return raise_if_failed(out, lambda s: s.pc_tau_half_phi) if throw else out
