"""Figure of FLIM parameter maps: one panel per fitted parameter (log colour bars with
units; pixels that did not converge greyed out) and a panel of the pixels' fit status."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm  # noqa: E402

from jaxsim.plots.style import format_log_colorbar, quantity_label  # noqa: E402

_STATUS_COLOURS = ["#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#d9d9d9", "#8ab17d"]


def plot_maps(ds, out) -> pathlib.Path:
    """``ds``: the dataset of :func:`jaxsim.io.maps.maps_dataset` (or its zarr store)."""
    free = list(ds.attrs["free"])
    status = np.asarray(ds["status"])
    good = (status == 0) | (status == 5)
    n = len(free) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, free):
        v = np.asarray(ds[name], float)
        shown = np.ma.masked_where(~good | ~np.isfinite(v) | (v <= 0), v)
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("#bbbbbb")
        if shown.count():
            vmin, vmax = float(shown.min()), float(shown.max())
            if vmax <= vmin:
                vmin, vmax = vmin / 1.5, vmax * 1.5
            im = ax.imshow(shown, cmap=cmap, norm=LogNorm(vmin, vmax), origin="upper",
                           interpolation="nearest")
            cb = fig.colorbar(im, ax=ax, shrink=0.85)
            format_log_colorbar(cb, vmin, vmax)
        else:
            ax.imshow(np.zeros(v.shape), cmap=ListedColormap(["#bbbbbb"]))
        ax.set_title(quantity_label(name, ds[name].attrs.get("units", "")), fontsize=8)
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    ax = axes[-1]
    codes = sorted(int(c) for c in ds["status"].attrs["flag_values"])
    names = ds["status"].attrs["flag_meanings"].split()
    cmap = ListedColormap(_STATUS_COLOURS[: len(codes)])
    im = ax.imshow(status, cmap=cmap, norm=BoundaryNorm(np.arange(len(codes) + 1) - 0.5,
                                                        len(codes)), interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, ticks=codes, shrink=0.85)
    cb.ax.set_yticklabels([nm.replace("_", " ") for nm in names], fontsize=7)
    ax.set_title(f"fit status ({int(good.sum())} of {status.size} pixels fitted)", fontsize=8)
    ax.set_xlabel("x (pixel)")
    fig.suptitle(f"{ds.attrs.get('model', '')}: {pathlib.Path(str(ds.attrs.get('source', ''))).name}"
                 " (grey: not converged or not fitted)", fontsize=9)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


__all__ = ["plot_maps"]
