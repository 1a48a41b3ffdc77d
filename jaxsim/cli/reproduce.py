"""``jaxsim reproduce fig3|fig1|fig4|all --out DIR``: the paper's figures.

Each figure lives in ``jaxsim.paper.<name>`` with ``reproduce(out_dir) -> dict`` writing
``<name>.png`` and ``<name>.json``. Modules are imported lazily; a missing one is reported.

The default folder, ``out/reproduce``, is ignored by git; the committed reference outputs in
the repository's ``results/`` are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

DEFAULT_OUT = "out/reproduce"

#: the committed reference outputs (results/fig3.json, ...) of a source checkout
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results"

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
    from jaxsim.cli._help import Formatter

    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper's figures (fig3, fig1, fig4, all)",
        description="Reproduce a figure of Wen & Jia: writes DIR/NAME.png and DIR/NAME.json.",
        epilog="examples:\n  jaxsim reproduce fig3                 # into out/reproduce\n"
        "  jaxsim reproduce all --out out/paper", formatter_class=Formatter)
    p.add_argument("figure", choices=[*FIGURES, "all"], metavar="FIGURE",
                   help="which figure:\n" + "\n".join(f"  {k}: {v}" for k, v in FIGURES.items())
                   + "\n  all: every one available")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder, created if missing (default: {DEFAULT_OUT}, which git "
                   "ignores)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing the committed reference outputs in the repository's "
                   "results/ folder (off by default: --out results is refused there)")
    p.set_defaults(func=run)


def committed(out: Path, names) -> list[Path]:
    """The files of ``names`` that ``out`` would replace among the committed reference
    outputs (``results/NAME.json``, ``results/NAME.png`` of this source checkout)."""
    try:
        if out.resolve() != REFERENCE_DIR:
            return []
    except OSError:
        return []
    return [out / f"{n}{ext}" for n in names for ext in (".json", ".png")
            if (out / f"{n}{ext}").exists()]


def run(args) -> int:
    from jaxsim.physics.errors import ParameterError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out = {str(out)!r} is a file: expected a folder")
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    clash = committed(out, names)
    if clash and not args.overwrite:
        raise ParameterError(
            f"--out = {args.out!r} would replace {', '.join(str(c) for c in clash)}, committed "
            f"reference output{'s' if len(clash) > 1 else ''} of this repository: expected "
            f"another folder (default {DEFAULT_OUT}, ignored by git), or --overwrite to "
            "regenerate the reference")
    done, missing = [], []
    for name in names:
        mod = load(name)
        if mod is None:
            missing.append(name)
            print(f"jaxsim reproduce: {name} is not available in this build "
                  f"(module jaxsim.paper.{name} is missing)", file=sys.stderr)
            continue
        try:
            doc = mod.reproduce(out)
        except KeyboardInterrupt:
            from jaxsim.cli import Interrupted

            kept = f"; {', '.join(done)} written to {out}" if done else ""
            raise Interrupted(f"interrupted during {name}{kept}; rerun the same command to "
                              "start again") from None
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
