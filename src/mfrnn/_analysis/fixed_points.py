"""Fixed and slow points of a network's continuous-time vector field (Sussillo & Barak
2013), in the latent space of low-rank networks, and continued along an input.

The search minimises `q(x) = |F(x)|^2 / 2`, `F = dx/dt`, by L-BFGS from many initial
states at once (one batched computation; states that are done leave the batch), polishes
one representative of each group of candidates with small q by Newton on `F = 0`,
removes duplicates and linearises every point. Points where Newton reaches `F = 0` are
*fixed*; local minima of q with q > 0 are *slow* points.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int, PRNGKeyArray

from .._networks import AbstractRateNetwork, LowRankNetwork
from .._simulate import simulate_euler
from .._solution import RESULTS, summary_repr


class FixedPoints(eqx.Module):
    """Distinct fixed and slow points of one network under one constant input.

    - `points`: the states (k, n), fixed points first, then by increasing q.
    - `q`: `|F|^2 / 2` with `F = dx/dt`; `speed`: `|F|`.
    - `is_fixed`: True where Newton reached F = 0 (`max |F| <= fixed_tol`); False for
      slow points (local minima of q above it).
    - `eigenvalues`: of the Jacobian `(-1 + J diag(phi'(x*))) / tau`, decreasing real part.
    - `n_unstable`: eigenvalues with positive real part (0: stable; 1: a saddle with one
      unstable direction, ...). Unconverged candidates get nan eigenvalues and -1.
    - `count`: how many initial states ended on each point.
    - `kappa`: latent coordinates `n_r . phi(x) / N` for low-rank networks, else None.
    - `inputs`: the constant input u the points belong to (None: no input).
    - `result`: a [`mfrnn.RESULTS`][] code per point (`nonlinear_max_steps_reached`:
      the minimisation of q ran out of steps; a Newton failure on a candidate with small
      q leaves it a slow point with Newton's code).
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    points: Float[Array, "k n"]
    q: Float[Array, " k"]
    speed: Float[Array, " k"]
    is_fixed: Bool[Array, " k"]
    eigenvalues: Complex[Array, "k n"]
    n_unstable: Int[Array, " k"]
    count: Int[Array, " k"]
    kappa: Float[Array, "k rank"] | None
    inputs: Float[Array, " n_in"] | None
    result: RESULTS

    @property
    def stable(self) -> Bool[Array, " k"]:
        """Fixed points with no unstable direction."""
        return self.is_fixed & (self.n_unstable == 0)

    @property
    def n_fixed(self) -> int:
        return int(np.sum(np.asarray(self.is_fixed)))

    @property
    def n_slow(self) -> int:
        ok = np.asarray(self.result._value) == 0
        return int(np.sum(~np.asarray(self.is_fixed) & ok))

    @property
    def n_stable(self) -> int:
        return int(np.sum(np.asarray(self.stable)))

    @property
    def success(self) -> Bool[Array, " k"]:
        return self.result == RESULTS.successful


# ------------------------------------------------------------------------------ checks


def check_network(network) -> None:
    if not isinstance(network, AbstractRateNetwork):
        raise ValueError(f"`network` must be an AbstractRateNetwork, got {type(network).__name__}.")


def check_inputs(network: AbstractRateNetwork, inputs) -> Array | None:
    """A constant input of the network's input size, or None."""
    if inputs is None:
        return None
    u = jnp.asarray(inputs, network.bias.dtype)
    n_in = None if network.W_in is None else network.W_in.shape[1]
    if n_in is None:
        raise ValueError("`inputs` was given but the network has no `W_in`.")
    if u.shape != (n_in,):
        raise ValueError(
            f"`inputs` must be one constant input of shape ({n_in},) for this network, "
            f"got shape {u.shape}."
        )
    return u


def _check_states(network, states, name) -> Array:
    states = jnp.asarray(states, network.bias.dtype)
    if states.ndim != 2 or states.shape[1] != network.n:
        raise ValueError(
            f"`{name}` must have shape (n_states, {network.n}), got {states.shape}."
        )
    return states


def default_tolerance(dtype) -> float:
    return 1e-10 if jnp.finfo(dtype).bits >= 64 else 1e-4


def _newton_tolerance(dtype) -> float:
    return 1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-6


def _is_pure_low_rank(network) -> bool:
    return isinstance(network, LowRankNetwork) and network.J_random is None


def _linear_solver(network) -> lx.AbstractLinearSolver:
    # -1 + m n^T diag(phi') / N is the identity plus rank R: GMRES is exact in R + 1
    # matrix-free steps (O(N R) each), where a dense LU would form N x N.
    if _is_pure_low_rank(network):
        r = network.rank
        tol = _newton_tolerance(network.bias.dtype) * 1e-2
        return lx.GMRES(rtol=tol, atol=tol, restart=r + 2, max_steps=4 * (r + 2))
    return lx.AutoLinearSolver(well_posed=None)


# ------------------------------------------------------------------------------ core


def _drive(x, args):
    network, u = args
    return network.drive(None, x, u)


@eqx.filter_jit
def _field(network, u, xs):
    return jax.vmap(lambda x: network(None, x, u))(xs)


def _q_drive(x, args):
    # tau^2 q: the same minimiser, with termination independent of tau.
    return 0.5 * jnp.sum(_drive(x, args) ** 2)


_HISTORY = 10  # L-BFGS pairs kept per state
_CHUNK = 64  # L-BFGS steps between compactions of the batch on the host


class _SearchState(eqx.Module):
    """Batched L-BFGS state of every initial state (leading axis: the state)."""

    x: Array
    q: Array
    grad: Array
    s: Array  # (batch, history, n): steps
    y: Array  # (batch, history, n): gradient changes
    rho: Array  # (batch, history): 1 / s.y, 0 for an empty or rejected pair
    gamma: Array  # initial inverse-Hessian scale s.y / y.y of the newest pair
    done: Array
    near: Array  # q <= polish_q: handed to Newton


@eqx.filter_jit
def _search_start(network, u, x0s, polish_q):
    q, grad = jax.vmap(jax.value_and_grad(_q_drive), in_axes=(0, None))(x0s, (network, u))
    b, n = x0s.shape
    near = q <= polish_q
    gamma = 1.0 / jnp.maximum(1.0, jnp.linalg.norm(grad, axis=1))  # first step of length <= 1
    return _SearchState(x0s, q, grad, jnp.zeros((b, _HISTORY, n), x0s.dtype),
                        jnp.zeros((b, _HISTORY, n), x0s.dtype),
                        jnp.zeros((b, _HISTORY), x0s.dtype), gamma, near, near)


def _two_loop(grad, s, y, rho, gamma, newest):
    """-H grad by the L-BFGS two-loop recursion, one state; `newest` indexes the ring."""
    order = (newest - jnp.arange(_HISTORY)) % _HISTORY

    def back(r, i):
        a = rho[i] * jnp.dot(s[i], r)
        return r - a * y[i], a

    r, alphas = jax.lax.scan(back, grad, order)

    def forward(r, ia):
        i, a = ia
        return r + s[i] * (a - rho[i] * jnp.dot(y[i], r)), None

    r, _ = jax.lax.scan(forward, gamma * r, (order[::-1], alphas[::-1]))
    return -r


@eqx.filter_jit
def _search_chunk(network, u, state, step0, n_steps, rtol, atol, polish_q):
    """Up to `n_steps` L-BFGS steps (Armijo backtracking) on all states at once, as one
    batched computation (matrix-matrix products), until every state is done."""
    args = (network, u)
    value_and_grad = jax.vmap(jax.value_and_grad(_q_drive), in_axes=(0, None))
    dot = lambda a, b: jnp.sum(a * b, axis=-1)

    def body(carry):
        k, st = carry
        newest = (step0 + k - 1) % _HISTORY
        d = jax.vmap(_two_loop, in_axes=(0, 0, 0, 0, 0, None))(
            st.grad, st.s, st.y, st.rho, st.gamma, newest)
        slope = dot(st.grad, d)
        # A direction that is no descent (stale curvature): restart along -grad.
        bad = ~(slope < 0)
        d = jnp.where(bad[:, None], -st.gamma[:, None] * st.grad, d)
        slope = jnp.where(bad, -st.gamma * dot(st.grad, st.grad), slope)

        def ls_cond(c):
            i, t, ok, *_ = c
            return (i < 40) & jnp.any(~ok)

        def ls_body(c):
            i, t, ok, x1, q1, g1 = c
            xt = st.x + t[:, None] * d
            qt, gt = value_and_grad(xt, args)
            new = ~ok & (qt <= st.q + 1e-4 * t * slope)
            pick = lambda a, b: jnp.where(new.reshape(new.shape + (1,) * (a.ndim - 1)), b, a)
            t = jnp.where(ok | new, t, 0.5 * t)
            return i + 1, t, ok | new, pick(x1, xt), pick(q1, qt), pick(g1, gt)

        _, t, moved, x1, q1, g1 = jax.lax.while_loop(
            ls_cond, ls_body,
            (0, jnp.ones_like(st.q), st.done, st.x, st.q, st.grad))
        s, y = x1 - st.x, g1 - st.grad
        sy = dot(s, y)
        # Curvature pairs only where s.y > 0 (else rho = 0 drops the pair).
        size = jnp.linalg.norm(s, axis=1) * jnp.linalg.norm(y, axis=1)
        good = moved & ~st.done & (sy > 1e-12 * size)
        slot = (step0 + k) % _HISTORY
        rho = st.rho.at[:, slot].set(jnp.where(good, 1.0 / jnp.where(good, sy, 1.0), 0.0))
        s_hist = st.s.at[:, slot].set(s)
        y_hist = st.y.at[:, slot].set(y)
        gamma = jnp.where(good, sy / jnp.where(good, dot(y, y), 1.0), st.gamma)
        near = q1 <= polish_q
        # Cauchy termination as optimistix's: step and change of q both within tolerance;
        # a line search that finds no decrease is at q's floor in this precision.
        x_small = jnp.max(jnp.abs(s) / (atol + rtol * jnp.abs(x1)), axis=1) < 1
        q_small = jnp.abs(q1 - st.q) < atol + rtol * jnp.abs(q1)
        done = st.done | near | (x_small & q_small) | ~moved
        near = st.near | (near & ~st.done)
        st = _SearchState(x1, q1, g1, s_hist, y_hist, rho, gamma, done, near)
        return k + 1, st

    def cond(carry):
        k, st = carry
        return (k < n_steps) & jnp.any(~st.done)

    k, state = jax.lax.while_loop(cond, body, (0, state))
    return state, k


def _bucket(k: int) -> int:
    # Batch sizes are powers of two, so compaction compiles a handful of shapes at most.
    return max(8, 1 << (k - 1).bit_length())


def _minimise(network, u, x0s, rtol, atol, max_steps, polish_q):
    """L-BFGS on q from every state; returns the batched end state and the states that
    ran out of steps. Done states are dropped from the batch as it empties (the vmapped
    loop would otherwise run every state for as long as the slowest one)."""
    full = _search_start(network, u, x0s, polish_q)
    active = np.flatnonzero(~np.asarray(full.done))
    steps, size = 0, _bucket(x0s.shape[0])
    while active.size and steps < max_steps:
        # Shrink the batch only by 8x or more, and not below 64: each new size compiles.
        if _bucket(active.size) * 8 <= size and size > 64:
            size = max(64, _bucket(active.size))
        size = max(size, _bucket(active.size))
        idx = np.concatenate([active, np.full(size - active.size, active[-1])])
        sub = jtu.tree_map(lambda a: a[idx], full)
        # Arrays, not Python ints: filter_jit would recompile for every value.
        sub, k = _search_chunk(network, u, sub, jnp.asarray(steps),
                               jnp.asarray(min(_CHUNK, max_steps - steps)), rtol, atol, polish_q)
        steps += int(k)
        real = jnp.asarray(active)
        full = jtu.tree_map(lambda a, b: a.at[real].set(b[: active.size]), full, sub)
        active = active[~np.asarray(sub.done[: active.size])]
    return full, active


@eqx.filter_jit
def _polish_dense(network, u, x0s, newton_tol, newton_steps):
    """Newton on F = 0 from every candidate at once, with the analytic Jacobian
    `(-1 + J diag(phi'(x))) / tau` and a batched LU (optimistix's Newton would build the
    Jacobian from N Jacobian-vector products per candidate). A candidate stops when its
    step is within `tol (1 + |x|)`, as optimistix's Cauchy test with rtol = atol = tol."""
    field = jax.vmap(lambda x: network(None, x, u))

    def body(c):
        k, x, done, ok = c
        step = jnp.linalg.solve(jax.vmap(network.jacobian)(x), field(x)[..., None])[..., 0]
        x_new = jnp.where(done[:, None], x, x - step)
        small = jnp.max(jnp.abs(step) / (newton_tol + newton_tol * jnp.abs(x_new)), axis=1) < 1
        finite = jnp.all(jnp.isfinite(x_new), axis=1)
        return k + 1, x_new, done | small | ~finite, jnp.where(done, ok, small & finite)

    def cond(c):
        k, _, done, _ = c
        return (k < newton_steps) & jnp.any(~done)

    falses = jnp.zeros(x0s.shape[0], bool)
    _, x, _, ok = jax.lax.while_loop(cond, body, (0, x0s, falses, falses))
    finite = jnp.all(jnp.isfinite(x), axis=1)
    code = jnp.where(finite, RESULTS.nonlinear_max_steps_reached._value,
                     RESULTS.nonlinear_divergence._value)
    return jnp.where(ok[:, None], x, x0s), ok, jnp.where(ok, 0, code)


@eqx.filter_jit
def _polish(network, u, x0s, newton_tol, newton_steps):
    """Newton on F = 0 from each candidate (vmapped; a handful of distinct candidates)."""
    newton = optx.Newton(rtol=newton_tol, atol=newton_tol, linear_solver=_linear_solver(network))

    def one(x0):
        root = optx.root_find(_drive, newton, x0, args=(network, u), max_steps=newton_steps,
                              throw=False)
        ok = (root.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(root.value))
        return jnp.where(ok, root.value, x0), ok, RESULTS.promote(root.result)._value

    return jax.vmap(one)(x0s)


def _candidates(network, u, x0s, rtol, atol, max_steps, polish_q, newton_tol, newton_steps,
                unique_tol):
    """Minimise q from every initial state, then Newton from one representative of each
    group of candidates with small q (host-driven; the arrays are per initial state)."""
    state, unfinished = _minimise(network, u, x0s, rtol, atol, max_steps, polish_q)
    xs = np.array(state.x)
    near = np.asarray(state.near) | (np.asarray(state.q) <= polish_q)
    polished = np.zeros(xs.shape[0], bool)
    codes = np.zeros(xs.shape[0], int)
    codes[unfinished] = RESULTS.nonlinear_max_steps_reached._value
    attempt = np.flatnonzero(near)
    if attempt.size:
        # Polish each distinct candidate once: many states end near the same point.
        reps, _, owner = _unique(xs[attempt], np.arange(attempt.size), unique_tol)
        idx = np.concatenate([reps, np.full(_bucket(reps.size) - reps.size, reps[-1])])
        polish = _polish if _is_pure_low_rank(network) else _polish_dense
        roots, ok, res = polish(network, u, jnp.asarray(xs[attempt][idx]), newton_tol,
                                newton_steps)
        roots, ok = np.asarray(roots)[owner], np.asarray(ok)[owner]
        res = np.asarray(res)[owner]
        xs[attempt] = np.where(ok[:, None], roots, xs[attempt])
        polished[attempt] = ok
        codes[attempt] = np.where(ok, 0, res)
    return xs, polished, codes


def _unique(points, order, tol):
    """Greedy de-duplication in `order`: a point joins the nearest kept point within RMS
    distance `tol`. Returns kept indices, per kept point how many joined it, and per
    point (in `order`) which kept point it joined."""
    kept, counts, owner = [], [], np.empty(len(order), int)
    n = points.shape[1]
    for k, i in enumerate(order):
        if kept:
            d = np.sqrt(np.sum((points[kept] - points[i]) ** 2, axis=1) / n)
            j = int(np.argmin(d))
            if d[j] <= tol:
                counts[j] += 1
                owner[k] = j
                continue
        owner[k] = len(kept)
        kept.append(int(i))
        counts.append(1)
    return np.asarray(kept, int), np.asarray(counts, int), owner


def jacobian_eigenvalues(network: AbstractRateNetwork, x) -> np.ndarray:
    """Eigenvalues of `(-1 + J diag(phi'(x))) / tau` at one state, decreasing real part
    (numpy, on the host). Low-rank networks without a random part use the R x R form:
    `-1/tau` with multiplicity N - R and the eigenvalues of `(-1 + n^T diag(phi') m / N) / tau`."""
    x = jnp.asarray(x)
    tau = float(network.tau)
    if _is_pure_low_rank(network):
        gain = network.phi.derivative(x)
        reduced = np.asarray(network.n_vectors.T @ (gain[:, None] * network.m)) / network.n
        ev = np.linalg.eigvals(reduced - np.eye(network.rank)) / tau
        ev = np.concatenate([ev, np.full(network.n - network.rank, -1.0 / tau)])
    else:
        ev = np.linalg.eigvals(np.asarray(network.jacobian(x)))
    return ev[np.argsort(-ev.real, kind="stable")].astype(complex)


def _assemble(network, u, xs, fixed, speed, results, order_key, unique_tol) -> FixedPoints:
    """Host side: order, de-duplicate, linearise."""
    xs, fixed, speed = np.asarray(xs), np.asarray(fixed), np.asarray(speed)
    codes = np.asarray(results._value)
    order = np.lexsort((order_key, codes != 0, ~fixed))
    keep, counts, _ = _unique(xs, order, unique_tol)
    points = jnp.asarray(xs[keep])
    # Linearise converged points only: an unconverged candidate is no point of the field
    # (and O(N^3) each would dominate the cost when many fail).
    eig = np.full((keep.size, network.n), np.nan + 0j)
    for i in np.flatnonzero(codes[keep] == 0):
        eig[i] = jacobian_eigenvalues(network, points[i])
    kappa = None
    if isinstance(network, LowRankNetwork):
        kappa = jax.vmap(network.kappa)(points) if keep.size else jnp.zeros((0, network.rank))
    return FixedPoints(
        points=points,
        q=jnp.asarray(0.5 * speed[keep] ** 2),
        speed=jnp.asarray(speed[keep]),
        is_fixed=jnp.asarray(fixed[keep]),
        eigenvalues=jnp.asarray(eig),
        n_unstable=jnp.asarray(np.where(codes[keep] == 0, np.sum(eig.real > 0, axis=1), -1),
                               dtype=int),
        count=jnp.asarray(counts),
        kappa=kappa,
        inputs=u,
        result=jtu.tree_map(lambda v: v[keep], results),
    )


def find_fixed_points(
    network: AbstractRateNetwork,
    initial_states: Float[ArrayLike, "n_states n"],
    inputs: Float[ArrayLike, " n_in"] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 2000,
    polish_q: float | None = None,
    fixed_tol: float | None = None,
    newton_steps: int = 50,
    unique_tol: float = 1e-3,
    throw: bool = True,
) -> FixedPoints:
    """Fixed and slow points of `network` under the constant input `inputs`.

    From every initial state, L-BFGS minimises `q(x) = |F(x)|^2 / 2` with `F = dx/dt`
    (all states at once as one batched computation, until q <= polish_q or q is
    stationary; done states leave the batch). Candidates with `q <= polish_q` are grouped
    within `unique_tol` and one per group is polished by Newton on `F = 0` (optimistix;
    for low-rank networks matrix-free, O(N R) per step). A candidate is a *fixed* point
    when Newton converges with `max |F| <= fixed_tol`, else a *slow* point (a local
    minimum of q). Duplicates within RMS distance `unique_tol` are merged, and each point
    is linearised.

    **Arguments:**

    - `network`: any [`mfrnn.AbstractRateNetwork`][].
    - `initial_states`: (n_states, n), e.g. from [`mfrnn.trajectory_states`][].
    - `inputs`: a constant input u (n_in,), or None.
    - `rtol`, `atol`: L-BFGS tolerances on `tau^2 q` (default 1e-10 in float64).
    - `max_steps`: L-BFGS steps per state; `newton_steps`: Newton steps.
    - `polish_q`: largest q that is polished (default `1e-8 / tau^2` in float64).
    - `fixed_tol`: largest `max |F|` of a fixed point (default 1e-10 in float64).
    - `unique_tol`: RMS distance under which two points are the same.
    - `throw`: raise if any point has a failed result; with False check `result`.

    **Returns:** a [`mfrnn.FixedPoints`][].

    ```python
    states, _ = mfrnn.trajectory_states(net, u, dt=task.dt, n_states=256, key=jr.key(0))
    fps = mfrnn.find_fixed_points(net, states, throw=False)
    fps.points[fps.stable], fps.eigenvalues
    ```

    ??? cite "References"

        ```bibtex
        @article{sussillo2013opening,
          title={Opening the black box: low-dimensional dynamics in high-dimensional
                 recurrent neural networks},
          author={Sussillo, David and Barak, Omri},
          journal={Neural Computation}, volume={25}, number={3}, pages={626--649},
          year={2013}
        }
        ```
    """
    check_network(network)
    u = check_inputs(network, inputs)
    x0s = _check_states(network, initial_states, "initial_states")
    if x0s.shape[0] < 1:
        raise ValueError("`initial_states` must hold at least one state.")
    dtype = network.bias.dtype
    tol = default_tolerance(dtype)
    rtol = tol if rtol is None else rtol
    atol = tol if atol is None else atol
    tau2 = float(network.tau) ** 2
    polish_q = (1e-8 if jnp.finfo(dtype).bits >= 64 else 1e-4) / tau2 if polish_q is None else polish_q
    fixed_tol = tol if fixed_tol is None else fixed_tol
    for name, value in (("rtol", rtol), ("atol", atol), ("polish_q", polish_q),
                        ("fixed_tol", fixed_tol), ("unique_tol", unique_tol)):
        if not value > 0:
            raise ValueError(f"`{name}` must be positive, got {value}.")
    for name, value in (("max_steps", max_steps), ("newton_steps", newton_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    xs, polished, codes = _candidates(
        network, u, x0s, rtol, atol, max_steps, polish_q * tau2, _newton_tolerance(dtype),
        newton_steps, unique_tol,
    )
    f = np.asarray(_field(network, u, jnp.asarray(xs)))
    speed = np.linalg.norm(f, axis=1)
    fixed = polished & (np.max(np.abs(f), axis=1) <= fixed_tol)
    results = jtu.tree_map(lambda _: jnp.asarray(codes, jnp.int32), RESULTS.successful)
    fps = _assemble(network, u, xs, fixed, speed, results, speed, unique_tol)
    if throw:
        fps = eqx.tree_at(
            lambda s: s.points, fps,
            fps.result.error_if(fps.points, fps.result != RESULTS.successful),
        )
    return fps


# ------------------------------------------------------------------------------ states


def trajectory_states(
    network: AbstractRateNetwork,
    inputs: Float[ArrayLike, "batch time n_in"],
    *,
    dt: float,
    n_states: int,
    key: PRNGKeyArray,
    noise: float = 0.0,
) -> tuple[Float[Array, "n_states n"], Float[Array, "batch time_plus_one n"]]:
    """Initial states for [`mfrnn.find_fixed_points`][]: `n_states` states drawn at random
    from the network's own trajectories under `inputs` (trials from x = 0, Euler steps of
    `dt`, as in training), plus Gaussian jitter of std `noise`.

    **Returns:** `(states, trajectories)`, the trajectories including x = 0 at the start.

    ```python
    u, *_ = task.sample(jr.key(0), 32)
    states, xs = mfrnn.trajectory_states(net, u, dt=task.dt, n_states=512, key=jr.key(1))
    ```
    """
    check_network(network)
    u = jnp.asarray(inputs, network.bias.dtype)
    n_in = None if network.W_in is None else network.W_in.shape[1]
    if u.ndim != 3 or u.shape[2] != n_in:
        raise ValueError(
            f"`inputs` must have shape (batch, time, n_in={n_in}), got {u.shape}."
        )
    if not isinstance(n_states, int) or n_states < 1:
        raise ValueError(f"`n_states` must be a positive integer, got {n_states!r}.")
    if not noise >= 0:
        raise ValueError(f"`noise` must be non-negative, got {noise}.")
    x0 = jnp.zeros(network.n, network.bias.dtype)
    xs = jax.vmap(
        lambda ui: simulate_euler(network, x0, dt=dt, n_steps=u.shape[1], inputs=ui)
    )(u)
    flat = xs.reshape(-1, network.n)
    k_pick, k_noise = jr.split(key)
    idx = jr.choice(k_pick, flat.shape[0], (n_states,), replace=n_states > flat.shape[0])
    states = flat[idx] + noise * jr.normal(k_noise, (n_states, network.n), flat.dtype)
    return states, xs


# ------------------------------------------------------------------------------ latent


def _check_low_rank(network, what: str) -> None:
    if not isinstance(network, LowRankNetwork):
        raise ValueError(
            f"{what} needs a LowRankNetwork, got {type(network).__name__}."
        )
    if network.J_random is not None:
        raise ValueError(
            f"{what} needs a low-rank network without random part (g = 0): with "
            "`J_random` the fixed points are not determined by kappa alone."
        )


def _latent_residual(kappa, args):
    network, drive = args
    x = drive + network.m @ kappa
    return -kappa + network.n_vectors.T @ network.phi(x) / network.n


@eqx.filter_jit
def _latent_roots(network, drive, kappa0, tol, max_steps):
    newton = optx.Newton(rtol=tol, atol=tol)

    def one(k0):
        sol = optx.root_find(_latent_residual, newton, k0, args=(network, drive),
                             max_steps=max_steps, throw=False)
        return sol.value, RESULTS.promote(sol.result)

    return jax.vmap(one)(kappa0)


def _default_kappa_guesses(network, per_axis):
    # |kappa_r| <= mean |n_r| sup|phi| for bounded phi; the grid spans that box.
    bound = jnp.mean(jnp.abs(network.n_vectors), axis=0) * 1.2
    axes = [np.linspace(-1.0, 1.0, per_axis) for _ in range(network.rank)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, network.rank)
    return jnp.asarray(grid, network.m.dtype) * bound[None, :]


def find_latent_fixed_points(
    network: AbstractRateNetwork,
    inputs: Float[ArrayLike, " n_in"] | None = None,
    *,
    kappa0: Float[ArrayLike, "guesses rank"] | None = None,
    per_axis: int = 9,
    max_steps: int = 64,
    unique_tol: float = 1e-6,
    throw: bool = True,
) -> FixedPoints:
    """Fixed points of a low-rank network without random part, solved in its R latent
    dimensions. Every fixed point is `x = b + W_in u + m kappa` with
    `kappa = n^T phi(x) / N`, so Newton on that R-dimensional equation finds all of them
    (stable or not) from a grid of guesses; they are returned in the full space with the
    same fields as [`mfrnn.find_fixed_points`][] (slow points do not arise here).

    **Arguments:**

    - `network`: a [`mfrnn.LowRankNetwork`][] with `J_random=None`.
    - `inputs`: a constant input u (n_in,), or None.
    - `kappa0`: guesses (guesses, rank); default a grid of `per_axis` points per latent
      axis over the box that bounds kappa for bounded phi (`per_axis ** rank` guesses).
    - `unique_tol`: distance in kappa under which two roots are the same.
    - `throw`: raise if no guess converged.

    ```python
    fps = mfrnn.find_latent_fixed_points(net)
    fps.kappa, fps.n_unstable
    ```
    """
    _check_low_rank(network, "`find_latent_fixed_points`")
    u = check_inputs(network, inputs)
    dtype = network.m.dtype
    if kappa0 is None:
        if not isinstance(per_axis, int) or per_axis < 1:
            raise ValueError(f"`per_axis` must be a positive integer, got {per_axis!r}.")
        guesses = _default_kappa_guesses(network, per_axis)
    else:
        guesses = jnp.asarray(kappa0, dtype)
        if guesses.ndim != 2 or guesses.shape[1] != network.rank:
            raise ValueError(
                f"`kappa0` must have shape (guesses, rank={network.rank}), got {guesses.shape}."
            )
    drive = network.bias if u is None else network.bias + network.W_in @ u
    kappa, results = _latent_roots(network, drive, guesses, _newton_tolerance(dtype), max_steps)
    ok = np.asarray(results._value) == 0
    kappa_np = np.asarray(kappa)
    if not ok.any():
        if throw:
            raise RuntimeError("`find_latent_fixed_points`: Newton converged from no guess.")
        ok[:] = False
    kappa_ok = kappa_np[ok]
    keep, _, _ = _unique(kappa_ok, np.argsort(np.sum(kappa_ok**2, axis=1)),
                      unique_tol / np.sqrt(network.rank))
    kappa_ok = jnp.asarray(kappa_ok[keep])
    xs = drive[None, :] + kappa_ok @ network.m.T
    f = jax.vmap(lambda x: network(None, x, u))(xs) if keep.size else jnp.zeros((0, network.n))
    speed = jnp.linalg.norm(f, axis=1)
    fixed = jnp.ones(keep.size, bool)
    results_ok = jtu.tree_map(lambda v: v[np.flatnonzero(ok)[keep]], results)
    fps = _assemble(network, u, xs, fixed, speed, results_ok, np.asarray(speed), 0.0 + 1e-300)
    return fps


# ------------------------------------------------------------------------------ continuation


class Continuation(eqx.Module):
    """A fixed point followed along a path of constant inputs.

    - `inputs`: the path (steps, n_in); `points`: the fixed point at each step.
    - `converged`: Newton converged at this step and the point moved continuously.
    - `max_real`: largest real part of the Jacobian's eigenvalues; `n_unstable` as in
      [`mfrnn.FixedPoints`][].
    - `lost_at`: first step where the branch is lost (it disappears, e.g. at a saddle-
      node, or jumps to another branch), -1 if never. Steps from there on are nan.
    - `stability_changes`: steps at which `n_unstable` changes (before `lost_at`).
    - `result`: per step, the Newton result code.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    inputs: Float[Array, "steps n_in"]
    points: Float[Array, "steps n"]
    converged: Bool[Array, " steps"]
    max_real: Float[Array, " steps"]
    n_unstable: Int[Array, " steps"]
    lost_at: int = eqx.field(static=True)
    stability_changes: tuple[int, ...] = eqx.field(static=True)
    result: RESULTS


@eqx.filter_jit
def _continue(network, x0, u0, path, tol, max_steps, jump_tol, refine):
    newton = optx.Newton(rtol=tol, atol=tol, linear_solver=_linear_solver(network))

    def solve(x, u):
        sol = optx.root_find(_drive, newton, x, args=(network, u), max_steps=max_steps,
                             throw=False)
        moved = jnp.sqrt(jnp.mean((sol.value - x) ** 2))
        ok = (sol.result == optx.RESULTS.successful) & (moved <= jump_tol)
        return sol.value, ok & jnp.all(jnp.isfinite(sol.value)), RESULTS.promote(sol.result)

    def step(carry, u):
        x_prev, u_prev, alive = carry

        # Substeps 1, 2, 4, ... 2^refine: a fast-moving branch is followed in smaller
        # input steps; only a branch that no substepping can follow is lost.
        def attempt(level):
            n_sub = 2**level

            def sub(j, c):
                x, ok, res = c
                frac = (j + 1) / n_sub
                x_new, ok_new, res_new = solve(x, u_prev + frac * (u - u_prev))
                ok = ok & ok_new
                return jnp.where(ok, x_new, x), ok, RESULTS.where(ok, res, res_new)

            return jax.lax.fori_loop(0, n_sub, sub, (x_prev, jnp.asarray(True), RESULTS.successful))

        def cond(c):
            level, (_, ok, _) = c
            return ~ok & (level <= refine)

        def body(c):
            level, _ = c
            return level + 1, attempt(level)

        first = attempt(0)
        _, (x, ok, res) = jax.lax.while_loop(cond, body, (jnp.asarray(1), first))
        ok = ok & alive
        x_next = jnp.where(ok, x, x_prev)
        u_next = jnp.where(ok, u, u_prev)
        return (x_next, u_next, ok), (jnp.where(ok, x, jnp.nan), ok, res)

    _, out = jax.lax.scan(step, (x0, u0, jnp.asarray(True)), path)
    return out


def continue_fixed_point(
    network: AbstractRateNetwork,
    x0: Float[ArrayLike, " n"],
    inputs: Float[ArrayLike, "steps n_in"],
    *,
    max_steps: int = 50,
    jump_tol: float = 0.2,
    refine: int = 4,
    throw: bool = True,
) -> Continuation:
    """Follow a fixed point as the constant input changes along `inputs` (natural-
    parameter continuation: Newton at each input from the previous point).

    A step where Newton fails or the point jumps by more than `jump_tol` (RMS over units)
    is retried in 2, 4, ..., `2**refine` substeps; the branch is declared lost where even
    that fails: past a saddle-node the fixed point no longer exists, and Newton fails or
    lands on another branch.

    **Arguments:**

    - `x0`: a state near the fixed point at `inputs[0]` (e.g. from
      [`mfrnn.find_fixed_points`][]).
    - `inputs`: the path of constant inputs (steps, n_in).
    - `throw`: raise if the branch is lost at the first step.

    ```python
    path = jnp.linspace(0.0, 1.0, 101)[:, None] * jnp.array([1.0, 0.0])
    cont = mfrnn.continue_fixed_point(net, fps.points[0], path)
    cont.lost_at, cont.stability_changes
    ```
    """
    check_network(network)
    if network.W_in is None:
        raise ValueError("`continue_fixed_point` needs a network with inputs (`W_in`).")
    path = jnp.asarray(inputs, network.bias.dtype)
    n_in = network.W_in.shape[1]
    if path.ndim != 2 or path.shape[1] != n_in or path.shape[0] < 1:
        raise ValueError(f"`inputs` must have shape (steps, n_in={n_in}), got {path.shape}.")
    x0 = jnp.asarray(x0, network.bias.dtype)
    if x0.shape != (network.n,):
        raise ValueError(f"`x0` must have shape ({network.n},), got {x0.shape}.")
    if not jump_tol > 0:
        raise ValueError(f"`jump_tol` must be positive, got {jump_tol}.")
    tol = _newton_tolerance(path.dtype)
    # The first step may move far from a rough x0: allow any move there.
    first, ok0, res0 = _continue(network, x0, path[0], path[:1], tol, max_steps,
                                 jnp.asarray(jnp.inf, path.dtype), 0)
    if throw and not bool(ok0[0]):
        raise RuntimeError("`continue_fixed_point`: no fixed point near `x0` at `inputs[0]`.")
    start = jnp.where(ok0[0], first[0], x0)
    rest = _continue(network, start, path[0], path[1:], tol, max_steps,
                     jnp.asarray(jump_tol, path.dtype), refine)
    points = jnp.concatenate([first, rest[0]])
    converged = np.asarray(jnp.concatenate([ok0, rest[1]]))
    converged = np.cumprod(converged).astype(bool)  # once lost, lost
    results = jtu.tree_map(lambda a, b: jnp.concatenate([a, b]), res0, rest[2])
    points = jnp.where(jnp.asarray(converged)[:, None], points, jnp.nan)
    max_real = np.full(path.shape[0], np.nan)
    n_unstable = np.full(path.shape[0], -1, int)
    for i in np.flatnonzero(converged):
        ev = jacobian_eigenvalues(network, points[i])
        max_real[i] = ev[0].real
        n_unstable[i] = int(np.sum(ev.real > 0))
    lost = np.flatnonzero(~converged)
    lost_at = int(lost[0]) if lost.size else -1
    alive = n_unstable[converged]
    changes = tuple(int(i) + 1 for i in np.flatnonzero(alive[1:] != alive[:-1]))
    return Continuation(
        inputs=path,
        points=points,
        converged=jnp.asarray(converged),
        max_real=jnp.asarray(max_real, path.dtype),
        n_unstable=jnp.asarray(n_unstable),
        lost_at=lost_at,
        stability_changes=changes,
        result=results,
    )
