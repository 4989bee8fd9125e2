"""Newton's method over a queue of independent root problems, without waiting.

A vmapped `while_loop` runs every problem of a batch until the slowest converges: with
Newton counts from 4 to 16, most of the work goes to problems already solved. Here a
fixed number of slots iterate together, and a slot whose problem converges (or fails)
takes the next one from the queue in the same iteration. The work is the sum of the
problems' Newton steps, not the batch size times the largest. Used by the phase
diagram's stages, which are not differentiated (single solves keep optimistix and
its implicit adjoint).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree


def queued_newton(
    fn: Callable[[Array, PyTree], Array],
    y0: Float[Array, "queue dim"],
    args: PyTree,
    count: Int[Array, ""],
    rtol: float,
    atol: float,
    max_steps: int,
    slots: int,
    least_squares: bool = False,
    stall: int | None = None,
) -> tuple[Float[Array, "queue dim"], Bool[Array, " queue"], Int[Array, " queue"]]:
    """Roots of `fn(y, args[i]) = 0` from `y0[i]` for the first `count` problems (the
    rest are padding and are left as they are).

    With `least_squares` the steps are least-squares ones (pseudo-inverse), for
    Jacobians singular along a manifold of roots.

    Steps are measured in units of `atol + rtol |y|` (max norm, s_k for step k). A
    problem has converged when s_k <= 1, or earlier when the steps contract
    quadratically and the model `s_(k+1) = s_k^3 / s_(k-1)^2` puts the error left after
    step k a hundred times below tolerance (Newton's last, confirming step is skipped).
    It has failed after `max_steps` steps, on a non-finite iterate, or, with `stall`,
    when its step number `stall` or a later one is not ten times below its first
    (Newton wandering where there is no root, or cycling; for quick solves from
    several guesses, where most guesses have no root to find).

    **Returns:** the last iterates, whether each converged, and its Newton steps.
    """
    size, dim = y0.shape
    slots = min(slots, size)
    count = jnp.asarray(count, jnp.int32)
    basis = jnp.eye(dim, dtype=y0.dtype)

    def value_and_jacobian(y, a):
        def along(t):
            return jax.jvp(lambda x: fn(x, a), (y,), (t,))

        r, cols = jax.vmap(along, out_axes=(None, -1))(basis)
        return r, cols

    def take(idx):
        safe = jnp.minimum(idx, size - 1)
        return jax.tree.map(lambda x: x[safe], args)

    def body(state):
        idx, y, steps, prev, first, out_y, out_ok, out_steps, next_ = state
        r, jac = jax.vmap(value_and_jacobian)(y, take(idx))
        if least_squares:
            y_new = y - (jnp.linalg.pinv(jac) @ r[..., None])[..., 0]
        else:
            y_new = y - jnp.linalg.solve(jac, r[..., None])[..., 0]
        finite = jnp.all(jnp.isfinite(y_new), -1)
        size_ = jnp.max(jnp.abs(y_new - y) / (atol + rtol * jnp.abs(y_new)), -1)
        quadratic = (steps >= 1) & (size_ < 0.5 * prev) & (size_**3 <= 0.01 * prev**2)
        converged = finite & ((size_ <= 1.0) | quadratic)
        steps = steps + 1
        first = jnp.where(steps == 1, size_, first)
        wander = False if stall is None else (steps >= stall) & (size_ > 0.1 * first)
        done = (idx < count) & (converged | ~finite | wander | (steps >= max_steps))
        put = jnp.where(done, idx, size)  # out of range: dropped
        out_y = out_y.at[put].set(y_new, mode="drop")
        out_ok = out_ok.at[put].set(converged, mode="drop")
        out_steps = out_steps.at[put].set(steps, mode="drop")
        # Finished slots take the next problems in order; past `count` they idle.
        fresh = next_ + jnp.cumsum(done, dtype=jnp.int32) - 1
        idx = jnp.where(done, jnp.where(fresh < count, fresh, size), idx)
        y = jnp.where(done[:, None], y0[jnp.minimum(idx, size - 1)], y_new)
        steps = jnp.where(done, 0, steps)
        prev = jnp.where(done, jnp.inf, size_)
        return (idx, y, steps, prev, first, out_y, out_ok, out_steps,
                next_ + jnp.sum(done, dtype=jnp.int32))

    def cond(state):
        return jnp.any(state[0] < count)

    first = jnp.arange(slots, dtype=jnp.int32)
    idx = jnp.where(first < count, first, size)
    state = (
        idx,
        y0[jnp.minimum(idx, size - 1)],
        jnp.zeros(slots, jnp.int32),
        jnp.full(slots, jnp.inf, y0.dtype),
        jnp.full(slots, jnp.inf, y0.dtype),
        y0,
        jnp.zeros(size, bool),
        jnp.zeros(size, jnp.int32),
        jnp.minimum(jnp.asarray(slots, jnp.int32), count),
    )
    *_, out_y, out_ok, out_steps, _ = jax.lax.while_loop(cond, body, state)
    return out_y, out_ok, out_steps
