"""One call that reverse-engineers a trained run: fixed and slow points from the
network's own trajectories, their linearisation, and the connectivity spectrum before
and after training (what `mfrnn analyze RUN_DIR` writes)."""

import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import ArrayLike, Float, PRNGKeyArray

from .._networks import AbstractRateNetwork, LowRankNetwork
from .._training import init_members, TrainResult
from .fixed_points import find_fixed_points, FixedPoints, trajectory_states
from .linearisation import linearise
from .spectra import connectivity_spectrum, ConnectivitySpectrum


@dataclasses.dataclass
class RunAnalysis:
    """What [`mfrnn.analyze_run`][] returns.

    - `network`, `initial`: the trained member and the same member before training.
    - `fixed_points`: a [`mfrnn.FixedPoints`][]; `spectrum`: a
      [`mfrnn.ConnectivitySpectrum`][] (trained against initial J).
    - `trajectories`: the trials' states (batch, time, n) the initial states came from.
    - `components` (n, 3), `mean` (n,): principal axes of those states;
      `trajectories_pc` (batch, time, 3) and `points_pc` (k, 3) are the projections.
    - `time_constants` (k, modes), `readout_projection` (k, modes, n_out): the dominant
      modes of each point ([`mfrnn.linearise`][]); `readout` (k, n_out): the output at
      each point.
    """

    network: AbstractRateNetwork
    initial: AbstractRateNetwork
    inputs: np.ndarray
    fixed_points: FixedPoints
    spectrum: ConnectivitySpectrum
    trajectories: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    trajectories_pc: np.ndarray
    points_pc: np.ndarray
    time_constants: np.ndarray
    readout_projection: np.ndarray
    readout: np.ndarray

    def summary(self) -> dict:
        """JSON-able summary (the CLI's `analysis.json`)."""
        fps = self.fixed_points
        codes = np.asarray(fps.result._value)
        points = []
        for i in range(fps.points.shape[0]):
            ev = np.asarray(fps.eigenvalues[i])[:5]
            points.append(dict(
                fixed=bool(fps.is_fixed[i]), q=float(fps.q[i]), speed=float(fps.speed[i]),
                n_unstable=int(fps.n_unstable[i]), count=int(fps.count[i]),
                converged=bool(codes[i] == 0),
                leading_eigenvalues=[[float(e.real), float(e.imag)] for e in ev],
                time_constants=[float(t) for t in self.time_constants[i]],
                readout=[float(z) for z in self.readout[i]],
            ))
        return dict(
            n_fixed_points=fps.n_fixed,
            n_stable=fps.n_stable,
            n_slow_points=fps.n_slow,
            spectral_radius=self.spectrum.spectral_radius,
            initial_spectral_radius=(
                None if self.spectrum.initial_eigenvalues is None
                else float(np.max(np.abs(np.asarray(self.spectrum.initial_eigenvalues))))
            ),
            bulk_radius=self.spectrum.bulk_radius,
            predicted_outliers=[[float(e.real), float(e.imag)]
                                for e in np.asarray(self.spectrum.predicted_outliers)],
            outliers=[[float(e.real), float(e.imag)] for e in np.asarray(self.spectrum.outliers)],
            converged=bool(np.all(codes == 0)),
            inputs=[float(v) for v in self.inputs],
            points=points,
        )


def initial_member(result: TrainResult, member: int = 0) -> AbstractRateNetwork:
    """Member `member` of a run as `fit` initialised it (before any step)."""
    models, *_ = init_members(result.task, result.spec, result.config, result.key,
                              result.n_seeds)
    return jtu.tree_map(lambda x: x[member] if hasattr(x, "shape") else x, models)


def analyze_run(
    result: TrainResult,
    *,
    key: PRNGKeyArray,
    member: int = 0,
    inputs: Float[ArrayLike, " n_in"] | None = None,
    n_trials: int = 32,
    n_states: int = 256,
    noise: float = 0.0,
    n_modes: int = 3,
) -> RunAnalysis:
    """Reverse-engineer member `member` of a training run (from [`mfrnn.fit`][] or
    [`mfrnn.load_checkpoint`][]): draw `n_states` states from its trajectories on
    `n_trials` task trials, find the fixed and slow points under the constant input
    `inputs` (default: zero input, the network's autonomous dynamics), linearise them,
    and compare the connectivity spectrum with its initial one and the ensemble's theory.

    ```python
    analysis = mfrnn.analyze_run(mfrnn.load_checkpoint("run/checkpoint.mfrnn"), key=jr.key(0))
    analysis.summary()["n_stable"]
    ```
    """
    if not isinstance(result, TrainResult):
        raise ValueError(f"`result` must be a TrainResult, got {type(result).__name__}.")
    if not isinstance(member, int) or not 0 <= member < result.n_members:
        raise ValueError(f"`member` must be in [0, {result.n_members}), got {member!r}.")
    net = result.member(member)
    task = result.task
    n_in = task.n_in
    u = jnp.zeros(n_in, net.bias.dtype) if inputs is None else jnp.asarray(inputs, net.bias.dtype)
    if u.shape != (n_in,):
        raise ValueError(
            f"`inputs` must hold one value per input of task {task.name!r} (n_in = {n_in}), "
            f"got shape {u.shape}."
        )
    k_trials, k_states = jr.split(key)
    trials, *_ = task.sample(k_trials, n_trials)
    states, xs = trajectory_states(net, trials, dt=task.dt, n_states=n_states, key=k_states,
                                   noise=noise)
    fps = find_fixed_points(net, states, u, throw=False)
    initial = initial_member(result, member)
    spectrum = connectivity_spectrum(net, initial=initial, spec=result.spec)
    flat = np.asarray(xs).reshape(-1, net.n)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    comps = vt[: min(3, vt.shape[0])].T
    pts = np.asarray(fps.points)
    k = pts.shape[0]
    pure_low_rank = isinstance(net, LowRankNetwork) and net.J_random is None
    modes = min(n_modes, net.rank if pure_low_rank else net.n)
    tcs = np.full((k, modes), np.nan)
    proj = np.full((k, modes, net.W_out.shape[1]), np.nan)
    for i in range(k):
        lin = linearise(net, pts[i], n_modes=modes)
        tcs[i] = np.asarray(lin.time_constants)
        proj[i] = np.asarray(lin.readout_projection)
    readout = np.asarray(jax.vmap(net.readout)(fps.points)) if k else np.zeros((0, net.W_out.shape[1]))
    return RunAnalysis(
        network=net, initial=initial, inputs=np.asarray(u), fixed_points=fps,
        spectrum=spectrum, trajectories=np.asarray(xs), components=comps, mean=mean,
        trajectories_pc=(np.asarray(xs) - mean) @ comps, points_pc=(pts - mean) @ comps,
        time_constants=tcs, readout_projection=proj, readout=readout,
    )
