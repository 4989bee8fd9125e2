import warnings

import jax
import numpy as np

import mfrnn


def all_nonlinearities():
    return [
        mfrnn.Tanh(),
        mfrnn.Erf(),
        mfrnn.ReLU(),
        mfrnn.Linear(),
        mfrnn.ShiftedTanh(0.7),
    ]


def finite_difference(fn, x: float, h: float = 1e-5) -> float:
    assert jax.config.jax_enable_x64, "finite differences need float64"
    return (float(fn(x + h)) - float(fn(x - h))) / (2 * h)


def scipy_gaussian_mean(f, mu: float, delta: float) -> float:
    """E f(mu + sqrt(delta) z) by adaptive quadrature in x, with breakpoints at 0."""
    from scipy import integrate

    s = np.sqrt(delta)

    def integrand(x):
        return f(x) * np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))

    lo, hi = mu - 14 * s, mu + 14 * s
    points = [p for p in (0.0,) if lo < p < hi]
    with warnings.catch_warnings():
        # quad reports round-off when it reaches ~1e-15; the value is still that good.
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(
            integrand, lo, hi, points=points or None, epsabs=1e-15, epsrel=1e-14, limit=500
        )
    return value
