"""Figure of a fit: data and model per decay (log scale, time in ns) over the residuals."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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


def plot_fit(result, out, band=None) -> pathlib.Path:
    """Write data (dots), model (lines) and residuals of every decay to ``out``; ``band``
    (lower, upper), each (K, T) in the data's unit: a shaded band per decay (the posterior's
    95 % band of the model curve)."""
    ds = result.problem.ds
    t_ns = (np.asarray(ds.t) + 0.5 * ds.bin_width * (ds.sampling == "bins")) / 1e-9
    y, mu = np.asarray(ds.y, float), np.asarray(result.mu, float)
    res = residuals(result)
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, ds.n_decays))
    positive = y[y > 0]
    floor = max(positive.min() if positive.size else 1e-6, 1e-6 * np.nanmax(y))
    for k in range(ds.n_decays):
        lab = f"{ds.labels[k]}  n0 = {ds.n0[k]:.3g} cm$^{{-3}}$"
        ax.plot(t_ns, np.where(y[k] > 0, y[k], np.nan), ".", ms=2, color=colors[k], alpha=0.5)
        ax.plot(t_ns, mu[k], "-", lw=1.2, color=colors[k], label=lab)
        if band is not None:
            ax.fill_between(t_ns, band[0][k], band[1][k], color=colors[k], alpha=0.3, lw=0)
        axr.plot(t_ns, res[k], ".", ms=2, color=colors[k], alpha=0.6)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5 * floor)
    ax.set_ylabel("counts per bin" if ds.is_counts else "normalised PL")
    free = ", ".join(f"{n} = {result.params[n]['value']:.3g}" for n in result.free)
    red = "deviance/dof" if result.loss_kind == "poisson" else "reduced chi2"
    red_v = f"{result.reduced:.3g}" if result.reduced is not None else "n/a"
    gof = getattr(result, "gof", {}) or {}
    verdict = {False: "; model does NOT describe the data", True: "", None: ""}[gof.get("adequate")]
    ax.set_title(f"{result.model}: {free}\n{result.loss_kind} loss, {red} = {red_v}{verdict}",
                 fontsize=9)
    ax.legend(fontsize=7)
    axr.axhline(0, color="k", lw=0.8)
    axr.set_ylabel("residual / sigma")
    axr.set_xlabel("time (ns)")
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
