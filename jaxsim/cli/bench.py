"""``jaxsim bench [--quick] --out FILE.json``: SciPy loop vs naive diffrax vs the jaxsim engine."""

from __future__ import annotations

import argparse

from jaxsim.bench import engine as bench

EPILOG = """\
examples:
  jaxsim bench --quick --out out/bench.json      # about a minute on 2 CPU cores
  jaxsim bench --out out/bench_full.json         # larger grids, steadier numbers
  jaxsim bench --quick --dtype float32 --out out/bench32.json   # one engine dtype only

All rows run in one process on one random trap_detrap grid (A 1e5-1e8, D 0-1e8, K1 1e2-1e7,
n0 1e15-1e18 s^-1/cm^-3, t in [0, 2 us]); compare ratios, not absolute numbers, on a shared
machine. See docs/performance.md.
"""


def register(subparsers) -> None:
    from jaxsim.cli._help import Formatter

    p = subparsers.add_parser(
        "bench", help="throughput benchmark: SciPy loop vs naive diffrax vs jaxsim",
        description="Time a SciPy solve_ivp loop, the naive jit(vmap(diffeqsolve)) and the "
        "jaxsim engine on one random grid, for summaries and for 1000-point curves; report "
        "points/s, compile time, the max relative error against float64 Radau, peak memory.",
        epilog=EPILOG, formatter_class=Formatter)
    p.add_argument("--quick", action="store_true",
                   help="small grids (off by default; about a minute on 2 CPU cores, without "
                   "the fitting rows)")
    p.add_argument("--out", required=True, metavar="FILE.json",
                   help="where to write the report (required; its folder is created)")
    p.add_argument("--dtype", choices=("both", "float64", "float32"), default="both",
                   help="floating-point precision of the jaxsim engine rows: float64, float32, "
                   "or both (one row each; the default); the baselines run in float64")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the random parameter grid (default 0)")
    fit = p.add_mutually_exclusive_group()
    fit.add_argument("--no-fit", action="store_true",
                     help="skip the fitting rows (jaxsim.bench.fit) of a full run (by default a "
                     "full run has them)")
    fit.add_argument("--fit", action="store_true",
                     help="add the fitting rows to a --quick run too (off by default; 2-3 "
                     "minutes more on 2 cores)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test only
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from jaxsim.physics.errors import ParameterError

    out_dir = os.path.dirname(os.path.abspath(args.out))
    try:  # before the (long) run, so a folder that cannot be made fails at once
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise ParameterError(f"--out = {args.out!r}: cannot create its folder {out_dir!r}: "
                             f"{err.strerror}") from None
    sizes = bench.TINY if args.tiny else None
    report = bench.run_benchmark(quick=args.quick or args.tiny, sizes=sizes, seed=args.seed,
                                 dtype=args.dtype, fit_rows=(False if (args.no_fit or args.tiny)
                                           else "always" if args.fit else True))
    bench.write_report(report, args.out)
    print(bench.format_table(report))
    print(f"\nwrote {args.out}")
    return 0
