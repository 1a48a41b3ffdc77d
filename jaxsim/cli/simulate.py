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
from jaxsim.physics.registry import DEFAULT_MODEL, get_model, models

DEFAULT_TIMES = "linspace:0,2e-6,201"


def parse_times(text: str) -> np.ndarray:
    """Save times in s from ``"t1,t2,..."``, ``"linspace:START,STOP,NUM"`` or
    ``"logspace:LOG10_START,LOG10_STOP,NUM"`` (validated: finite, >= 0, strictly increasing).

    With ``logspace`` the first time is 10**LOG10_START > 0; the solve still starts at t = 0.
    """
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind not in ("linspace", "logspace"):
        raise ParameterError(
            f"--times = {text!r}: unknown form {kind!r}: expected 't1,t2,...', "
            "'linspace:START,STOP,NUM' or 'logspace:LOG10_START,LOG10_STOP,NUM' (times in s)")
    try:
        if sep and kind in ("linspace", "logspace"):
            parts = [p for p in rest.split(",") if p.strip()]
            if len(parts) != 3:
                raise ValueError
            a, b, num = float(parts[0]), float(parts[1]), int(float(parts[2]))
            if num < 1 or not float(parts[2]).is_integer():
                raise ValueError
            ts = np.linspace(a, b, num) if kind == "linspace" else np.logspace(a, b, num)
        else:
            ts = np.array([float(p) for p in text.split(",") if p.strip()])
    except ValueError:
        raise ParameterError(
            f"--times = {text!r} is not readable: expected 't1,t2,...' (s), "
            "'linspace:START,STOP,NUM' or 'logspace:LOG10_START,LOG10_STOP,NUM' "
            "(NUM a positive integer)") from None
    return check_times(ts, name="--times")


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


def _param_help() -> str:
    lines = []
    for m in models().values():
        rows = ", ".join(f"{p.name} [{p.unit}] (default {p.default:g})" for p in m.parameters)
        lines.append(f"{m.name}: {rows}")
    return "; ".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="solve one decay and print it (table or JSON)",
        description="Solve the carrier decay after one pulse at t = 0 (or the periodic steady "
        "state of a pulse train with --rep-rate) and print the model's states (e.g. n(t), n_d(t)) "
        "and PL(t) in SI-cm units "
        "(cm^-3, cm^-3 s^-1; times in s). Parameters: " + _param_help() + ".")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"one of {', '.join(models())} (default {DEFAULT_MODEL})")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter in SI-cm units (repeatable), e.g. --set A=1e7")
    p.add_argument("--times", default=DEFAULT_TIMES,
                   help="save times in s: 't1,t2,...', 'linspace:START,STOP,NUM' or "
                   f"'logspace:LOG10_START,LOG10_STOP,NUM' (default {DEFAULT_TIMES})")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    p.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance in the scaled density n/n0 (default rtol*1e-6)")
    p.add_argument("--solver", default="auto", choices=["auto", *SOLVERS],
                   help="ODE solver; 'auto': Tsit5, or Kvaerno5 when (max rate x last time) > 1e5")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--max-steps", type=int, default=20_000, help="step limit (default 20000)")
    p.add_argument("--rep-rate", type=float, default=None, metavar="HZ",
                   help="pulse repetition rate: print the periodic steady state and the carrier "
                   "accumulation")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="also save n(t) and PL(t) (normalised, log axis, ns) to this PNG")
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
    try:
        from jaxsim.numerics.pulses import steady_state_decay
    except ModuleNotFoundError as err:
        if err.name != "jaxsim.numerics.pulses":
            raise
        raise ParameterError("--rep-rate needs the pulse-train module jaxsim.numerics.pulses, "
                             "which is not available in this build") from None
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


def _print_table(model, t, states, pl) -> None:
    cols = ["t (ns)"] + [f"{n} (cm^-3)" for n in model.state_names] + ["PL (cm^-3 s^-1)"]
    print("  ".join(f"{c:>16s}" for c in cols))
    for i in range(len(t)):
        row = [t[i] * 1e9] + [states[n][i] for n in model.state_names] + [pl[i]]
        print("  ".join(f"{x:16.6e}" for x in row))
