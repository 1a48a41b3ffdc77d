"""Shared conventions of every figure: readable names with units, display units, numbers in
titles, colour-bar ticks, legends clear of the data, segment labels that do not overlap.

Conventions (one for all figures):

- times in ns (lifetimes, decay times, curve time axes); lab time of protocols in s;
- diffusion lengths in µm; densities in cm⁻³, rates in s⁻¹, written with superscripts;
- a quantity is named in words and by its symbol with the unit in parentheses,
  ``"mean PL lifetime τ_mean,PL (ns)"``;
- positive quantities that span a decade or more (lifetimes, lengths) get log colour bars, with
  labelled 2 and 5 ticks when the span is short, so a bar never shows only two ticks.
"""

from __future__ import annotations

import math
import re

import numpy as np

#: parameter -> (words, symbol); the unit comes from the store / table
PARAM_WORDS = {
    "A": ("trapping rate", "A"),
    "D": ("detrapping rate", "D"),
    "K1": ("trap relaxation rate", "K$_1$"),
    "n0": ("initial carrier density", "n$_0$"),
    "B": ("radiative coefficient", "B"),
    "C": ("Auger coefficient", "C"),
    "G": ("generation rate", "G"),
    "rep_rate": ("repetition rate", "f$_\\mathrm{rep}$"),
    "t": ("time", "t"),
}

#: summary / stored variable -> (words, symbol)
VAR_WORDS = {
    "tau_mean_pl": ("mean PL lifetime", "$\\tau_\\mathrm{mean,PL}$"),
    "tau_mean_n": ("mean carrier lifetime", "$\\tau_{\\mathrm{mean},n}$"),
    "tau_avg_pl": ("average PL lifetime (2-exp. fit)", "$\\tau_\\mathrm{avg,PL}$"),
    "tau_avg_n": ("average carrier lifetime (2-exp. fit)", "$\\tau_{\\mathrm{avg},n}$"),
    "tau_1e_pl": ("PL 1/e time", "$\\tau_\\mathrm{1/e,PL}$"),
    "tau_1e_n": ("carrier 1/e time", "$\\tau_{\\mathrm{1/e},n}$"),
    "plqy": ("PL quantum yield", "PLQY"),
    "pl_integrated": ("time-integrated PL", "$\\int$PL d$t$"),
    "diffusion_length": ("diffusion length", "$L_\\mathrm{D}$"),
    "share_trapping": ("trapping events per carrier (gross, can exceed 1)", "$\\phi_\\mathrm{trap}$"),
    "share_detrapping": ("release events per carrier (gross, can exceed 1)", "$\\phi_\\mathrm{detrap}$"),
    "share_bimolecular": ("fraction radiative", "$\\phi_\\mathrm{rad}$"),
    "share_auger": ("fraction Auger", "$\\phi_\\mathrm{Auger}$"),
    "share_trap_relaxation": ("fraction lost from traps", "$\\phi_\\mathrm{relax}$"),
    "share_quenching": ("fraction quenched", "$\\phi_\\mathrm{quench}$"),
    "share_remaining": ("fraction left at $t_1$", "$\\phi_\\mathrm{left}$"),
    "carrier_accumulation_percent": ("carrier accumulation", "$\\Delta n$"),
    "curve_n": ("carrier density", "$n(t)$"),
    "curve_n_d": ("trapped-carrier density", "$n_d(t)$"),
    "curve_pl": ("PL", "PL$(t)$"),
    "curve_pl_norm": ("normalised PL", "PL$(t)$/PL$(0)$"),
    "status": ("solver status", ""),
    "num_steps": ("solver steps", ""),
}

#: stored unit -> (display unit, factor): what a figure shows instead
DISPLAY = {"s": ("ns", 1e9)}
#: per variable, overriding DISPLAY
VAR_DISPLAY = {"diffusion_length": ("µm", 1e4)}

#: quantities that are naturally read on a log scale when positive and spanning >= 10x
LOG_NATURAL_UNITS = ("ns", "µm", "s", "cm", "cm^-3", "cm^-3 s^-1")


def unit_tex(unit: str) -> str:
    """``"cm^-3 s^-1"`` -> ``"cm$^{-3}$ s$^{-1}$"``; ``"1"`` and ``""`` -> ``""``."""
    if not unit or unit == "1":
        return ""
    return re.sub(r"\^\{?(-?[0-9.]+)\}?", r"$^{\1}$", unit)


def display_unit(var: str, unit: str) -> tuple[str, float]:
    """(unit shown, factor from the stored unit): s -> ns, diffusion length cm -> µm."""
    if var in VAR_DISPLAY and unit == "cm":
        return VAR_DISPLAY[var]
    if unit in DISPLAY:
        return DISPLAY[unit]
    return unit, 1.0


def _elasticity_parts(var: str):
    m = re.fullmatch(r"d_(.+)_d_log_(.+)", var)
    return (m.group(1), m.group(2)) if m else None


def quantity_label(var: str, unit: str = "", *, words: bool = True) -> str:
    """Readable axis/colour-bar label: words, symbol, unit in parentheses.

    ``quantity_label("tau_mean_pl", "ns")`` -> ``"mean PL lifetime $\\tau$... (ns)"``;
    a name nobody registered is shown as it is.
    """
    parts = _elasticity_parts(var)
    if parts:
        s, p = parts
        sym_s = VAR_WORDS.get(s, ("", s))[1] or s
        sym_p = PARAM_WORDS.get(p, ("", p))[1]
        text = f"$\\partial$({sym_s})/$\\partial$ ln {sym_p}"
    elif var in VAR_WORDS or var in PARAM_WORDS:
        w, sym = VAR_WORDS.get(var) or PARAM_WORDS[var]
        text = f"{w} {sym}".strip() if words else (sym or w)
    else:
        text = var
    u = unit_tex(unit)
    return f"{text} ({u})" if u else text


def short_name(var: str) -> str:
    """The words alone (titles): ``"mean PL lifetime"``."""
    if var in VAR_WORDS:
        return VAR_WORDS[var][0]
    if var in PARAM_WORDS:
        return PARAM_WORDS[var][0]
    return var


def symbol(name: str) -> str:
    """Symbol of a parameter or variable in mathtext (``K1`` -> ``K$_1$``)."""
    if name in PARAM_WORDS:
        return PARAM_WORDS[name][1]
    if name in VAR_WORDS and VAR_WORDS[name][1]:
        return VAR_WORDS[name][1]
    # a model's own parameter: k_T -> k$_\mathrm{T}$, p0 -> p$_0$
    m = re.fullmatch(r"([A-Za-z]+)_([A-Za-z0-9]+)", name) or re.fullmatch(r"([A-Za-z])([0-9]+)", name)
    if m:
        return f"{m.group(1)}$_\\mathrm{{{m.group(2)}}}$"
    return name


def sci(v: float, digits: int = 2) -> str:
    """A number for a title or tick: ``1e4`` -> ``10$^{4}$``, ``7.2e15`` ->
    ``7.2$\\times$10$^{15}$``, ``450`` -> ``450``, ``0`` -> ``0``."""
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    e = math.floor(math.log10(abs(v)))
    power = abs(abs(v) / 10**e - 1) < 1e-9
    if -2 <= e <= 3 and not (power and e == 3):
        return f"{v:.{digits + max(0, -e)}g}" if e < 0 else f"{v:.{max(digits, e + 1)}g}"
    m = v / 10**e
    if abs(round(m, digits) - round(m)) < 1e-9 and round(m) in (1, -1):
        return f"{'-' if m < 0 else ''}10$^{{{e}}}$"
    mant = f"{m:.{digits}g}"
    if mant in ("10", "-10"):
        return f"{'-' if m < 0 else ''}10$^{{{e + 1}}}$"
    return f"{mant}$\\times$10$^{{{e}}}$"


#: units of the parameters, for values that come without one (a grid built in Python)
PARAM_UNITS = {"A": "s^-1", "D": "s^-1", "K1": "s^-1", "n0": "cm^-3", "B": "cm^3 s^-1",
               "C": "cm^6 s^-1", "G": "cm^-3 s^-1", "rep_rate": "Hz"}


def value_with_unit(name: str, value: float, unit: str = "") -> str:
    """``"K$_1$ = 10$^{4}$ s$^{-1}$"`` (the parameter's own unit when none is given)."""
    u = unit_tex(unit or PARAM_UNITS.get(name, ""))
    return f"{symbol(name)} = {sci(value)}" + (f" {u}" if u else "")


def wants_log(values, unit: str = "", *, threshold: float | None = None) -> bool:
    """Log scale for positive finite values spanning >= 10x in a unit read on a log scale
    (times, lengths, densities), or > 100x for anything else."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.any(v <= 0):
        return False
    if threshold is None:
        threshold = 10.0 if unit in LOG_NATURAL_UNITS else 100.0
    return bool(v.max() / v.min() >= threshold)


def _tick_text(v: float) -> str:
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:g}"
    m = abs(v) / 10.0 ** math.floor(math.log10(abs(v)))
    return sci(v, 1 if abs(m - round(m)) < 1e-6 else 2)  # 1.5e5 is not "2x10^5"


def log_ticks(vmin: float, vmax: float, min_ticks: int = 4) -> list[float]:
    """Tick values for a log axis over [vmin, vmax]: decades, then 1-2-5, then 1-2-3-5-7,
    whichever first gives ``min_ticks`` ticks (not more than 12)."""
    lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
    ticks: list[float] = []
    for subs in ((1,), (1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        cand = [m * 10.0**e for e in range(lo, hi + 1) for m in subs]
        cand = [c for c in cand if vmin * (1 - 1e-9) <= c <= vmax * (1 + 1e-9)]
        if len(cand) > 12 and ticks:
            break
        ticks = cand
        if len(cand) >= min_ticks:
            break
    return ticks


def format_log_colorbar(cb, vmin: float, vmax: float) -> None:
    """Put readable ticks on a log colour bar (at least 4 labelled, where the range allows)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = log_ticks(vmin, vmax)
    cb.ax.yaxis.set_major_locator(FixedLocator(ticks))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick_text(v)))
    cb.ax.yaxis.set_minor_locator(NullLocator())


def format_log_axis(axis, vmin: float, vmax: float) -> None:
    """As :func:`format_log_colorbar` for an x/y axis (``ax.yaxis``) of short log span."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if vmax / vmin >= 1e3:
        return  # decades label themselves well
    axis.set_major_locator(FixedLocator(log_ticks(vmin, vmax)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick_text(v)))
    axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------- overlap helpers

def _data_display_points(ax, per_segment: int = 12) -> np.ndarray:
    """Display coordinates of the data drawn in ``ax`` (lines densified between vertices,
    scatter/marker points, bars' tops), for overlap tests."""
    pts = []
    for line in ax.get_lines():
        if not line.get_visible() or str(line.get_label()).startswith("_nodata"):
            continue
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size == 0:
            continue
        d = line.get_transform().transform(xy)
        ok = np.all(np.isfinite(d), axis=1)
        if line.get_linestyle() not in ("None", "", " ", "none"):
            seg = ok[:-1] & ok[1:]
            a, b = d[:-1][seg], d[1:][seg]
            f = np.linspace(0, 1, per_segment, endpoint=False)[None, :, None]
            pts.append((a[:, None, :] + f * (b - a)[:, None, :]).reshape(-1, 2))
        pts.append(d[ok])
    from matplotlib.collections import LineCollection, PathCollection

    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            d = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float))
            pts.append(d[np.all(np.isfinite(d), axis=1)])
        elif isinstance(coll, LineCollection):  # error bars: their ends
            for seg in coll.get_segments():
                if len(seg):
                    d = coll.get_transform().transform(np.asarray(seg, float))
                    pts.append(d[np.all(np.isfinite(d), axis=1)])
    for patch in ax.patches:
        if type(patch).__name__ == "Rectangle" and patch.get_label() != "_segment":
            bb = patch.get_window_extent()
            if bb.height > 0 and bb.width > 0 and patch.get_zorder() > 0.5:
                pts.append(np.array([[bb.x0, bb.y1], [bb.x1, bb.y1],
                                     [(bb.x0 + bb.x1) / 2, bb.y1]]))
    if not pts:
        return np.empty((0, 2))
    p = np.concatenate(pts)
    inside = ax.bbox
    keep = ((p[:, 0] >= inside.x0) & (p[:, 0] <= inside.x1)
            & (p[:, 1] >= inside.y0) & (p[:, 1] <= inside.y1))
    return p[keep]


def data_under(ax, bbox, points=None) -> int:
    """How many data points of ``ax`` (display coordinates; ``points`` when already at hand
    from :func:`_data_display_points`) fall inside ``bbox``."""
    p = _data_display_points(ax) if points is None else points
    if not len(p):
        return 0
    return int(np.sum((p[:, 0] >= bbox.x0) & (p[:, 0] <= bbox.x1)
                      & (p[:, 1] >= bbox.y0) & (p[:, 1] <= bbox.y1)))


LEGEND_PLACES = ("upper right", "lower left", "upper left", "lower right", "center right",
                 "center left", "upper center", "lower center")


def _text_boxes(ax, renderer):
    return [t.get_window_extent(renderer) for t in ax.texts
            if t.get_visible() and t.get_text()]


def legend_clear_of_data(ax, *, outside: str = "right", draw: bool = True, **kw):
    """A legend in the first corner of ``ax`` where it covers no data and no text; when every
    place would: outside the axes (``outside="right"`` or ``"top"``), or with
    ``outside=None`` inside where it covers least (an opaque frame), which keeps the layout
    of a multi-panel figure. Returns the legend.

    The figure's layout should be final (``draw=True`` draws it once first)."""
    fig = ax.figure
    if draw:
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    texts = _text_boxes(ax, renderer)
    points = _data_display_points(ax)
    covered = {}
    for loc in LEGEND_PLACES:
        leg = ax.legend(loc=loc, **kw)
        leg.draw(renderer)  # places it (cheap: the legend alone)
        bb = leg.get_window_extent(renderer).padded(4)
        covered[loc] = data_under(ax, bb, points) + 1000 * sum(bb.overlaps(t) for t in texts)
        if covered[loc] == 0:
            return leg
        leg.remove()
    if outside == "top":
        leg = ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=3,
                        borderaxespad=0.0, **kw)
        leg._jaxsim_outside = True
        return leg
    if outside == "right":
        leg = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)
        leg._jaxsim_outside = True
        return leg
    # outside=None: the inside place that covers least, its frame nearly opaque
    best = min(covered, key=covered.get)
    return ax.legend(loc=best, framealpha=0.9, **kw)


def legend_overlaps(ax) -> int:
    """Data points (and texts) of ``ax`` under its legend, after a draw (0: clear)."""
    leg = ax.get_legend()
    if leg is None:
        return 0
    renderer = ax.figure.canvas.get_renderer()
    bb = leg.get_window_extent(renderer).padded(2)
    return data_under(ax, bb) + sum(bb.overlaps(t) for t in _text_boxes(ax, renderer))


def text_overlaps(texts, renderer=None, pad: float = 2.0) -> list[tuple[str, str]]:
    """Pairs of texts whose drawn boxes overlap (``pad`` pixels of margin)."""
    if not texts:
        return []
    fig = texts[0].figure
    renderer = renderer or fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1, 1).padded(pad / 2))
             for t in texts if t.get_visible() and t.get_text()]
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i][1].overlaps(boxes[j][1]):
                out.append((boxes[i][0], boxes[j][0]))
    return out


def place_legends(fig, specs) -> list:
    """Legends clear of data for several axes of one figure: ``specs`` is a list of
    ``(ax, kwargs)``. A legend that had to go outside the axes changes the layout the others
    were placed in, so then they are placed once more. Returns the legends."""
    legends: list = []
    for _ in range(2):
        fig.draw_without_rendering()
        for ax, _kw in specs:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        legends = [legend_clear_of_data(ax, draw=False, **kw) for ax, kw in specs]
        if not any(is_outside(leg) for leg in legends):
            break
    return legends


def is_outside(leg) -> bool:
    """Whether :func:`legend_clear_of_data` had to put ``leg`` outside its axes."""
    return getattr(leg, "_jaxsim_outside", False)


def segment_labels(ax, spans, names, *, fontsize: float = 7.5, max_rows: int | None = None):
    """Names of lab-time segments above ``ax`` (centred on each visible span), staggered into
    rows so that no two overlap; returns the text artists (also kept as
    ``ax.segment_label_texts``).

    Call after the figure's layout is final (it draws the figure to measure the texts).
    """
    for old in getattr(ax, "segment_label_texts", []):  # a second call re-places them
        old.remove()
    lo, hi = ax.get_xlim()
    texts = []
    for (a, b), name in zip(spans, names):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            continue
        t = ax.annotate(name, xy=(0.5 * (a + b), 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=fontsize, annotation_clip=False)
        texts.append(t)
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    for _ in range(3):  # the rows change the axes' height, rarely their width: measure again
        fig.draw_without_rendering()
        rows: list[list] = []
        for t in texts:
            t.set_position((0, 2))
            bb = t.get_window_extent(renderer)
            for r, placed in enumerate(rows):  # (x0, x1) of the labels in each row
                if all(bb.x1 + 3 < a or bb.x0 - 3 > b for a, b in placed):
                    break
            else:
                r = len(rows)
                rows.append([])
            if max_rows is not None:
                r = min(r, max_rows - 1)
            if r >= len(rows):
                rows.append([])
            h = bb.height * 72.0 / fig.dpi + 1.5
            t.set_position((0, 2 + r * h))
            rows[r].append((bb.x0, bb.x1))
        fig.draw_without_rendering()
        if not text_overlaps(texts, renderer):
            break
    ax.segment_label_texts = texts
    return texts
