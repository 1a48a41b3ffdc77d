"""Help texts shared by the subcommands: a formatter that keeps line breaks, the models and
their parameters from the registry, the solvers in words.

Only a chosen subcommand's parser is built (``jaxsim --help`` imports none of this), so the
registry is read when that subcommand's help or work needs it.
"""

from __future__ import annotations

import argparse
import textwrap

#: every ODE solver name of the command line, in words (the keys of
#: ``jaxsim.numerics.config.SOLVERS`` plus "auto"; tests/test_cli_help.py checks both agree)
SOLVER_WORDS = {
    "auto": "tsit5, or kvaerno5 when the problem is stiff: (fastest persistent rate, e.g. "
            "A + D + K1) x (last time) > 1e5",
    "tsit5": "Tsitouras 5(4), explicit Runge-Kutta: fast for non-stiff decays (the default)",
    "dopri5": "Dormand-Prince 5(4), explicit Runge-Kutta",
    "dopri8": "Dormand-Prince 8(7), explicit Runge-Kutta of high order, for very tight rtol",
    "kvaerno5": "Kvaerno 5(4), implicit (ESDIRK) for stiff problems: rates far faster than "
                "the window, e.g. A = 1e9 s^-1 over 1 ms",
    "kvaerno3": "Kvaerno 3(2), implicit (ESDIRK) for stiff problems, lower order",
}

RTOL_HELP = ("relative tolerance of each solver step's local error, a number in (0, 1), the "
             "same on every path (sweeps, fits, pulse trains); the error delivered on the saved "
             "curves is of that order (measured: docs/core.md)")
ATOL_HELP = ("absolute error tolerance of the ODE solver, on the densities scaled by the "
             "excitation density (n/n0, dimensionless): --atol 1e-12 allows an absolute error "
             "of 1e-12 x n0 cm^-3 (default: rtol x 1e-6, so the tail of a decay is controlled "
             "six decades below its start)")
DTYPE_HELP = ("floating-point precision: float64 (the default; reference accuracy) or float32 "
              "(faster on a GPU; relative errors no better than ~1e-6)")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps each line of an option's help on its own (so lists stay one item a line) and each
    paragraph of a description or epilog; lines that start with spaces (examples, tables) are
    kept as they are."""

    def _split_lines(self, text, width):
        out = []
        for line in text.splitlines():
            indent = " " * (len(line) - len(line.lstrip()))
            out += textwrap.wrap(line.strip(), width, initial_indent=indent,
                                 subsequent_indent=indent + "  ") or [""]
        return out

    def _fill_text(self, text, width, indent):
        out, para = [], []

        def flush():
            if para:
                out.extend(textwrap.wrap(" ".join(para), width, initial_indent=indent,
                                         subsequent_indent=indent))
                para.clear()

        for line in text.splitlines():
            if not line.strip() or line[:1].isspace():
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                para.append(line.strip())
        flush()
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def model_help(default: str | None = None) -> str:
    """``--model`` help: the models of the registry, one line each."""
    from jaxsim.physics.registry import DEFAULT_MODEL, models

    default = default or DEFAULT_MODEL
    lines = [f"rate-equation model (default {default}); parameters: see below"]
    for m in models().values():
        lines.append(f"  {m.name}: {m.description}")
    return "\n".join(lines)


def parameter_table(names=None, *, fit_ranges: bool = False) -> str:
    """The parameters of the registry's models with unit, default and physical meaning, one
    line each; a name whose row differs between models is listed once per row, with the
    models it belongs to. ``names``: only these models; ``fit_ranges``: add each parameter's
    default search range of ``jaxsim fit``."""
    from jaxsim.physics.registry import models

    rows: dict[tuple, list[str]] = {}
    for m in models().values():
        if names is not None and m.name not in names:
            continue
        for p in m.parameters:
            meaning = p.meaning
            lo, hi = getattr(p, "fit_lower", None), getattr(p, "fit_upper", None)
            if fit_ranges and lo is not None and hi is not None and p.name != "n0":
                meaning += f"; fit range {lo:g}..{hi:g}"
            rows.setdefault((p.name, p.unit, float(p.default), meaning), []).append(m.name)
    by_name: dict[str, int] = {}
    for key in rows:
        by_name[key[0]] = by_name.get(key[0], 0) + 1
    width = max([len(k[0]) for k in rows] + [4])
    uwidth = max([len(k[1]) for k in rows] + [4])
    dwidth = max([len(f"{k[2]:g}") for k in rows] + [7])
    lead = f"  {{:<{width}}}  {{:<{uwidth}}}  {{:<{dwidth}}}  "
    hang = " " * len(lead.format("", "", ""))
    lines = [lead.format("NAME", "UNIT", "DEFAULT") + "MEANING"]
    for (name, unit, default, meaning), owners in rows.items():
        which = f" ({', '.join(owners)})" if by_name[name] > 1 else ""
        lines += textwrap.wrap(meaning + which, help_width(),
                               initial_indent=lead.format(name, unit, f"{default:g}"),
                               subsequent_indent=hang)
    return "\n".join(lines)


def help_width() -> int:
    """The width argparse wraps help to (the terminal's, less 2)."""
    import shutil

    return max(shutil.get_terminal_size().columns - 2, 40)


def models_and_parameters(intro: str = "parameters (SI-cm units)", *,
                          fit_ranges: bool = False) -> str:
    """An epilog section: which parameters each model has, then every parameter's unit,
    default and meaning."""
    from jaxsim.physics.registry import models

    lines = ["models and their parameters:"]
    ms = models()
    width = max(len(n) for n in ms)
    for m in ms.values():
        lines.append(f"  {m.name:<{width}}  {' '.join(p.name for p in m.parameters)}")
    lines += ["", f"{intro}:", parameter_table(fit_ranges=fit_ranges)]
    return "\n".join(lines)


def solver_help() -> str:
    lines = ["ODE solver (default auto):"]
    lines += [f"  {name}: {words}" for name, words in SOLVER_WORDS.items()]
    return "\n".join(lines)
