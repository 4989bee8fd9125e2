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


_PHASE_COLOURS = ("#d9d9d9", "#6baed6", "#fc9272", "#cb181d")


def plot_phase_diagram(
    g, sigma_mn, phase, success, names, *, boundaries=(), markers=None, title=None
) -> Figure:
    """Phase diagram over (g, sigma_mn): coloured regions with labels, failed cells
    hatched grey, boundary curves and optional simulation markers.

    **Arguments:** `g` (G,), `sigma_mn` (S,), `phase` and `success` (G, S), `names` the
    phase names; `boundaries` a list of `(label, g_values, sigma_values)`; `markers` a
    list of `(g, sigma_mn, phase)` measured in simulations (drawn in the phase colour).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    g = np.asarray(g)
    s = np.asarray(sigma_mn)
    phase = np.ma.masked_where(~np.asarray(success), np.asarray(phase))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    cmap = ListedColormap(_PHASE_COLOURS[: len(names)])
    ax.pcolormesh(g, s, phase.T, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, shading="nearest")
    failed = ~np.asarray(success)
    if failed.any():
        G, S = np.meshgrid(g, s, indexing="ij")
        ax.scatter(G[failed], S[failed], marker="x", color="k", s=12, label="not converged")
    styles = ("k-", "k--", "k:")
    for (label, bg, bs), style in zip(boundaries, styles):
        ax.plot(bg, bs, style, lw=1.5, label=label)
    if markers:
        for mg, ms, mp in markers:
            ax.scatter(mg, ms, s=60, color=_PHASE_COLOURS[int(mp)], edgecolor="k", zorder=3)
        ax.scatter([], [], s=60, color="w", edgecolor="k", label="simulation (colour = phase)")
    handles = [Patch(color=_PHASE_COLOURS[i], label=n) for i, n in enumerate(names)]
    extra, labels = ax.get_legend_handles_labels()
    ax.legend(handles=handles + extra, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    ax.set_xlim(g[0], g[-1])
    ax.set_ylim(s[0], s[-1])
    ax.set_xlabel("g (random part)")
    ax.set_ylabel("sigma_mn (overlap)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
