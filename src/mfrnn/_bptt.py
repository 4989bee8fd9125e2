"""Backpropagation through the Euler recurrence of a batch of trials, with the adjoint
written out so that every parameter gradient is one large matrix product.

Forward, for trials b and steps k (time-major, x_0 = 0):

    x_{k+1} = x_k + alpha (-x_k + J phi(x_k) + bias + W_in u_k) + s xi_k,
    alpha = dt / tau,  s = sqrt(2 alpha) sigma.

Backward, with lambda_j = dL/dx_j and g_j the loss's direct cotangent of x_j:

    lambda_T = g_T,  lambda_j = g_j + (1 - alpha) lambda_{j+1}
                                    + alpha phi'(x_j) * J^T lambda_{j+1}.

Autodiff of the scan would also accumulate dJ += alpha lambda_{j+1}^T phi(x_j) inside
the loop: one small (N x batch) (batch x N) product and an N x N read-modify-write
per step. Here the loop carries lambda only (one batch x N by N x N product a step)
and every parameter's gradient is the VJP, with respect to the network, of one
batched evaluation of the step's increment over all (step, trial) rows: dJ is a
single (N x T batch) (T batch x N) product, dW_in a single product with the inputs.
`recurrent` is linear in phi(x), so this holds for dense, low-rank and factored J.
"""

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu


def _rows(f, x):
    """`f` (on one state) applied to every row of x (..., n) as one batched call."""
    flat = x.reshape(-1, x.shape[-1])
    return jax.vmap(f)(flat).reshape(x.shape[:-1] + (-1,))


def _plain_project(u, W_in):
    """W_in u_k for every (step, trial) row of u (steps, batch, n_in)."""
    return jnp.einsum("tbi,ni->tbn", u, W_in, precision=lax.Precision.HIGHEST)


@jax.custom_vjp
def _project(u, W_in):
    """`_plain_project`, with the reverse-mode derivative computed the cheaper way."""
    return _plain_project(u, W_in)


def _project_fwd(u, W_in):
    return _project(u, W_in), (u, W_in)


def _project_bwd(res, g):
    u, W_in = res
    # The barrier keeps the (n_in, n) product: folded into the transpose, XLA would
    # transpose the (rows, n) cotangent instead, a pass over the whole of it.
    dW = lax.optimization_barrier(
        jnp.einsum("tbi,tbn->in", u, g, precision=lax.Precision.HIGHEST)).T
    du = jnp.einsum("tbn,ni->tbi", g, W_in, precision=lax.Precision.HIGHEST)
    return du, dW


_project.defvjp(_project_fwd, _project_bwd)


def _external(model, u, x, project=_project):
    """bias + W_in u_k for every (step, trial) of x: one product for all steps."""
    bias = jnp.broadcast_to(model.bias, x.shape)
    if u is None:
        return bias
    if model.W_in is None:
        raise ValueError("An input signal was given but the network has no `W_in`.")
    return bias + project(u, model.W_in)


def _noise_scale(model, dt, noise_std):
    return jnp.sqrt(2.0 * dt / model.tau) * noise_std


def _increments(model, dt, x, u, xi, noise_std):
    """x_{k+1} - x_k for the states x (steps, batch, n) with their inputs and noise."""
    out = dt / model.tau * (-x + _rows(model.recurrent, model.phi(x)) + _external(model, u, x))
    if xi is not None:
        out = out + _noise_scale(model, dt, noise_std) * xi
    return out


def _forward(model, u, xi, dt, noise_std, x0):
    alpha = dt / model.tau
    steps = (xi if u is None else u).shape[0]
    ext = _external(model, u, jnp.broadcast_to(x0, (steps,) + x0.shape))
    noise = None if xi is None else _noise_scale(model, dt, noise_std) * xi

    def step(x, inputs):
        e, n_k = inputs
        x = x + alpha * (-x + _rows(model.recurrent, model.phi(x)) + e)
        if n_k is not None:
            x = x + n_k
        return x, x

    _, xs = lax.scan(step, x0, (ext, noise))
    return xs


@eqx.filter_custom_vjp
def euler_states(model_and_inputs, xi, dt, noise_std, x0):
    """States x_1 ... x_T (steps, batch, n) of the Euler recurrence from `x0` (batch,
    n), differentiable in the network and the inputs (steps, batch, n_in); `xi`:
    standard-normal noise (steps, batch, n) or None."""
    model, u = model_and_inputs
    return _forward(model, u, xi, dt, noise_std, x0)


@euler_states.def_fwd
def _euler_states_fwd(perturbed, model_and_inputs, xi, dt, noise_std, x0):
    del perturbed
    xs = euler_states.fn(model_and_inputs, xi, dt, noise_std, x0)
    return xs, xs


@euler_states.def_bwd
def _euler_states_bwd(xs, g, perturbed, model_and_inputs, xi, dt, noise_std, x0):
    model, u = model_and_inputs
    if g is None:
        g = jnp.zeros_like(xs)
    alpha = dt / model.tau

    def transpose_step(lam, inputs):
        # lambda_j from lambda_{j+1}; the step's primal (J phi(x)) is dead code.
        x, g_j = inputs
        _, step_vjp = jax.vjp(
            lambda x: x + alpha * (-x + _rows(model.recurrent, model.phi(x))), x
        )
        return step_vjp(lam)[0] + g_j, lam

    # j = T-1 ... 1 (x_j = xs[j - 1]); the outputs are lambda_{j+1}.
    lam_1, lams = lax.scan(transpose_step, g[-1], (xs[:-1], g[:-1]), reverse=True)
    lam = jnp.concatenate([lam_1[None], lams], axis=0)  # lambda_1 ... lambda_T
    x_prev = jnp.concatenate([x0[None], xs[:-1]], axis=0)  # x_0 ... x_{T-1}
    _, params_vjp = jax.vjp(
        lambda mu: _increments(mu[0], dt, x_prev, mu[1], xi, noise_std), (model, u)
    )
    (grads,) = params_vjp(lam)
    return jtu.tree_map(lambda d, p: d if p else None, grads, perturbed,
                        is_leaf=lambda d: d is None)


def euler_readout(model, u, dt, x0, *, keys=None, noise_std=0.0):
    """Readouts W_out^T phi(x_k), k = 1 ... T (steps, batch, n_out), of the same
    recurrence, forward only: the states are never stored (T x batch x n floats, the
    bulk of an evaluation's memory traffic). `keys` (batch,): per-trial noise keys,
    drawn per step as `euler_states`' callers draw them."""
    alpha = dt / model.tau
    scale = _noise_scale(model, dt, noise_std)

    def step(x, inputs):
        k, u_k = inputs
        # The plain product: an evaluation may be differentiated in forward mode.
        ext = _external(model, None if u_k is None else u_k[None], x[None], _plain_project)[0]
        x = x + alpha * (-x + _rows(model.recurrent, model.phi(x)) + ext)
        if keys is not None:
            xi = jax.vmap(lambda key: jr.normal(jr.fold_in(key, k), x.shape[-1:], x.dtype))(keys)
            x = x + scale * xi
        return x, jnp.einsum("bn,no->bo", model.phi(x), model.W_out)

    _, z = lax.scan(step, x0, (jnp.arange(u.shape[0]), u))
    return z
