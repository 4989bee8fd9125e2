"""Population structure of trained low-rank networks, back to mean-field theory (Beiran et
al. 2021; Dubreuil, Valente et al. 2022): Gaussian mixtures fitted to the loadings
`(m_r, n_r, I_s, [b], w)` of every unit, a [`mfrnn.MixtureEnsemble`][] per fit,
resampled networks scored on the task, and the mixture's latent dynamics.

The mixture is fitted by expectation-maximisation in JAX (full covariances, restarts
vmapped): no extra dependency, float64 when enabled, and the same numbers on every
backend.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy as jsp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._ensembles import LowRankEnsemble, MixtureEnsemble
from .._networks import AbstractRateNetwork, LowRankNetwork
from .._nonlinearities import AbstractNonlinearity
from .._options import Loss, LossLike, option
from .._simulate import simulate_euler
from .._solution import RESULTS, summary_repr
from .._tasks import AbstractTask
from .._theory.lowrank import LatentDynamics


def _check_trained_low_rank(network) -> None:
    if not isinstance(network, LowRankNetwork):
        raise ValueError(
            "Population analysis needs a low-rank network (a checkpoint trained with "
            f"`rank`), got a {type(network).__name__}."
        )
    if network.W_out is None:
        raise ValueError("Population analysis needs a network with a readout `W_out`.")


def network_loadings(network: AbstractRateNetwork) -> tuple[Float[Array, "n k"], tuple[str, ...]]:
    """Per-unit loadings `(m_1..m_R, n_1..n_R, I_1..I_S, [b], w_1..w_O)` of a low-rank
    network, with their names. The readout enters as `w = N W_out` (the mean-field
    scaling `z = w . phi(x) / N`); the bias only if it is not zero."""
    _check_trained_low_rank(network)
    cols = [network.m, network.n_vectors]
    names = [f"m{r + 1}" for r in range(network.rank)] + [f"n{r + 1}" for r in range(network.rank)]
    if network.W_in is not None:
        cols.append(network.W_in)
        names += [f"I{s + 1}" for s in range(network.W_in.shape[1])]
    if bool(jnp.any(network.bias != 0)):
        cols.append(network.bias[:, None])
        names.append("b")
    cols.append(network.n * network.W_out)
    names += [f"w{o + 1}" for o in range(network.W_out.shape[1])]
    return jnp.concatenate(cols, axis=1), tuple(names)


class PopulationFit(eqx.Module):
    """A Gaussian mixture fitted to a network's loadings.

    - `weights` (P,), `means` (P, k), `covs` (P, k, k): the mixture, loadings ordered as
      `names`; populations by decreasing weight.
    - `log_likelihood`: total over units; `bic`: `-2 log L + n_params log N`.
    - `labels`: the most probable population of each unit.
    - `ensemble()`: the [`mfrnn.MixtureEnsemble`][] of the recurrent and input loadings
      (a nonzero bias is one more input, always 1: see `theory_inputs`).
    - `sample(n, key=...)`: a resampled network with readout (and bias).
    - `result`: EM converged (`successful`) or ran out of steps.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    weights: Float[Array, " P"]
    means: Float[Array, "P k"]
    covs: Float[Array, "P k k"]
    log_likelihood: Float[Array, ""]
    bic: Float[Array, ""]
    labels: Int[Array, " n"]
    g: Float[Array, ""]
    tau: Float[Array, ""]
    phi: AbstractNonlinearity
    names: tuple[str, ...] = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    has_bias: bool = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    result: RESULTS

    @property
    def n_populations(self) -> int:
        return self.weights.shape[0]

    def _mixture(self, k: int, **kw) -> MixtureEnsemble:
        w = self.weights / jnp.sum(self.weights)
        return MixtureEnsemble(
            self.rank, fractions=w, means=self.means[:, :k], covs=self.covs[:, :k, :k],
            n_inputs=k - 2 * self.rank, g=self.g, phi=self.phi, tau=self.tau, **kw,
        )

    def ensemble(self) -> MixtureEnsemble:
        """The mixture of `(m, n, I[, b])`: the theory's ensemble (`solve_lowrank`,
        `LatentDynamics`); call it with `theory_inputs(u)`."""
        return self._mixture(2 * self.rank + self.n_inputs + int(self.has_bias))

    def theory_inputs(self, u: Float[ArrayLike, "*batch n_in"]) -> Float[Array, "*batch k_in"]:
        """Inputs of `ensemble()`: u, with a constant 1 appended when the bias is a loading."""
        u = jnp.asarray(u, self.means.dtype)
        if u.shape[-1:] != (self.n_inputs,):
            raise ValueError(f"`u` must have a last axis of length {self.n_inputs}, got {u.shape}.")
        if not self.has_bias:
            return u
        return jnp.concatenate([u, jnp.ones(u.shape[:-1] + (1,), u.dtype)], axis=-1)

    def sample(self, n: int, *, key: PRNGKeyArray) -> LowRankNetwork:
        """A network of `n` units drawn from the fitted mixture, readout included."""
        net = self._mixture(self.means.shape[1]).sample(n, key=key)
        cols = net.W_in
        s, b = self.n_inputs, int(self.has_bias)
        return LowRankNetwork(
            net.m, net.n_vectors, self.phi, J_random=net.J_random,
            bias=cols[:, s] if b else None,
            W_in=cols[:, :s] if s else None,
            W_out=cols[:, s + b:] / n,
            tau=self.tau,
        )


def _log_prob(X, weights, means, covs):
    # d is small (a few loadings): explicit inverses are cheaper than batched solves.
    prec = jnp.linalg.inv(covs)
    diff = X[None, :, :] - means[:, None, :]
    maha = jnp.einsum("kni,kij,knj->kn", diff, prec, diff)
    logdet = jnp.linalg.slogdet(covs)[1]
    d = X.shape[1]
    return -0.5 * (maha + logdet[:, None] + d * math.log(2 * math.pi)) + jnp.log(weights)[:, None]


@eqx.filter_jit
def _em(X, keys, n_populations, max_steps, tol, reg):
    n, d = X.shape
    K = n_populations
    eye = jnp.eye(d, dtype=X.dtype)

    def init(key):
        # Means at K distinct units, every covariance the data's.
        idx = jr.choice(key, n, (K,), replace=False)
        cov = jnp.cov(X.T).reshape(d, d) + reg * eye
        return jnp.full(K, 1.0 / K, X.dtype), X[idx], jnp.broadcast_to(cov, (K, d, d))

    def m_step(resp):
        nk = jnp.sum(resp, axis=1) + 10 * jnp.finfo(X.dtype).eps
        means = resp @ X / nk[:, None]
        diff = X[None] - means[:, None]
        covs = jnp.einsum("kn,kni,knj->kij", resp, diff, diff) / nk[:, None, None] + reg * eye[None]
        return nk / n, means, covs

    def body(carry):
        params, ll_old, _, step = carry
        lp = _log_prob(X, *params)
        norm = jsp.special.logsumexp(lp, axis=0)
        ll = jnp.sum(norm)
        return m_step(jnp.exp(lp - norm[None])), ll, ll_old, step + 1

    def cond(carry):
        _, ll, ll_old, step = carry
        return (step < max_steps) & ~(jnp.abs(ll - ll_old) <= tol * n)

    def one(key):
        start = (init(key), jnp.asarray(-jnp.inf, X.dtype), jnp.asarray(jnp.nan, X.dtype), 0)
        params, _, _, step = jax.lax.while_loop(cond, body, start)
        lp = _log_prob(X, *params)
        ll = jnp.sum(jsp.special.logsumexp(lp, axis=0))
        return params, ll, jnp.argmax(lp, axis=0), step < max_steps

    return jax.vmap(one)(keys)


def _n_params(k: int, d: int) -> int:
    return (k - 1) + k * d + k * d * (d + 1) // 2


def fit_populations(
    network: AbstractRateNetwork,
    n_populations: int,
    *,
    key: PRNGKeyArray,
    n_init: int = 8,
    max_steps: int = 300,
    tol: float = 1e-7,
    reg: float = 1e-6,
) -> PopulationFit:
    """Fit a Gaussian mixture of `n_populations` components to the loadings of a trained
    low-rank network ([`mfrnn.network_loadings`][]) by EM, best of `n_init` restarts.

    **Arguments:**

    - `network`: a [`mfrnn.LowRankNetwork`][] with a readout.
    - `n_populations`: P >= 1; each population needs more units than loadings
      (P (k + 1) <= N), else its covariance cannot be estimated.
    - `key`: for the restarts' initial means.
    - `tol`: stop when the mean log-likelihood per unit changes by less; `reg`: added
      to every covariance's diagonal, relative to the mean loading variance.

    ```python
    fit = mfrnn.fit_populations(net, 2, key=jr.key(0))
    fit.bic, fit.ensemble(), fit.sample(512, key=jr.key(1))
    ```
    """
    X, names = network_loadings(network)
    n, d = X.shape
    if not isinstance(n_populations, int) or n_populations < 1:
        raise ValueError(f"`n_populations` must be a positive integer, got {n_populations!r}.")
    if n_populations * (d + 1) > n:
        raise ValueError(
            f"`n_populations` = {n_populations} is too large for N = {n} units: each "
            f"population needs at least {d + 1} units to estimate the covariance of its "
            f"{d} loadings (at most {n // (d + 1)} populations)."
        )
    if not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"`n_init` must be a positive integer, got {n_init!r}.")
    scale = float(jnp.mean(jnp.var(X, axis=0)))
    params, ll, labels, ok = _em(X, jr.split(key, n_init), n_populations, max_steps, tol,
                                 reg * scale)
    best = int(jnp.argmax(jnp.where(jnp.isfinite(ll), ll, -jnp.inf)))
    weights, means, covs = (p[best] for p in params)
    order = jnp.argsort(-weights)
    relabel = jnp.argsort(order)
    g = jnp.asarray(0.0, X.dtype)
    if network.J_random is not None:
        g = jnp.sqrt(n * jnp.mean(network.J_random**2))
    return PopulationFit(
        weights=weights[order],
        means=means[order],
        covs=covs[order],
        log_likelihood=ll[best],
        bic=-2 * ll[best] + _n_params(n_populations, d) * math.log(n),
        labels=relabel[labels[best]],
        g=g,
        tau=network.tau,
        phi=network.phi,
        names=names,
        rank=network.rank,
        n_inputs=0 if network.W_in is None else network.W_in.shape[1],
        has_bias="b" in names,
        n_out=network.W_out.shape[1],
        result=RESULTS.where(ok[best], RESULTS.successful, RESULTS.nonlinear_max_steps_reached),
    )


class PopulationAnalysis(eqx.Module):
    """Resampling scores against the number of populations.

    - `n_populations`: 1..K; `bic`: of each fit; `fits`: the [`mfrnn.PopulationFit`][]s.
    - `accuracy`: (K, n_resamples) task accuracy of networks resampled from each fit.
    - `trained_accuracy`: the trained network's accuracy on the same trials.
    """

    __repr__ = summary_repr  # fields by value, arrays by shape and range

    n_populations: Int[Array, " K"]
    bic: Float[Array, " K"]
    accuracy: Float[Array, "K resamples"]
    trained_accuracy: float = eqx.field(static=True)
    fits: tuple[PopulationFit, ...]


def population_analysis(
    network: AbstractRateNetwork,
    task: AbstractTask,
    *,
    max_populations: int,
    key: PRNGKeyArray,
    n_resamples: int = 5,
    n: int | None = None,
    batch: int = 256,
    loss: LossLike = Loss.mse,
    noise_std: float = 0.0,
    n_init: int = 8,
) -> PopulationAnalysis:
    """Fit mixtures of 1..`max_populations` populations to a trained low-rank network,
    resample `n_resamples` networks of `n` units (default: the network's size) from each,
    and score them on `task` with [`mfrnn.evaluate`][] on the same trials as the trained
    network. If one population keeps the accuracy, the computation is explained by a
    single Gaussian of loadings (Dubreuil et al. 2022). `loss` (a [`mfrnn.Loss`][]) and
    `noise_std` are the training run's (`TrainConfig.loss`, `TrainConfig.noise_std`).

    ```python
    pa = mfrnn.population_analysis(net, task, max_populations=3, key=jr.key(0))
    pa.accuracy.mean(axis=1), pa.bic
    ```
    """
    from .._training import evaluate  # the scoring the training uses

    _check_trained_low_rank(network)
    loss = option(Loss, loss, "loss")
    if not isinstance(task, AbstractTask):
        raise ValueError(f"`task` must be an AbstractTask, got {type(task).__name__}.")
    if not isinstance(max_populations, int) or max_populations < 1:
        raise ValueError(f"`max_populations` must be a positive integer, got {max_populations!r}.")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer, got {n_resamples!r}.")
    size = network.n if n is None else n
    d = network_loadings(network)[0].shape[1]
    if max_populations * (d + 1) > network.n:
        raise ValueError(
            f"`max_populations` = {max_populations} is too large for N = {network.n} units "
            f"with {d} loadings each (at most {network.n // (d + 1)})."
        )
    k_fit, k_sample, k_eval = jr.split(key, 3)
    trained = evaluate(network, task, key=k_eval, batch=batch, loss=loss, noise_std=noise_std)
    fits, accuracy = [], []
    for p in range(1, max_populations + 1):
        fit = fit_populations(network, p, key=jr.fold_in(k_fit, p), n_init=n_init)
        fits.append(fit)
        row = []
        for i in range(n_resamples):
            net = fit.sample(size, key=jr.fold_in(jr.fold_in(k_sample, p), i))
            ev = evaluate(net, task, key=k_eval, batch=batch, loss=loss, noise_std=noise_std)
            row.append(ev.accuracy)
        accuracy.append(row)
    return PopulationAnalysis(
        n_populations=jnp.arange(1, max_populations + 1),
        bic=jnp.stack([f.bic for f in fits]),
        accuracy=jnp.asarray(accuracy),
        trained_accuracy=trained.accuracy,
        fits=tuple(fits),
    )


def latent_trajectories(
    model: LowRankNetwork | LowRankEnsemble | MixtureEnsemble,
    inputs: Float[ArrayLike, "batch time n_in"],
    *,
    dt: float,
) -> Float[Array, "batch time_plus_one rank"]:
    """Latent coordinates `kappa(t)` of trials from x = 0 with Euler steps of `dt` (the
    training scheme), for a low-rank network or for the mean-field theory of an ensemble.

    From x = 0, a low-rank network without random part stays in the span of m, the input
    vectors and the bias: `x = m kappa + I v + b c`, with `v` the input low-pass filtered
    by tau. For a network, kappa is that coordinate along m (least squares); for an
    ensemble, kappa follows [`mfrnn.LatentDynamics`][] driven by the same filtered input,
    so the two are directly comparable (equal for N -> inf).

    ```python
    theory = mfrnn.latent_trajectories(fit.ensemble(), fit.theory_inputs(u), dt=task.dt)
    trained = mfrnn.latent_trajectories(net, u, dt=task.dt)
    ```
    """
    u = jnp.asarray(inputs)
    if u.ndim != 3:
        raise ValueError(f"`inputs` must have shape (batch, time, n_in), got {u.shape}.")
    if isinstance(model, LowRankNetwork):
        if model.J_random is not None:
            raise ValueError("`latent_trajectories` needs a network without random part.")
        n_in = 0 if model.W_in is None else model.W_in.shape[1]
        if u.shape[2] != n_in:
            raise ValueError(f"`inputs` must have n_in = {n_in} channels, got {u.shape[2]}.")
        u = u.astype(model.bias.dtype)
        basis = [model.m] + ([model.W_in] if n_in else []) + [model.bias[:, None]]
        basis = jnp.concatenate(basis, axis=1)
        x0 = jnp.zeros(model.n, model.bias.dtype)
        xs = jax.vmap(lambda ui: simulate_euler(model, x0, dt=dt, n_steps=u.shape[1],
                                                inputs=ui if n_in else None))(u)
        coef = jnp.linalg.lstsq(basis, xs.reshape(-1, model.n).T)[0]
        return coef[: model.rank].T.reshape(u.shape[0], u.shape[1] + 1, model.rank)
    if isinstance(model, (LowRankEnsemble, MixtureEnsemble)):
        if u.shape[2] != model.n_inputs:
            raise ValueError(
                f"`inputs` must have the ensemble's n_inputs = {model.n_inputs} channels, "
                f"got {u.shape[2]}."
            )
        field = LatentDynamics(model)
        alpha = dt / model.tau
        u = u.astype(model.tau.dtype)

        def trial(ui):
            def step(carry, uk):
                kappa, v = carry
                kappa = kappa + dt * field(None, kappa, v)
                return (kappa, v + alpha * (uk - v)), kappa

            zero = jnp.zeros(model.rank, ui.dtype)
            _, ks = jax.lax.scan(step, (zero, jnp.zeros(model.n_inputs, ui.dtype)), ui)
            return jnp.concatenate([zero[None], ks])

        return jax.vmap(trial)(u)
    raise ValueError(
        f"`model` must be a LowRankNetwork or a low-rank / mixture ensemble, got "
        f"{type(model).__name__}."
    )
