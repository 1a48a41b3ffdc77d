"""The ``jaxsim`` command line: one module per subcommand, imported only when used.

Each subcommand module defines ``register(subparsers)`` (adds its parser and sets
``func``) and keeps its work in the library, so the Python API mirrors the command line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help); modules are imported lazily so `jaxsim --help` is instant
# (it imports neither JAX nor the models; tests/test_cli_help.py checks it).
COMMANDS = {
    "simulate": ("jaxsim.cli.simulate", "solve one decay and print it (table or JSON)"),
    "reproduce": ("jaxsim.cli.reproduce", "reproduce the paper's figures (fig3, fig1, fig4, all)"),
    "sweep": ("jaxsim.cli.sweep", "run a parameter grid from a TOML spec into a resumable zarr store"),
    "plot": ("jaxsim.cli.plot", "heatmap or line plot of a sweep store"),
    "bench": ("jaxsim.cli.bench", "throughput benchmark: SciPy loop vs naive diffrax vs jaxsim"),
    "fit": ("jaxsim.cli.fit", "fit model parameters to measured TRPL / TCSPC decays"),
    "protocol": ("jaxsim.cli.protocol", "slow ionic dynamics under an illumination protocol"),
    "sensitivity": ("jaxsim.cli.sensitivity", "Sobol indices of observables over parameter ranges"),
    "models": ("jaxsim.cli.models", "list the models (states, fluxes, parameters) as markdown"),
    "app": ("jaxsim.cli.app", "local web app: browse sweeps, play with a model, fit decays"),
}


def build_parser() -> argparse.ArgumentParser:
    from jaxsim import __version__

    parser = argparse.ArgumentParser(
        prog="jaxsim",
        description="Halide-perovskite carrier dynamics with ion-assisted detrapping "
        "(Wen & Jia): simulate, sweep, fit and explain.",
        epilog="Run 'jaxsim COMMAND --help' for a command's options, units and defaults. "
        "Times on the command line are in s, or carry a unit (2us, 500ns); other quantities "
        "are in SI-cm units (cm^-3, s^-1, cm^3 s^-1). Ctrl-C stops any command with exit "
        "status 130; an interrupted sweep resumes when rerun.",
    )
    parser.add_argument("--version", action="version", version=f"jaxsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module, helptext) in COMMANDS.items():
        if name == chosen:
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name != module:
                    raise
                sub.add_parser(name, help=helptext + " (not available in this build)")
                continue
            mod.register(sub)
        else:
            sub.add_parser(name, help=helptext, add_help=False)
    return parser


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that a command has turned into its one-line message (what was kept, how to go
    on), e.g. ``interrupted after 3 of 12 chunks; rerun the same command to resume``."""


#: exit status after Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    command = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    try:
        parser = build_parser()
        args = parser.parse_args()
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if args.command is None else 2
        return _run(args)
    except KeyboardInterrupt as err:
        # Ctrl-C: one line, no traceback; work already written (e.g. sweep chunks) is kept
        message = str(err) if isinstance(err, Interrupted) and str(err) else (
            "interrupted before it finished; rerun the same command to start again")
        print(f"jaxsim{' ' + command if command else ''}: {message}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args) -> int:
    from jaxsim.physics.errors import ParameterError

    try:
        return int(args.func(args) or 0)
    except ParameterError as err:
        print(f"jaxsim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, IsADirectoryError) as err:
        print(f"jaxsim {args.command}: error: {err}", file=sys.stderr)
        return 2


def entry() -> None:
    """The ``jaxsim`` command: :func:`main`, then exit without tearing the interpreter down.

    Everything a command writes is closed when it returns; freeing JAX's, XLA's and
    matplotlib's objects one by one at exit took ~0.3 s of every run (a tenth of a fit), so
    the exit handlers run and the process ends there."""
    import atexit
    import os
    import threading

    rc = main()
    for thread in threading.enumerate():  # what the interpreter would wait for at exit
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(rc)


if __name__ == "__main__":
    entry()
