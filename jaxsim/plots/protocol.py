"""Figures of an illumination protocol: PL and ionic rates along lab time, and TCSPC decays.

Conventions (:mod:`jaxsim.plots.style`): lab time in s, decay time in ns; every segment has one
colour, used for its shading along lab time and for its decay; segment names sit in a strip
above the lab-time axes, in staggered rows where they would overlap; legends go where they
cover no data. A decay is "PL − pre-pulse level" (what a TCSPC histogram keeps once its flat
background is subtracted), normalised at t = 0: in the periodic steady state the PL just before
the next pulse *is* that level, so every decay falls to 0 at t = 1/f_rep by construction. The
decay panels draw the next pulse as a dotted line and say so.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxsim.plots.style import (  # noqa: E402
    format_log_axis,
    is_outside,
    place_legends,
    segment_labels,
)

#: one colour per segment (its decay line; its lab-time shading is the same colour, light)
SEGMENT_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860",
                  "#DA8BC3", "#8C8C8C")
SHADE_ALPHA = 0.14
FIG4_SEGMENTS = ("laser", "laser+bias", "laser again")
DECAY_YLABEL = "(PL − pre-pulse level) / value at $t$ = 0"
PL_LAB_LABEL = "period-averaged PL (cm$^{-3}$ s$^{-1}$)"


def segment_color(j: int) -> str:
    return SEGMENT_COLORS[j % len(SEGMENT_COLORS)]


def _shade_segments(ax, result):
    for j, seg in enumerate(result.segments):
        ax.axvspan(seg["start_s"], seg["end_s"], color=segment_color(j), alpha=SHADE_ALPHA,
                   zorder=0, lw=0, label="_segment")


def _label_segments(ax, result):
    spans = [(s["start_s"], s["end_s"]) for s in result.segments]
    return segment_labels(ax, spans, [s["name"] for s in result.segments])


def _positive(y):
    y = np.asarray(y, float)
    return np.where(y > 0, y, np.nan)


def _zero_note(values, t) -> str:
    """`` (0 at t = 0 s: off the log axis)`` when some samples are 0 and so are not drawn."""
    v, t = np.asarray(values, float), np.asarray(t, float)
    zero = np.flatnonzero(v <= 0)
    if not zero.size:
        return ""
    where = (f"t = {t[zero[0]]:g} s" if zero.size == 1
             else f"{zero.size} samples from t = {t[zero[0]]:g} s")
    return f" (0 at {where}: off the log axis)"


def _log_y(ax, *series) -> None:
    """Log y axis; a span under three decades gets labelled 1-2-5 ticks."""
    ax.set_yscale("log")
    v = np.concatenate([np.asarray(x, float).ravel() for x in series])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        format_log_axis(ax.yaxis, float(v.min()), float(v.max()))


def _tau_text(tau) -> str:
    return f"$\\tau_\\mathrm{{avg}}$ = {tau:.0f} ns" if np.isfinite(tau) else "no pulses"


def _decay_panel(ax, result, names=None, colors=None, ylim=(1e-3, 1.5)):
    """The TCSPC decays of the named segments (all pulsed ones by default), normalised, on a
    log axis over one period, with the next pulse marked and the fall to 0 explained."""
    periods = []
    for j, seg in enumerate(result.segments):
        if names is not None and seg["name"] not in names:
            continue
        y = np.asarray(result.decay[j])
        if not (y.size and y[0] > 0):
            continue
        color = colors[len(ax.lines)] if colors is not None else segment_color(j)
        t_ns = np.asarray(result.decay_t[j]) * 1e9
        ax.plot(t_ns, _positive(y / y[0]), color=color, lw=1.6,
                label=f"{seg['name']}: {_tau_text(seg['tau_avg_ns'])}")
        periods.append(float(t_ns[-1]))
    ax.set_yscale("log")
    ax.set_ylim(*ylim)
    ax.set_xlabel("time after the pulse (ns)")
    ax.set_ylabel(DECAY_YLABEL)
    if periods:
        period = max(periods)
        ax.set_xlim(-0.02 * period, 1.04 * period)
        ax.axvline(period, color="0.35", ls=":", lw=1.0, zorder=1)
        ax.annotate(f"next pulse ({period:.4g} ns): the PL here is\nthe level subtracted, so 0 by construction",
                    xy=(period, ylim[1]), xycoords="data", xytext=(-3, -3),
                    textcoords="offset points", ha="right", va="top", rotation=90,
                    fontsize=7, color="0.25", linespacing=1.1)
    return ax


def plot_protocol(result, path, *, title: str | None = None):
    """Write :func:`protocol_figure` to ``path``."""
    return _save(protocol_figure(result, title=title), path)


def _save(fig, path):
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def protocol_figure(result, *, title: str | None = None):
    """Three panels: (a) PL against lab time, (b) the rates D and Q, (c) each segment's decay.

    Lab time in s (linear, shared by (a) and (b)), PL and rates on log axes, decay time in ns.
    Returns the Figure (not closed).
    """
    fig = plt.figure(figsize=(7.2, 9.6), layout="constrained")
    ax_pl, ax_r, ax_d = fig.subplots(3, 1, gridspec_kw={"height_ratios": [1, 1, 1.25]})
    ax_r.sharex(ax_pl)
    t = result.lab_time_s
    fig.suptitle(title or f"{result.protocol.name}: {result.protocol.description}", fontsize=9)

    _shade_segments(ax_pl, result)
    ax_pl.plot(t, _positive(result.pl), "o-", ms=3, color="k", lw=1.2)
    _log_y(ax_pl, result.pl)
    ax_pl.set_ylabel(PL_LAB_LABEL)
    ax_pl.tick_params(labelbottom=False)
    ax_pl.set_title("(a) PL along the protocol", fontsize=9, loc="left", pad=22)

    _shade_segments(ax_r, result)
    ax_r.plot(t, _positive(result.D), "o-", ms=3, color="k", lw=1.2,
              label="detrapping D = K$\\sigma'$n$_\\mathrm{ion}$" + _zero_note(result.D, t))
    ax_r.plot(t, _positive(result.Q), "s--", ms=3, color="#B2182B", lw=1.2,
              label="quenching Q = $\\beta_q$ m" + _zero_note(result.Q, t))
    ax_r.set_yscale("log")
    ax_r.set_xlabel("lab time (s)")
    ax_r.set_ylabel("rate (s$^{-1}$)")
    ax_r.set_title("(b) rates set by the ionic reservoir", fontsize=9, loc="left")
    ax_pl.set_xlim(t.min() - 0.01 * np.ptp(t), t.max() + 0.01 * np.ptp(t))

    _decay_panel(ax_d, result, ylim=(1e-4, 1.5))
    ax_d.set_title("(c) TCSPC decay of each segment (lab-time average)", fontsize=9, loc="left")

    _label_segments(ax_pl, result)
    legends = place_legends(fig, [(ax_r, {"fontsize": 8}),
                                  (ax_d, {"fontsize": 8, "outside": None})])
    if any(is_outside(leg) for leg in legends):
        _label_segments(ax_pl, result)  # again, in the layout the outside legend made
    return fig


def _laser_label(description: str) -> str:
    """'405 nm CW at 0.12 W/cm^2' from a protocol description, with a typeset unit."""
    import re

    m = re.search(r"([0-9.]+)\s*W/cm\^2", description)
    return f"{m.group(1)} W cm$^{{-2}}$" if m else description


def plot_fig1(results: dict, path):
    """Write :func:`fig1_figure` to ``path``."""
    return _save(fig1_figure(results), path)


def fig1_figure(results: dict):
    """Fig. 1: (a) PL along lab time, (b) lifetime per 30 s window (both protocols), and the
    windows' decays, (c) brightening and (d) quenching. Returns the Figure."""
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 7.4), layout="constrained")
    colors = {"brightening": "#2166AC", "quenching": "#B2182B"}
    ax = axes[0, 0]
    for k, r in results.items():
        ax.plot(r.lab_time_s, _positive(r.pl), "o-", ms=3, color=colors.get(k),
                label=f"{k}: 405 nm CW, {_laser_label(r.protocol.description)}")
    _log_y(ax, *[r.pl for r in results.values()])
    ax.set_xlabel("illumination time (s)")
    ax.set_ylabel(PL_LAB_LABEL)
    ax.set_title("(a) PL under continuous illumination (paper Fig. 1a, g)", fontsize=9,
                 loc="left")
    ax = axes[0, 1]
    for k, r in results.items():
        mid = np.array([0.5 * (s["start_s"] + s["end_s"]) for s in r.segments])
        half = np.array([0.5 * (s["end_s"] - s["start_s"]) for s in r.segments])
        ax.errorbar(mid, [s["tau_avg_ns"] for s in r.segments], xerr=half, fmt="o-", ms=5,
                    capsize=3, color=colors.get(k), label=k)
    ax.set_xlabel("illumination time (s); bars: the 30 s TCSPC window")
    ax.set_ylabel("average lifetime $\\tau_\\mathrm{avg}$ (ns)")
    ax.set_title("(b) lifetime of the probe decay, per window", fontsize=9, loc="left")
    ax.set_ylim(bottom=0)
    decay_colors = plt.cm.plasma(np.linspace(0.0, 0.78, 4))
    for ax, tag, (k, r) in zip(axes[1], "cd", results.items()):
        n = len(r.segments)
        cols = plt.cm.plasma(np.linspace(0.0, 0.78, n)) if n != 4 else decay_colors
        _decay_panel(ax, r, colors=cols)
        ax.set_title(f"({tag}) {k}: probe decay in each 30 s window", fontsize=9, loc="left")
    place_legends(fig, [(ax, {"fontsize": 7, "outside": None}) for ax in axes.flat])
    return fig


def plot_fig4(result, path, names=FIG4_SEGMENTS):
    """Write :func:`fig4_figure` to ``path``."""
    return _save(fig4_figure(result, names), path)


def fig4_figure(result, names=FIG4_SEGMENTS):
    """Fig. 4: (a) decays before, with and after the CW bias (paper Fig. 4b); (b) the rates D
    and Q and (c) the PL along lab time around the three acquisitions (and the 30 s before
    them). Returns the Figure."""
    fig = plt.figure(figsize=(10.4, 5.6), layout="constrained")
    axd = fig.subplot_mosaic([["a", "b"], ["a", "c"]], width_ratios=[1.1, 1.0])
    _decay_panel(axd["a"], result, names=names)
    axd["a"].set_title("(a) TCSPC decays: laser, laser + CW bias, bias removed", fontsize=9,
                       loc="left")
    segs = [s for s in result.segments if s["name"] in names]
    t = np.asarray(result.lab_time_s)
    if segs:  # the three acquisitions and the 30 s before them (the end of the presoak)
        first = segs[0]
        lo = max(t.min(), first["start_s"] - (first["end_s"] - first["start_s"]))
        hi = segs[-1]["end_s"]
    else:
        lo, hi = t.min(), t.max()
    pad = 0.02 * (hi - lo)
    keep = (t >= lo - pad) & (t <= hi + pad)
    # the sample just outside the window keeps the line running to the axis edge
    idx = np.flatnonzero(keep)
    if idx.size:
        idx = np.arange(max(idx[0] - 1, 0), min(idx[-1] + 2, t.size))
    ax = axd["b"]
    _shade_segments(ax, result)
    ax.plot(t[idx], _positive(result.D)[idx], "o-", ms=3, color="k", lw=1.2,
            label="detrapping D")
    ax.plot(t[idx], _positive(result.Q)[idx], "s--", ms=3, color="#B2182B", lw=1.2,
            label="quenching Q")
    ax.set_yscale("log")
    ax.set_ylabel("rate (s$^{-1}$)")
    ax.tick_params(labelbottom=False)
    ax.set_title("(b) rates set by the ionic reservoir", fontsize=9, loc="left", pad=22)
    ax = axd["c"]
    ax.sharex(axd["b"])
    _shade_segments(ax, result)
    ax.plot(t[idx], _positive(result.pl)[idx], "^-", ms=3, color="k", lw=1.2)
    _log_y(ax, np.asarray(result.pl)[idx])
    ax.set_ylabel(PL_LAB_LABEL)
    ax.set_xlabel("lab time (s)")
    ax.set_title("(c) PL along lab time", fontsize=9, loc="left")
    axd["b"].set_xlim(lo - pad, hi + pad)
    _label_segments(axd["b"], result)
    legends = place_legends(fig, [(axd[k], {"fontsize": 8, "outside": None}) for k in "ab"])
    if any(is_outside(leg) for leg in legends):
        _label_segments(axd["b"], result)  # again, in the layout the outside legend made
    return fig


__all__ = ["SEGMENT_COLORS", "fig1_figure", "fig4_figure", "plot_fig1", "plot_fig4",
           "plot_protocol", "protocol_figure"]
