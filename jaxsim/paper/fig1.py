"""Paper Fig. 1: illumination-induced PL brightening (low intensity) and quenching (high).

Runs ``sweeps/fig1_brightening.toml`` (405 nm CW at 120 mW cm^-2, Fig. 1a-f) and
``sweeps/fig1_quenching.toml`` (350 mW cm^-2, Fig. 1g) through :mod:`jaxsim.studies.protocol` and writes
``fig1.png`` ((a) PL along lab time, (b) lifetime per 30 s TCSPC window, (c, d) the windows'
decays of each protocol) and
``fig1.json`` (both protocols' outputs and the claims checked on the numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECS = {"brightening": "fig1_brightening.toml", "quenching": "fig1_quenching.toml"}


def sweeps_dir() -> Path:
    """The repository's ``sweeps/`` folder (specs ship there, next to the package)."""
    import jaxsim

    d = Path(jaxsim.__file__).resolve().parent.parent / "sweeps"
    if not d.is_dir():
        raise FileNotFoundError(f"protocol specs folder {str(d)!r} is missing: run from a "
                                "checkout of jaxsim (the specs live in sweeps/)")
    return d


def claims(bright: dict, quench: dict) -> dict:
    """The paper's statements, checked on the protocol outputs (JSON dicts)."""
    bt = [s["tau_avg_ns"] for s in bright["segments"]]
    bp = [s["pl_mean"] for s in bright["segments"]]
    qp = [s["pl_mean"] for s in quench["segments"]]
    qt = [s["tau_avg_ns"] for s in quench["segments"]]
    return {
        "brightening_pl_rises": bool(np.all(np.diff(bp) > 0) and bright["pl"][-1] > bright["pl"][0]),
        "brightening_lifetime_grows": bool(np.all(np.diff(bt) > 0)),
        "quenching_pl_falls": bool(quench["pl"][-1] < quench["pl"][0] and np.all(np.diff(qp) < 0)),
        "quenching_lifetime_shortens": bool(qt[-1] < qt[0]),
    }


def reproduce(out_dir) -> dict:
    from jaxsim.plots.protocol import plot_fig1
    from jaxsim.studies.protocol import run_protocol
    from jaxsim.io.spec_files import load_protocol

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {k: run_protocol(load_protocol(sweeps_dir() / v)) for k, v in SPECS.items()}
    doc = {k: r.to_json() for k, r in results.items()}
    doc["claims"] = claims(doc["brightening"], doc["quenching"])
    doc["figure"] = "fig1"
    doc["note"] = ("Model, not data: jaxsim.physics.ions defaults are chosen to reproduce the paper's "
                   "qualitative statements (docs/ionic.md). pl in cm^-3 s^-1 (period-averaged), "
                   "tau_avg_ns from a two-exponential fit of each 30 s window's TCSPC decay.")
    (out / "fig1.json").write_text(json.dumps(doc, indent=1))
    plot_fig1(results, out / "fig1.png")
    return doc
