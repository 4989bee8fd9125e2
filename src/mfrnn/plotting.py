"""Matplotlib figures of mfrnn results. Computes nothing; the core never imports it."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_activity(
    ts, xs, *, rates=None, n_traces: int = 8, title: str | None = None
) -> Figure:
    """Activity of one trial: a raster (units x time) of x and a few unit traces.

    **Arguments:** `ts` (time,), `xs` (time, n), optional `rates` = phi(xs) to show
    instead of x in the traces.
    """
    ts = np.asarray(ts)
    xs = np.asarray(xs)
    fig, (ax_raster, ax_traces) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    lim = float(np.percentile(np.abs(xs), 99)) or 1.0
    image = ax_raster.imshow(
        xs.T,
        aspect="auto",
        origin="lower",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        extent=(ts[0], ts[-1], 0, xs.shape[1]),
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax_raster, label="x")
    ax_raster.set_ylabel("unit")
    shown = rates if rates is not None else xs
    for i in range(min(n_traces, xs.shape[1])):
        ax_traces.plot(ts, np.asarray(shown)[:, i], lw=1)
    ax_traces.set_xlabel("time (units of tau)")
    ax_traces.set_ylabel("phi(x)" if rates is not None else "x")
    if title:
        ax_raster.set_title(title)
    fig.tight_layout()
    return fig


def plot_autocorrelation(
    lags, theory, *, simulated_lags=None, simulated=None, title: str | None = None
) -> Figure:
    """DMFT autocorrelation Delta(tau), optionally with a simulated one overlaid."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.asarray(lags), np.asarray(theory), lw=2, label="DMFT")
    if simulated is not None:
        ax.plot(np.asarray(simulated_lags), np.asarray(simulated), "o", ms=3, alpha=0.6,
                label="simulation")
    ax.set_xlabel("lag tau (units of tau)")
    ax.set_ylabel("Delta(tau)")
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
