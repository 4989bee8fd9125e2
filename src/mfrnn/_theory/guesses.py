"""Initial guesses for the theory's Newton solves, in plain fixed-length loops (cheap to
trace and compile, unlike nested root finds; not differentiated: the Newton solve that
follows carries the implicit gradient)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array


def bisection(fn: Callable[[Array], Array], lo: Array, hi: Array, steps: int) -> Array:
    """The midpoint of [lo, hi] after `steps` bisections for the sign change of an
    increasing `fn` (fn(lo) < 0 < fn(hi))."""

    def halve(_, bracket):
        lo_, hi_ = bracket
        mid = 0.5 * (lo_ + hi_)
        up = fn(mid) > 0
        return jnp.where(up, lo_, mid), jnp.where(up, mid, hi_)

    lo, hi = jax.lax.fori_loop(0, steps, halve, (lo, hi))
    return 0.5 * (lo + hi)


def newton_step(residual: Callable[[Array], Array], d: Array, upper: Array) -> Array:
    """One Newton step for a scalar root of `residual` from d, clipped to [0, upper]; no
    step where the slope is flat."""
    r, dr = jax.jvp(residual, (d,), (jnp.ones_like(d),))
    step = jnp.where(jnp.abs(dr) > 1e-3, r / jnp.where(dr == 0, 1.0, dr), 0.0)
    return jnp.clip(d - step, 0.0, upper)


def chaotic_q_guess(
    balance: Callable[[Array, Array], Array],
    newton: Callable[[Array, Array], Array],
    d0: Array,
    lo: Array,
    hi: Array,
    scan: int,
    steps: int,
    newton_steps: int,
) -> tuple[Array, Array]:
    """(D_inf, log q) near the chaotic root, log q in [lo, hi].

    `balance(d, log_q)` is the energy balance / q^2 at D_inf = d: > 0 as q -> 0 above
    onset and -> -inf as q grows, so the chaotic q is its largest sign change. At small
    q it is a difference of nearly equal averages divided by q^2, and a coarse rule's
    error can flip its sign there: so `scan` points of a log grid are tried downwards
    from `hi` for the first positive value, and `steps` bisections narrow that bracket.
    D_inf follows by `newton(d, q)` steps warm-started from `d0` along the way
    (`newton_steps` per q, 12 at the first). One loop body for scan and bisection: each
    copy of the averages costs compile time."""
    spacing = (hi - lo) / (scan - 1)

    def body(carry, i):
        d, found, lo_, hi_ = carry
        log_q = jnp.where(i < scan, hi - i * spacing, 0.5 * (lo_ + hi_))
        q = jnp.exp(log_q)
        n = jnp.where(i == 0, 12, newton_steps)
        d = jax.lax.fori_loop(0, n, lambda _, x: newton(x, q), d)
        up = balance(d, log_q) > 0  # decreasing: the root lies above
        scanning = i < scan
        first = scanning & up & ~found
        lo_ = jnp.where(first, log_q, jnp.where(scanning | ~up, lo_, log_q))
        hi_ = jnp.where(first, log_q + spacing, jnp.where(scanning | up, hi_, log_q))
        return (d, found | first, lo_, hi_), None

    carry = (d0, jnp.asarray(False), lo, lo)
    (d, _, lo, hi), _ = jax.lax.scan(body, carry, jnp.arange(scan + steps))
    return d, 0.5 * (lo + hi)
