"""Plots of a sweep store: a heatmap over two axes, or a line over one (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxsim.physics.errors import ParameterError

TIME_UNITS = ("s",)


def select(ds, x: str, y: str | None, var: str, at: dict[str, float] | None = None):
    """The 1-D or 2-D slice of ``ds[var]`` over ``x`` (and ``y``), other axes fixed by ``at``.

    ``at`` values pick the nearest grid value; an axis not in ``at`` with more than one value
    is an error naming it (so a plot never averages or picks silently).
    Returns ``(DataArray, {axis: chosen value})``.
    """
    at = dict(at or {})
    if var not in ds.data_vars:
        raise ParameterError(f"--var {var!r} is not in the store: expected one of "
                             f"{', '.join(sorted(ds.data_vars))}")
    da = ds[var]
    for name, role in ((x, "--x"), (y, "--y")):
        if name is not None and name not in da.dims:
            raise ParameterError(f"{role} {name!r} is not an axis of {var}: expected one of "
                                 f"{', '.join(da.dims)}")
    if y is not None and x == y:
        raise ParameterError(f"--x and --y are both {x!r}: expected two different axes")
    chosen = {}
    for name, value in at.items():
        if name not in da.dims:
            raise ParameterError(f"--at {name}=...: {name!r} is not an axis of {var}: expected "
                                 f"one of {', '.join(da.dims)}")
        if name in (x, y):
            raise ParameterError(f"--at {name}=... fixes a plotted axis")
        coord = np.asarray(ds[name].values, dtype=float)
        i = int(np.argmin(np.abs(np.log(coord / value)) if np.all(coord > 0) and value > 0
                          else np.abs(coord - value)))
        chosen[name] = float(coord[i])
        da = da.isel({name: i})
    free = [d for d in da.dims if d not in (x, y) and da.sizes[d] > 1]
    if free:
        opts = ", ".join(f"{d} ({da.sizes[d]} values {float(ds[d].min()):.3g}..."
                         f"{float(ds[d].max()):.3g})" for d in free)
        raise ParameterError(f"axes not fixed: {opts}: pick one value each with --at NAME=VALUE")
    da = da.squeeze(drop=True)
    for d in list(da.dims):
        if d not in (x, y):
            da = da.isel({d: 0})
    return (da.transpose(y, x) if y is not None else da), chosen


def _scale(ds, name: str) -> str:
    if name not in ds.coords and name not in ds:
        return "linear"
    return ds[name].attrs.get("scale", "linear")


def _setaxis(ax, which: str, scale: str, values) -> None:
    set_scale = ax.set_xscale if which == "x" else ax.set_yscale
    if scale == "log":
        v = np.asarray(values, dtype=float)
        if np.all(v > 0):
            set_scale("log")
        else:  # a log axis that includes 0 (e.g. D = 0): linear near zero
            set_scale("symlog", linthresh=float(np.min(v[v > 0])) if np.any(v > 0) else 1.0)


def _label(ds, name: str) -> str:
    """Axis label of a sweep axis: words, symbol and the displayed unit (times in ns)."""
    from jaxsim.plots.style import display_unit, quantity_label

    unit = ds[name].attrs.get("units", "") if name in ds.variables else ""
    shown, _ = display_unit(name, unit)
    return quantity_label(name, shown)


def _axis_values(ds, name: str) -> np.ndarray:
    """Grid values of an axis in the displayed unit (times in ns)."""
    from jaxsim.plots.style import display_unit

    unit = ds[name].attrs.get("units", "") if name in ds.variables else ""
    return np.asarray(ds[name].values, dtype=float) * display_unit(name, unit)[1]


def format_time(t: float) -> str:
    """A time in the unit that gives 1 <= value < 1000: 2e-6 -> '2 µs', 4.5e-7 -> '450 ns'."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("ps", 1e-12)):
        if abs(t) >= scale * (1 - 1e-9):
            return f"{t / scale:.4g} {unit}"
    return f"{t:.3g} s"


def window_of(ds, var: str) -> str:
    """``"over [0, 2 µs]"`` for a summary computed over the sweep's window [0, t1] (lifetimes
    such as the first moment tau_mean_pl are cut by it), else ``""``."""
    from jaxsim.observables.summaries import SUMMARIES

    if var not in SUMMARIES:
        return ""
    t1 = ds.attrs.get("t1")
    if t1 is None and "jaxsim_spec" in ds.attrs:
        from jaxsim.io.spec_files import parse_sweep_spec

        t1 = parse_sweep_spec(ds.attrs["jaxsim_spec"]).t1
    return f"over [0, {format_time(float(t1))}]" if t1 is not None else ""


def plot_store(path, *, x: str, var: str, y: str | None = None,
               at: dict[str, float] | None = None, out=None, log_color: bool | None = None):
    """Heatmap of ``var`` over (x, y), or a line over x; writes ``out`` (PNG/PDF/SVG).

    Conventions of :mod:`jaxsim.plots.style`: times (unit s) are shown in ns, on the axes too
    (a curve's ``t``), diffusion lengths in µm; labels name the quantity in words with its
    symbol and unit; the title says what was held fixed, typeset (``K₁ = 10⁴ s⁻¹``).
    Summaries name the window they were computed over (``over [0, 2 µs]``) in the title and
    on the colour bar (or y axis). Axes with ``scale = "log"`` in the store get log axes; the
    colour scale (y scale of a line) is logarithmic when the values are positive and span a
    decade or more for times, lengths and densities, two decades for anything else
    (``log_color`` forces it either way); a log colour bar has at least four labelled ticks
    where its range allows. Points that the variable's window flag (its ``window_flag``
    attribute) marks window-limited are hatched on a heatmap and crossed on a line, with a
    legend entry naming the threshold. Returns the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from jaxsim.plots.style import (
        display_unit,
        format_log_axis,
        format_log_colorbar,
        quantity_label,
        short_name,
        value_with_unit,
        wants_log,
    )
    from jaxsim.studies.store import open_sweep

    ds = open_sweep(path)
    da, chosen = select(ds, x, y, var, at)
    unit = da.attrs.get("units", ds[var].attrs.get("units", ""))
    shown, factor = display_unit(var, unit)
    vals = np.asarray(da.values, dtype=float) * factor
    label = quantity_label(var, shown, words=False)
    window = window_of(ds, var)
    if window:  # the window limits first-moment lifetimes: every label says which it was
        label = f"{label}, {window}"
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    xs = _axis_values(ds, x)
    finite = vals[np.isfinite(vals)]
    use_log = log_color if log_color is not None else wants_log(finite, shown)
    use_log = bool(use_log and finite.size and np.all(finite > 0))
    limited, limited_label = _window_limited(ds, var, x, y, at)
    if y is None:
        ax.plot(xs, vals, "o-", ms=3)
        if limited is not None and limited.any():
            ax.plot(xs[limited], vals[limited], "x", color="0.15", ms=7, mew=1.5,
                    label=limited_label)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8,
                      frameon=False)
        ax.set_ylabel(label)
        if use_log:
            ax.set_yscale("log")
            format_log_axis(ax.yaxis, float(finite.min()), float(finite.max()))
    else:
        ys = _axis_values(ds, y)
        norm = LogNorm(finite.min(), finite.max()) if use_log else None
        mesh = ax.pcolormesh(_edges(xs, _scale(ds, x)), _edges(ys, _scale(ds, y)),
                             np.ma.masked_invalid(vals), norm=norm, shading="flat")
        cb = fig.colorbar(mesh, ax=ax, label=label)
        if use_log:
            format_log_colorbar(cb, float(finite.min()), float(finite.max()))
        if limited is not None and limited.any():
            _hatch(ax, _edges(xs, _scale(ds, x)), _edges(ys, _scale(ds, y)), limited,
                   limited_label)
        _setaxis(ax, "y", _scale(ds, y), ys)
        ax.set_ylabel(_label(ds, y))
    _setaxis(ax, "x", _scale(ds, x), xs)
    ax.set_xlabel(_label(ds, x))
    fixed = ", ".join(value_with_unit(k, v, ds[k].attrs.get("units", "") if k in ds.variables
                                      else "") for k, v in chosen.items())
    ax.set_title(short_name(var) + (f" {window}" if window else "")
                 + (f"\nat {fixed}" if fixed else ""), fontsize=10)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    return fig


HATCH = "///"


def _window_limited(ds, var, x, y, at):
    """Mask of the plotted points that ``var``'s window flag marks window-limited (same
    slice), and the legend text; ``(None, "")`` for a variable without a flag."""
    from jaxsim.observables.summaries import window_limited

    flag = ds[var].attrs.get("window_flag")
    if not flag or flag not in ds.data_vars:
        return None, ""
    da, _ = select(ds, x, y, flag, at)
    where = ds[var].attrs.get("window_limited_where", flag)
    why = ("first moment biased by > 1 %" if flag.startswith("window_tail")
           else "fit's long time constant beyond the window, or ill-conditioned fit")
    return window_limited(flag, da.values), f"window-limited: {where} ({why})"


def _hatch(ax, xe, ye, mask, label):
    """Hatch the cells of ``mask`` (rows y, columns x) over a heatmap, with a legend entry."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    cells = [Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i])
             for i, j in zip(*np.nonzero(mask))]
    ax.add_collection(PatchCollection(cells, facecolor="none", edgecolor="0.1",
                                      linewidth=0.0, hatch=HATCH, label=label))
    ax.legend(handles=[Patch(facecolor="white", edgecolor="0.1", hatch=HATCH, label=label)],
              loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)


def _edges(v: np.ndarray, scale: str) -> np.ndarray:
    """Cell edges around grid values (geometric midpoints on log axes)."""
    if v.size == 1:
        return np.array([v[0] * 0.9, v[0] * 1.1]) if v[0] else np.array([-0.5, 0.5])
    if scale == "log" and np.all(v > 0):
        lv = np.log(v)
        mid = (lv[1:] + lv[:-1]) / 2
        return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))
    mid = (v[1:] + v[:-1]) / 2
    e = np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
    if scale == "log" and v[0] == 0:  # symlog axis: keep the zero cell's lower edge at 0
        e[0] = -e[1] * 1e-3
    return e
