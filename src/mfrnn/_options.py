"""The options of the public API, as enums with a documented set of values.

Each is a `enum.StrEnum`: a member is also its name (`Loss.xent == "xent"`), so configs,
checkpoints and JSON store the name, and `Loss("xent")` converts a name read from a
command line or a file. Functions take a member or its name (annotated `...Like`, the
enum or a `Literal` of exactly its names: the runtime type checks of the tests hold
every argument to that set) and convert it with `option`; any other value raises a
`ValueError` that lists the members (docs/conventions.md, "Options").
"""

import enum
from typing import Literal, TypeAlias, TypeVar


_E = TypeVar("_E", bound=enum.Enum)


def option(cls: type[_E], value, name: str) -> _E:
    """`value` as a member of the option enum `cls`, or a `ValueError` naming the
    argument `name` and listing the members."""
    try:
        return cls(value)
    except ValueError:
        members = ", ".join(f"{cls.__name__}.{m.name}" for m in cls)
        raise ValueError(
            f"`{name}` must be a mfrnn.{cls.__name__} ({members}), got {value!r}."
        ) from None


class PhiFunction(enum.StrEnum):
    """Which function of a nonlinearity phi a Gaussian average is taken of (the `which`
    argument of [`mfrnn.AbstractNonlinearity`][] methods).

    - `PhiFunction.phi`: phi itself.
    - `PhiFunction.dphi`: its first derivative phi'.
    - `PhiFunction.ddphi`: its second derivative phi''.
    - `PhiFunction.Phi`: its primitive Phi (Phi' = phi, Phi(0) = 0), used by the DMFT
      potential.

    ```python
    phi = mfrnn.Tanh()
    phi.gaussian_mean(0.0, 2.0, mfrnn.PhiFunction.dphi)  # <phi'> at mean 0, variance 2
    ```
    """

    phi = "phi"
    dphi = "dphi"
    ddphi = "ddphi"
    Phi = "Phi"


class QuadratureRule(enum.StrEnum):
    """Quadrature rule of Gaussian averages (the `rule` of [`mfrnn.gaussian_average`][],
    [`mfrnn.Tanh`][] and [`mfrnn.ShiftedTanh`][]).

    - `QuadratureRule.trapezoid` (default): equally spaced nodes on [-10, 10], weights
      exp(-z^2/2) normalised to one; exponentially accurate for integrands analytic in a
      strip (tanh). Only with this rule do two-point averages use the adaptive grid, and
      the DMFT autocorrelation Mehler's series.
    - `QuadratureRule.gauss_hermite` (value "gauss-hermite"): Gauss-Hermite nodes from
      the eigenvalues of the Jacobi matrix; much less accurate for tanh at large
      variance (docs/theory/nonlinearities.md).

    ```python
    mfrnn.gaussian_average(jnp.tanh, 0.0, 2.0, rule=mfrnn.QuadratureRule.gauss_hermite)
    ```
    """

    trapezoid = "trapezoid"
    gauss_hermite = "gauss-hermite"


class DaleConstraint(enum.StrEnum):
    """How a [`mfrnn.DaleNetwork`][] keeps Dale's law (the sign of each column of J)
    while it is trained (also `NetworkSpec.dale` and `mfrnn train --dale`).

    - `DaleConstraint.sign` (default): `J = |W| diag(signs)`; W is unconstrained, so
      gradient steps can never break the law.
    - `DaleConstraint.projection`: `J = W`, and `project()` (after every optimiser
      update) zeroes the entries with the wrong sign.

    ```python
    net = mfrnn.DaleNetwork(W, signs, constraint=mfrnn.DaleConstraint.projection)
    ```
    """

    sign = "sign"
    projection = "projection"


class Loss(enum.StrEnum):
    """The training loss and readout of a task (`TrainConfig.loss`, the `loss` of
    [`mfrnn.evaluate`][], [`mfrnn.init_network`][] and [`mfrnn.population_analysis`][];
    `mfrnn train --loss`).

    - `Loss.mse`: masked mean squared error of the outputs against the targets; one
      readout per task output.
    - `Loss.xent`: cross-entropy of per-step class logits (fixate + choices, neurogym's
      recipe) for decision tasks; `n_classes` readouts, scored by the argmax at the
      last step of the response window.

    ```python
    config = mfrnn.TrainConfig(loss=mfrnn.Loss.xent)
    ```
    """

    mse = "mse"
    xent = "xent"


class ModeSpectrum(enum.StrEnum):
    """Shape of the mode spectrum D of a [`mfrnn.RandomModeEnsemble`][]
    (docs/theory/random-modes.md).

    - `ModeSpectrum.exponential` (default): `D(s) ~ exp(-beta s)`, s in (0, 1].
    - `ModeSpectrum.power_law`: `D(s) ~ s^(-p)`.
    - `ModeSpectrum.flat`: every mode has the same weight (PR_D = 1).
    - `ModeSpectrum.low_rank_cut`: a flat spectrum of `effective_rank N` modes.
    - `ModeSpectrum.array`: given values D_a
      ([`mfrnn.RandomModeEnsemble.from_spectrum`][]).

    ```python
    ens = mfrnn.RandomModeEnsemble(2.0, 0.5, spectrum=mfrnn.ModeSpectrum.power_law)
    ```
    """

    exponential = "exponential"
    power_law = "power_law"
    flat = "flat"
    low_rank_cut = "low_rank_cut"
    array = "array"


class TrialSolver(enum.StrEnum):
    """The forward pass of training (`TrainConfig.solver`, `mfrnn train --solver`): a
    name, so that the config stays JSON, for the `solver` of [`mfrnn.run_trials`][].

    - `TrialSolver.euler` (default): `solver=None`, Euler steps by `lax.scan` with a
      hand-written adjoint.
    - `TrialSolver.diffrax`: `solver=diffrax.Euler()`, the same numbers through
      `diffeqsolve` with a checkpointed adjoint.

    ```python
    config = mfrnn.TrainConfig(solver=mfrnn.TrialSolver.diffrax)
    ```
    """

    euler = "euler"
    diffrax = "diffrax"


class Activity(enum.StrEnum):
    """Which activity a random-mode spectrum describes (the `which` of
    [`mfrnn.RandomModeSpectra`][] methods).

    - `Activity.x`: the currents x (input of the nonlinearity).
    - `Activity.phi`: the rates phi(x).

    ```python
    spectra.power_spectrum(omega, mfrnn.Activity.phi)
    ```
    """

    x = "x"
    phi = "phi"


# What functions take: a member, or its name (what configs, checkpoints and the theory's
# internal calls hold). tests/test_contract.py checks each Literal against its enum.
PhiFunctionLike: TypeAlias = PhiFunction | Literal["phi", "dphi", "ddphi", "Phi"]
QuadratureRuleLike: TypeAlias = QuadratureRule | Literal["trapezoid", "gauss-hermite"]
DaleConstraintLike: TypeAlias = DaleConstraint | Literal["sign", "projection"]
LossLike: TypeAlias = Loss | Literal["mse", "xent"]
ActivityLike: TypeAlias = Activity | Literal["x", "phi"]
TrialSolverLike: TypeAlias = TrialSolver | Literal["euler", "diffrax"]
ModeSpectrumLike: TypeAlias = (
    ModeSpectrum | Literal["exponential", "power_law", "flat", "low_rank_cut", "array"]
)
