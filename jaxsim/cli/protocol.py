"""``jaxsim protocol SPEC --out DIR``: the slow ionic reservoir under an illumination protocol.

Example::

    jaxsim protocol sweeps/fig4_memory.toml --out results/fig4_memory

writes ``DIR/protocol.json`` (``lab_time_s``, ``pl``, ``D``, ``segments`` with ``name``,
``tau_avg_ns``, ``pl_integrated`` and more; see docs/ionic.md) and ``DIR/protocol.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers):
    from jaxsim.cli._help import RTOL_HELP, Formatter

    p = subparsers.add_parser(
        "protocol",
        help="slow ionic dynamics under an illumination protocol",
        description="Simulate lab time (s) under a TOML protocol of segments (pulsed excitation, "
        "CW bias, dark): the energetic-ion reservoir D(t) and mobile-ion quenchers Q(t), with "
        "the fast periodic steady state (PL, TCSPC decay) at every lab-time sample. "
        "Specs: sweeps/fig1_brightening.toml, sweeps/fig1_quenching.toml, "
        "sweeps/fig4_memory.toml. Units and the model: docs/ionic.md.",
        epilog="example:\n  jaxsim protocol sweeps/fig4_memory.toml --out out/memory\n\n"
        "Writes DIR/protocol.json (lab time in s, PL in cm^-3 s^-1, D and Q in s^-1, per "
        "segment tau_avg in ns) and DIR/protocol.png.",
        formatter_class=Formatter,
    )
    p.add_argument("spec", help="protocol TOML file (times in s, rates in s^-1)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder, created if missing (required)")
    p.add_argument("--rtol", type=float, default=1e-6,
                   help=RTOL_HELP + ", for the fast (ns to us) decays at each lab-time sample "
                   "(default 1e-6)")
    p.add_argument("--quiet", action="store_true",
                   help="do not print the segment table (printed by default)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.studies.protocol import run_protocol, write_outputs
    from jaxsim.io.spec_files import load_protocol

    protocol = load_protocol(args.spec)
    result = run_protocol(protocol, SolverConfig(rtol=args.rtol))
    data = write_outputs(result, Path(args.out))
    from jaxsim.plots.protocol import plot_protocol

    plot_protocol(result, Path(args.out) / "protocol.png")
    if not args.quiet:
        print(f"{protocol.name}: {len(result.lab_time_s)} lab-time samples over "
              f"{protocol.duration:g} s, {result.iterations} coupling sweeps"
              f"{'' if result.converged else ' (NOT converged)'}")
        print(f"{'segment':<16}{'kind':<11}{'tau_avg (ns)':>13}{'mean PL (cm^-3 s^-1)':>22}"
              f"{'mean D (s^-1)':>15}{'mean Q (s^-1)':>15}")
        for s in data["segments"]:
            tau = "-" if s["tau_avg_ns"] is None else f"{s['tau_avg_ns']:.1f}"
            print(f"{s['name']:<16}{s['kind']:<11}{tau:>13}{s['pl_mean']:>22.3e}"
                  f"{s['D_mean']:>15.3e}{s['Q_mean']:>15.3e}")
        print(f"wrote {Path(args.out) / 'protocol.json'} and {Path(args.out) / 'protocol.png'}")
    if not result.converged:
        print("warning: the fast/slow coupling did not converge; results are the last sweep",
              file=sys.stderr)
    return 0
