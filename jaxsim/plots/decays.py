"""Decay plots: normalised decays on a log axis against time in ns (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_decays(ax, t, curves, labels=None, *, normalise=True, ylabel="n(t) / n(0)",
                floor=1e-6):
    """Draw decays (rows of ``curves``) against ``t`` in s, shown in ns, log y axis.

    Values below ``floor`` (after normalisation) are clipped so the log axis stays readable.
    """
    t = np.asarray(t)
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    if normalise:
        curves = curves / curves[:, :1]
    labels = labels if labels is not None else [None] * len(curves)
    for y, lab in zip(curves, labels):
        ax.plot(t * 1e9, np.clip(y, floor, None), label=lab)
    ax.set_yscale("log")
    ax.set_xlabel("time (ns)")
    ax.set_ylabel(ylabel)
    if any(lab is not None for lab in labels):
        ax.legend(fontsize="small")
    return ax


def save_decay_plot(path, t, series: dict, *, title: str | None = None, normalise=True):
    """One figure with one panel per entry of ``series`` (name -> curve), saved to ``path``."""
    path = Path(path)
    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (name, y) in zip(axes[0], series.items()):
        y = np.asarray(y, dtype=float)
        positive = y[y > 0]
        floor = max(float(positive.min()) if positive.size else 1e-30, 1e-30)
        if normalise and y[0] > 0:
            floor = floor / y[0]
        plot_decays(ax, t, y, normalise=normalise, ylabel=name + (" (normalised)" if normalise else ""),
                    floor=floor)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
