"""Stationary DMFT of random networks (Sompolinsky-Crisanti-Sommers), docs/theory/dmft.md.

Convention `J_ij ~ N(0, g^2/N)`, phi outside the gain; uniform bias b and quenched input
`I_i ~ N(0, s_I^2)`. Every solve is an optimistix root find, differentiated implicitly.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool

from .._ensembles import GaussianEnsemble
from .._jit import jit
from .._misc import check_tolerance, is_concrete, tolerances
from .._nonlinearities import AbstractNonlinearity, AbstractQuadratureNonlinearity
from .._solution import (
    CHAOTIC,
    DMFTSolution,
    FIXED_POINT,
    OnsetSolution,
    QUIESCENT,
    raise_if_failed,
    RESULTS,
    vmap_batch,
)
from .guesses import bisection, chaotic_q_guess, newton_step


def _check_ensemble(ensemble) -> None:
    if not isinstance(ensemble, GaussianEnsemble):
        raise ValueError(f"`ensemble` must be a GaussianEnsemble, got {type(ensemble).__name__}.")


# Residuals are module-level functions with every parameter in `args`, as implicit
# differentiation requires.
def _static_residual(delta, args):
    g, b, s2, phi = args
    return delta - g**2 * phi.gaussian_second_moment(b, delta) - s2


def _chaos_residual(y, args):
    # Unknowns (Delta_inf, log q), Delta0 = Delta_inf + q. The energy balance
    # V(Delta0) - V(Delta_inf) is O(q^2) at the static root q = 0 once the first
    # equation holds, so dividing it by q^2 keeps the solver off that root.
    g, b, s2, phi = args
    d_inf, q = y[0], jnp.exp(y[1])
    d0 = d_inf + q

    # [Phi]_{Delta0, Delta0} = <Phi^2>: a one-point average, much cheaper.
    v_top = -0.5 * d0**2 + g**2 * phi.gaussian_second_moment(b, d0, "Phi") + s2 * d0
    # [phi] and [Phi] on one set of quadrature nodes.
    corr, corr_Phi = phi.gaussian_correlations(b, d0, d_inf, ("phi", "Phi"))
    v_inf = -0.5 * d_inf**2 + g**2 * corr_Phi + s2 * d_inf
    e_inf = d_inf - g**2 * corr - s2
    e_energy = (v_top - v_inf) / q**2
    return jnp.stack([e_inf, e_energy])


# Geometric offsets above s_I^2 scanned for the first sign change of the static residual.
_STATIC_SCAN = 10.0 ** np.linspace(-8.0, 6.0, 281)


def _static_branch(args, rtol, atol, max_steps):
    """The static branch continued from g -> 0: the smallest root `Delta0 >= s_I^2` of
    `Delta0 - g^2 <phi^2> - s_I^2`. Newton from the g -> 0 end can leave the branch (the
    residual is not monotone above onset), so the root is bracketed on a geometric grid,
    narrowed by bisection and polished by Newton."""
    g, b, s2, phi = args
    f0 = _static_residual(s2, args)
    trivial = f0 == 0  # s_I = 0 and phi(b) = 0: x = b is a fixed point
    grid = jax.lax.stop_gradient(s2 + jnp.asarray(_STATIC_SCAN, jnp.result_type(s2)))
    f = jax.vmap(lambda d: _static_residual(d, jax.lax.stop_gradient(args)))(grid)
    positive = f > 0
    found = jnp.any(positive)
    k = jnp.argmax(positive)
    lower = jnp.where(k == 0, jax.lax.stop_gradient(s2), grid[jnp.maximum(k - 1, 0)])
    upper = grid[k]
    # Narrowed by 24 bisections (the bracket is 12 % wide: to ~1e-8).
    frozen = jax.lax.stop_gradient(args)
    coarse = bisection(lambda d: _static_residual(d, frozen), lower, upper, 24)
    fine = optx.root_find(
        _static_residual,
        optx.Newton(rtol, atol),
        coarse,
        args=args,
        options=dict(lower=lower, upper=upper),
        max_steps=max_steps,
        throw=False,
    )
    ok = found & (fine.result == optx.RESULTS.successful) & jnp.isfinite(fine.value)
    delta = jnp.where(trivial, s2, jnp.where(ok, fine.value, jnp.nan))
    return delta, trivial | ok


def _inf_residual(d_inf, args):
    g, b, s2, phi, q = args
    return d_inf - g**2 * phi.gaussian_correlation(b, d_inf + q, d_inf) - s2


def _chaos_guess(args, d_static):
    """Initial (Delta_inf, q) for the chaotic Newton solve (`chaotic_q_guess`): the
    energy balance / q^2 with Delta_inf eliminated by Newton steps along the way."""
    g, b, s2, phi = args
    scale = 1.0 + d_static + g**2
    d_max = 10.0 * scale

    def inf_newton(d, q):
        return newton_step(lambda x: _inf_residual(x, (g, b, s2, phi, q)), d, d_max)

    balance = lambda d, log_q: _chaos_residual(jnp.stack([d, log_q]), args)[1]
    d, log_q = chaotic_q_guess(
        balance, inf_newton, d_static, jnp.log(1e-4 * scale), jnp.log(1e3 * scale),
        scan=12, steps=8, newton_steps=3,
    )
    return d, jnp.exp(log_q)


# Quadrature order of the rule the chaotic initial guess is found with (a 5x coarser
# spacing than the default 301: a rough guess, which the Newton solve polishes).
_COARSE_ORDER = 61
# Mehler's series [f]_{b; Delta0, Delta} = sum_n c_n^2 (Delta / Delta0)^n, this many terms:
# round-off accurate up to Delta / Delta0 ~ 0.4 (Delta_inf = 0 without input), for a
# fraction of the two-point quadrature's work.
_SERIES_TERMS = 40


def _coarse(phi: AbstractNonlinearity) -> AbstractNonlinearity:
    if isinstance(phi, AbstractQuadratureNonlinearity) and phi.order > _COARSE_ORDER:
        try:
            return dataclasses.replace(phi, order=_COARSE_ORDER)
        except TypeError:  # a subclass whose __init__ takes no `order`
            return phi
    return phi


class _Averages(eqx.Module):
    """phi's averages for the chaotic equations; two-point ones by Mehler's series when
    `series` (a runtime flag, one for the whole grid), else by quadrature."""

    phi: AbstractQuadratureNonlinearity
    series: bool | Bool[Array, ""]

    def gaussian_second_moment(self, mu, delta, which="phi"):
        return self.phi.gaussian_second_moment(mu, delta, which)

    def gaussian_correlation(self, mu, delta0, delta, which="phi"):
        return self.gaussian_correlations(mu, delta0, delta, (which,))[0]

    def _coefficients(self, mu, delta0, which):
        return self.phi.hermite_coefficients(mu, delta0, which, _SERIES_TERMS)

    def gaussian_correlations(self, mu, delta0, delta, which):
        def series(mu, delta0, delta):
            coeffs = self._coefficients(mu, delta0, which)
            return tuple(jnp.polyval(c[::-1] ** 2, delta / delta0) for c in coeffs)

        def quadrature(mu, delta0, delta):
            return self.phi.gaussian_correlations(mu, delta0, delta, which)

        if isinstance(self.series, bool):
            return (series if self.series else quadrature)(mu, delta0, delta)
        return jax.lax.cond(self.series, series, quadrature, mu, delta0, delta)

    def converged(self, mu, delta0, delta, which):
        # The series' tail from its last terms (odd or even ones vanish by symmetry).
        rho = jnp.abs(delta / delta0)
        c2 = jnp.stack(self._coefficients(mu, delta0, which)) ** 2
        tail = jnp.max(c2[:, -4:], 1) * rho ** (_SERIES_TERMS - 4) / (1.0 - jnp.minimum(rho, 0.999))
        ok = jnp.all(tail <= 10 * jnp.finfo(c2.dtype).eps * jnp.sum(c2, 1))
        return ok | ~jnp.asarray(self.series)


class _Static(eqx.Module):
    delta0: Array
    ok: Array
    bulk: Array
    chaotic: Array


class _Chaos(eqx.Module):
    y: Array  # (Delta_inf, log q)
    ok: Array
    residual: Array
    series_ok: Array


def _static_single(g, b, s_I, phi, rtol, atol, max_steps) -> _Static:
    args = (g, b, s_I**2, phi)
    d_static, ok = _static_branch(args, rtol, atol, max_steps)
    bulk = jnp.abs(g) * jnp.sqrt(phi.gaussian_second_moment(b, d_static, "dphi"))
    return _Static(d_static, ok, bulk, bulk > 1.0)


def _chaos_single(g, b, s_I, averages, coarse, static: _Static, rtol, atol, max_steps) -> _Chaos:
    s2 = s_I**2
    # Below the onset there is no chaotic branch: solve at a harmless point and discard.
    safe_args = (jnp.where(static.chaotic, g, 2.0), b, s2, averages)
    # Initial guess on the coarse rule, not differentiated: the Newton solve carries the
    # gradient.
    guess = _chaos_guess(
        jax.lax.stop_gradient((*safe_args[:3], coarse)),
        jax.lax.stop_gradient(jnp.nan_to_num(static.delta0)),
    )
    chaos = optx.root_find(
        _chaos_residual,
        optx.Newton(rtol, atol),
        jnp.stack([guess[0], jnp.log(guess[1])]),
        args=safe_args,
        max_steps=max_steps,
        throw=False,
    )
    d_inf = chaos.value[0]
    ok = (chaos.result == optx.RESULTS.successful) & (d_inf >= -atol)
    residual = jnp.max(jnp.abs(_chaos_residual(chaos.value, (g, b, s2, averages))))
    series_ok = jnp.array(True)
    if isinstance(averages, _Averages):
        d0 = d_inf + jnp.exp(chaos.value[1])
        series_ok = averages.converged(b, d0, d_inf, ("phi", "Phi")) | ~static.chaotic
    return _Chaos(chaos.value, ok, residual, series_ok)


def _first_converged(attempt, batch: tuple[int, ...], dtype) -> _Chaos:
    """`attempt(series)` with the series, then (one copy of the program, run only if
    needed) with quadrature where the series has not converged somewhere."""

    def step(carry, flag):
        out, done = carry
        out = jax.lax.cond(done, lambda: out, lambda: attempt(flag))
        return (out, done | jnp.all(out.series_ok)), None

    no = jnp.zeros(batch, bool)
    init = _Chaos(jnp.zeros(batch + (2,), dtype), no, jnp.zeros(batch, dtype), no)
    (out, _), _ = jax.lax.scan(step, (init, jnp.array(False)), jnp.array([True, False]))
    return out


def _assemble(static: _Static, chaos: _Chaos, g, b, s_I, phi) -> DMFTSolution:
    chaotic = static.chaotic
    d_static = static.delta0
    d_inf = chaos.y[0]
    d0_chaos = d_inf + jnp.exp(chaos.y[1])
    quiescent = (~chaotic) & (d_static <= 1e-12)
    regime = jnp.where(chaotic, CHAOTIC, jnp.where(quiescent, QUIESCENT, FIXED_POINT))
    residual = jnp.where(
        chaotic, chaos.residual, jnp.abs(_static_residual(d_static, (g, b, s_I**2, phi)))
    )
    result = RESULTS.where(static.ok, RESULTS.successful, RESULTS.static_not_converged)
    result = RESULTS.where(
        chaotic & static.ok & ~chaos.ok, RESULTS.chaotic_not_converged, result
    )
    return DMFTSolution(
        delta0=jnp.where(chaotic, d0_chaos, d_static),
        delta_inf=jnp.where(chaotic, d_inf, d_static),
        delta0_static=d_static,
        bulk_radius=static.bulk,
        regime=regime,
        residual=residual,
        result=result,
    )


def _checked(x, msg: str, nonnegative: bool, throw: bool):
    """`x` checked to be finite (and >= 0). Concrete values in Python; traced ones at
    runtime: raising with `throw`, else made NaN so that the point fails (no host
    callback in the program, which the persistent compilation cache cannot store)."""
    if is_concrete(x):
        value = np.asarray(x)
        if np.any(~np.isfinite(value) | (nonnegative & (value < 0))):
            raise ValueError(msg)
        return x
    bad = ~jnp.isfinite(x) | (nonnegative & (x < 0))
    return eqx.error_if(x, bad, msg) if throw else jnp.where(bad, jnp.nan, x)


def solve_dmft(
    ensemble: GaussianEnsemble,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
    throw: bool = True,
) -> DMFTSolution:
    """Stationary DMFT of a random network: Delta0, Delta_inf and the regime.

    Solves the static branch `Delta0 = g^2 <phi^2>_{b, Delta0} + s_I^2`, classifies it by
    the bulk radius `g sqrt(<phi'^2>)` (> 1: chaos, docs/theory/dmft.md), and on the chaotic
    side solves `Delta_inf = g^2 [phi]_{b; Delta0, Delta_inf} + s_I^2`,
    `V(Delta0) = V(Delta_inf)` with `V(D) = -D^2/2 + g^2 [Phi]_{b; Delta0, D} + s_I^2 D`.

    **Arguments:**

    - `ensemble`: a [`mfrnn.GaussianEnsemble`][] (g, bias, input_std, phi). Its fields
      may be arrays of one shape (a grid): the solve is vmapped over them.
    - `rtol`, `atol`, `max_steps`: Newton tolerances (default 1e-10 in float64, 1e-5 in
      float32, where Delta0 comes out to ~1e-7 relative) and step budget. Keyword only.
    - `throw`: raise if any point failed; with False check `solution.result` (then a
      traced invalid input makes its point fail instead of raising).

    **Returns:** a [`mfrnn.DMFTSolution`][]; differentiable in every ensemble field
    (implicit differentiation).

    ```python
    sol = mfrnn.solve_dmft(mfrnn.GaussianEnsemble(g=2.0))
    sol.delta0, sol.regime   # (~1.85 for tanh), 2 = chaotic
    ```
    """
    _check_ensemble(ensemble)
    g = _checked(ensemble.g, "`g` must be finite and non-negative.", True, throw)
    b = _checked(ensemble.bias, "`bias` must be finite.", False, throw)
    s_I = _checked(ensemble.input_std, "`input_std` must be finite, >= 0.", True, throw)
    ensemble = eqx.tree_at(lambda e: (e.g, e.bias, e.input_std), ensemble, (g, b, s_I))
    kwargs = dict(rtol=rtol, atol=atol, max_steps=max_steps)
    if not isinstance(ensemble.phi, AbstractQuadratureNonlinearity):
        sol, _ = _solve_dmft(ensemble, mode="quadrature", **kwargs)
    elif all(is_concrete(x) for x in (g, b, s_I)):
        # Called eagerly: the series program, and the quadrature one only if needed (each
        # smaller and quicker to compile than the two in one).
        sol, ok = _solve_dmft(ensemble, mode="series", **kwargs)
        if not np.all(np.asarray(ok)):
            sol, _ = _solve_dmft(ensemble, mode="quadrature", **kwargs)
        return _raise_if_failed(sol) if throw else sol
    else:
        sol, _ = _solve_dmft(ensemble, mode="fallback", **kwargs)
    return raise_if_failed(sol, lambda s: s.delta0) if throw else sol


@eqx.filter_jit
def _raise_if_failed(sol: DMFTSolution) -> DMFTSolution:
    return raise_if_failed(sol, lambda s: s.delta0)


@jit
def _solve_dmft(ensemble: GaussianEnsemble, *, mode: str, rtol, atol, max_steps):
    """mode: "series" (Mehler's series for the two-point averages; also returns where it
    has converged), "quadrature", or "fallback" (the series, then quadrature throughout
    if it has not converged everywhere, in one program)."""
    g, b, s_I = jnp.broadcast_arrays(ensemble.g, ensemble.bias, ensemble.input_std)
    rtol, atol = tolerances(rtol, atol, g.dtype)
    check_tolerance(rtol, atol, max_steps)
    phi = ensemble.phi
    batch = lambda fn: vmap_batch(fn, g.ndim)
    static = batch(lambda *a: _static_single(*a, phi, rtol, atol, max_steps))(g, b, s_I)

    def attempt(series):
        averages, coarse = phi, _coarse(phi)
        if isinstance(phi, AbstractQuadratureNonlinearity):
            # The guess always by the series: if the series has not converged (strong
            # input), it is a few percent off, which the quadrature Newton polishes.
            averages, coarse = _Averages(phi, series), _Averages(coarse, True)
        fn = lambda g_, b_, s_, st: _chaos_single(
            g_, b_, s_, averages, coarse, st, rtol, atol, max_steps
        )
        return batch(fn)(g, b, s_I, static)

    if mode == "fallback":
        chaos = _first_converged(attempt, g.shape, g.dtype)
    else:
        chaos = attempt(mode == "series")
    sol = batch(lambda *a: _assemble(*a, phi))(static, chaos, g, b, s_I)
    return sol, chaos.series_ok


def _onset_residual(delta, args):
    # On the static branch at the onset g^2 = 1 / <phi'^2>, so Delta0 solves
    # Delta0 - <phi^2> / <phi'^2> - s_I^2 = 0.
    b, s2, phi = args
    ratio = phi.gaussian_second_moment(b, delta) / phi.gaussian_second_moment(b, delta, "dphi")
    return delta - ratio - s2


def _onset_single(b, s_I, phi, rtol, atol, max_steps):
    s2 = s_I**2
    args = (b, s2, phi)
    y0 = s2 + phi(b) ** 2 / phi.gaussian_second_moment(b, s2, "dphi")
    sol = optx.root_find(
        _onset_residual, optx.Newton(rtol, atol), y0, args=args, max_steps=max_steps, throw=False
    )
    delta = sol.value
    dphi2 = phi.gaussian_second_moment(b, delta, "dphi")
    ok = (sol.result == optx.RESULTS.successful) & (delta >= 0) & (dphi2 > 0)
    g_c = 1.0 / jnp.sqrt(dphi2)
    return OnsetSolution(
        g_c=g_c, delta0=delta, result=RESULTS.where(ok, RESULTS.successful, RESULTS.no_onset)
    )


def chaos_onset(
    phi: AbstractNonlinearity,
    bias: ArrayLike = 0.0,
    input_std: ArrayLike = 0.0,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 256,
    throw: bool = True,
) -> OnsetSolution:
    """Chaos onset `g_c(b, s_I)`: where the static branch loses stability,
    `g^2 <phi'^2>_{b, Delta0(g)} = 1` (docs/theory/dmft.md). `g_c = 1 / phi'(0)` without input
    for odd phi. `bias` and `input_std` may be arrays of one shape (vmapped).

    ```python
    mfrnn.chaos_onset(mfrnn.Tanh(), bias=0.5).g_c
    ```
    """
    if not isinstance(phi, AbstractNonlinearity):
        raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")
    dtype = jnp.result_type(float)
    rtol, atol = tolerances(rtol, atol, dtype)
    check_tolerance(rtol, atol, max_steps)
    s_I = _checked(input_std, "`input_std` must be finite, >= 0.", True, throw)
    b = _checked(bias, "`bias` must be finite.", False, throw)
    return _chaos_onset(phi, b, s_I, rtol=rtol, atol=atol, max_steps=max_steps, throw=throw)


@jit
def _chaos_onset(phi, bias, input_std, *, rtol, atol, max_steps, throw) -> OnsetSolution:
    dtype = jnp.result_type(float)
    b, s_I = jnp.broadcast_arrays(jnp.asarray(bias, dtype), jnp.asarray(input_std, dtype))
    fn = lambda b_, s_: _onset_single(b_, s_, phi, rtol, atol, max_steps)
    sol = vmap_batch(fn, b.ndim)(b, s_I)
    return raise_if_failed(sol, lambda s: s.g_c) if throw else sol
