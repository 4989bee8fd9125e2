"""Mean-field theory of low-rank plus random networks and Gaussian-mixture populations
(THEORY.md 1.3-1.4).

Every ensemble is treated as a mixture: a `LowRankEnsemble` is one population. Unit i of
population p has `x_i = b + m_i.kappa + I_i.u + g eta_i`, with eta_i a Gaussian field
independent of the loadings. Per population, x is Gaussian with mean
`mu_p = b + a^p_m.kappa + a^p_I.u` and variance `L_p + D`, where
`L_p = s^T Sigma^p_(m,I) s`, `s = (kappa, u)`, is the part from the loadings and D the
random-field part, shared by all populations. By Stein's lemma
`kappa_r = sum_p alpha_p (a^p_{n_r} <phi>_p + Cov_p(n_r, x) <phi'>_p)`.

- Fixed points: unknowns (kappa, D), `D = g^2 sum_p alpha_p <phi^2>_p`.
- Chaos: unknowns (kappa, D_inf, log q), `D0 = D_inf + q`. The random-field
  autocorrelation D(tau) moves in `V(D) = -D^2/2 + g^2 sum_p alpha_p [Phi]_{mu_p; L_p + D0,
  L_p + D}`; `V'(D_inf) = 0` and `V(D0) = V(D_inf)` (divided by q^2, pitfall 8).
- Outliers of the fixed point's Jacobian `-1 + J diag(phi')` (for |z| outside the bulk):
  the eigenvalues z - 1 of the (R+1) x (R+1) matrix `[[A, g^2 B], [C^T, g^2 d]]`, with
  `A = E[n m^T phi']`, `B = E[n phi'']`, `C = E[phi phi' m]`, `d = E[phi'^2 + phi phi'']`
  (mixture averages). The extra row is the response of the random field's variance:
  eta_i and the perturbation's field share row i of the random matrix. At g = 0 it
  reduces to the latent Jacobian `-1 + A`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int

from .._ensembles import LowRankEnsemble, MixtureEnsemble
from .._ensembles.low_rank import loading_index
from .._misc import is_concrete
from .._nonlinearities import AbstractNonlinearity
from .._solution import (
    CHAOTIC,
    FIXED_POINT,
    QUIESCENT,
    raise_if_failed,
    RESULTS,
    vmap_batch,
)
from .._misc import check_tolerance, tolerances


# ----------------------------------------------------------------------------------
# One grid point in mixture form.


class _Point(eqx.Module):
    # One grid point; built with leading batch axes and vmapped down to one.
    fractions: Float[Array, "*batch P"]
    means: Float[Array, "*batch P k"]
    covs: Float[Array, "*batch P k k"]
    g: Float[Array, "*batch"]
    bias: Float[Array, "*batch"]
    inputs: Float[Array, "*batch S"]
    phi: AbstractNonlinearity
    rank: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)


def _check_ensemble(ensemble) -> None:
    if not isinstance(ensemble, (LowRankEnsemble, MixtureEnsemble)):
        raise ValueError(
            "`ensemble` must be a LowRankEnsemble or MixtureEnsemble, got "
            f"{type(ensemble).__name__}."
        )


def _points(ensemble, inputs) -> tuple[_Point, tuple[int, ...]]:
    """The ensemble as a batch of `_Point`s broadcast to one batch shape."""
    _check_ensemble(ensemble)
    dtype = jnp.result_type(float)
    if isinstance(ensemble, LowRankEnsemble):
        means = ensemble.mean[..., None, :]
        covs = ensemble.cov[..., None, :, :]
        fractions = jnp.ones(means.shape[:-1], means.dtype)
    else:
        fractions, means, covs = ensemble.fractions, ensemble.means, ensemble.covs
    S = ensemble.n_inputs
    if inputs is None:
        inputs = jnp.zeros((S,), dtype)
    inputs = jnp.asarray(inputs, means.dtype)
    if inputs.shape[-1:] != (S,):
        raise ValueError(
            f"`inputs` must have a last axis of length n_inputs = {S}, got shape {inputs.shape}."
        )
    batch = jnp.broadcast_shapes(
        fractions.shape[:-1],
        means.shape[:-2],
        covs.shape[:-3],
        ensemble.g.shape,
        ensemble.bias.shape,
        inputs.shape[:-1],
    )
    bc = lambda x, core: jnp.broadcast_to(x, batch + x.shape[x.ndim - core :])
    point = _Point(
        fractions=bc(fractions, 1),
        means=bc(means, 2),
        covs=bc(covs, 3),
        g=bc(ensemble.g, 0),
        bias=bc(ensemble.bias, 0),
        inputs=bc(inputs, 1),
        phi=ensemble.phi,
        rank=ensemble.rank,
        n_inputs=S,
    )
    return point, batch


_BATCHED = lambda p: (p.fractions, p.means, p.covs, p.g, p.bias, p.inputs)


def _map_points(fn, point: _Point, batch):
    """`fn(point)` vmapped over the batch axes of the point's arrays (phi is shared)."""

    def one(*arrays):
        return fn(eqx.tree_at(_BATCHED, point, arrays))

    return vmap_batch(one, len(batch))(*_BATCHED(point))


class _Stats(eqx.Module):
    """Per-population statistics of x and of its covariances with the loadings."""

    mu: Float[Array, " P"]
    L: Float[Array, " P"]
    a_n: Float[Array, "P R"]
    k_n: Float[Array, "P R"]
    a_m: Float[Array, "P R"]
    k_m: Float[Array, "P R"]
    c_nm: Float[Array, "P R R"]


def _stats(p: _Point, kappa) -> _Stats:
    idx = loading_index(p.rank, p.n_inputs)
    iw = np.array(idx["m"] + idx["I"])  # loadings that drive x
    i_n, i_m = np.array(idx["n"]), np.array(idx["m"])
    s = jnp.concatenate([kappa, p.inputs])
    cw = p.covs[:, iw][:, :, iw]
    return _Stats(
        mu=p.bias + p.means[:, iw] @ s,
        L=jnp.einsum("i,pij,j->p", s, cw, s),
        a_n=p.means[:, i_n],
        k_n=jnp.einsum("pij,j->pi", p.covs[:, i_n][:, :, iw], s),
        a_m=p.means[:, i_m],
        k_m=jnp.einsum("pij,j->pi", p.covs[:, i_m][:, :, iw], s),
        c_nm=p.covs[:, i_n][:, :, i_m],
    )


def _per_population(fn, *arrays):
    return jax.vmap(fn)(*arrays)


def _kappa_map(p: _Point, st: _Stats, delta):
    """`sum_p alpha_p E_p[n phi(x)]` with x ~ N(mu_p, delta_p)."""
    m1 = _per_population(p.phi.gaussian_mean, st.mu, delta)
    m1p = _per_population(lambda m, d: p.phi.gaussian_mean(m, d, "dphi"), st.mu, delta)
    return jnp.sum(p.fractions[:, None] * (st.a_n * m1[:, None] + st.k_n * m1p[:, None]), 0)


def _kappa_residual(p, st, kappa, delta, nonzero):
    # On a kappa != 0 branch divide by |kappa| so that kappa = 0 (a root whenever phi is
    # odd and the loadings are centred) is no longer a root (pitfall 8).
    scale = jnp.where(nonzero, jnp.sqrt(jnp.sum(kappa**2) + 1e-300), 1.0)
    return (kappa - _kappa_map(p, st, delta)) / scale


def _random_variance(p, st, delta):
    m2 = _per_population(p.phi.gaussian_second_moment, st.mu, delta)
    return p.g**2 * jnp.sum(p.fractions * m2)


def _static_residual(y, args):
    p, nonzero = args
    kappa, D = y[:-1], y[-1]
    st = _stats(p, kappa)
    delta = st.L + D
    return jnp.concatenate(
        [_kappa_residual(p, st, kappa, delta, nonzero), (D - _random_variance(p, st, delta))[None]]
    )


def _potential_gap(p, st, d_inf, q):
    """(V(D0) - V(D_inf)) / q^2 and V'(D_inf), with D0 = D_inf + q."""
    d0 = d_inf + q
    top, low = st.L + d0, st.L + d_inf
    Phi2 = _per_population(lambda m, a: p.phi.gaussian_second_moment(m, a, "Phi"), st.mu, top)
    PhiC = _per_population(
        lambda m, a, b: p.phi.gaussian_correlation(m, a, b, "Phi"), st.mu, top, low
    )
    C = _per_population(p.phi.gaussian_correlation, st.mu, top, low)
    g2 = p.g**2
    v_top = -0.5 * d0**2 + g2 * jnp.sum(p.fractions * Phi2)
    v_inf = -0.5 * d_inf**2 + g2 * jnp.sum(p.fractions * PhiC)
    return (v_top - v_inf) / q**2, d_inf - g2 * jnp.sum(p.fractions * C)


def _chaos_residual(y, args):
    p, nonzero = args
    R = p.rank
    kappa, d_inf, q = y[:R], y[R], jnp.exp(y[R + 1])
    st = _stats(p, kappa)
    energy, e_inf = _potential_gap(p, st, d_inf, q)
    e_kappa = _kappa_residual(p, st, kappa, st.L + d_inf + q, nonzero)
    return jnp.concatenate([e_kappa, jnp.stack([e_inf, energy])])


# ----------------------------------------------------------------------------------
# Stability.


def _mu_derivatives(fn, mu, delta, n: int):
    """fn(mu, delta) and its first n derivatives in mu (Stein: d/dmu <f> = <f'>)."""
    out = [fn]
    for _ in range(n):
        out.append(jax.grad(out[-1], argnums=0))
    return [f(mu, delta) for f in out]


def _eigvals(M) -> Complex[Array, " k"]:
    k = M.shape[-1]
    M = M.astype(jnp.result_type(M.dtype, jnp.complex64))
    if k == 1:
        return M[..., 0, :]
    if k == 2:  # closed form: works on every backend and under autodiff
        half_tr = 0.5 * (M[0, 0] + M[1, 1])
        det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        root = jnp.sqrt(half_tr**2 - det)
        return jnp.stack([half_tr + root, half_tr - root])
    return jnp.linalg.eigvals(M)  # CPU only in JAX


def _gain_averages(p: _Point, st: _Stats, delta):
    """Per population: <phi'>, <phi''>, <phi'''>, <phi phi'>, <phi'^2 + phi phi''>, <phi'^2>."""

    def one(mu, d):
        f1 = lambda m, v: p.phi.gaussian_mean(m, v, "dphi")
        f2 = lambda m, v: 0.5 * p.phi.gaussian_second_moment(m, v)
        d1, d2, d3 = _mu_derivatives(f1, mu, d, 2)
        _, pp1, pp2 = _mu_derivatives(f2, mu, d, 2)
        return d1, d2, d3, pp1, pp2, p.phi.gaussian_second_moment(mu, d, "dphi")

    return _per_population(one, st.mu, delta)


def _latent_matrix(p: _Point, st: _Stats, d1, d2, d3):
    """`A = sum_p alpha_p E_p[n m^T phi'(x)]` by Stein's lemma (R x R)."""
    a_n, a_m, k_n, k_m = st.a_n, st.a_m, st.k_n, st.k_m
    outer = lambda u, v: u[:, :, None] * v[:, None, :]
    e = (
        (outer(a_n, a_m) + st.c_nm) * d1[:, None, None]
        + (outer(a_n, k_m) + outer(k_n, a_m)) * d2[:, None, None]
        + outer(k_n, k_m) * d3[:, None, None]
    )
    return jnp.sum(p.fractions[:, None, None] * e, 0)


def _fixed_point_stability(p: _Point, kappa, D):
    """Bulk radius and the R + 1 outlier eigenvalues (lambda = z - 1) of a fixed point."""
    st = _stats(p, kappa)
    d1, d2, d3, pp1, pp2, dphi2 = _gain_averages(p, st, st.L + D)
    w = p.fractions
    A = _latent_matrix(p, st, d1, d2, d3)
    B = jnp.sum(w[:, None] * (st.a_n * d2[:, None] + st.k_n * d3[:, None]), 0)
    C = jnp.sum(w[:, None] * (st.a_m * pp1[:, None] + st.k_m * pp2[:, None]), 0)
    d = jnp.sum(w * pp2)
    g2 = p.g**2
    top = jnp.concatenate([A, g2 * B[:, None]], axis=1)
    bottom = jnp.concatenate([C, g2 * d[None]])[None, :]
    M = jnp.concatenate([top, bottom], axis=0)
    bulk = p.g * jnp.sqrt(jnp.sum(w * dphi2))
    return bulk, _eigvals(M) - 1.0


def _chaos_kappa_stability(p: _Point, kappa, delta0):
    """Latent Jacobian `-1 + A` with the time-averaged gain of the chaotic state: its
    leading eigenvalue > 0 means kappa = 0 chaos is unstable along kappa."""
    st = _stats(p, kappa)
    d1, d2, d3, *_ = _gain_averages(p, st, st.L + delta0)
    return _eigvals(_latent_matrix(p, st, d1, d2, d3)) - 1.0


# ----------------------------------------------------------------------------------
# Solutions.


class LowRankSolution(eqx.Module):
    """Mean-field solution of a low-rank (plus random) network or mixture, one branch.

    - `kappa`: latent variables `kappa_r = <n_r phi(x)>` (time-averaged when chaotic).
    - `mu`, `delta0`, `delta_inf`: mean, variance and long-lag autocorrelation of x
      about its mean, per population (last axis; one population for a LowRankEnsemble).
      `delta0 - delta_inf` is the temporal variance (0 at a fixed point).
    - `regime`: 0 quiescent (kappa = 0 and x = bias), 1 fixed point, 2 chaotic.
    - `bulk_radius`: `g sqrt(<phi'^2>)` of the Jacobian's random bulk.
    - `eigenvalues`: fixed point: the R + 1 eigenvalues `z - 1` of the outlier equation
      (the ones with |z| > bulk_radius are outliers of the Jacobian); chaotic: the R
      eigenvalues of the latent Jacobian with time-averaged gains, padded with nan.
    - `outlier`: the largest real part among `eigenvalues`.
    - `stable`: fixed point: bulk_radius < 1 and outlier < 0; chaotic: outlier < 0
      (stable along kappa).
    - `residual`, `result`: max |residual| and the [`mfrnn.RESULTS`][] code.
    """

    kappa: Float[Array, "*batch rank"]
    mu: Float[Array, "*batch populations"]
    delta0: Float[Array, "*batch populations"]
    delta_inf: Float[Array, "*batch populations"]
    regime: Int[Array, "*batch"]
    bulk_radius: Float[Array, "*batch"]
    eigenvalues: Complex[Array, "*batch rank_plus_one"]
    outlier: Float[Array, "*batch"]
    stable: Bool[Array, "*batch"]
    residual: Float[Array, "*batch"]
    result: RESULTS


def _trust_region(fn, y0, args):
    """Bring a rough guess close to a root. Newton alone diverges from rough guesses of
    kappa; a trust region (dogleg) does not, and gets close in a few tens of steps;
    vmapped, a failing point runs to the cap, so it is modest. Not differentiated: the
    Newton polish that follows carries the implicit gradient."""
    return optx.least_squares(
        fn, optx.Dogleg(rtol=1e-6, atol=1e-8), jax.lax.stop_gradient(y0),
        args=jax.lax.stop_gradient(args), max_steps=40, throw=False,
    ).value


def _initial_random_variance(p: _Point, kappa):
    st = _stats(p, kappa)
    body = lambda _, D: _random_variance(p, st, st.L + D)
    return jax.lax.fori_loop(0, 30, body, jnp.minimum(p.g**2, 1.0) * 0.5)


def _solve_fixed_point(p: _Point, kappa0, rtol, atol, max_steps) -> LowRankSolution:
    R = p.rank
    nonzero = jnp.any(kappa0 != 0)
    D0 = jax.lax.stop_gradient(_initial_random_variance(p, kappa0))
    y0 = _trust_region(_static_residual, jnp.concatenate([kappa0, D0[None]]), (p, nonzero))
    sol = optx.root_find(
        _static_residual, optx.Newton(rtol, atol), y0, args=(p, nonzero),
        max_steps=max_steps, throw=False,
    )
    kappa, D = sol.value[:R], sol.value[R]
    residual = jnp.max(jnp.abs(_static_residual(sol.value, (p, nonzero))))
    ok = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
    ok = ok & (D >= -atol) & ~(nonzero & (jnp.sum(kappa**2) < 1e-12))
    st = _stats(p, kappa)
    bulk, eig = _fixed_point_stability(p, kappa, D)
    outlier = jnp.max(eig.real)
    delta0 = st.L + jnp.maximum(D, 0.0)
    quiescent = jnp.all(delta0 <= 1e-12) & (jnp.sum(kappa**2) <= 1e-12)
    return LowRankSolution(
        kappa=kappa,
        mu=st.mu,
        delta0=delta0,
        delta_inf=delta0,
        regime=jnp.where(quiescent, QUIESCENT, FIXED_POINT),
        bulk_radius=bulk,
        eigenvalues=eig,
        outlier=outlier,
        stable=(bulk < 1.0) & (outlier < 0.0),
        residual=residual,
        result=RESULTS.where(ok, RESULTS.successful, RESULTS.static_not_converged),
    )


def _reduced_energy(log_q, args):
    p, kappa, d_start = args
    q = jnp.exp(log_q)
    st = _stats(p, kappa)
    inf_res = lambda d, a: _potential_gap(p, st, d, q)[1]
    d_inf = optx.root_find(
        inf_res, optx.Newton(1e-6, 1e-8), d_start, args=None, max_steps=16, throw=False
    ).value
    return _potential_gap(p, st, d_inf, q)[0], d_inf


def _chaos_guess(p: _Point, kappa0):
    """(D_inf, log q) with kappa held at its guess: bisection in log q on the energy
    balance / q^2, which -> (g^2 <phi'^2> - 1) / 2 > 0 as q -> 0 above onset and -> -inf
    as q grows."""
    d_start = _initial_random_variance(p, kappa0)
    scale = 1.0 + d_start + p.g**2
    log_q = optx.root_find(
        lambda lq, a: _reduced_energy(lq, a)[0],
        optx.Bisection(rtol=2e-2, atol=2e-2, flip=True),
        jnp.log(scale),
        args=(p, kappa0, d_start),
        options=dict(lower=jnp.log(1e-4 * scale), upper=jnp.log(1e3 * scale)),
        max_steps=100,
        throw=False,
    ).value
    return _reduced_energy(log_q, (p, kappa0, d_start))[1], log_q


def _solve_chaos(p: _Point, kappa0, rtol, atol, max_steps) -> LowRankSolution:
    R = p.rank
    nonzero = jnp.any(kappa0 != 0)
    guess_p = jax.lax.stop_gradient(p)
    d_inf0, log_q0 = _chaos_guess(guess_p, jax.lax.stop_gradient(kappa0))
    y0 = jnp.concatenate([jax.lax.stop_gradient(kappa0), jnp.stack([d_inf0, log_q0])])
    y0 = _trust_region(_chaos_residual, y0, (p, nonzero))
    sol = optx.root_find(
        _chaos_residual, optx.Newton(rtol, atol), y0, args=(p, nonzero),
        max_steps=max_steps, throw=False,
    )
    kappa, d_inf, q = sol.value[:R], sol.value[R], jnp.exp(sol.value[R + 1])
    residual = jnp.max(jnp.abs(_chaos_residual(sol.value, (p, nonzero))))
    ok = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
    ok = ok & (d_inf >= -atol) & ~(nonzero & (jnp.sum(kappa**2) < 1e-12))
    st = _stats(p, kappa)
    eig = _chaos_kappa_stability(p, kappa, d_inf + q)
    eig = jnp.concatenate([eig, jnp.full((1,), jnp.nan, eig.dtype)])
    outlier = jnp.nanmax(eig.real)
    _, _, _, _, _, dphi2 = _gain_averages(p, st, st.L + d_inf + q)
    return LowRankSolution(
        kappa=kappa,
        mu=st.mu,
        delta0=st.L + d_inf + q,
        delta_inf=st.L + d_inf,
        regime=jnp.asarray(CHAOTIC),
        bulk_radius=p.g * jnp.sqrt(jnp.sum(p.fractions * dphi2)),
        eigenvalues=eig,
        outlier=outlier,
        stable=outlier < 0.0,
        residual=residual,
        result=RESULTS.where(ok, RESULTS.successful, RESULTS.chaotic_not_converged),
    )


def _kappa_scale(p: _Point):
    """RMS of n: |kappa| cannot exceed it for |phi| <= 1; a guess on the outer branch."""
    st = _stats(p, jnp.zeros(p.rank, p.means.dtype))
    second = st.a_n**2 + jnp.diagonal(p.covs[:, p.rank : 2 * p.rank, p.rank : 2 * p.rank], 0, 1, 2)
    return jnp.sqrt(jnp.sum(p.fractions[:, None] * second, 0)) + 0.5


def default_guesses(p: _Point, branch: str) -> Float[Array, "guesses R"]:
    """kappa = 0 and +-scale along each latent axis: the branches of rank one, and the
    axis-aligned ones of higher rank. Chaotic kappa is smaller: start at scale / 10."""
    scale = _kappa_scale(p) * (1.0 if branch == "fixed_point" else 0.1)
    eye = jnp.eye(p.rank, dtype=scale.dtype) * scale[None, :]
    return jnp.concatenate([jnp.zeros((1, p.rank), scale.dtype), eye, -eye], axis=0)


def _check_common(ensemble, rtol, atol, max_steps):
    _check_ensemble(ensemble)
    rtol, atol = tolerances(rtol, atol, ensemble.g.dtype)
    check_tolerance(rtol, atol, max_steps)
    return rtol, atol


def _check_point(p: _Point) -> _Point:
    g = eqx.error_if(p.g, ~jnp.isfinite(p.g) | (p.g < 0), "`g` must be finite and non-negative.")
    means = eqx.error_if(p.means, ~jnp.isfinite(p.means), "`mean(s)` must be finite.")
    inputs = eqx.error_if(p.inputs, ~jnp.isfinite(p.inputs), "`inputs` must be finite.")
    return eqx.tree_at(lambda q: (q.g, q.means, q.inputs), p, (g, means, inputs))


@eqx.filter_jit
def solve_lowrank(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa0: Float[ArrayLike, "*guesses rank"] | None = None,
    *,
    inputs: Float[ArrayLike, "*batch n_inputs"] | None = None,
    branch: str = "fixed_point",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 24,
    throw: bool = True,
) -> LowRankSolution:
    """Mean-field solutions of a low-rank (plus random) ensemble or a Gaussian mixture.

    **Arguments:**

    - `ensemble`: a [`mfrnn.LowRankEnsemble`][] or [`mfrnn.MixtureEnsemble`][]. Its
      fields may be arrays over a grid (`LowRankEnsemble.rank_one(sigma_mn=grid)`).
    - `kappa0`: initial guesses, shape `(*guesses, rank)`; the solution gets the axes
      `(*batch, *guesses)`. Default: kappa = 0 and +-scale along each latent axis
      (2 rank + 1 guesses). A nonzero guess solves on a kappa != 0 branch: it fails
      (flagged) rather than fall onto kappa = 0.
    - `inputs`: constant inputs u (n_inputs,), e.g. `mu = M_m kappa + M_I u`.
    - `branch`: "fixed_point" (stationary) or "chaotic" (kappa, Delta0, Delta_inf with
      temporal fluctuations; meaningful where the fixed points are unstable).
    - `rtol`, `atol`, `max_steps`: Newton settings (default 1e-10 float64, 1e-5 float32).
    - `throw`: raise if any point failed; with False check `solution.result`.

    **Returns:** a [`mfrnn.LowRankSolution`][], differentiable in the ensemble's fields.

    ```python
    ens = mfrnn.LowRankEnsemble.rank_one(sigma_mn=2.0, g=0.5)
    sol = mfrnn.solve_lowrank(ens)          # branches kappa = 0, +kappa, -kappa
    sol.kappa[:, 0], sol.stable
    ```
    """
    rtol, atol = _check_common(ensemble, rtol, atol, max_steps)
    if branch not in ("fixed_point", "chaotic"):
        raise ValueError(f"`branch` must be 'fixed_point' or 'chaotic', got {branch!r}.")
    point, batch = _points(ensemble, inputs)
    if kappa0 is not None:
        kappa0 = jnp.asarray(kappa0, point.means.dtype)
        if kappa0.shape[-1:] != (ensemble.rank,):
            raise ValueError(
                f"`kappa0` must have a last axis of length rank = {ensemble.rank}, "
                f"got shape {kappa0.shape}."
            )
        kappa0 = eqx.error_if(kappa0, ~jnp.isfinite(kappa0), "`kappa0` must be finite.")
    solve = _solve_fixed_point if branch == "fixed_point" else _solve_chaos

    def one(p):
        p = _check_point(p)
        guesses = default_guesses(p, branch) if kappa0 is None else kappa0
        fn = lambda k: solve(p, k, rtol, atol, max_steps)
        return vmap_batch(fn, guesses.ndim - 1)(guesses)

    sol = _map_points(one, point, batch)
    return raise_if_failed(sol, lambda s: s.kappa) if throw else sol


# ----------------------------------------------------------------------------------
# Reduced latent dynamics of mixtures (g = 0).


def _input_at(args, t, n_inputs, dtype):
    if args is None:
        return jnp.zeros((n_inputs,), dtype)
    return jnp.asarray(args(t) if callable(args) else args, dtype)


class LatentDynamics(eqx.Module):
    """The reduced latent ODE of a low-rank ensemble or mixture without random part,
    `tau dkappa/dt = -kappa + sum_p alpha_p E_p[n phi(x)]` (THEORY.md 1.4), as a
    diffrax vector field `(t, kappa, args)`; `args` is None, a constant input vector u,
    or a callable `t -> u(t)`. Exact at g = 0 for the latent part of x (orthogonal
    transients decay at rate 1/tau).

    ```python
    field = mfrnn.LatentDynamics(ens)
    sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0, 50, 0.1, kappa0)
    ```
    """

    ensemble: LowRankEnsemble | MixtureEnsemble

    def __check_init__(self):
        _check_ensemble(self.ensemble)
        g = self.ensemble.g
        if g.ndim or (is_concrete(g) and float(g) != 0.0):
            raise ValueError(
                "`LatentDynamics` needs a scalar ensemble with g = 0: with a random part the "
                "latent ODE is not closed (use `solve_lowrank` for its fixed points)."
            )

    def __call__(self, t, kappa: Float[Array, " rank"], args) -> Float[Array, " rank"]:
        ens = self.ensemble
        u = _input_at(args, t, ens.n_inputs, kappa.dtype)
        p, _ = _points(ens, u)
        st = _stats(p, kappa)
        return (-kappa + _kappa_map(p, st, st.L)) / ens.tau


def effective_couplings(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa: Float[ArrayLike, " rank"],
    inputs: Float[ArrayLike, " n_inputs"] | None = None,
    delta_random: ArrayLike = 0.0,
) -> tuple[Float[Array, "rank rank"], Float[Array, "rank n_inputs"]]:
    """Effective couplings of a mixture at the state kappa (THEORY.md 1.4):
    `sigma~_{n_r m_r'} = sum_p alpha_p sigma^p_{n_r m_r'} <phi'>_p` and likewise
    `sigma~_{n_r I_s}`. `<.>_p` is Gaussian with the population's mean and variance
    `L_p + delta_random` (the random field's variance; 0 at g = 0). Scaling a
    population's gain (`MixtureEnsemble.with_gains`) changes them through <phi'>_p.
    """
    p, batch = _points(ensemble, inputs)
    if batch:
        raise ValueError("`effective_couplings` needs an unbatched ensemble; vmap over it.")
    kappa = jnp.asarray(kappa, p.means.dtype)
    st = _stats(p, kappa)
    delta = st.L + delta_random
    gain = _per_population(lambda m, d: p.phi.gaussian_mean(m, d, "dphi"), st.mu, delta)
    idx = loading_index(p.rank, p.n_inputs)
    i_n = np.array(idx["n"])
    w = (p.fractions * gain)[:, None, None]
    nm = jnp.sum(w * p.covs[:, i_n][:, :, np.array(idx["m"])], 0)
    nI = jnp.sum(w * p.covs[:, i_n][:, :, np.array(idx["I"], dtype=int)], 0)
    return nm, nI
