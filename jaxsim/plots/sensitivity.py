"""Plots of sensitivities: elasticity maps over two axes of a sweep store, Sobol index bars.

Maps read any ``xarray.Dataset`` with one dim per sweep axis and variables
``d_<summary>_d_log_<param>`` (the sweep store, or
:func:`jaxsim.studies.sensitivity.local_sensitivity_grid`). Axes spanning a decade or more are drawn on
log scales; lifetimes (unit s) are shown in ns; points without a value (NaN: a failed solve,
or masked by the caller) show the grey background.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from jaxsim.physics.errors import ParameterError  # noqa: E402
from jaxsim.plots.style import legend_clear_of_data, symbol, value_with_unit  # noqa: E402
from jaxsim.studies.sensitivity import dominant_parameter, elasticity_name  # noqa: E402

PARAM_LABELS = {"A": "A (s$^{-1}$)", "D": "D (s$^{-1}$)", "K1": "K$_1$ (s$^{-1}$)",
                "n0": "n$_0$ (cm$^{-3}$)", "B": "B (cm$^3$ s$^{-1}$)", "C": "C (cm$^6$ s$^{-1}$)",
                "G": "G (cm$^{-3}$ s$^{-1}$)"}
TIME_SUMMARIES_PREFIX = ("tau_",)
NO_VALUE_GREY = "0.82"  # background where a point has no value (failed solve, masked)
PARAM_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


def _is_log(values) -> bool:
    v = np.asarray(values, float)
    return bool(v.size > 1 and np.all(v > 0) and v.max() / v.min() >= 10)


def _slice2d(ds, x: str, y: str, sel: dict | None):
    """Reduce ``ds`` to dims (y, x): ``sel`` picks other dims (nearest); unpicked ones take
    their middle index. Returns the slice and a text describing what was held fixed."""
    for dim in (x, y):
        if dim not in ds.dims:
            raise ParameterError(f"axis {dim!r} is not a dim of the store: expected one of "
                                 f"{', '.join(map(str, ds.dims))}")
    if x == y:
        raise ParameterError(f"x = y = {x!r}: expected two different axes")
    sel = dict(sel or {})
    held = []
    for dim in ds.dims:
        if dim in (x, y):
            continue
        if dim in sel:
            ds = ds.sel({dim: sel.pop(dim)}, method="nearest")
        else:
            ds = ds.isel({dim: ds.sizes[dim] // 2})
        held.append(value_with_unit(dim, float(ds[dim]), ds[dim].attrs.get("units", ""))
                    if dim in ds.coords else str(dim))
    if sel:
        raise ParameterError(f"sel names {next(iter(sel))!r}, not a dim of the store")
    return ds.transpose(y, x), ", ".join(held)


def _mesh_edges(c, log):
    c = np.asarray(c, float)
    if c.size == 1:
        return np.array([c[0] * 0.9, c[0] * 1.1]) if log else np.array([c[0] - 0.5, c[0] + 0.5])
    v = np.log10(c) if log else c
    mid = (v[1:] + v[:-1]) / 2
    e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return 10**e if log else e


def _setup_axes(ax, ds, x, y):
    for dim, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
        setter("log" if _is_log(ds[dim]) else "linear")
    ax.set_xlabel(PARAM_LABELS.get(x, x))
    ax.set_ylabel(PARAM_LABELS.get(y, y))


def _require(ds, names):
    for name in names:
        if name not in ds:
            have = [str(v) for v in ds.data_vars]
            raise ParameterError(f"variable {name!r} is not in the store: expected one of {have}")


def elasticity_map(ds, summary: str, param: str, x: str, y: str, *, sel=None, ax=None,
                   normalise: bool = True, vmax: float | None = None):
    r"""Map of the elasticity of ``summary`` to ``param`` over axes ``x`` and ``y``.

    ``normalise=True`` draws the dimensionless :math:`\partial\ln s/\partial\ln p` (needs
    ``summary`` in ``ds``); otherwise :math:`\partial s/\partial\ln p` (ns for lifetimes).
    Diverging colours centred on 0. Returns the axes' ``QuadMesh``.
    """
    name = elasticity_name(summary, param)
    _require(ds, [name] + ([summary] if normalise else []))
    ds2, held = _slice2d(ds, x, y, sel)
    val = np.asarray(ds2[name], float)
    if normalise:
        val = val / np.asarray(ds2[summary], float)
        label = rf"$\partial\ln {_tex(summary)}/\partial\ln {_tex(param)}$"
    elif summary.startswith(TIME_SUMMARIES_PREFIX):
        val = val * 1e9
        label = rf"$\partial {_tex(summary)}/\partial\ln {_tex(param)}$ (ns)"
    else:
        label = rf"$\partial {_tex(summary)}/\partial\ln {_tex(param)}$"
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.2), constrained_layout=True)
    lim = vmax or (float(np.nanmax(np.abs(val))) if np.any(np.isfinite(val)) else 1.0) or 1.0
    xl, yl = _is_log(ds2[x]), _is_log(ds2[y])
    mesh = ax.pcolormesh(_mesh_edges(ds2[x], xl), _mesh_edges(ds2[y], yl), val,
                         cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
    _setup_axes(ax, ds2, x, y)
    ax.set_facecolor(NO_VALUE_GREY)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    ax.set_title(f"elasticity to {symbol(param)}" + (f"\n{held}" if held else ""), fontsize=8)
    return mesh


def _tex(name: str) -> str:
    return {"tau_mean_pl": r"\tau_{mean,PL}", "tau_mean_n": r"\tau_{mean,n}",
            "tau_avg_pl": r"\tau_{avg,PL}", "tau_avg_n": r"\tau_{avg,n}",
            "plqy": r"\mathrm{PLQY}", "K1": "K_1", "n0": "n_0"}.get(name, name.replace("_", r"\_"))


def dominant_map(ds, summary: str, params, x: str, y: str, *, sel=None, ax=None):
    """Categorical map: which parameter the summary is most sensitive to (largest |elasticity|)."""
    ds2, held = _slice2d(ds, x, y, sel)
    idx = np.asarray(dominant_parameter(ds2, summary, params), float)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.2), constrained_layout=True)
    k = len(params)
    cmap = ListedColormap(PARAM_COLORS[:k])
    xl, yl = _is_log(ds2[x]), _is_log(ds2[y])
    mesh = ax.pcolormesh(_mesh_edges(ds2[x], xl), _mesh_edges(ds2[y], yl),
                         np.ma.masked_invalid(idx), cmap=cmap,
                         norm=BoundaryNorm(np.arange(k + 1) - 0.5, k), shading="flat")
    _setup_axes(ax, ds2, x, y)
    ax.set_facecolor(NO_VALUE_GREY)
    cb = ax.figure.colorbar(mesh, ax=ax, ticks=np.arange(k))
    cb.ax.set_yticklabels([f"ln {symbol(p)}" for p in params])
    ax.set_title("dominant parameter" + (f"\n{held}" if held else ""), fontsize=8)
    return mesh


def elasticity_maps(ds, summary: str, params, x: str, y: str, *, sel=None, normalise=True):
    """One elasticity map per parameter plus the dominant-parameter map, in one row."""
    _require(ds, [elasticity_name(summary, p) for p in params] + ([summary] if normalise else []))
    n = len(params) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), constrained_layout=True)
    lim = None
    if normalise:
        ds2, _ = _slice2d(ds, x, y, sel)
        vals = [np.abs(np.asarray(ds2[elasticity_name(summary, p)] / ds2[summary], float))
                for p in params]
        lim = float(np.nanmax(vals)) if np.any(np.isfinite(vals)) else 1.0
    for ax, p in zip(axes, params):
        elasticity_map(ds, summary, p, x, y, sel=sel, ax=ax, normalise=normalise, vmax=lim)
    dominant_map(ds, summary, params, x, y, sel=sel, ax=axes[-1])
    return fig


def _observable_title(o: str) -> str:
    """``"log10:tau_mean_pl"`` -> ``"log$_{10}$ mean PL lifetime τ..."``."""
    from jaxsim.plots.style import quantity_label

    if o.startswith("log10:"):
        return "log$_{10}$ of " + quantity_label(o[len("log10:"):])
    return quantity_label(o)


def sobol_bars(indices: dict, *, observables=None, title: str | None = None):
    """Grouped bars of first-order (S1) and total (ST) Sobol indices with their confidence
    intervals, one panel per observable. ``indices`` is the ``sensitivity.json`` mapping."""
    observables = list(observables or indices)
    for o in observables:
        if o not in indices:
            raise ParameterError(f"observable {o!r} is not in the indices: expected one of "
                                 f"{', '.join(indices)}")
    n = len(observables)
    fig, axes = plt.subplots(1, n, figsize=(max(3.0, 0.6 * len(indices[observables[0]]) + 1.2) * n,
                                            3.0), squeeze=False, constrained_layout=True)
    for ax, o in zip(axes[0], observables):
        params = list(indices[o])
        xs = np.arange(len(params))
        w = 0.38
        for off, key, color in ((-w / 2, "S1", "#4c72b0"), (w / 2, "ST", "#dd8452")):
            vals = [indices[o][p][key] for p in params]
            errs = [indices[o][p][key + "_conf"] for p in params]
            ax.bar(xs + off, vals, w, yerr=errs, capsize=3, color=color,
                   label={"S1": "first order S$_1$", "ST": "total S$_T$"}[key])
        ax.set_xticks(xs, [symbol(p) for p in params])
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), max(1.0, ax.get_ylim()[1]))
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(_observable_title(o), fontsize=9)
        ax.set_ylabel("Sobol index")
    legend_clear_of_data(axes[0][0], outside="top", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


__all__ = ["elasticity_map", "elasticity_maps", "dominant_map",
           "sobol_bars"]
