"""Worked example of docs/sensitivity.md: which parameter controls the PL lifetime, where?

Run from the repository root:  python results/sensitivity_example/make_example.py [DIR]
Writes elasticity_maps.png, dominant_parameter.png and summary.json (numbers quoted in the
docs) to DIR (default out/sensitivity_example, ignored by git); pass
results/sensitivity_example to regenerate the committed copies next to this file.
"""

import json
import pathlib
import sys

import matplotlib.pyplot as plt
import numpy as np

from jaxsim.plots.sensitivity import dominant_map, elasticity_maps
from jaxsim.numerics.config import SolverConfig
from jaxsim.studies.sensitivity import dominant_parameter, local_sensitivity_grid

OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "out/sensitivity_example")
OUT.mkdir(parents=True, exist_ok=True)
PARAMS = ["A", "D", "K1", "n0", "B"]
DOMINANT = ["A", "D", "K1", "n0"]  # B enters with n0 (as B n0): left out of the "which one" map
T1 = 50e-6  # window, s: first moments are over [0, T1]

ds = local_sensitivity_grid(
    "trap_detrap",
    axes={"A": np.logspace(5, 8, 13), "D": np.logspace(3, 8, 11),
          "K1": [1e3, 1e6], "n0": [1e15, 1e17]},
    t1=T1, summaries=["tau_mean_pl", "plqy"], wrt=PARAMS,
    fixed={"B": 1e-10, "C": 1e-28}, config=SolverConfig(rtol=1e-6, max_steps=20000), chunk=286)
print("failed points:", int((ds["status"] != 0).sum()), "of", ds["status"].size)
# Where tau_mean_pl > T1/5 the first moment is window-limited (> 3 % truncation for an
# exponential): blank those points rather than explain the window.
limited = ds["tau_mean_pl"] > T1 / 5
print("window-limited points:", int(limited.sum()))
for v in ds.data_vars:
    if str(v).startswith("d_tau_mean_pl"):
        ds[v] = ds[v].where(~limited)

# one row of normalised elasticity maps at K1 = 1e6 s^-1, n0 = 1e17 cm^-3
fig = elasticity_maps(ds, "tau_mean_pl", DOMINANT, "A", "D", sel={"K1": 1e6, "n0": 1e17})
fig.savefig(OUT / "elasticity_maps.png", dpi=80)
plt.close(fig)

# the answer: the dominant parameter over (A, D) at the four corners of (K1, n0)
fig, axes = plt.subplots(2, 2, figsize=(8.2, 6.2), constrained_layout=True)
for i, k1 in enumerate([1e3, 1e6]):
    for j, n0 in enumerate([1e15, 1e17]):
        dominant_map(ds, "tau_mean_pl", DOMINANT, "A", "D", sel={"K1": k1, "n0": n0},
                     ax=axes[i, j])
fig.suptitle(r"largest $|\partial\,\tau_{mean,PL}/\partial \ln p|$, trap_detrap, "
             r"window 50 $\mu$s, B = 1e-10, C = 1e-28 (grey: $\tau$ > 10 $\mu$s, window-limited)",
             fontsize=9)
fig.savefig(OUT / "dominant_parameter.png", dpi=80)
plt.close(fig)

# a few numbers for the text: share of grid points each parameter dominates, per slice
idx = dominant_parameter(ds, "tau_mean_pl", DOMINANT)
table = {}
for k1 in [1e3, 1e6]:
    for n0 in [1e15, 1e17]:
        sl = np.asarray(idx.sel(K1=k1, n0=n0))
        sl = sl[np.isfinite(sl)]  # share of the points that are not window-limited
        table[f"K1={k1:g}, n0={n0:g}"] = {p: round(float(np.mean(sl == i)), 3)
                                           for i, p in enumerate(DOMINANT)}
corners = {}
for k1, n0 in ((1e3, 1e15), (1e6, 1e17)):
    for a in (1e5, 1e8):
        for d in (1e3, 1e8):
            pt = ds.sel(A=a, D=d, K1=k1, n0=n0, method="nearest")
            el = {p: float(pt[f"d_tau_mean_pl_d_log_{p}"] / pt["tau_mean_pl"]) for p in PARAMS}
            corners[f"K1={k1:g}, n0={n0:g}, A={a:g}, D={d:g}"] = {
                "tau_mean_pl_ns": round(float(pt["tau_mean_pl"]) * 1e9, 2),
                **{f"dln_tau/dln_{p}": (round(v, 3) if np.isfinite(v) else "window-limited")
                   for p, v in el.items()}}
(OUT / "summary.json").write_text(json.dumps({"dominant_share": table, "corners": corners},
                                             indent=2) + "\n")
print(json.dumps(table, indent=1))
print(json.dumps(corners, indent=1))
