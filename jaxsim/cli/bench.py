"""``jaxsim bench [--quick] --out FILE.json``: SciPy loop vs naive diffrax vs the jaxsim engine."""

from __future__ import annotations

import argparse

from jaxsim.bench import engine as bench

EPILOG = """\
examples:
  jaxsim bench --quick --out out/bench.json      # small grids, no fitting rows
  jaxsim bench --out out/bench_full.json         # larger grids, steadier numbers
  jaxsim bench --quick --dtype float32 --out out/bench32.json   # one engine dtype only

All rows run in one process on one random trap_detrap grid (A 1e5-1e8, D 0-1e8, K1 1e2-1e7
s^-1, n0 1e15-1e18 cm^-3, t in [0, 2 us]). How long it takes, and measured results on the
project's 2-core VM: docs/performance.md.

rows (name):
  scipy          solve_ivp(RK45, rtol 1e-6) in a Python loop, on a subsample
  diffrax_naive  jit(vmap(diffeqsolve(Tsit5, rtol 1e-6, SaveAt 1000 times)))
  jaxsim         the batched engine (rtol 2e-7), sorted chunks as a sweep runs them; one row
                 per dtype (--dtype)

columns:
  output       summary: tau_mean_pl and plqy per point; curves: n(t), PL(t) at 1000 times
  dtype        precision of the solve (the baselines always run in float64)
  points/s     parameter points solved per second, compilation excluded (fastest pass of
               at least 3; the rows of one output are timed in turns)
  compile_s    seconds to compile the row's function(s)
  max_rel_err  largest relative error against float64 Radau (rtol 1e-11) on a subsample;
               curves: relative down to n = 1e-6 n0. The naive row's summaries read ~3e-2:
               it integrates PL from its saved points 2 ns apart (trapezoid rule), too coarse
               for the fastest decays of the grid (A = 1e8 s^-1: PL falls with a 5 ns time
               constant); scipy and jaxsim integrate the summaries as extra ODE states, to
               their tolerance. Its curves are accurate (~1e-5).
  peak_rss_mb  peak resident memory of the process while the row ran (MB)
ratio lines: jaxsim points/s over each baseline's (per output and dtype). memory: peak RSS
of a summary sweep at several chunk sizes and grid sizes (set by the chunk, not the grid).
On a shared machine compare ratios within one run, not absolute times.
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
                   help="small grids, without the fitting rows (off by default; timings: "
                   "docs/performance.md)")
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
                     help="add the fitting rows to a --quick run too (off by default; they "
                     "take longer than the rest of --quick)")
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
