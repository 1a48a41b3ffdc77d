"""``jaxsim reproduce fig3|fig1|fig4|all --out DIR``: the paper's figures.

Each figure lives in ``jaxsim.paper.<name>`` with ``reproduce(out_dir) -> dict`` writing
``<name>.png`` and ``<name>.json``. Modules are imported lazily; a missing one is reported.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

from jaxsim.physics.errors import ParameterError

FIGURES = {
    "fig3": "lifetime against A' = A - D (film and single crystal; two-exponential fit)",
    "fig1": "illumination-induced PL brightening and quenching (slow ionic dynamics)",
    "fig4": "memory effect: decays before, with and after a CW bias",
}


def load(name: str):
    """The figure module ``jaxsim.paper.<name>``, or ``None`` when it is not in this build."""
    module = f"jaxsim.paper.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        return None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper's figures (fig3, fig1, fig4, all)",
        description="Reproduce a figure of Wen & Jia: writes DIR/NAME.png and DIR/NAME.json. "
        + "; ".join(f"{k}: {v}" for k, v in FIGURES.items()) + ".")
    p.add_argument("figure", choices=[*FIGURES, "all"], help="which figure ('all': every one available)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output folder (created if missing; default: results)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out = {str(out)!r} is a file: expected a folder")
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    done, missing = [], []
    for name in names:
        mod = load(name)
        if mod is None:
            missing.append(name)
            print(f"jaxsim reproduce: {name} is not available in this build "
                  f"(module jaxsim.paper.{name} is missing)", file=sys.stderr)
            continue
        doc = mod.reproduce(out)
        done.append(name)
        print(f"{name}: wrote {out / (name + '.png')} and {out / (name + '.json')}")
        if name == "fig3":
            _print_fig3(doc)
    if missing and not done:
        raise ParameterError(
            f"figure = {args.figure!r}: none of {', '.join(names)} is available in this build")
    return 0 if not missing or args.figure == "all" else 2


def _print_fig3(doc: dict) -> None:
    print(f"{'case':46s} {'tau_avg (ns)':>12s} {'paper':>7s} {'L (nm)':>9s} {'paper':>7s} "
          f"{'full decay (ns)':>15s}")
    for c in doc["cases"]:
        decade = abs(math.log10(c["A_eff"]) - round(math.log10(c["A_eff"]))) < 1e-9
        if not decade:  # the table shows the panels' ends; the JSON has every A'
            continue
        pt = c["paper_tau_avg_ns"]
        pl = c["paper_diffusion_length_nm"]
        print(f"{c['label']:46s} {c['tau_avg_ns']:12.1f} {pt if pt else '-':>7} "
              f"{c['diffusion_length_nm']:9.1f} {pl if pl else '-':>7} "
              f"{c['full_decay_tau_avg_ns']:15.1f}")
