"""Paper Fig. 4: the memory effect (decays before, with and after a CW bias).

Runs ``sweeps/fig4_memory.toml`` through :mod:`jaxsim.studies.protocol` and writes ``fig4.png``
((a) the three 30 s TCSPC decays, as in the paper's Fig. 4b; (b) the rates D and Q and (c) the
period-averaged PL along lab time around the three acquisitions) and ``fig4.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

SEGMENTS = ("laser", "laser+bias", "laser again")


def claims(doc: dict) -> dict:
    tau = {s["name"]: s["tau_avg_ns"] for s in doc["segments"]}
    before, bias, after = (tau[k] for k in SEGMENTS)
    return {"faster_under_bias": bool(bias < before), "slower_after_than_before": bool(after > before),
            "tau_avg_ns": {"before": before, "bias": bias, "after": after}}


def reproduce(out_dir) -> dict:
    from jaxsim.paper.fig1 import sweeps_dir
    from jaxsim.plots.protocol import plot_fig4
    from jaxsim.studies.protocol import run_protocol
    from jaxsim.io.spec_files import load_protocol

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_protocol(load_protocol(sweeps_dir() / "fig4_memory.toml"))
    doc = result.to_json()
    doc["claims"] = claims(doc)
    doc["figure"] = "fig4"
    doc["note"] = ("Model, not data: jaxsim.physics.ions defaults (docs/ionic.md). Decays are the "
                   "lab-time average over each 30 s acquisition, background (pre-pulse level) "
                   "subtracted; tau_avg_ns from the paper's two-exponential fit.")
    (out / "fig4.json").write_text(json.dumps(doc, indent=1))
    plot_fig4(result, out / "fig4.png")
    return doc
