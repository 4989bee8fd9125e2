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


def plot_sweep(
    x, quantities: dict, *, converged=None, categories=None, xlabel: str = "",
    title: str | None = None,
) -> Figure:
    """Quantities against one swept parameter, one panel each, sharing the x axis.

    **Arguments:** `x` (K,) the swept values; `quantities` maps a name to K values
    (`None` or NaN where there is none); `converged` (K,) marks failed points with
    crosses; `categories` maps a name of `quantities` whose values are names (e.g. the
    regime) to the list of those names, drawn as a step plot with named ticks.
    """
    x = np.asarray(x, float)
    categories = categories or {}
    n = len(quantities)
    fig, axes = plt.subplots(n, 1, figsize=(6, 1.6 + 1.4 * n), sharex=True, squeeze=False)
    failed = None if converged is None else ~np.asarray(converged, bool)
    for ax, (name, values) in zip(axes[:, 0], quantities.items()):
        if name in categories:
            names = list(categories[name])
            y = np.array([np.nan if v is None else names.index(v) for v in values], float)
            ax.step(x, y, where="mid", marker="o", ms=3)
            ax.set_yticks(range(len(names)), names, fontsize=7)
        else:
            y = np.array([np.nan if v is None else v for v in values], float)
            ax.plot(x, y, "o-", ms=3)
        if failed is not None and failed.any():
            ax.plot(x[failed], np.zeros(failed.sum()), "x", color="C3",
                    transform=ax.get_xaxis_transform(), clip_on=False, label="not converged")
            ax.legend(fontsize=7)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


_PHASE_COLOURS = ("#d9d9d9", "#6baed6", "#fc9272", "#cb181d", "#74c476")


def plot_phase_diagram(
    g,
    sigma_mn,
    phase,
    success,
    names,
    *,
    boundaries=(),
    markers=None,
    title=None,
    xlabel=None,
    ylabel=None,
) -> Figure:
    """Phase diagram over a two-axis grid (e.g. g and sigma_mn): coloured regions with
    labels, failed cells hatched grey, boundary curves and optional simulation markers.

    **Arguments:** `g` (G,) and `sigma_mn` (S,) the values along the grid's two axes,
    `phase` and `success` (G, S), `names` the phase names; `boundaries` a list of
    `(label, x_values, y_values)`; `markers` a list of `(x, y, phase)` measured in
    simulations (drawn in the phase colour); `xlabel`, `ylabel` name the swept fields,
    e.g. `xlabel, ylabel = mfrnn.grid_labels(ensemble)` ("grid axis 0/1" if not
    given). Failed cells (label -1, named "failed") are masked and marked with crosses.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    g = np.asarray(g)
    s = np.asarray(sigma_mn)
    names = [n for n in names if n != "failed"]
    phase = np.ma.masked_where(~np.asarray(success) | (np.asarray(phase) < 0), np.asarray(phase))
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
    ax.set_xlabel("grid axis 0" if xlabel is None else xlabel)
    ax.set_ylabel("grid axis 1" if ylabel is None else ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_training(history: dict, *, title: str | None = None) -> Figure:
    """Loss and accuracy on the evaluation batch against the training step, one line
    per member (`fit`'s `history`)."""
    steps = np.asarray(history["step"])
    loss = np.asarray(history["loss"], float)
    acc = np.asarray(history["accuracy"], float)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    for i in range(loss.shape[1]):
        ax_l.semilogy(steps, loss[:, i], lw=1, label=f"member {i}")
        ax_a.plot(steps, acc[:, i], lw=1)
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("evaluation loss")
    ax_a.set_xlabel("step")
    ax_a.set_ylabel("accuracy")
    ax_a.set_ylim(-0.02, 1.02)
    if loss.shape[1] <= 8:
        ax_l.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trials(u, y, mask, z, *, dt: float = 1.0, n_trials: int = 4,
                title: str | None = None) -> Figure:
    """Example trials: inputs (top) and outputs with their targets (bottom; dashed
    target, grey where the loss does not score)."""
    u, y, mask, z = (np.asarray(a) for a in (u, y, mask, z))
    n = min(n_trials, u.shape[0])
    t = dt * (np.arange(u.shape[1]) + 1)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 4.5), sharex=True, squeeze=False)
    for j in range(n):
        axes[0, j].plot(t, u[j], lw=1)
        axes[0, j].set_title(f"trial {j}", fontsize=9)
        for o in range(z.shape[-1]):
            line, = axes[1, j].plot(t, z[j, :, o], lw=1.2)
            if o < y.shape[-1] and y.shape[-1] == z.shape[-1]:
                axes[1, j].plot(t, np.where(mask[j, :, o] > 0, y[j, :, o], np.nan), "--",
                                color=line.get_color(), lw=1)
        unscored = np.all(mask[j] == 0, axis=-1)
        axes[1, j].fill_between(t, 0, 1, where=unscored, color="0.85", alpha=0.6,
                                transform=axes[1, j].get_xaxis_transform(), lw=0)
        axes[1, j].set_xlabel("time (ms)")
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("output (dashed: target)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_psychometric(evidence, fraction_plus, *, group_names=(),
                      xlabel: str = "signed coherence (%)", title: str | None = None) -> Figure:
    """Fraction of +1 choices against signed evidence, one curve per row of
    `fraction_plus` (group, level), e.g. from [`mfrnn.psychometric_curve`][]: pass
    `curve.evidence, curve.fraction_plus, group_names=curve.group_names,
    xlabel=curve.xlabel`. NaN cells (no trial) are left out."""
    levels = np.asarray(evidence, float)
    rows = np.atleast_2d(np.asarray(fraction_plus, float))
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for gi, row in enumerate(rows):
        shown = np.isfinite(row)
        label = group_names[gi] if gi < len(group_names) else None
        ax.plot(levels[shown], row[shown], "o-", label=label)
    ax.axhline(0.5, color="0.7", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(choice = +1)")
    ax.set_ylim(-0.02, 1.02)
    if len(group_names):
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_eigenvalues(eigenvalues, *, radius: float | None = None, n_label: int = 0,
                     title: str | None = None) -> Figure:
    """Eigenvalues of a connectivity matrix in the complex plane, with the unit circle
    (instability of x = 0 for tanh) and optionally a bulk radius; the `n_label`
    largest in real part are highlighted (the dominant modes of a trained network)."""
    ev = np.asarray(eigenvalues)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(ev.real, ev.imag, s=6, color="0.3")
    if n_label:
        top = ev[np.argsort(-ev.real)[:n_label]]
        ax.scatter(top.real, top.imag, s=30, facecolors="none", edgecolors="C3",
                   label=f"{n_label} largest Re")
        ax.legend(fontsize=8)
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), "--", color="C0", lw=1)
    if radius is not None:
        ax.plot(radius * np.cos(theta), radius * np.sin(theta), ":", color="C1", lw=1)
    ax.axvline(1.0, color="C0", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_fixed_points(trajectories_pc, points_pc, n_unstable, is_fixed, *,
                      title: str | None = None) -> Figure:
    """Trajectories in their top principal components (grey) with the fixed points
    coloured by stability (stable filled, saddles open, by number of unstable
    directions) and slow points as crosses.

    **Arguments:** `trajectories_pc` (batch, time, 2 or 3), `points_pc` (k, 2 or 3),
    `n_unstable` and `is_fixed` (k,), e.g. from [`mfrnn.analyze_run`][].
    """
    traj = np.asarray(trajectories_pc)
    pts = np.asarray(points_pc)
    n_unstable = np.asarray(n_unstable)
    is_fixed = np.asarray(is_fixed, bool)
    three = traj.shape[-1] >= 3
    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d" if three else None)
    dims = 3 if three else 2
    for tr in traj:
        ax.plot(*tr[:, :dims].T, color="0.7", lw=0.5, alpha=0.6)
    stable = is_fixed & (n_unstable == 0)
    if stable.any():
        ax.scatter(*pts[stable, :dims].T, s=50, color="C0", edgecolor="k", label="stable", zorder=3)
    for k in sorted(set(n_unstable[is_fixed & ~stable].tolist())):
        sel = is_fixed & (n_unstable == k)
        ax.scatter(*pts[sel, :dims].T, s=40, facecolors="none", edgecolors=f"C{1 + k % 8}",
                   linewidths=1.5, label=f"{k} unstable direction{'s' if k > 1 else ''}", zorder=3)
    if (~is_fixed).any():
        ax.scatter(*pts[~is_fixed, :dims].T, s=30, marker="x", color="C3", label="slow point",
                   zorder=3)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if three:
        ax.set_zlabel("PC 3")
    if len(pts):
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_spectrum(eigenvalues, *, initial_eigenvalues=None, bulk_radius: float | None = None,
                  predicted_outliers=None, title: str | None = None) -> Figure:
    """Eigenvalues of a (trained) J, optionally over the initial J's, with the theory's
    bulk radius (circle) and predicted low-rank outliers (open diamonds)."""
    ev = np.asarray(eigenvalues)
    fig, ax = plt.subplots(figsize=(5, 5))
    if initial_eigenvalues is not None:
        ev0 = np.asarray(initial_eigenvalues)
        ax.scatter(ev0.real, ev0.imag, s=6, color="C2", alpha=0.4, label="before training")
    ax.scatter(ev.real, ev.imag, s=8, color="0.2", label="trained" if initial_eigenvalues
               is not None else "eigenvalues")
    theta = np.linspace(0, 2 * np.pi, 200)
    if bulk_radius is not None and np.isfinite(bulk_radius):
        ax.plot(bulk_radius * np.cos(theta), bulk_radius * np.sin(theta), "--", color="C1",
                lw=1, label=f"bulk radius {bulk_radius:.3g}")
    if predicted_outliers is not None and len(np.asarray(predicted_outliers)):
        po = np.asarray(predicted_outliers)
        ax.scatter(po.real, po.imag, s=60, marker="D", facecolors="none", edgecolors="C3",
                   label="predicted outliers")
    ax.axvline(1.0, color="C0", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_population_accuracy(n_populations, accuracy, *, trained_accuracy=None, bic=None,
                             title: str | None = None) -> Figure:
    """Accuracy of resampled networks (mean and spread over resamples) against the
    number of populations, with the trained network's accuracy and optionally the BIC."""
    k = np.asarray(n_populations)
    acc = np.asarray(accuracy)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(k, acc.mean(axis=1), yerr=acc.std(axis=1), fmt="o-", capsize=3,
                label="resampled")
    if trained_accuracy is not None:
        ax.axhline(trained_accuracy, color="C3", ls="--", lw=1, label="trained")
    ax.set_xlabel("populations")
    ax.set_ylabel("accuracy")
    ax.set_xticks(k)
    ax.legend(fontsize=8, loc="lower right")
    if bic is not None:
        ax2 = ax.twinx()
        ax2.plot(k, np.asarray(bic), "s:", color="0.5")
        ax2.set_ylabel("BIC", color="0.5")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_dimension(
    effective_rank, pr_phi, pr_x, *, iid=None, markers=None, title: str | None = None
) -> Figure:
    """Participation ratios PR^phi / N and PR^x / N against the effective rank (log
    axis), with the iid values `iid = (pr_phi, pr_x)` as dashed lines and simulated
    points `markers = [(effective_rank, pr_phi, pr_x), ...]`. NaN points (failed or
    quiescent) are left out of the curves."""
    rank = np.asarray(effective_rank, float)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for values, colour, name in ((pr_phi, "C0", "PR^phi / N"), (pr_x, "C1", "PR^x / N")):
        ax.plot(rank, np.asarray(values, float), color=colour, lw=2, label=f"theory {name}")
    if iid is not None:
        ax.axhline(float(iid[0]), color="C0", ls="--", lw=1, label="iid")
        ax.axhline(float(iid[1]), color="C1", ls="--", lw=1)
    if markers:
        for m_rank, m_phi, m_x in markers:
            ax.scatter([m_rank], [m_phi], color="C0", edgecolor="k", zorder=3)
            ax.scatter([m_rank], [m_x], color="C1", edgecolor="k", marker="s", zorder=3)
        ax.scatter([], [], color="w", edgecolor="k", label="simulation")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("effective rank alpha PR_D")
    ax.set_ylabel("participation ratio / N")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
