"""Which mean-field state a low-rank solve looks for."""

import enum


class Branch(enum.Enum):
    """The branch of mean-field states that [`mfrnn.solve_lowrank`][] solves for.

    - `Branch.fixed_point`: stationary states (kappa and the static variance Delta0).
    - `Branch.chaotic`: chaotic states: kappa, Delta0 and Delta_inf with temporal
      fluctuations (meaningful where the fixed points are unstable).

    `Branch(name)` converts a name ("fixed_point" or "chaotic"), e.g. one read from a
    command line or a file.

    ```python
    mfrnn.solve_lowrank(ens, branch=mfrnn.Branch.chaotic)
    ```
    """

    fixed_point = "fixed_point"
    chaotic = "chaotic"
