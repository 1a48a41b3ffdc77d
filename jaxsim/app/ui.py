"""Small helpers shared by the pages: number formatting, log ticks, messages, figure style."""

from __future__ import annotations

import math

import numpy as np
from dash import html

#: colours of the decay curves (colour-blind safe, Okabe & Ito)
COLORS = {"n": "#0072B2", "n_d": "#D55E00", "n_h": "#009E73", "pl": "#CC79A7"}
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000"]

STATE_LABELS = {"n": "n (free carriers)", "n_d": "n_d (trapped)", "n_h": "n_h (holes)",
                "pl": "PL"}

UNIT_LABELS = {"s^-1": "s⁻¹", "cm^-3": "cm⁻³", "cm^3 s^-1": "cm³ s⁻¹", "cm^6 s^-1": "cm⁶ s⁻¹",
               "cm^-3 s^-1": "cm⁻³ s⁻¹", "1": "", "s": "s", "cm": "cm", "Hz": "Hz"}


def unit_label(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit.replace("^-1", "⁻¹").replace("^-3", "⁻³")
                           .replace("^3", "³").replace("^2", "²").replace("^6", "⁶"))


def fmt(v, digits: int = 4) -> str:
    """A number in 4 significant digits: plain for 1e-3 <= |v| < 1e5, else scientific."""
    if v is None:
        return "–"
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{float(f'{v:.{digits}g}'):.{digits + 4}g}"
    m, e = f"{v:.{digits - 1}e}".split("e")
    if "." in m:
        m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def fmt_unit(v, unit: str, digits: int = 4) -> str:
    """A value with its unit, times in ns/µs/ms and lengths in nm/µm for reading ease."""
    if v is None or not np.isfinite(v):
        return fmt(v)
    if unit == "s":
        for scale, name in ((1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms")):
            if abs(v) < 999.5 * scale:
                return f"{fmt(v / scale, digits)} {name}"
        return f"{fmt(v, digits)} s"
    if unit == "cm":
        for scale, name in ((1e-7, "nm"), (1e-4, "µm"), (1e-1, "mm")):
            if abs(v) < 999.5 * scale:
                return f"{fmt(v / scale, digits)} {name}"
        return f"{fmt(v, digits)} cm"
    u = unit_label(unit)
    return f"{fmt(v, digits)} {u}".strip()


def log_ticks(lo: float, hi: float, max_ticks: int = 9):
    """Tick positions (in log10) and labels ``1e5`` for a log axis spanning [lo, hi] (log10)."""
    a, b = math.floor(lo + 1e-9), math.ceil(hi - 1e-9)
    step = max(1, math.ceil((b - a + 1) / max_ticks))
    vals = [k for k in range(a, b + 1, step) if lo - 1e-9 <= k <= hi + 1e-9]
    if not vals:
        vals = [round((lo + hi) / 2, 2)]
    return vals, [f"1e{k}" if float(k).is_integer() else fmt(10**k) for k in vals]


def error_box(message: str, *, id_=None, title: str = "Error"):
    kw = {"id": id_} if id_ else {}
    return html.Div([html.Strong(title + ": "), html.Span(message)], className="alert error",
                    role="alert", **kw)


def info_box(message, *, id_=None):
    kw = {"id": id_} if id_ else {}
    return html.Div(message, className="alert info", **kw)


def base_layout(**kw) -> dict:
    """Plotly layout defaults: white, compact, readable."""
    out = dict(template="plotly_white", margin=dict(l=70, r=20, t=40, b=55),
               font=dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=13),
               legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
               hoverlabel=dict(font_size=12))
    out.update(kw)
    return out


def time_axis_ns(ts) -> np.ndarray:
    return np.asarray(ts, dtype=float) / 1e-9


def log_dtick(*arrays):
    """``dtick=1`` (decades only) for a log axis whose data span two decades or more; else
    None (plotly's default labels, which show 2 and 5 in between)."""
    vals = np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size and np.log10(vals.max() / vals.min()) >= 2:
        return 1
    return None
