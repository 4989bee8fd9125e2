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
) -> tuple[Float[Array, "queue dim"], Bool[Array, " queue"], Int[Array, " queue"]]:
    """Roots of `fn(y, args[i]) = 0` from `y0[i]` for the first `count` problems (the
    rest are padding and are left as they are).

    With `least_squares` the steps are least-squares ones (pseudo-inverse), for
    Jacobians singular along a manifold of roots.

    A problem has converged when a full Newton step is below `atol + rtol |y|` in every
    component (the step after it would be far smaller); it has failed after `max_steps`
    steps or on a non-finite iterate.

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
        idx, y, steps, out_y, out_ok, out_steps, next_ = state
        r, jac = jax.vmap(value_and_jacobian)(y, take(idx))
        if least_squares:
            y_new = y - (jnp.linalg.pinv(jac) @ r[..., None])[..., 0]
        else:
            y_new = y - jnp.linalg.solve(jac, r[..., None])[..., 0]
        finite = jnp.all(jnp.isfinite(y_new), -1)
        small = jnp.all(jnp.abs(y_new - y) <= atol + rtol * jnp.abs(y_new), -1)
        converged = finite & small
        steps = steps + 1
        done = (idx < count) & (converged | ~finite | (steps >= max_steps))
        put = jnp.where(done, idx, size)  # out of range: dropped
        out_y = out_y.at[put].set(y_new, mode="drop")
        out_ok = out_ok.at[put].set(converged, mode="drop")
        out_steps = out_steps.at[put].set(steps, mode="drop")
        # Finished slots take the next problems in order; past `count` they idle.
        fresh = next_ + jnp.cumsum(done, dtype=jnp.int32) - 1
        idx = jnp.where(done, jnp.where(fresh < count, fresh, size), idx)
        y = jnp.where(done[:, None], y0[jnp.minimum(idx, size - 1)], y_new)
        steps = jnp.where(done, 0, steps)
        return idx, y, steps, out_y, out_ok, out_steps, next_ + jnp.sum(done, dtype=jnp.int32)

    def cond(state):
        return jnp.any(state[0] < count)

    first = jnp.arange(slots, dtype=jnp.int32)
    idx = jnp.where(first < count, first, size)
    state = (
        idx,
        y0[jnp.minimum(idx, size - 1)],
        jnp.zeros(slots, jnp.int32),
        y0,
        jnp.zeros(size, bool),
        jnp.zeros(size, jnp.int32),
        jnp.minimum(jnp.asarray(slots, jnp.int32), count),
    )
    _, _, _, out_y, out_ok, out_steps, _ = jax.lax.while_loop(cond, body, state)
    return out_y, out_ok, out_steps
