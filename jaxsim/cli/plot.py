"""``jaxsim plot STORE --x A [--y D] --var NAME [--at n0=1e16 ...] --out FILE.png``."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  jaxsim plot default.zarr --x A --y D --var tau_mean_pl --at K1=1e4 --at n0=1e16 --out tau.png
  jaxsim plot default.zarr --x n0 --var plqy --at A=1e6 --at D=1e6 --at K1=1e4 --out plqy.png

--at picks the grid value nearest to the one given; every axis that is not plotted and has more
than one value must be fixed with --at. Log-spaced axes get log axes; times are shown in ns.
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
    p = subparsers.add_parser(
        "plot", help="heatmap or line plot of a sweep store",
        description="Heatmap of a stored variable over two axes (--x, --y) or a line over one.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", help="zarr store written by `jaxsim sweep`")
    p.add_argument("--x", required=True, help="axis on the horizontal")
    p.add_argument("--y", default=None, help="axis on the vertical (heatmap); omit for a line")
    p.add_argument("--var", required=True, help="stored variable, e.g. tau_mean_pl")
    p.add_argument("--at", action="append", default=[], metavar="NAME=VALUE",
                   help="fix another axis at the grid value nearest VALUE (repeatable)")
    p.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    p.set_defaults(func=run)


def run(args) -> int:
    from jaxsim.plots.sweep import plot_store

    at = dict(_at(a) for a in args.at)
    plot_store(args.store, x=args.x, y=args.y, var=args.var, at=at, out=args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
