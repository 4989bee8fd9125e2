"""The classical fourth-order Runge-Kutta step, shared by the fixed-step integrations
of the library: the Benettin / QR Lyapunov exponents of simulated networks
(`_analysis/dynamics.py`) and the Pruefer shooting of the DMFT Lyapunov exponent
(`_theory/lyapunov.py`). Adaptive and stochastic integration goes through diffrax
(`_simulate.py`); this is for the inner loops that are linearised step by step or
carry extra bookkeeping per step, inside one `lax.scan`.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import jax.tree_util as jtu


Y = TypeVar("Y")


def rk4_step(field: Callable[[Y, Any], Y], y: Y, h, stages: tuple[Any, Any, Any]) -> Y:
    """One RK4 step of size `h` of `dy/ds = field(y, a(s))`.

    RK4 evaluates the field at the start of the step, twice at its midpoint and at its
    end; `stages = (a_start, a_mid, a_end)` is what the field needs there: the times
    `(t, t + h / 2, t + h)` for a time-dependent vector field, or coefficients
    tabulated at those points. `y` is any pytree of arrays (the field returns the same
    structure).

    ```python
    y1 = rk4_step(lambda y, t: network(t, y, None), y0, dt, (t, t + dt / 2, t + dt))
    ```
    """
    a_start, a_mid, a_end = stages
    shift = lambda y, k, c: jtu.tree_map(lambda yi, ki: yi + c * ki, y, k)
    k1 = field(y, a_start)
    k2 = field(shift(y, k1, h / 2), a_mid)
    k3 = field(shift(y, k2, h / 2), a_mid)
    k4 = field(shift(y, k3, h), a_end)
    return jtu.tree_map(
        lambda yi, a, b, c, d: yi + h / 6 * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4
    )
