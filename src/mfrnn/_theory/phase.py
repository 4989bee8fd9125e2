"""Phase diagrams of low-rank plus random networks and their boundaries (THEORY.md 1.3).

The phase of a grid point is decided by stability criteria (pitfall 14): the bulk radius
and outliers of each fixed point, and the latent Jacobian of the kappa = 0 chaotic state;
never by which root a solver landed on.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._ensembles import GaussianEnsemble, LowRankEnsemble, MixtureEnsemble
from .._nonlinearities import AbstractNonlinearity, Tanh
from .._solution import raise_if_failed, RESULTS, vmap_batch
from .._misc import check_tolerance, tolerances
from .dmft import solve_dmft
from .lowrank import (
    _check_common,
    _check_point,
    _fixed_point_stability,
    _kappa_scale,
    _BATCHED,
    _map_points,
    _Point,
    _points,
    _solve_chaos,
    _solve_fixed_point,
    _static_residual,
    _stats,
    default_guesses,
)


# Phase codes of `PhaseDiagram.phase`.
QUIESCENT_PHASE, FIXED_POINT_PHASE, CHAOTIC_PHASE, CHAOTIC_KAPPA_PHASE = 0, 1, 2, 3
PHASE_NAMES = ("quiescent", "fixed_point", "chaotic", "chaotic_kappa")


class PhaseDiagram(eqx.Module):
    """Per grid point: the phase and the order parameters of the selected state.

    - `phase`: 0 quiescent (stable kappa = 0 fixed point), 1 heterogeneous fixed point
      with kappa != 0 (+-kappa when symmetric), 2 chaos with kappa = 0, 3 chaos with
      kappa != 0; names in `mfrnn.PHASE_NAMES`.
    - `kappa`, `delta0`, `delta_inf`: of that state (per population for the deltas).
    - `bulk_radius`: of the fixed point that decided the phase (the kappa = 0 one
      unless a kappa != 0 fixed point is stable); > 1 means chaos.
    - `outlier`: its leading outlier eigenvalue (in chaos: of the latent Jacobian with
      time-averaged gains of the kappa = 0 chaotic state).
    - `success`: the phase and order parameters are trustworthy; `result` says why not.
    """

    phase: Int[Array, "*batch"]
    kappa: Float[Array, "*batch rank"]
    delta0: Float[Array, "*batch populations"]
    delta_inf: Float[Array, "*batch populations"]
    bulk_radius: Float[Array, "*batch"]
    outlier: Float[Array, "*batch"]
    success: Bool[Array, "*batch"]
    result: RESULTS


def _pick(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _stand_in(p, needed):
    """`p` where `needed`, else a zero-mean rank-R point (sigma_m = 1, sigma_n = 3,
    sigma_mn = 3, g = 2.5) whose chaotic states (kappa = 0 and kappa != 0) exist."""
    R, S, P = p.rank, p.n_inputs, p.fractions.shape[0]
    k = 2 * R + S
    cov = np.eye(k)
    for r in range(R):
        cov[R + r, R + r], cov[r, R + r], cov[R + r, r] = 9.0, 3.0, 3.0
    dtype = p.means.dtype
    safe = _Point(
        fractions=jnp.full((P,), 1.0 / P, dtype),
        means=jnp.zeros((P, k), dtype),
        covs=jnp.broadcast_to(jnp.asarray(cov, dtype), (P, k, k)),
        g=jnp.asarray(2.5, dtype),
        bias=jnp.zeros((), dtype),
        inputs=jnp.zeros((S,), dtype),
        phi=p.phi,
        rank=R,
        n_inputs=S,
    )
    return jax.tree.map(lambda a, b: jnp.where(needed, a, b), p, safe)


def _phase_single(p, rtol, atol, max_steps) -> PhaseDiagram:
    p = _check_point(p)
    R = p.rank
    settings = (rtol, atol, max_steps)
    fixed = jax.vmap(lambda k: _solve_fixed_point(p, k, *settings))(
        default_guesses(p, "fixed_point")
    )
    tol = 1e-6 * jnp.max(_kappa_scale(p))
    size = lambda s: jnp.sqrt(jnp.sum(s.kappa**2, axis=-1))
    f_ok = fixed.result == RESULTS.successful
    f_nonzero = f_ok & (size(fixed) > tol)

    stable_kappa = f_nonzero & fixed.stable
    has_fp = jnp.any(stable_kappa)
    zero_fp = _pick(fixed, 0)
    zero_stable = f_ok[0] & ~f_nonzero[0] & zero_fp.stable
    # kappa = 0 destabilised by an outlier only: a kappa != 0 fixed point must exist.
    missing_fp = (zero_fp.bulk_radius < 1.0) & ~zero_fp.stable & ~jnp.any(f_nonzero)
    static_failed = ~has_fp & (~f_ok[0] | missing_fp)
    chaotic = ~has_fp & ~zero_stable & ~static_failed

    # The chaotic solves are the expensive ones (two-point averages) and, vmapped, the
    # slowest point sets the pace: where a solve is not needed it runs on a stand-in
    # point that converges in a few steps, and its result is discarded.
    # kappa = 0 first; the kappa != 0 guesses only if that state is unstable along
    # kappa. A scan, so the chaotic solve is compiled once.
    def body(zero_stable_so_far, inputs):
        i, k = inputs
        needed = chaotic & ((i == 0) | ~zero_stable_so_far)
        sol = _solve_chaos(_stand_in(p, needed), k, *settings)
        zero_stable = (sol.result == RESULTS.successful) & (size(sol) <= tol) & sol.stable
        return jnp.where(i == 0, zero_stable, zero_stable_so_far), sol

    guesses = default_guesses(p, "chaotic")[: R + 1]  # 0 and + along each latent axis
    zero_chaos_stable, chaos = jax.lax.scan(
        body, jnp.asarray(False), (jnp.arange(R + 1), guesses)
    )
    zero_chaos = _pick(chaos, 0)
    c_nonzero = (chaos.result == RESULTS.successful) & (size(chaos) > tol)
    c_nonzero = c_nonzero.at[0].set(False)
    has_chaos_kappa = jnp.any(c_nonzero)
    chaos_failed = chaotic & ~zero_chaos_stable & ~has_chaos_kappa

    fp = _pick(fixed, jnp.argmax(stable_kappa))
    ck = _pick(chaos, jnp.argmax(c_nonzero))
    phase = jnp.where(
        has_fp,
        FIXED_POINT_PHASE,
        jnp.where(
            zero_stable,
            jnp.where(zero_fp.regime == 0, QUIESCENT_PHASE, FIXED_POINT_PHASE),
            jnp.where(zero_chaos_stable, CHAOTIC_PHASE, CHAOTIC_KAPPA_PHASE),
        ),
    )
    state = jax.tree.map(
        lambda a, b, c, d: jnp.where(
            has_fp, a, jnp.where(zero_stable, b, jnp.where(zero_chaos_stable, c, d))
        ),
        fp, zero_fp, zero_chaos, ck,
    )
    decider = jax.tree.map(lambda a, b: jnp.where(has_fp, a, b), fp, zero_fp)
    outlier = jnp.where(chaotic, zero_chaos.outlier, decider.outlier)
    result = RESULTS.where(static_failed, RESULTS.static_not_converged, RESULTS.successful)
    result = RESULTS.where(chaos_failed, RESULTS.chaotic_not_converged, result)
    return PhaseDiagram(
        phase=phase,
        kappa=state.kappa,
        delta0=state.delta0,
        delta_inf=state.delta_inf,
        bulk_radius=decider.bulk_radius,
        outlier=outlier,
        success=result == RESULTS.successful,
        result=result,
    )


def _shard(tree, n_devices: int):
    """Put the leading (flattened grid) axis of every array across the devices."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:n_devices]), ("grid",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("grid"))
    return jax.tree.map(lambda x: jax.device_put(x, spec), tree)


@eqx.filter_jit
def _phase_flat(point, rtol, atol, max_steps):
    return _map_points(lambda p: _phase_single(p, rtol, atol, max_steps), point, point.g.shape)


def phase_diagram(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    *,
    inputs: Float[ArrayLike, "*batch n_inputs"] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 24,
    shard: bool = True,
    throw: bool = False,
) -> PhaseDiagram:
    """Phases and order parameters over a parameter grid, in one jit-compiled call.

    Per point: the fixed points from kappa = 0 and +-kappa guesses, their bulk radius and
    outliers; if none is stable, the chaotic states with kappa = 0 and kappa != 0, and
    the kappa-stability of the former. Labels follow from stability (see
    [`mfrnn.PhaseDiagram`][]).

    **Arguments:**

    - `ensemble`: fields as arrays over a grid, e.g.
      `LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G)` with `G, S = meshgrid(...)`.
    - `inputs`: constant inputs, broadcast against the grid.
    - `rtol`, `atol`, `max_steps`: Newton settings.
    - `shard`: with several devices, split the grid across them (jax.sharding).
    - `throw`: raise if any point failed (default False: check `success`).

    ```python
    G, S = jnp.meshgrid(jnp.linspace(0.2, 3, 40), jnp.linspace(0, 3, 40), indexing="ij")
    pd = mfrnn.phase_diagram(mfrnn.LowRankEnsemble.rank_one(sigma_mn=S, sigma_n=3.0, g=G))
    ```
    """
    rtol, atol = _check_common(ensemble, rtol, atol, max_steps)
    point, batch = _points(ensemble, inputs)
    size = int(np.prod(batch))
    flat = jax.tree.map(
        lambda x: x.reshape((size,) + x.shape[len(batch) :]) if eqx.is_array(x) else x, point
    )
    n_dev = jax.device_count() if shard else 1
    # Vmapped, every point holds its quadrature arrays at once: work in chunks of a
    # size fixed by the quadrature order (~2 GB each, one compilation for all chunks).
    # On CPU smaller chunks also waste fewer Newton steps on each chunk's slowest point.
    order = getattr(ensemble.phi, "order", 61)
    base = 512.0 if jax.default_backend() == "cpu" else 2900.0
    chunk = max(16, 1 << int(np.log2(max(1.0, base * (61.0 / order) ** 2))))
    chunk = chunk * n_dev if chunk % n_dev else chunk
    if size > chunk:
        padded = -(-size // chunk) * chunk
    else:
        # Pad to a multiple of a step >= 16 that is ~1/16 of the size (and of the device
        # count): grids of similar size share one compilation, <= ~6 % extra work.
        step = max(16, 1 << max(0, size.bit_length() - 4))
        padded = -(-size // step) * step
        padded += (-padded) % n_dev
        chunk = padded
    pad = padded - size
    if pad:  # repeat the last point
        flat = jax.tree.map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, 0)]) if eqx.is_array(x) else x,
            flat,
        )
    parts = []
    for i in range(0, padded, chunk):
        part = jax.tree.map(lambda x: x[i : i + chunk] if eqx.is_array(x) else x, flat)
        if n_dev > 1:
            part = eqx.tree_at(_BATCHED, part, _shard(_BATCHED(part), n_dev))
        parts.append(_phase_flat(part, rtol, atol, max_steps))
    sol = parts[0] if len(parts) == 1 else jax.tree.map(lambda *x: jnp.concatenate(x), *parts)
    sol = jax.tree.map(lambda x: x[:size].reshape(batch + x.shape[1:]), sol)
    return raise_if_failed(sol, lambda s: s.kappa) if throw else sol


# ----------------------------------------------------------------------------------
# Boundaries.


class BoundarySolution(eqx.Module):
    """A phase boundary: the critical `value` (g or overlap), the state there, `result`."""

    value: Float[Array, "*batch"]
    kappa: Float[Array, "*batch rank"]
    delta0: Float[Array, "*batch"]
    result: RESULTS


def _check_phi(phi):
    if not isinstance(phi, AbstractNonlinearity):
        raise ValueError(f"`phi` must be an AbstractNonlinearity, got {phi!r}.")


@eqx.filter_jit
def kappa_instability_overlap(
    g: Float[ArrayLike, "*batch"], phi: AbstractNonlinearity = Tanh(), *, throw: bool = True
) -> BoundarySolution:
    """Overlap (sigma_mn, or M_m M_n) above which the kappa = 0 state is unstable along
    kappa: `overlap <phi'>_{0, Delta0_SCS(g)} = 1`. For g < 1 (Delta0 = 0) it is the
    pitchfork overlap = 1/phi'(0); for g > 1 the chaos(kappa = 0) -> chaos(kappa != 0)
    boundary (the g_BB curve). Needs odd phi, no bias and no input (kappa = 0 a solution).
    """
    _check_phi(phi)
    g = jnp.asarray(g, jnp.result_type(float))
    sol = solve_dmft(GaussianEnsemble(g, phi=phi), throw=False)
    dphi = vmap_batch(lambda d: phi.gaussian_mean(0.0, d, "dphi"), g.ndim)(sol.delta0)
    out = BoundarySolution(
        value=1.0 / dphi, kappa=jnp.zeros(g.shape + (1,), g.dtype), delta0=sol.delta0,
        result=sol.result,
    )
    return raise_if_failed(out, lambda s: s.value) if throw else out


def _gbb_residual(delta, args):
    overlap, phi = args
    return overlap * phi.gaussian_mean(0.0, delta, "dphi") - 1.0


@eqx.filter_jit
def kappa_instability_g(
    overlap: Float[ArrayLike, "*batch"],
    phi: AbstractNonlinearity = Tanh(),
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 80,
    throw: bool = True,
) -> BoundarySolution:
    """g_BB(overlap): the g above which chaos has kappa = 0 (the kappa != 0 chaotic
    branches end), from `overlap <phi'>_{0, Delta0} = 1` and the SCS energy balance
    `Delta0^2 / 2 = g^2 (<Phi^2> - <Phi>^2)_{0, Delta0}` (odd phi, no bias or input).
    Mastrogiuseppe & Ostojic 2018, M_m M_n = 2.2: g_BB = 2.136. Overlap <= 1: no
    boundary (result `no_onset`)."""
    _check_phi(phi)
    dtype = jnp.result_type(float)
    rtol, atol = tolerances(rtol, atol, dtype)
    check_tolerance(rtol, atol, max_steps)
    overlap = jnp.asarray(overlap, dtype)

    def one(o):
        # <phi'> falls from phi'(0) as Delta0 grows: bracket in log Delta0.
        ok_overlap = o * phi.derivative(0.0) > 1.0
        o_safe = jnp.where(ok_overlap, o, 2.0)
        sol = optx.root_find(
            lambda ld, a: _gbb_residual(jnp.exp(ld), a),
            optx.Bisection(rtol=1e-3, atol=1e-3, flip=True),
            jnp.asarray(0.0, dtype),
            args=(jax.lax.stop_gradient(o_safe), phi),
            options=dict(lower=jnp.log(1e-8), upper=jnp.log(1e4)),
            max_steps=200,
            throw=False,
        )
        fine = optx.root_find(
            _gbb_residual, optx.Newton(rtol, atol), jnp.exp(sol.value), args=(o_safe, phi),
            max_steps=max_steps, throw=False,
        )
        d0 = fine.value
        var_Phi = phi.gaussian_second_moment(0.0, d0, "Phi") - phi.gaussian_mean(0.0, d0, "Phi") ** 2
        g = d0 / jnp.sqrt(2.0 * var_Phi)
        ok = ok_overlap & (fine.result == optx.RESULTS.successful) & jnp.isfinite(g)
        return BoundarySolution(
            value=jnp.where(ok_overlap, g, jnp.nan), kappa=jnp.zeros((1,), dtype), delta0=d0,
            result=RESULTS.where(ok, RESULTS.successful, RESULTS.no_onset),
        )

    out = vmap_batch(one, overlap.ndim)(overlap)
    return raise_if_failed(out, lambda s: s.value) if throw else out


def _boundary_residual(y, args):
    # Unknowns (kappa, D, g): the fixed-point equations and bulk radius = 1.
    p, nonzero = args
    R = p.rank
    q = eqx.tree_at(lambda t: t.g, p, y[R + 1])
    fixed = _static_residual(y[: R + 1], (q, nonzero))
    bulk, _ = _fixed_point_stability(q, y[:R], y[R])
    return jnp.concatenate([fixed, (bulk - 1.0)[None]])


@eqx.filter_jit
def fixed_point_chaos_boundary(
    ensemble: LowRankEnsemble | MixtureEnsemble,
    kappa0: Float[ArrayLike, " rank"] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 80,
    throw: bool = True,
) -> BoundarySolution:
    """g_C: the g at which the fixed point continued from `kappa0` (default: the
    +kappa branch) loses stability to chaos, `g sqrt(<phi'^2>) = 1`, solved jointly with
    the fixed-point equations (Newton from the ensemble's g, which is only a guess).
    Mastrogiuseppe & Ostojic 2018 (M_m = 1.1, M_n = 2, s_m = s_n = 1): g_C = 1.796.
    """
    rtol, atol = _check_common(ensemble, rtol, atol, max_steps)
    point, batch = _points(ensemble, None)

    def one(p):
        p = _check_point(p)
        start = _solve_fixed_point(
            p, default_guesses(p, "fixed_point")[1] if kappa0 is None else jnp.asarray(kappa0),
            rtol, atol, max_steps,
        )
        R = p.rank
        nonzero = jnp.any(start.kappa != 0)
        D = start.delta0[0] - _stats(p, start.kappa).L[0]
        y0 = jax.lax.stop_gradient(jnp.concatenate([start.kappa, jnp.stack([D, p.g])]))
        sol = optx.root_find(
            _boundary_residual, optx.Newton(rtol, atol), y0, args=(p, nonzero),
            max_steps=max_steps, throw=False,
        )
        ok = (start.result == RESULTS.successful) & (sol.result == optx.RESULTS.successful)
        ok = ok & jnp.all(jnp.isfinite(sol.value)) & (sol.value[R + 1] > 0)
        return BoundarySolution(
            value=sol.value[R + 1],
            kappa=sol.value[:R],
            delta0=_stats(p, sol.value[:R]).L[0] + sol.value[R],
            result=RESULTS.where(ok, RESULTS.successful, RESULTS.static_not_converged),
        )

    out = _map_points(one, point, batch)
    return raise_if_failed(out, lambda s: s.value) if throw else out
