"""``jaxsim sensitivity SPEC --out DIR``: Sobol indices of observables over parameter ranges."""

from __future__ import annotations

import dataclasses
import pathlib
from pathlib import Path

EPILOG = """\
SPEC is a TOML file, e.g. sweeps/sensitivity_default.toml:

  model = "trap_detrap"
  observables = ["tau_mean_pl", "plqy"]
  t1 = 2e-6          # window end, s
  N = 256            # base samples (power of two); runs = N x (parameters + 2)
  seed = 0
  rtol = 1e-6        # solver settings as in sweep specs (rtol, atol, dtype, max_steps)
  [fixed]
  B = 1e-10
  [ranges]
  A = { low = 1e5, high = 1e8 }          # log-uniform: spans decades
  D = { low = 1e3, high = 1e8, log = true }

Writes DIR/sensitivity.json {observable: {param: {S1, S1_conf, ST, ST_conf}}},
DIR/sensitivity.png (bar chart), DIR/sensitivity_meta.json (and DIR/samples.npz with
--save-samples). An observable "log10:NAME" apportions the variance of log10 of NAME.
See docs/sensitivity.md.
"""


def register(subparsers) -> None:
    from jaxsim.cli._help import Formatter, models_and_parameters

    p = subparsers.add_parser(
        "sensitivity", help="Sobol indices of observables over parameter ranges",
        description="Global sensitivity analysis: first-order and total Sobol indices, with "
        "bootstrap confidence intervals, from a Saltelli design evaluated through the batched "
        "engine.", epilog=EPILOG + "\n" + models_and_parameters(
            "parameters ([ranges] and [fixed] of a spec; SI-cm units)"),
        formatter_class=Formatter)
    p.add_argument("spec", type=pathlib.Path, help="TOML spec file (see below)")
    p.add_argument("--out", type=pathlib.Path, required=True, metavar="DIR",
                   help="output folder, created if missing (required)")
    p.add_argument("--N", dest="n", type=int, default=None, metavar="N",
                   help="base samples, a power of two; runs = N x (parameters + 2) (default: "
                   "the spec's N, 256 when it has none)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the Saltelli design (default: the spec's seed, 0 when it has "
                   "none)")
    p.add_argument("--chunk-size", dest="chunk", type=int, default=None, metavar="N",
                   help="points solved together in one batch (default: the spec's chunk_size, 1024 "
                   "when it has none)")
    p.add_argument("--save-samples", action="store_true",
                   help="also write DIR/samples.npz: design points and model outputs (off by "
                   "default)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (shown by default)")
    p.set_defaults(func=run)


def run(args) -> int:
    from jaxsim.io.spec_files import load_sensitivity_spec
    from jaxsim.studies.sensitivity import run as run_study

    spec = load_sensitivity_spec(args.spec)
    overrides = {k: v for k, v in (("n", args.n), ("seed", args.seed), ("chunk", args.chunk))
                 if v is not None}
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    result = run_study(spec, progress=not args.no_progress)
    paths = result.write(args.out, samples=args.save_samples)
    import matplotlib.pyplot as plt

    from jaxsim.plots.sensitivity import sobol_bars

    fig = sobol_bars(result.indices, title=f"Sobol indices, {spec.model.name}, N = {spec.n}")
    paths["png"] = Path(args.out) / "sensitivity.png"
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    width = max(len(r.name) for r in spec.ranges)
    for obs, table in result.indices.items():
        print(f"{obs}:")
        for name, s in table.items():
            print(f"  {name:<{width}}  S1 = {s['S1']:6.3f} ± {s['S1_conf']:.3f}   "
                  f"ST = {s['ST']:6.3f} ± {s['ST_conf']:.3f}")
    if result.dropped_rows:
        print(f"dropped {result.dropped_rows} of {spec.n} Saltelli rows with failed solves")
    print(f"wrote {paths['json']} and {paths['png']}")
    return 0
