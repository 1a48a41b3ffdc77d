"""Figure of a fit: data and model per decay (log scale, time in ns) over the residuals."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jaxsim.plots.style import (
    legend_clear_of_data,
    sci,
    symbol,
    unit_tex,
    value_with_unit,
)


def residuals(result) -> np.ndarray:
    """Normalised residuals (K, T): Pearson (y - mu)/sqrt(mu) for Poisson, (y - mu)/s for least
    squares (s the given noise, or the per-point noise estimated from the residuals' scatter,
    or their rms), log(y/mu)/s for log least squares; NaN on masked bins."""
    ds = result.problem.ds
    y, mu, mask = np.asarray(ds.y, float), np.asarray(result.mu, float), np.asarray(ds.mask)
    dof = max(result.n_data - result.n_free, 1)
    gof = getattr(result, "gof", {}) or {}
    if result.loss_kind == "poisson":
        s = 1.0
    elif gof.get("noise_sd") is not None and result.loss_kind == "lsq":
        s = gof["noise_sd"]  # per point, from the residuals' scatter
    elif gof.get("noise") and result.loss_kind == "lsq":
        s = gof["noise"]  # the given noise
    else:
        s = np.sqrt(2 * result.loss / dof)
    with np.errstate(divide="ignore", invalid="ignore"):
        if result.loss_kind == "poisson":
            r = (y - mu) / np.sqrt(np.clip(mu, 1e-12, None))
        elif result.loss_kind == "lsq":
            r = (y - mu) / s
        else:
            r = np.where(y > 0, np.log(np.where(y > 0, y, 1) / np.clip(mu, 1e-30, None)), np.nan) / s
    return np.where(mask > 0, r, np.nan)


#: Okabe-Ito: a qualitative palette that stays distinct in colour-blind vision and print
#: (its yellow left out: too faint on white)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def decay_colors(k: int) -> list:
    """``k`` distinct colours (Okabe-Ito first, then tab20 for more decays)."""
    if k <= len(PALETTE):
        return list(PALETTE[:k])
    return [plt.cm.tab20(i % 20) for i in range(k)]


def value_pm(name: str, p: dict) -> str:
    """``"B = (2.59 ± 0.02)×10$^{-10}$ cm$^{3}$ s$^{-1}$"``; a fixed or unknown error is left out."""
    v, se, unit = float(p["value"]), p.get("stderr"), p.get("unit", "")
    u = unit_tex(unit)
    tail = f" {u}" if u else ""
    if se is None or not np.isfinite(se) or se <= 0 or v == 0:
        return value_with_unit(name, v, unit)
    e = int(np.floor(np.log10(abs(v))))
    # two significant digits of the error decide the digits of the value
    digits = max(0, e - int(np.floor(np.log10(se))) + 1)
    m, sm = v / 10**e, se / 10**e
    num = f"({m:.{digits}f} ± {sm:.{digits}f})"
    return f"{symbol(name)} = {num}" + (f"$\\times$10$^{{{e}}}$" if e else "") + tail


def _wrap(items, per_line: int) -> str:
    return "\n".join(",  ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def residual_label(loss_kind: str) -> str:
    return {"poisson": "Pearson residual\n(y − μ)/√μ",
            "lsq": "residual / noise\n(y − μ)/σ",
            "loglsq": "log residual / noise\nln(y/μ)/σ"}.get(loss_kind, "residual")


def plot_fit(result, out, *, band=None) -> pathlib.Path:
    """Write :func:`fit_figure` of ``result`` to ``out``."""
    fig = fit_figure(result, band=band)
    out = pathlib.Path(out)
    fig.savefig(out, dpi=fig.dpi)
    plt.close(fig)
    return out


def fit_figure(result, *, band=None):
    """Data (dots), model (lines, over the fitted bins only) and normalised residuals of
    every decay to ``out``; the title gives each free parameter with its standard error.

    ``band``: optional ``(lo, hi)`` arrays (K, T) drawn as shaded bands around the model (a
    posterior-predictive interval)."""
    ds = result.problem.ds
    t_ns = (np.asarray(ds.t) + 0.5 * ds.bin_width * (ds.sampling == "bins")) / 1e-9
    y, mu = np.asarray(ds.y, float), np.asarray(result.mu, float)
    fitted = np.asarray(ds.mask) > 0
    res = residuals(result)
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7.5, 6.4), dpi=130, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    colors = decay_colors(ds.n_decays)
    shown = y[fitted & (y > 0)]
    floor = max(shown.min() if shown.size else 1e-6, 1e-6 * np.nanmax(y))
    for k in range(ds.n_decays):
        c = colors[k]
        lab = f"{ds.labels[k]}: n$_0$ = {sci(ds.n0[k])} cm$^{{-3}}$"
        ax.plot(t_ns, np.where(y[k] > 0, y[k], np.nan), ".", ms=3, color=c, alpha=0.45,
                mec="none")
        ax.plot(t_ns, np.where(fitted[k], mu[k], np.nan), "-", lw=1.4, color=c, label=lab)
        if band is not None:
            lo, hi = (np.asarray(b, float)[k] for b in band)
            ax.fill_between(t_ns, np.where(fitted[k], lo, np.nan), np.where(fitted[k], hi, np.nan),
                            color=c, alpha=0.25, lw=0)
        axr.plot(t_ns, res[k], ".", ms=3, color=c, alpha=0.55, mec="none")
    if (~fitted).any():
        ax.plot([], [], ".", color="0.5", label="data (model drawn over the fitted bins only)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5 * floor)
    ax.set_ylabel("counts per bin" if ds.is_counts else "normalised PL")
    red = "deviance/dof" if result.loss_kind == "poisson" else "reduced χ²"
    red_v = f"{result.reduced:.3g}" if result.reduced is not None else "n/a"
    gof = getattr(result, "gof", {}) or {}
    verdict = {False: " — model does NOT describe the data", True: "", None: ""}[
        gof.get("adequate")]
    params = [value_pm(n, result.params[n]) for n in result.free]
    ax.set_title(f"{result.model} fit, {result.loss_kind} loss, {red} = {red_v}{verdict}\n"
                 + _wrap(params, 2), fontsize=8.5)
    axr.axhspan(-2, 2, color="0.9", lw=0, zorder=0)
    axr.axhline(0, color="k", lw=0.8)
    axr.set_ylabel(residual_label(result.loss_kind), fontsize=8)
    axr.set_xlabel("time (ns)")
    axr.set_xlim(t_ns[fitted.any(axis=0)].min() if fitted.any() else t_ns[0], t_ns[-1])
    fig.tight_layout()
    leg = legend_clear_of_data(ax, outside="top", draw=False, fontsize=7)  # laid out above
    if getattr(leg, "_jaxsim_outside", False):  # a legend inside the axes moves nothing
        fig.tight_layout()
    return fig
