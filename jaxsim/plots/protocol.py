"""Figures of an illumination protocol: PL and ionic rates along lab time, and TCSPC decays."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_SHADES = ("#f2f2f2", "#e0e8f5", "#f5e6d8", "#e3f2e3", "#f2e3f2")


def _shade_segments(ax, result, label=True):
    for j, seg in enumerate(result.segments):
        ax.axvspan(seg["start_s"], seg["end_s"], color=_SHADES[j % len(_SHADES)], zorder=0, lw=0)
        if label:
            ax.text(0.5 * (seg["start_s"] + seg["end_s"]), 0.97, seg["name"], ha="center",
                    va="top", fontsize=7, transform=ax.get_xaxis_transform())


def _positive(y):
    y = np.asarray(y, float)
    return np.where(y > 0, y, np.nan)


def plot_protocol(result, path, *, title: str | None = None):
    """Three panels: PL against lab time; D, Q and the phonon power; each segment's TCSPC decay.

    Lab time in s (linear), PL and rates on log axes, decay times in ns with a log PL axis.
    """
    fig, axes = plt.subplots(3, 1, figsize=(7.0, 9.0), constrained_layout=True)
    t = result.lab_time_s
    ax = axes[0]
    _shade_segments(ax, result)
    ax.plot(t, _positive(result.pl), "o-", ms=3, color="C3")
    ax.set_yscale("log")
    ax.set_xlabel("lab time (s)")
    ax.set_ylabel("period-averaged PL (cm$^{-3}$ s$^{-1}$)")
    ax.set_title(title or f"{result.protocol.name}: {result.protocol.description}", fontsize=9)

    ax = axes[1]
    _shade_segments(ax, result, label=False)
    ax.plot(t, _positive(result.D), "o-", ms=3, label="D = K$\\sigma'$ n$_{ion}$ (s$^{-1}$)")
    ax.plot(t, _positive(result.Q), "s-", ms=3, label="Q = $\\beta_q$ m (s$^{-1}$)")
    ax.set_yscale("log")
    ax.set_xlabel("lab time (s)")
    ax.set_ylabel("rate (s$^{-1}$)")
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[2]
    for j, seg in enumerate(result.segments):
        y = np.asarray(result.decay[j])
        if not (y.size and y[0] > 0):
            continue
        tns = np.asarray(result.decay_t[j]) * 1e9
        tau = seg["tau_avg_ns"]
        lab = f"{seg['name']}  (tau_avg {tau:.0f} ns)" if np.isfinite(tau) else seg["name"]
        ax.plot(tns, _positive(y / y[0]), label=lab)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.5)
    ax.set_xlabel("time after the pulse (ns)")
    ax.set_ylabel("PL(t) - background, normalised")
    ax.set_title("TCSPC decay of each segment (lab-time average)", fontsize=9)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path




def _decay_panel(ax, result, names=None, title=None):
    for j, seg in enumerate(result.segments):
        if names is not None and seg["name"] not in names:
            continue
        y = np.asarray(result.decay[j])
        if not (y.size and y[0] > 0):
            continue
        tau = seg["tau_avg_ns"]
        ax.plot(np.asarray(result.decay_t[j]) * 1e9, _positive(y / y[0]),
                label=f"{seg['name']} ({tau:.0f} ns)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1.5)
    ax.set_xlabel("time after the pulse (ns)")
    ax.set_ylabel("PL - background (norm.)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def plot_fig1(results: dict, path):
    """Fig. 1: PL along lab time and lifetime per window (both protocols), and their decays."""
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 7.0), constrained_layout=True)
    colors = {"brightening": "C0", "quenching": "C3"}
    ax = axes[0, 0]
    for k, r in results.items():
        ax.plot(r.lab_time_s, _positive(r.pl), "o-", ms=3, color=colors.get(k),
                label=f"{k} ({r.protocol.description.split(':')[1].split('for')[0].strip()})")
    ax.set_yscale("log")
    ax.set_xlabel("illumination time (s)")
    ax.set_ylabel("PL (cm$^{-3}$ s$^{-1}$)")
    ax.legend(fontsize=7)
    ax.set_title("(a, g) PL under continuous illumination", fontsize=9)
    ax = axes[0, 1]
    for k, r in results.items():
        mid = [0.5 * (s["start_s"] + s["end_s"]) for s in r.segments]
        ax.plot(mid, [s["tau_avg_ns"] for s in r.segments], "o-", color=colors.get(k), label=k)
    ax.set_xlabel("illumination time (s), centre of each 30 s TCSPC window")
    ax.set_ylabel("$\\tau_{avg}$ (ns)")
    ax.legend(fontsize=7)
    ax.set_title("(b) average lifetime of the probe decay", fontsize=9)
    for ax, (k, r) in zip(axes[1], results.items()):
        _decay_panel(ax, r, title=f"{k}: decays per 30 s window")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fig4(result, path):
    """Fig. 4: decays before / with / after the CW bias, and the slow variables."""
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.2), constrained_layout=True)
    _decay_panel(axes[0], result, names=("laser", "laser+bias", "laser again"),
                 title="(b) TCSPC decays: laser, laser + CW bias, bias removed")
    ax = axes[1]
    _shade_segments(ax, result)
    ax.plot(result.lab_time_s, _positive(result.D), "o-", ms=3, label="D (s$^{-1}$)")
    ax.plot(result.lab_time_s, _positive(result.Q), "s-", ms=3, label="Q (s$^{-1}$)")
    ax.plot(result.lab_time_s, _positive(result.pl) / 1e15, "^-", ms=3,
            label="PL / 10$^{15}$ (cm$^{-3}$ s$^{-1}$)")
    ax.set_yscale("log")
    ax.set_xlabel("lab time (s)")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("slow variables along the protocol", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plot_protocol", "plot_fig1", "plot_fig4"]
