"""Decay plots: normalised decays on a log axis against time in ns (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxsim.plots.style import format_log_axis, legend_clear_of_data  # noqa: E402

#: readable y labels of the curves ``jaxsim simulate --plot`` draws (normalised at t = 0)
SERIES_LABELS = {"n": "carrier density $n(t)/n(0)$", "n_d": "trapped carriers $n_d(t)/n_d(0)$",
                 "pl": "PL$(t)$/PL$(0)$", "n(t)": "carrier density $n(t)/n(0)$",
                 "PL(t)": "PL$(t)$/PL$(0)$"}


def plot_decays(ax, t, curves, labels=None, *, normalise=True, ylabel="$n(t)/n(0)$",
                floor=1e-6, colors=None, legend=True):
    """Draw decays (rows of ``curves``) against ``t`` in s, shown in ns, log y axis.

    Values below ``floor`` (after normalisation) are clipped so the log axis stays readable.
    A y range shorter than three decades gets labelled 1-2-5 ticks (never a lone label).
    """
    t = np.asarray(t)
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    if normalise:
        curves = curves / curves[:, :1]
    labels = labels if labels is not None else [None] * len(curves)
    for k, (y, lab) in enumerate(zip(curves, labels)):
        kw = {"color": colors[k]} if colors is not None else {}
        ax.plot(t * 1e9, np.clip(y, floor, None), label=lab, **kw)
    ax.set_yscale("log")
    ax.set_xlabel("time (ns)")
    ax.set_ylabel(ylabel)
    shown = np.clip(curves, floor, None)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if shown.size:
        format_log_axis(ax.yaxis, float(shown.min()), float(shown.max()))
    if legend and any(lab is not None for lab in labels):
        legend_clear_of_data(ax, fontsize="small")
    return ax


def save_decay_plot(path, t, series: dict, *, title: str | None = None, normalise=True):
    """:func:`decay_figure` saved to ``path``."""
    path = Path(path)
    fig = decay_figure(t, series, title=title, normalise=normalise)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def decay_figure(t, series: dict, *, title: str | None = None, normalise=True):
    """One figure with one panel per entry of ``series`` (name -> curve); returns it."""
    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False, layout="constrained")
    for ax, (name, y) in zip(axes[0], series.items()):
        y = np.asarray(y, dtype=float)
        positive = y[y > 0]
        floor = max(float(positive.min()) if positive.size else 1e-30, 1e-30)
        if normalise and y[0] > 0:
            floor = floor / y[0]
        label = SERIES_LABELS.get(name, name)
        if normalise and name not in SERIES_LABELS:
            label += " (normalised)"
        plot_decays(ax, t, y, normalise=normalise, ylabel=label, floor=floor)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
