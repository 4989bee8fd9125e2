"""Eigenvalues and stability of small (k <= 4 or so) matrices with operations that run
on every backend and under autodiff. `jnp.linalg.eigvals` runs on CPU only in JAX, so
the theory never calls it inside a grid program."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Complex, Float


def characteristic_polynomial(M: Float[Array, "k k"]) -> Float[Array, " k+1"]:
    """Coefficients `c` of det(lambda I - M), highest degree first (c[0] = 1), by
    Faddeev-LeVerrier: exact in k matrix products."""
    k = M.shape[-1]
    eye = jnp.eye(k, dtype=M.dtype)
    coeffs = [jnp.ones((), M.dtype)]
    Mi = jnp.zeros_like(M)
    for i in range(1, k + 1):
        Mi = M @ Mi + coeffs[-1] * eye
        coeffs.append(-jnp.trace(M @ Mi) / i)
    return jnp.stack(coeffs)


def hurwitz_polynomial_stable(a: Float[Array, " m"]) -> Bool[Array, ""]:
    """Whether every root of the polynomial `a` (highest degree first, a[0] > 0) has
    negative real part: the leading principal minors of its Hurwitz matrix are all
    positive (Routh-Hurwitz). Exact in exact arithmetic; no eigensolver."""
    k = a.shape[0] - 1
    if k == 0:
        return jnp.asarray(True)
    coef = lambda j: a[j] if 0 <= j <= k else jnp.zeros((), a.dtype)
    H = jnp.stack([jnp.stack([coef(2 * j - i + 1) for j in range(k)]) for i in range(k)])
    minors = [jnp.linalg.det(H[:i, :i]) if i > 1 else H[0, 0] for i in range(1, k + 1)]
    return jnp.all(jnp.stack(minors) > 0)


def hurwitz_stable(
    M: Float[Array, "k k"], margin: float | Array = 0.0, marginal: int | Array = 0
) -> Bool[Array, ""]:
    """Whether every eigenvalue of M has real part < -margin, by Routh-Hurwitz on the
    characteristic polynomial of M + margin I. With `marginal = m`, m eigenvalues known
    to be 0 (directions along a manifold of fixed points) are divided out first, so the
    verdict is on the others and not on the sign of rounding noise."""
    k = M.shape[-1]
    a = characteristic_polynomial(M + margin * jnp.eye(k, dtype=M.dtype))
    verdicts = jnp.stack([hurwitz_polynomial_stable(a[: k + 1 - m]) for m in range(k + 1)])
    return verdicts[jnp.clip(marginal, 0, k)]


def _polyval(c, z):
    out = jnp.zeros_like(z) + c[0]
    for ci in c[1:]:
        out = out * z + ci
    return out


def polynomial_roots(c: Float[Array, " m"], iterations: int = 80) -> Complex[Array, " m-1"]:
    """Roots of the monic polynomial `c` (highest degree first) by the Aberth-Ehrlich
    iteration from a circle of Cauchy-bound radius, then one Newton step whose gradient
    is the implicit one (d root = -dp / p'), so the roots differentiate correctly."""
    n = c.shape[0] - 1
    cdt = jnp.result_type(c.dtype, jnp.complex64)
    c = c.astype(cdt)
    dc = c[:-1] * jnp.arange(n, 0, -1).astype(cdt)
    c_ng, dc_ng = jax.lax.stop_gradient(c), jax.lax.stop_gradient(dc)
    radius = 1.0 + jnp.max(jnp.abs(c_ng[1:]))
    z0 = radius * jnp.exp(1j * (2 * jnp.pi * jnp.arange(n) / n + 0.4)).astype(cdt)
    off = ~jnp.eye(n, dtype=bool)

    def step(z, _):
        w = _polyval(c_ng, z) / _polyval(dc_ng, z)
        diff = z[:, None] - z[None, :]
        s = jnp.sum(jnp.where(off, 1.0 / jnp.where(off, diff, 1.0), 0.0), axis=1)
        dz = w / (1.0 - w * s)
        dz = jnp.where(jnp.isfinite(dz), dz, 0.0)
        return z - dz, None

    z, _ = jax.lax.scan(step, z0, None, length=iterations)
    z = jax.lax.stop_gradient(z)
    dp = _polyval(dc, z)
    return z - _polyval(c, z) / jnp.where(dp == 0, 1.0, dp)


def small_eigvals(M: Float[Array, "k k"]) -> Complex[Array, " k"]:
    """Eigenvalues of a small real matrix: closed forms for k <= 2, the roots of the
    characteristic polynomial otherwise."""
    k = M.shape[-1]
    cdt = jnp.result_type(M.dtype, jnp.complex64)
    if k == 1:
        return M[0].astype(cdt)
    if k == 2:
        Mc = M.astype(cdt)
        half_tr = 0.5 * (Mc[0, 0] + Mc[1, 1])
        det = Mc[0, 0] * Mc[1, 1] - Mc[0, 1] * Mc[1, 0]
        root = jnp.sqrt(half_tr**2 - det)
        return jnp.stack([half_tr + root, half_tr - root])
    return polynomial_roots(characteristic_polynomial(M))
