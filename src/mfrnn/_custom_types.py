from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Real


RealScalarLike: TypeAlias = Real[ArrayLike, ""]
Scalar: TypeAlias = Float[Array, ""]
State: TypeAlias = Float[Array, " n"]
Trajectory: TypeAlias = Float[Array, "time n"]
# Which function of a nonlinearity a Gaussian average is taken of:
# phi, its first and second derivatives, or its primitive Phi (Phi' = phi, Phi(0) = 0).
Which: TypeAlias = Literal["phi", "dphi", "ddphi", "Phi"]
# Arrays given by users may also be nested lists.
ArrayOrSequence: TypeAlias = ArrayLike | Sequence[Any]
