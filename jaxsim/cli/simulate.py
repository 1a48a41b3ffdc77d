"""``jaxsim simulate``: solve one decay and print it as a table or JSON (SI-cm units, times in s).

Example::

    jaxsim simulate --model trap_detrap --set A=1e7 --set D=5e6 --set n0=1e16 \\
        --times linspace:0,2e-6,201 --json
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from jaxsim.numerics.config import SOLVERS, STATUS_MESSAGES, SolverConfig
from jaxsim.numerics.reference import check_times, solve
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.parameters import make_params
from jaxsim.physics.registry import DEFAULT_MODEL, get_model

DEFAULT_TIMES = "linspace:0,2e-6,201"


TIMES_FORMS = ("'t1,t2,...', 'linspace:START,STOP,NUM' or 'logspace:START,STOP,NUM' (times "
               "in s, or with a unit: 2us, 500ns; logspace takes the first and last times "
               "themselves, not their exponents)")


def parse_times(text: str) -> np.ndarray:
    """Save times in s from ``"t1,t2,..."``, ``"linspace:START,STOP,NUM"`` or
    ``"logspace:START,STOP,NUM"`` (validated: finite, >= 0, strictly increasing).

    Every time is in s, or carries a unit (``2us``, ``500ns``; :mod:`jaxsim.cli._times`).
    ``logspace`` takes the first and last times as values, as sweep specs do
    (``logspace:1e-9,1e-5,5`` -> 1e-9, 1e-8, ..., 1e-5 s), so both must be > 0; the solve still
    starts at t = 0. A form that cannot be meant is refused, naming what was expected.
    """
    from jaxsim.cli._times import parse_time

    text = text.strip()
    kind, sep, rest = text.partition(":")
    where = f"--times = {text!r}"
    if sep and kind not in ("linspace", "logspace"):
        raise ParameterError(f"{where}: unknown form {kind!r}: expected {TIMES_FORMS}")
    if not sep:
        items = [p for p in text.split(",") if p.strip()]
        if not items:
            raise ParameterError(f"{where} is not readable: expected {TIMES_FORMS}")
        ts = np.array([_time(parse_time, p, where, f"item {i + 1}") for i, p in enumerate(items)])
        return check_times(ts, name="--times")
    parts = rest.split(",")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ParameterError(f"{where} is not readable: expected {kind}:START,STOP,NUM "
                             f"(three values), one of {TIMES_FORMS}")
    a = _time(parse_time, parts[0], where, f"{kind} START")
    b = _time(parse_time, parts[1], where, f"{kind} STOP")
    try:
        num = float(parts[2])
        if not (num.is_integer() and num >= 2):
            raise ValueError
        num = int(num)
    except ValueError:
        raise ParameterError(f"{where}: NUM = {parts[2].strip()!r}: expected an integer >= 2 "
                             "(the number of times; one time is given as a list: --times 1e-6)"
                             ) from None
    if kind == "logspace" and (a <= 0 or b <= 0):
        bad, value = ("START", parts[0].strip()) if a <= 0 else ("STOP", parts[1].strip())
        if a <= 0 and b <= 0 and abs(a) <= 30 and abs(b) <= 30 and a < b:
            hint = (f"; if {parts[0].strip()}, {parts[1].strip()} were meant as exponents, "
                    f"write logspace:{10.0 ** a:g},{10.0 ** b:g},{num}")
        elif a == 0:
            hint = ("; the solve always starts at t = 0: start the logarithmic grid at the "
                    f"first time of interest, e.g. logspace:1e-10,{parts[1].strip()},{num}")
        else:
            hint = ""
        raise ParameterError(
            f"{where}: logspace {bad} = {value}: expected a time > 0 s (logspace takes the "
            f"first and last times themselves, not their exponents){hint}")
    if not b > a:
        raise ParameterError(f"{where}: STOP = {parts[1].strip()} is not after START = "
                             f"{parts[0].strip()}: expected START < STOP")
    ts = np.linspace(a, b, num) if kind == "linspace" else np.geomspace(a, b, num)
    ts[0], ts[-1] = a, b  # exactly the times asked for, never beyond them
    return check_times(ts, name="--times")


def _time(parse_time, text, where, what) -> float:
    try:
        return parse_time(text.strip(), what)
    except ParameterError as err:
        raise ParameterError(f"{where}: {err}") from None


def parse_sets(items, model) -> dict:
    """``["A=1e7", "n0=3e16"]`` -> ``{"A": 1e7, "n0": 3e16}`` (names checked against the model)."""
    model = get_model(model)
    values = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE, e.g. --set A=1e7")
        if name not in model.parameter_names:
            raise ParameterError(
                f"--set {item!r}: model {model.name!r} has no parameter {name!r}: expected one "
                f"of {', '.join(model.parameter_names)}")
        try:
            values[name] = float(value)
        except ValueError:
            row = next(r for r in model.parameters if r.name == name)
            raise ParameterError(
                f"--set {item!r}: parameter {name!r} = {value!r} is not a number: expected "
                f"{row.expected()}") from None
    return values


EPILOG = """\
examples:
  jaxsim simulate --set A=1e7 --set D=5e6 --set n0=1e16 --times 0,1e-8,1e-7,1e-6
  jaxsim simulate --model abc --set A=3e6 --times logspace:1e-10,2us,61 --json
  jaxsim simulate --set D=5e6 --set K1=1e5 --times linspace:0,1e-6,101 --rep-rate 1e6

Output: a table of t (s), each state (cm^-3) and PL = B n p (cm^-3 s^-1), then a status line;
with --json one object with the same numbers and their units. Exit status 0 on success, 1 when
the solve failed (its status is printed), 2 on bad input.

"""


def register(subparsers) -> None:
    from jaxsim.cli._help import (
        ATOL_HELP,
        DTYPE_HELP,
        RTOL_HELP,
        Formatter,
        model_help,
        models_and_parameters,
        solver_help,
    )

    p = subparsers.add_parser(
        "simulate", help="solve one decay and print it (table or JSON)",
        description="Solve the carrier decay after one pulse at t = 0 (or the periodic steady "
        "state of a pulse train with --rep-rate) and print the model's states (e.g. n(t), "
        "n_d(t)) and PL(t) in SI-cm units (cm^-3, cm^-3 s^-1; times in s).",
        epilog=EPILOG + models_and_parameters("parameters (--set NAME=VALUE, SI-cm units)"),
        formatter_class=Formatter)
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=model_help())
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter, in its unit from the table below (repeatable), e.g. "
                   "--set A=1e7 --set n0=3e16; parameters not set keep their defaults")
    p.add_argument("--times", default=DEFAULT_TIMES, metavar="TIMES",
                   help=f"save times: {TIMES_FORMS}. Default {DEFAULT_TIMES}: 201 times from 0 "
                   "to 2 us")
    p.add_argument("--rtol", type=float, default=1e-6, help=RTOL_HELP + " (default 1e-6)")
    p.add_argument("--atol", type=float, default=None, help=ATOL_HELP)
    p.add_argument("--solver", default="auto", choices=["auto", *SOLVERS], metavar="NAME",
                   help=solver_help())
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help=DTYPE_HELP)
    p.add_argument("--max-steps", type=int, default=20_000, metavar="N",
                   help="most solver steps before the solve stops with status "
                   "max_steps_reached (default 20000)")
    p.add_argument("--rep-rate", type=float, default=None, metavar="HZ",
                   help="pulse repetition rate in Hz: print the periodic steady state of a "
                   "pulse train (the decay after each pulse once carriers have built up) and the "
                   "carrier accumulation in %%; default: off (one pulse into an empty sample)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table (the default): times in "
                   "s, as in the table; the unit of every number under 'units'")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="also save n(t) and PL(t) (normalised, log axis, time in ns) to this "
                   "image (default: no image)")
    p.set_defaults(func=run)


def _clean(a) -> list:
    """Floats for JSON; non-finite values become null (JSON has no NaN)."""
    return [float(x) if math.isfinite(x) else None for x in np.asarray(a, dtype=float).ravel()]


def simulate(model, values: dict, ts, config: SolverConfig, rep_rate: float | None = None):
    """The solution (and carrier accumulation in %, or None) behind ``jaxsim simulate``."""
    model = get_model(model)
    params = make_params(model, values)
    if rep_rate is None:
        return solve(model, params, ts, config=config), None
    if not (math.isfinite(rep_rate) and rep_rate > 0):
        raise ParameterError(f"--rep-rate = {rep_rate!r}: expected a positive repetition rate in Hz")
    from jaxsim.numerics.pulses import steady_state_decay

    res = steady_state_decay(model, params, ts, rep_rate, config)
    return res.solution, float(res.carrier_accumulation_percent)


def run(args) -> int:
    model = get_model(args.model)
    values = parse_sets(args.sets, model)
    ts = parse_times(args.times)
    config = SolverConfig(solver=args.solver, rtol=args.rtol, atol=args.atol,
                          max_steps=args.max_steps, dtype=args.dtype)
    sol, accumulation = simulate(model, values, ts, config, args.rep_rate)
    status = int(np.asarray(sol.status))
    message = STATUS_MESSAGES[status]
    states = {k: np.asarray(v) for k, v in sol.states.items()}
    pl = np.asarray(sol.pl)
    if args.json:
        doc = {"model": model.name, "solver": sol.solver,
               "params": {k: float(np.asarray(v)) for k, v in sol.params.values.items()},
               "t": _clean(sol.t)}
        for name in model.state_names:
            doc[name] = _clean(states[name])
        doc["pl"] = _clean(pl)
        doc["status"] = message
        doc["num_steps"] = int(np.asarray(sol.num_steps))
        if accumulation is not None:
            doc["rep_rate"] = args.rep_rate
            doc["carrier_accumulation_percent"] = accumulation
        doc["units"] = json_units(model, accumulation is not None)
        print(json.dumps(doc))
    else:
        _print_table(model, np.asarray(sol.t), states, pl)
        extra = "" if accumulation is None else (
            f", rep rate {args.rep_rate:g} Hz, carrier accumulation {accumulation:.3g} %")
        print(f"# status: {message} ({int(np.asarray(sol.num_steps))} steps, solver "
              f"{sol.solver}{extra})")
    if args.plot:
        from jaxsim.plots.decays import save_decay_plot

        free = model.free_state.name
        series = {f"{free}(t)": states[free], "PL(t)": pl}
        save_decay_plot(args.plot, np.asarray(sol.t), series,
                        title=f"{model.name}: " + ", ".join(f"{k}={v:g}" for k, v in values.items()))
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    if status != 0:
        print(f"jaxsim simulate: solve did not succeed: {message}", file=sys.stderr)
        return 1
    return 0


def json_units(model, pulse_train: bool = False) -> dict:
    """The unit of every number in ``simulate --json`` (times in s, as in the table and in
    ``--times``; densities in cm^-3; parameters in their table's units)."""
    units = {"t": "s", **{n: "cm^-3" for n in model.state_names}, "pl": "cm^-3 s^-1",
             "params": {p.name: p.unit for p in model.parameters}}
    if pulse_train:
        units.update(rep_rate="Hz", carrier_accumulation_percent="%")
    return units


def _print_table(model, t, states, pl) -> None:
    """Times in s (as ``--times`` and ``--json``), densities in cm^-3, PL in cm^-3 s^-1."""
    cols = ["t (s)"] + [f"{n} (cm^-3)" for n in model.state_names] + ["PL (cm^-3 s^-1)"]
    print("  ".join(f"{c:>16s}" for c in cols))
    for i in range(len(t)):
        row = [t[i]] + [states[n][i] for n in model.state_names] + [pl[i]]
        print("  ".join(f"{x:16.6e}" for x in row))
