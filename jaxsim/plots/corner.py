"""Corner plot of a posterior: each free physical parameter's marginal (diagonal) and every
pair's joint draws (below it), log10 axes for the log-scaled parameters, with the fit's
optimum and its standard error for comparison."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_corner(post, out, *, max_points: int = 2000, bins: int = 40) -> pathlib.Path:
    """Write the corner plot of ``post`` (a :class:`jaxsim.studies.posterior.Posterior`) to
    ``out``: histograms with the median and central 95 % interval (dashed) and the fit's value
    ± its standard error (red), and up to ``max_points`` draws per pair."""
    res = post.result
    s = res.problem.structure
    p = len(s.free)
    X = post.x[..., :p].reshape(-1, p)
    units = {r.name: r.unit for r in s.model.parameters}
    labels = [f"log10 {n} ({units[n]})" if s.log[i] else f"{n} ({units[n]})"
              for i, n in enumerate(s.free)]
    sd = np.sqrt(np.abs(np.diag(res.cov)))[:p]
    thin = X[np.unique(np.linspace(0, len(X) - 1, min(max_points, len(X))).astype(int))]
    size = max(2.0, min(2.6, 12.0 / p))
    fig, axes = plt.subplots(p, p, figsize=(size * p, size * p), squeeze=False)
    for i in range(p):
        for j in range(p):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(X[:, i], bins=bins, color="0.35", histtype="stepfilled", alpha=0.6)
                q = np.quantile(X[:, i], [0.025, 0.5, 0.975])
                for k, v in enumerate(q):
                    ax.axvline(v, color="k", lw=1.0, ls="-" if k == 1 else "--")
                ax.axvline(res.x[i], color="tab:red", lw=1.0)
                if np.isfinite(sd[i]):
                    ax.axvspan(res.x[i] - sd[i], res.x[i] + sd[i], color="tab:red", alpha=0.15)
                ax.set_yticks([])
            else:
                ax.plot(thin[:, j], thin[:, i], ".", ms=1.5, color="0.2", alpha=0.4)
                ax.plot(res.x[j], res.x[i], "+", color="tab:red", ms=9, mew=1.5)
            if i == p - 1:
                ax.set_xlabel(labels[j], fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i], fontsize=8)
            elif j > 0:
                ax.set_yticklabels([])
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{res.model} posterior: {post.chains} chains x {post.draws} draws, "
                 f"{post.divergences} divergent; black: median and 95 %, red: fit ± 1 s.e.",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
