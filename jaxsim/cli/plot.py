"""``jaxsim plot STORE --x A [--y D] --var NAME [--at n0=1e16 ...] --out FILE.png``."""

from __future__ import annotations

import sys

EPILOG = """\
examples:
  jaxsim plot out/default.zarr --x A --y D --var tau_mean_pl --at K1=1e4 --at n0=1e16 \\
      --out out/tau.png
  jaxsim plot out/default.zarr --x n0 --var plqy --at A=1e6 --at D=1e6 --at K1=1e4 \\
      --out out/plqy.png

--at picks the grid value nearest to the one given; every axis that is not plotted and has more
than one value must be fixed with --at. Log-spaced axes get log axes; times are shown in ns.
Summaries computed over the window [0, t1] of the sweep (lifetimes, PLQY, shares) say so in
the title and on the colour bar.
"""


def _at(text: str):
    from jaxsim.physics.errors import ParameterError

    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise ParameterError(f"--at {text!r}: expected NAME=VALUE, e.g. n0=1e16") from None


def register(subparsers) -> None:
    from jaxsim.cli._help import Formatter

    p = subparsers.add_parser(
        "plot", help="heatmap or line plot of a sweep store",
        description="Heatmap of a stored variable over two axes (--x, --y) or a line over one.",
        epilog=EPILOG, formatter_class=Formatter)
    p.add_argument("store", help="zarr store written by `jaxsim sweep`")
    p.add_argument("--x", required=True, metavar="AXIS",
                   help="sweep axis on the horizontal, e.g. A (required)")
    p.add_argument("--y", default=None, metavar="AXIS",
                   help="sweep axis on the vertical, for a heatmap (default: none, a line plot)")
    p.add_argument("--var", required=True, metavar="NAME",
                   help="stored variable, e.g. tau_mean_pl (required); lifetimes are drawn in "
                   "ns, other variables in their stored unit")
    p.add_argument("--at", action="append", default=[], metavar="NAME=VALUE",
                   help="fix another axis at the grid value nearest VALUE, in the axis's unit "
                   "(repeatable; needed for every other axis with more than one value; default: "
                   "none)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="image file to write: .png, .pdf or .svg (required)")
    p.set_defaults(func=run)


def run(args) -> int:
    from jaxsim.plots.sweep import plot_store

    at = dict(_at(a) for a in args.at)
    plot_store(args.store, x=args.x, y=args.y, var=args.var, at=at, out=args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
