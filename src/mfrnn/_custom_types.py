from collections.abc import Sequence
from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Real


RealScalarLike: TypeAlias = Real[ArrayLike, ""]
Scalar: TypeAlias = Float[Array, ""]
State: TypeAlias = Float[Array, " n"]
Trajectory: TypeAlias = Float[Array, "time n"]
# Arrays given by users may also be nested lists.
ArrayOrSequence: TypeAlias = ArrayLike | Sequence[Any]
