"""The mean-field core of low-rank (plus random) networks and Gaussian mixtures: one grid
point, its residuals, solves and stability. Names are public within the package; the
entry points live in `lowrank.py` (solutions) and `phase.py` (phase diagrams).

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
  L_p + D}`; `V'(D_inf) = 0` and `V(D0) = V(D_inf)` (divided by q^2, so that the static
  root q = 0 is not a root).
- Outliers of the fixed point's Jacobian `-1 + J diag(phi')` (for |z| outside the bulk):
  the eigenvalues z - 1 of the (R+1) x (R+1) matrix `[[A, g^2 B], [C^T, g^2 d]]`, with
  `A = E[n m^T phi']`, `B = E[n phi'']`, `C = E[phi phi' m]`, `d = E[phi'^2 + phi phi'']`
  (mixture averages). The extra row is the response of the random field's variance:
  eta_i and the perturbation's field share row i of the random matrix. At g = 0 it
  reduces to the latent Jacobian `-1 + A`. Stability is decided by Routh-Hurwitz on
  the characteristic polynomial (no eigensolver: it runs on every backend).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Complex, Float, Int

from .._ensembles import LowRankEnsemble, MixtureEnsemble
from .._ensembles.low_rank import loading_index
from .._misc import check_tolerance, tolerances
from .._nonlinearities import AbstractNonlinearity, AbstractQuadratureNonlinearity
from .._solution import (
    CHAOTIC,
    FIXED_POINT,
    QUIESCENT,
    RESULTS,
    summary_repr,
    vmap_batch,
)
from .branches import Branch
from .eigen import hurwitz_stable, small_eigvals
from .guesses import chaotic_q_guess, newton_step


# ----------------------------------------------------------------------------------
# One grid point in mixture form.


class Point(eqx.Module):
    """One grid point; built with leading batch axes and vmapped down to one."""

    fractions: Float[Array, "*batch P"]
    means: Float[Array, "*batch P k"]
    covs: Float[Array, "*batch P k k"]
    g: Float[Array, "*batch"]
    bias: Float[Array, "*batch"]
    inputs: Float[Array, "*batch S"]
    phi: AbstractNonlinearity
    rank: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)


def check_ensemble(ensemble) -> None:
    if not isinstance(ensemble, (LowRankEnsemble, MixtureEnsemble)):
        raise ValueError(
            "`ensemble` must be a LowRankEnsemble or MixtureEnsemble, got "
            f"{type(ensemble).__name__}."
        )


def points(ensemble, inputs) -> tuple[Point, tuple[int, ...]]:
    """The ensemble as a batch of `Point`s broadcast to one batch shape."""
    check_ensemble(ensemble)
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
    point = Point(
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


def point_arrays(p: Point):
    """The batched array fields of a point (phi is shared)."""
    return (p.fractions, p.means, p.covs, p.g, p.bias, p.inputs)


def map_points(fn, point: Point, batch):
    """`fn(point)` vmapped over the batch axes of the point's arrays."""

    def one(*arrays):
        return fn(eqx.tree_at(point_arrays, point, arrays))

    return vmap_batch(one, len(batch))(*point_arrays(point))


def coarse(p: Point, order: int = 41) -> Point:
    """The point with a coarse quadrature rule (for initial guesses only: a two-point
    average costs order**2 evaluations). Closed-form nonlinearities are unchanged.
    Not coarser than 41 nodes: near small temporal variance q the energy balance is
    divided by q^2, and a 25-node rule's error at variances ~7 put spurious roots there."""
    phi = p.phi
    if isinstance(phi, AbstractQuadratureNonlinearity) and phi.order > order:
        phi = dataclasses.replace(phi, order=order)
    return dataclasses.replace(p, phi=phi)


class Stats(eqx.Module):
    """Per-population statistics of x and of its covariances with the loadings."""

    mu: Float[Array, " P"]
    L: Float[Array, " P"]
    a_n: Float[Array, "P R"]
    k_n: Float[Array, "P R"]
    a_m: Float[Array, "P R"]
    k_m: Float[Array, "P R"]
    c_nm: Float[Array, "P R R"]


def stats(p: Point, kappa) -> Stats:
    idx = loading_index(p.rank, p.n_inputs)
    iw = np.array(idx["m"] + idx["I"])  # loadings that drive x
    i_n, i_m = np.array(idx["n"]), np.array(idx["m"])
    s = jnp.concatenate([kappa, p.inputs])
    cw = p.covs[:, iw][:, :, iw]
    return Stats(
        mu=p.bias + p.means[:, iw] @ s,
        L=jnp.einsum("i,pij,j->p", s, cw, s),
        a_n=p.means[:, i_n],
        k_n=jnp.einsum("pij,j->pi", p.covs[:, i_n][:, :, iw], s),
        a_m=p.means[:, i_m],
        k_m=jnp.einsum("pij,j->pi", p.covs[:, i_m][:, :, iw], s),
        c_nm=p.covs[:, i_n][:, :, i_m],
    )


def per_population(fn, *arrays):
    return jax.vmap(fn)(*arrays)


def kappa_map(p: Point, st: Stats, delta):
    """`sum_p alpha_p E_p[n phi(x)]` with x ~ N(mu_p, delta_p)."""
    m1 = per_population(p.phi.gaussian_mean, st.mu, delta)
    m1p = per_population(lambda m, d: p.phi.gaussian_mean(m, d, "dphi"), st.mu, delta)
    return jnp.sum(p.fractions[:, None] * (st.a_n * m1[:, None] + st.k_n * m1p[:, None]), 0)


def kappa_residual(p, st, kappa, delta, nonzero):
    # On a kappa != 0 branch divide by |kappa| so that kappa = 0 (a root whenever phi is
    # odd and the loadings are centred) is no longer a root.
    scale = jnp.where(nonzero, jnp.sqrt(jnp.sum(kappa**2) + 1e-300), 1.0)
    return (kappa - kappa_map(p, st, delta)) / scale


def random_variance(p, st, delta):
    m2 = per_population(p.phi.gaussian_second_moment, st.mu, delta)
    return p.g**2 * jnp.sum(p.fractions * m2)


def static_residual(y, args):
    p, nonzero = args
    kappa, D = y[:-1], y[-1]
    st = stats(p, kappa)
    delta = st.L + D
    return jnp.concatenate(
        [kappa_residual(p, st, kappa, delta, nonzero), (D - random_variance(p, st, delta))[None]]
    )


def inf_residual(p, st, d_inf, q):
    """-V'(D_inf) alone (D_inf's own equation, for given q)."""
    C = per_population(p.phi.gaussian_correlation, st.mu, st.L + d_inf + q, st.L + d_inf)
    return d_inf - p.g**2 * jnp.sum(p.fractions * C)


def potential_gap(p, st, d_inf, q, integral: bool = True):
    """(V(D0) - V(D_inf)) / q^2 and -V'(D_inf), with D0 = D_inf + q.

    With `integral`, Taylor's theorem gives the gap without cancellation:
    `(V(D0) - V(D_inf)) / q^2 = V'(D_inf) / q + int_0^1 (1 - t) V''(D_inf + t q) dt`,
    `V''(D) = -1 + g^2 sum_p alpha_p <phi'(a) phi'(b)>` (Price); each population's
    remainder is `phi.gaussian_energy_gap`. The plain difference of two averages
    divided by q^2 amplifies the rule's error by 1/q^2, which moved the chaotic root
    near onset (q ~ 0.01) by tens of percent at 61 nodes. The plain form needs only
    averages of Phi, smoother than phi': on a coarse rule at large variance it is the
    better of the two (initial guesses)."""
    d0 = d_inf + q
    top, low = st.L + d0, st.L + d_inf
    g2 = p.g**2
    if not integral:
        Phi2 = per_population(
            lambda m, a: p.phi.gaussian_second_moment(m, a, "Phi"), st.mu, top
        )
        # Both two-point averages on one grid (one pass, one copy in the program).
        PhiC, C = per_population(
            lambda m, a, b: p.phi.gaussian_correlations(m, a, b, ("Phi", "phi")),
            st.mu, top, low,
        )
        v_top = -0.5 * d0**2 + g2 * jnp.sum(p.fractions * Phi2)
        v_inf = -0.5 * d_inf**2 + g2 * jnp.sum(p.fractions * PhiC)
        return (v_top - v_inf) / q**2, d_inf - g2 * jnp.sum(p.fractions * C)
    C, gap = per_population(p.phi.gaussian_energy_gap, st.mu, top, low)
    e_inf = d_inf - g2 * jnp.sum(p.fractions * C)
    # int_0^1 (1 - t) V''(D_inf + t q) dt with V'' = -1 + g^2 sum_p alpha_p [phi'].
    return -0.5 + g2 * jnp.sum(p.fractions * gap) - e_inf / q, e_inf


def chaos_residual(y, args):
    p, nonzero = args
    R = p.rank
    kappa, d_inf, q = y[:R], y[R], jnp.exp(y[R + 1])
    st = stats(p, kappa)
    energy, e_inf = potential_gap(p, st, d_inf, q)
    e_kappa = kappa_residual(p, st, kappa, st.L + d_inf + q, nonzero)
    return jnp.concatenate([e_kappa, jnp.stack([e_inf, energy])])


# ----------------------------------------------------------------------------------
# Stability.


def mu_derivatives(fn, mu, delta, n: int):
    """fn(mu, delta) and its first n derivatives in mu (Stein: d/dmu <f> = <f'>)."""
    out = [fn]
    for _ in range(n):
        out.append(jax.grad(out[-1], argnums=0))
    return [f(mu, delta) for f in out]


def gain_averages(p: Point, st: Stats, delta):
    """Per population: <phi'>, <phi''>, <phi'''>, <phi phi'>, <phi'^2 + phi phi''>, <phi'^2>."""

    def one(mu, d):
        f1 = lambda m, v: p.phi.gaussian_mean(m, v, "dphi")
        f2 = lambda m, v: 0.5 * p.phi.gaussian_second_moment(m, v)
        d1, d2, d3 = mu_derivatives(f1, mu, d, 2)
        _, pp1, pp2 = mu_derivatives(f2, mu, d, 2)
        return d1, d2, d3, pp1, pp2, p.phi.gaussian_second_moment(mu, d, "dphi")

    return per_population(one, st.mu, delta)


def latent_matrix(p: Point, st: Stats, d1, d2, d3):
    """`A = sum_p alpha_p E_p[n m^T phi'(x)]` by Stein's lemma (R x R)."""
    a_n, a_m, k_n, k_m = st.a_n, st.a_m, st.k_n, st.k_m
    outer = lambda u, v: u[:, :, None] * v[:, None, :]
    e = (
        (outer(a_n, a_m) + st.c_nm) * d1[:, None, None]
        + (outer(a_n, k_m) + outer(k_n, a_m)) * d2[:, None, None]
        + outer(k_n, k_m) * d3[:, None, None]
    )
    return jnp.sum(p.fractions[:, None, None] * e, 0)


def outlier_matrix(p: Point, kappa, D):
    """Bulk radius and the (R + 1) x (R + 1) matrix whose eigenvalues are the outliers
    `lambda = z - 1` of a fixed point (see the module notes)."""
    st = stats(p, kappa)
    d1, d2, d3, pp1, pp2, dphi2 = gain_averages(p, st, st.L + D)
    w = p.fractions
    A = latent_matrix(p, st, d1, d2, d3)
    B = jnp.sum(w[:, None] * (st.a_n * d2[:, None] + st.k_n * d3[:, None]), 0)
    C = jnp.sum(w[:, None] * (st.a_m * pp1[:, None] + st.k_m * pp2[:, None]), 0)
    d = jnp.sum(w * pp2)
    g2 = p.g**2
    top = jnp.concatenate([A, g2 * B[:, None]], axis=1)
    bottom = jnp.concatenate([C, g2 * d[None]])[None, :]
    M = jnp.concatenate([top, bottom], axis=0) - jnp.eye(p.rank + 1, dtype=A.dtype)
    return p.g * jnp.sqrt(jnp.sum(w * dphi2)), M


def fixed_point_stability(p: Point, kappa, D):
    """Bulk radius, the R + 1 outlier eigenvalues (lambda = z - 1) of a fixed point,
    and whether all of them have negative real part (Routh-Hurwitz)."""
    bulk, M = outlier_matrix(p, kappa, D)
    return bulk, small_eigvals(M), hurwitz_stable(M)


def manifold_dimension(p: Point, kappa, D, M, eig, tol) -> Int[Array, ""]:
    """Dimension of the manifold of fixed points through (kappa, D) around kappa = 0 (a
    ring, a sphere: rank two or more with rotation-symmetric loadings); 0 if isolated.

    Its directions have eigenvalue 0 exactly, which rounding makes +-1e-16: count the
    eigenvalues within `tol` of 0, and confirm by rotating kappa along the null
    direction (one inverse-iteration step on M) by a quarter and a half turn: the
    residual must stay within `tol` there, where an isolated point's is O(1)."""
    R = p.rank
    if R < 2:
        return jnp.zeros((), jnp.int32)
    n_zero = jnp.sum(jnp.abs(eig) <= tol).astype(jnp.int32)
    radius = jnp.sqrt(jnp.sum(kappa**2))
    k_hat = kappa / jnp.where(radius > 0, radius, 1.0)
    b = 1.0 + 0.1 * jnp.arange(R + 1, dtype=M.dtype)
    v = jnp.linalg.solve(M - 1e-3 * tol * jnp.eye(R + 1, dtype=M.dtype), b)[:R]
    t = v - jnp.dot(v, k_hat) * k_hat
    t_norm = jnp.sqrt(jnp.sum(t**2))
    t = t / jnp.where(t_norm > 0, t_norm, 1.0)

    def residual(theta):
        k = radius * (jnp.cos(theta) * k_hat + jnp.sin(theta) * t)
        y = jnp.concatenate([k, D[None]])
        return jnp.max(jnp.abs(static_residual(y, (p, jnp.asarray(True)))))

    turns = jnp.maximum(residual(0.5 * jnp.pi), residual(jnp.pi))
    ok = (n_zero > 0) & (radius > 0) & (t_norm > 1e-3 * jnp.sqrt(jnp.sum(v**2)))
    ok = ok & (turns <= tol)
    return jnp.where(ok, n_zero, 0)


def chaos_kappa_stability(p: Point, kappa, delta0):
    """Latent Jacobian `-1 + A` with the time-averaged gain of the chaotic state: its
    eigenvalues, and whether all have negative real part (stable along kappa)."""
    st = stats(p, kappa)
    d1, d2, d3, *_ = gain_averages(p, st, st.L + delta0)
    M = latent_matrix(p, st, d1, d2, d3) - jnp.eye(p.rank, dtype=d1.dtype)
    return small_eigvals(M), hurwitz_stable(M)


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
    - `stable`: fixed point: bulk_radius < 1 and all outlier eigenvalues have negative
      real part (Routh-Hurwitz), those along a manifold of fixed points excepted;
      chaotic: stable along kappa.
    - `manifold_dimension`: fixed point: the dimension of the manifold of fixed points
      it lies on (1: a ring attractor, R - 1: a sphere; 0: isolated). Its eigenvalues
      along the manifold are 0 and left out of `stable` and `outlier`.
    - `residual`, `result`: max |residual| and the [`mfrnn.RESULTS`][] code.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    kappa: Float[Array, "*batch rank"]
    mu: Float[Array, "*batch populations"]
    delta0: Float[Array, "*batch populations"]
    delta_inf: Float[Array, "*batch populations"]
    regime: Int[Array, "*batch"]
    bulk_radius: Float[Array, "*batch"]
    eigenvalues: Complex[Array, "*batch rank_plus_one"]
    outlier: Float[Array, "*batch"]
    stable: Bool[Array, "*batch"]
    manifold_dimension: Int[Array, "*batch"]
    residual: Float[Array, "*batch"]
    result: RESULTS


def static_linear_solver(p: Point) -> lx.AbstractLinearSolver:
    """From rank two the static Jacobian is singular on a ring (or sphere) of fixed
    points, along it: least-squares steps (SVD) there; LU, the cheapest, at rank one."""
    return lx.SVD() if p.rank >= 2 else lx.AutoLinearSolver(well_posed=None)


def trust_region(fn, y0, args, linear_solver=lx.AutoLinearSolver(well_posed=None)):
    """Bring a rough guess close to a root. Newton alone diverges from rough guesses of
    kappa; a trust region (dogleg) does not, and gets close in a few tens of steps.
    Not differentiated: the Newton polish that follows carries the implicit gradient."""
    return optx.least_squares(
        fn, optx.Dogleg(rtol=1e-6, atol=1e-8, linear_solver=linear_solver),
        jax.lax.stop_gradient(y0), args=jax.lax.stop_gradient(args), max_steps=40,
        throw=False,
    ).value


def initial_random_variance(p: Point, kappa, iterations: int = 30):
    st = stats(p, kappa)
    body = lambda _, D: random_variance(p, st, st.L + D)
    return jax.lax.fori_loop(0, iterations, body, jnp.minimum(p.g**2, 1.0) * 0.5)


def newton(fn, y0, args, rtol, atol, max_steps, linear_solver=None):
    linear_solver = linear_solver or lx.AutoLinearSolver(well_posed=None)
    solver = optx.Newton(rtol, atol, linear_solver=linear_solver)
    return optx.root_find(fn, solver, y0, args=args, max_steps=max_steps, throw=False)


# Newton steps from a guess without the trust region: enough for the slow (linear)
# convergence near g = 1, where Delta0 -> 0 is a degenerate root; 8 failed there.
QUICK_NEWTON_STEPS = 12


def solve_fixed_point(
    p: Point, kappa0, rtol, atol, max_steps, robust: bool = True
) -> LowRankSolution:
    """A fixed point from the guess kappa0. `robust`: a trust region first (slow; rough
    guesses); otherwise Newton straight from the guess."""
    nonzero = jnp.any(kappa0 != 0)
    y0 = fixed_point_start(p, kappa0, robust)
    if robust:  # on the full rule: one-point averages are cheap, and a coarse rule's
        # root can lie far from the true one at large variance
        y0 = trust_region(static_residual, y0, (p, nonzero), static_linear_solver(p))
    else:  # Newton converges in a few steps or not at all; the caller retries robustly
        max_steps = min(max_steps, QUICK_NEWTON_STEPS)
    sol = newton(
        static_residual, y0, (p, nonzero), rtol, atol, max_steps, static_linear_solver(p)
    )
    converged = sol.result == optx.RESULTS.successful
    return fixed_point_result(p, sol.value, converged, nonzero, rtol, atol)


def fixed_point_start(p: Point, kappa0, robust: bool) -> Float[Array, " dim"]:
    """Newton's start (kappa0, D) with D iterated on a coarse rule."""
    pc = jax.lax.stop_gradient(coarse(p))
    D0 = jax.lax.stop_gradient(initial_random_variance(pc, kappa0, 30 if robust else 8))
    return jnp.concatenate([kappa0, D0[None]])


def fixed_point_result(p: Point, y, converged, nonzero, rtol, atol) -> LowRankSolution:
    """The fixed point at the Newton iterate y = (kappa, D), with its checks
    (`converged`: Newton's verdict; D >= 0; kappa != 0 on a nonzero branch), bulk
    radius, outliers and stability."""
    R = p.rank
    kappa, D = y[:R], y[R]
    residual = jnp.max(jnp.abs(static_residual(y, (p, nonzero))))
    ok = converged & jnp.all(jnp.isfinite(y))
    ok = ok & (D >= -atol) & ~(nonzero & (jnp.sum(kappa**2) < 1e-12))
    st = stats(p, kappa)
    bulk, M = outlier_matrix(p, kappa, D)
    eig = small_eigvals(M)
    marginal_tol = 10.0 * jnp.sqrt(max(rtol, atol))  # zero eigenvalues to the solve's accuracy
    manifold = manifold_dimension(p, kappa, D, M, eig, marginal_tol)
    outliers_stable = hurwitz_stable(M, marginal=manifold)
    # Along a manifold the zero eigenvalues say nothing: the largest of the others.
    along = (manifold > 0) & (jnp.abs(eig) <= marginal_tol)
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
        outlier=jnp.max(jnp.where(along, -jnp.inf, eig.real)),
        stable=(bulk < 1.0) & outliers_stable,
        manifold_dimension=manifold,
        residual=residual,
        result=RESULTS.where(ok, RESULTS.successful, RESULTS.static_not_converged),
    )


def chaos_guess(p: Point, kappa0, order: int | None = 41):
    """(D_inf, log q) with kappa held at its guess, on a rule of at most `order` nodes
    (None: the point's own), from the energy balance (`chaotic_q_guess`), and whether
    the static state at kappa0 is unstable (bulk radius > 1: above onset)."""
    p = jax.lax.stop_gradient(p if order is None else coarse(p, order))
    kappa0 = jax.lax.stop_gradient(kappa0)
    st = stats(p, kappa0)
    d_start = initial_random_variance(p, kappa0)
    scale = 1.0 + d_start + p.g**2
    d_max = 10.0 * scale

    def inf_newton(d, q):
        return newton_step(lambda x: inf_residual(p, st, x, q), d, d_max)

    balance = lambda d, log_q: potential_gap(p, st, d, jnp.exp(log_q), False)[0]
    # q < Delta0, a few times the scale at most: the grid's top at 10 scale. At small q
    # an unconverged D_inf dominates the balance: two Newton steps per q keep it close.
    d, log_q = chaotic_q_guess(
        balance, inf_newton, jnp.zeros_like(d_start), jnp.log(1e-4 * scale),
        jnp.log(10.0 * scale), scan=9, steps=8, newton_steps=2,
    )
    dphi2 = per_population(
        lambda mu, v: p.phi.gaussian_second_moment(mu, v, "dphi"), st.mu, st.L + d_start
    )
    return d, log_q, p.g**2 * jnp.sum(p.fractions * dphi2) > 1.0


def _chaos_solution(p, kappa, d_inf, q, residual, ok) -> LowRankSolution:
    st = stats(p, kappa)
    eig, stable = chaos_kappa_stability(p, kappa, d_inf + q)
    eig = jnp.concatenate([eig, jnp.full((1,), jnp.nan, eig.dtype)])
    _, _, _, _, _, dphi2 = gain_averages(p, st, st.L + d_inf + q)
    return LowRankSolution(
        kappa=kappa,
        mu=st.mu,
        delta0=st.L + d_inf + q,
        delta_inf=st.L + d_inf,
        regime=jnp.asarray(CHAOTIC),
        bulk_radius=p.g * jnp.sqrt(jnp.sum(p.fractions * dphi2)),
        eigenvalues=eig,
        outlier=jnp.nanmax(eig.real),
        stable=stable,
        manifold_dimension=jnp.zeros((), jnp.int32),
        residual=residual,
        result=RESULTS.where(ok, RESULTS.successful, RESULTS.chaotic_not_converged),
    )


# q / Delta0 of the fallback Newton starts of chaotic solves (`solve_chaos`, and the
# phase diagram's last retry).
LADDER = 2.0 ** np.arange(-12, 1)


def solve_chaos(
    p: Point, kappa0, rtol, atol, max_steps, robust: bool = True, start=None
) -> LowRankSolution:
    """The chaotic state from the guess kappa0: a coarse-rule guess for (D_inf, q), with
    `robust` a trust region, then Newton. `start`: (delta_inf of the first population,
    q) of a converged neighbour, used instead of the guess where finite (near onset,
    where q is small, the guess is least accurate).

    Where Newton fails above onset from kappa0 = 0, it starts again from the guess's
    Delta0 with q / Delta0 on `LADDER`, one rung after another until one converges: the
    coarse rule's error, amplified by 1/q near onset with a large static variance
    (positive rates), can put the guessed q orders of magnitude off. A last Newton solve
    from the root found carries the implicit gradient."""
    nonzero = jnp.any(kappa0 != 0)
    kappa0 = jax.lax.stop_gradient(kappa0)
    d_inf0, log_q0, above = chaos_guess(p, kappa0)
    delta0 = d_inf0 + jnp.exp(log_q0)
    if start is not None:
        delta_inf, q = start
        use = jnp.isfinite(delta_inf) & jnp.isfinite(q) & (q > 0)
        d_start = delta_inf - stats(p, kappa0).L[0]
        d_inf0 = jnp.where(use, d_start, d_inf0)
        log_q0 = jnp.where(use, jnp.log(jnp.where(use, q, 1.0)), log_q0)
    y0 = jnp.concatenate([kappa0, jnp.stack([d_inf0, log_q0])])
    if robust:
        y0 = trust_region(chaos_residual, y0, (p, nonzero))
    frozen = jax.lax.stop_gradient((p, nonzero))

    def solve(y, steps):
        sol = newton(chaos_residual, y, frozen, rtol, atol, steps)
        r = chaos_residual(sol.value, frozen)
        converged = sol.result == optx.RESULTS.successful
        return sol.value, chaos_ok(frozen[0], sol.value, r, converged, nonzero, atol)

    def rung(carry):
        k, y, _ = carry
        q = delta0 * jnp.asarray(LADDER, delta0.dtype)[k]
        start_k = jnp.concatenate([kappa0, jnp.stack([delta0 - q, jnp.log(q)])])
        y_k, ok = solve(start_k, min(max_steps, QUICK_NEWTON_STEPS))
        return k + 1, jnp.where(ok, y_k, y), ok

    retry = lambda carry: (carry[0] < LADDER.size) & ~carry[2] & above & ~nonzero
    _, y, _ = jax.lax.while_loop(retry, rung, (0, *solve(y0, max_steps)))
    sol = newton(chaos_residual, jax.lax.stop_gradient(y), (p, nonzero), rtol, atol, max_steps)
    return chaos_result(p, sol.value, sol.result == optx.RESULTS.successful, nonzero, atol)


def chaos_ok(p: Point, y, r, converged, nonzero, atol):
    """Whether the Newton iterate y = (kappa, D_inf, log q), with residual r, is a
    chaotic state: `converged` (Newton's verdict), finite, non-negative D_inf, kappa != 0
    on a nonzero branch, and q clear of 0."""
    R = p.rank
    kappa, d_inf, q = y[:R], y[R], jnp.exp(y[R + 1])
    ok = converged & jnp.all(jnp.isfinite(y))
    ok = ok & (d_inf >= -atol) & ~(nonzero & (jnp.sum(kappa**2) < 1e-12))
    # q -> 0 is the static root in disguise: D_inf's equation holds only to O(q) there,
    # and -V'(D_inf) / q stays O(1) (g^2 <phi'^2> - 1) / 2 in the balance. At a chaotic
    # root it is the Newton tolerance over q.
    return ok & (q > 1e-10 * (1.0 + jnp.abs(d_inf))) & (jnp.abs(r[R]) <= 1e-2 * q)


def chaos_result(p: Point, y, converged, nonzero, atol) -> LowRankSolution:
    """The chaotic state at the Newton iterate y = (kappa, D_inf, log q), with its
    checks (`chaos_ok`)."""
    R = p.rank
    r = chaos_residual(y, (p, nonzero))
    ok = chaos_ok(p, y, r, converged, nonzero, atol)
    return _chaos_solution(p, y[:R], y[R], jnp.exp(y[R + 1]), jnp.max(jnp.abs(r)), ok)


def zero_chaos_solution(p: Point, d_inf, q, residual, ok) -> LowRankSolution:
    """The kappa = 0 chaotic state of `p` from a chaotic solve with kappa held at 0 (possibly
    solved at another point with the same random-field statistics, hence the same
    residual)."""
    kappa = jnp.zeros(p.rank, p.means.dtype)
    return _chaos_solution(p, kappa, d_inf, q, residual, ok)


def kappa_scale(p: Point):
    """RMS of n: |kappa| cannot exceed it for |phi| <= 1; a guess on the outer branch."""
    st = stats(p, jnp.zeros(p.rank, p.means.dtype))
    second = st.a_n**2 + jnp.diagonal(p.covs[:, p.rank : 2 * p.rank, p.rank : 2 * p.rank], 0, 1, 2)
    return jnp.sqrt(jnp.sum(p.fractions[:, None] * second, 0)) + 0.5


def default_guesses(p: Point, branch: Branch) -> Float[Array, "guesses R"]:
    """kappa = 0 and +-scale along each latent axis: the branches of rank one, and the
    axis-aligned ones of higher rank. Chaotic kappa is smaller: start at scale / 10."""
    scale = kappa_scale(p) * (1.0 if branch is Branch.fixed_point else 0.1)
    eye = jnp.eye(p.rank, dtype=scale.dtype) * scale[None, :]
    return jnp.concatenate([jnp.zeros((1, p.rank), scale.dtype), eye, -eye], axis=0)


def check_common(ensemble, rtol, atol, max_steps):
    check_ensemble(ensemble)
    rtol, atol = tolerances(rtol, atol, ensemble.g.dtype)
    check_tolerance(rtol, atol, max_steps)
    return rtol, atol


def check_point_on_host(p: Point) -> None:
    """`check_point` for concrete points, before any compiled stage: a program with the
    checks' host callbacks cannot enter the persistent compilation cache."""
    for name, value, bad in (
        ("g", p.g, lambda a: ~np.isfinite(a) | (a < 0)),
        ("mean(s)", p.means, lambda a: ~np.isfinite(a)),
        ("inputs", p.inputs, lambda a: ~np.isfinite(a)),
    ):
        if np.any(bad(np.asarray(value))):
            extra = " and non-negative" if name == "g" else ""
            raise ValueError(f"`{name}` must be finite{extra}.")


def check_point(p: Point) -> Point:
    g = eqx.error_if(p.g, ~jnp.isfinite(p.g) | (p.g < 0), "`g` must be finite and non-negative.")
    means = eqx.error_if(p.means, ~jnp.isfinite(p.means), "`mean(s)` must be finite.")
    inputs = eqx.error_if(p.inputs, ~jnp.isfinite(p.inputs), "`inputs` must be finite.")
    return eqx.tree_at(lambda q: (q.g, q.means, q.inputs), p, (g, means, inputs))
