r"""Sweep specifications: a TOML file <-> a frozen, validated :class:`SweepSpec`.

A spec says *what* to compute over a grid; :mod:`jaxsim.studies.sweep` says how. Example
(``sweeps/default.toml``)::

    name = "default"
    model = "trap_detrap"
    t1 = 2e-6                  # s, end of the time window
    dtype = "float64"
    rtol = 1e-6
    chunk_size = 4096
    order_by_stiffness = true

    [fixed]                    # parameters held constant (others: the model's defaults)
    B = 1e-10
    C = 1e-28

    [axes]                     # one grid dimension per entry, in this order
    A  = { logspace = [1e5, 1e8, 16] }      # start, stop (values, not exponents), num
    D  = { linspace = [0.0, 1e8, 11] }      # start, stop, num
    K1 = [1e2, 1e4, 1e6]                    # explicit values
    n0 = { logspace = [1e15, 1e18, 13] }

    [observables]
    summaries = ["tau_mean_pl", "plqy"]
    # optional curves on a time grid (s); vars among the model's states (trap_detrap: n, n_d),
    # pl, pl_norm
    curves = { vars = ["pl"], ts = { logspace = [1e-10, 2e-6, 200] } }

Pulse trains: ``rep_rate`` (Hz; not a model parameter) may be an axis or a fixed value. Then
every point is the periodic steady-state pulse of a train at that rate
(:func:`jaxsim.numerics.pulses.steady_state_chunk_solver`), observed over [0, t1] with t1 <= the
shortest period, and the store also gets ``carrier_accumulation_percent``.

The grid is the outer product of the axes (C order: the last axis varies fastest); its size is
:math:`\prod_k |\mathrm{axis}_k|`. Every value is checked against the model's parameter table
before any work starts, and errors name the field, the value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.physics.fields import number
from jaxsim.physics.parameters import table_lookup
from jaxsim.physics.registry import get_model

SPEC_KEYS = ("name", "description", "model", "t1", "dtype", "rtol", "atol", "max_steps",
             "solver", "chunk_size", "order_by_stiffness", "sensitivities", "fixed", "axes",
             "observables", "diffusion_coefficient")


#: carrier diffusion coefficient D_c (cm^2/s) behind ``diffusion_length``: MAPbI3 film (paper)
DEFAULT_DIFFUSION_COEFFICIENT = 0.017


DEFAULT_CHUNK = 4096


#: the sweep quantity that is not a model parameter: the pulse train's repetition rate (Hz)
REP_RATE = "rep_rate"


#: the summary a pulse-train sweep adds (see jaxsim.numerics.pulses.PULSE_SUMMARIES)
CARRIER_ACCUMULATION = "carrier_accumulation_percent"


class SpecError(ParameterError):
    """A sweep spec that cannot be run (malformed TOML, unknown name, bad value)."""


@dataclass(frozen=True)
class Values:
    """A list of numbers given as a list, ``{linspace=[a, b, n]}`` or ``{logspace=[a, b, n]}``.

    For ``logspace`` the endpoints are values (``[1e5, 1e8, 4]`` -> 1e5, 1e6, 1e7, 1e8), so they
    must be > 0. ``kind`` is ``"list"``, ``"linspace"`` or ``"logspace"``; ``args`` keeps the
    original numbers so the TOML round-trips exactly.
    """

    kind: str
    args: tuple

    @staticmethod
    def parse(raw, *, where: str) -> "Values":
        if isinstance(raw, (list, tuple)):
            if len(raw) == 0:
                raise SpecError(f"{where} = []: expected at least one value")
            nums = tuple(_number(v, where=f"{where}[{i}]") for i, v in enumerate(raw))
            return Values("list", nums)
        if isinstance(raw, Mapping):
            keys = set(raw)
            kinds = keys & {"linspace", "logspace", "values"}
            if len(kinds) != 1 or keys - kinds:
                raise SpecError(
                    f"{where} = {dict(raw)!r}: expected a list of numbers, "
                    "{{ linspace = [start, stop, num] }} or {{ logspace = [start, stop, num] }}")
            kind = kinds.pop()
            if kind == "values":
                return Values.parse(raw["values"], where=where)
            a = raw[kind]
            if isinstance(a, Mapping):
                a = [a.get("start"), a.get("stop"), a.get("num")]
            if not isinstance(a, (list, tuple)) or len(a) != 3:
                raise SpecError(f"{where}.{kind} = {a!r}: expected [start, stop, num]")
            start = _number(a[0], where=f"{where}.{kind} start")
            stop = _number(a[1], where=f"{where}.{kind} stop")
            num = a[2]
            if isinstance(num, bool) or not isinstance(num, int) or num < 1:
                raise SpecError(f"{where}.{kind} num = {num!r}: expected an integer >= 1 "
                                "(an empty axis has no points)")
            if kind == "logspace" and (start <= 0 or stop <= 0):
                bad = start if start <= 0 else stop
                raise SpecError(f"{where}.logspace has {bad!r}: expected start and stop > 0 "
                                "(log-spaced values must be positive; use linspace or a list "
                                "for 0)")
            return Values(kind, (start, stop, int(num)))
        raise SpecError(f"{where} = {raw!r}: expected a list of numbers, "
                        "{ linspace = [start, stop, num] } or { logspace = [start, stop, num] }")

    def array(self) -> np.ndarray:
        if self.kind == "list":
            return np.asarray(self.args, dtype=float)
        a, b, n = self.args
        if self.kind == "linspace":
            return np.linspace(a, b, n)
        return np.logspace(math.log10(a), math.log10(b), n)

    def __len__(self) -> int:
        return len(self.args) if self.kind == "list" else int(self.args[2])

    @property
    def scale(self) -> str:
        """``"log"`` for logspace, or a list of values >= 0 whose positive values span >= 2
        decades (a 0 among them is drawn on a symlog axis); else ``"linear"``."""
        if self.kind == "logspace":
            return "log"
        if self.kind == "linspace":
            return "linear"
        v = self.array()
        pos = v[v > 0]
        ok = np.all(v >= 0) and pos.size >= 2 and pos.max() / pos.min() >= 100
        return "log" if ok else "linear"

    def to_raw(self):
        return list(self.args) if self.kind == "list" else {self.kind: list(self.args)}


def _number(v, *, where: str) -> float:
    return number(v, where, error=SpecError)


@dataclass(frozen=True)
class Axis:
    """One grid dimension: a model parameter and its values (physical units)."""

    name: str
    values: Values
    unit: str = ""

    def array(self) -> np.ndarray:
        return self.values.array()

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: model, fixed parameters, axes, observables and numerics.

    Build it with :func:`jaxsim.io.spec_files.load_sweep_spec` (TOML) or :meth:`SweepSpec.create`
    (Python); both validate. ``fixed`` and ``axes`` are tuples so the spec is hashable.
    Times in s; ``curve_ts`` is ``None`` when no curves are kept.
    """

    model: object  # a model object (names are resolved when the spec is read)
    axes: tuple[Axis, ...]
    t1: float
    summaries: tuple[str, ...] = ()
    fixed: tuple[tuple[str, float], ...] = ()
    curve_vars: tuple[str, ...] = ()
    curve_ts: Values | None = None
    dtype: str = "float64"
    rtol: float = 1e-6
    atol: float | None = None
    max_steps: int = 20_000
    solver: str = "auto"
    chunk_size: int = DEFAULT_CHUNK
    order_by_stiffness: bool = True
    sensitivities: tuple[str, ...] = ()
    diffusion_coefficient: float = DEFAULT_DIFFUSION_COEFFICIENT
    name: str = ""
    description: str = ""

    # -- construction -----------------------------------------------------------------
    @classmethod
    def create(cls, *, model="trap_detrap", axes: Mapping, t1: float, summaries=(),
               fixed: Mapping | None = None, curves: Mapping | None = None, **kw) -> "SweepSpec":
        """Python constructor with the TOML's vocabulary: ``axes={"A": {"logspace": [...]}}``."""
        raw = dict(model=model, t1=t1, axes=dict(axes), fixed=dict(fixed or {}),
                   observables={"summaries": list(summaries)}, **kw)
        if curves:
            raw["observables"]["curves"] = dict(curves)
        return from_dict(raw)

    # -- derived ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def fixed_dict(self) -> dict[str, float]:
        """Fixed values by name (model parameters, and ``rep_rate`` when it is fixed)."""
        return dict(self.fixed)

    @property
    def fixed_parameters(self) -> dict[str, float]:
        """Fixed model parameters only (``fixed_dict`` without ``rep_rate``)."""
        return {k: v for k, v in self.fixed if k != REP_RATE}

    @property
    def has_rep_rate(self) -> bool:
        """Whether this is a pulse-train sweep (``rep_rate`` is an axis or fixed)."""
        return REP_RATE in self.axis_names or REP_RATE in self.fixed_dict

    def rep_rates(self) -> np.ndarray | None:
        """The repetition rates of the grid in Hz (axis values or the fixed value), or None."""
        for a in self.axes:
            if a.name == REP_RATE:
                return a.array()
        if REP_RATE in self.fixed_dict:
            return np.asarray([self.fixed_dict[REP_RATE]])
        return None

    def curve_times(self) -> np.ndarray | None:
        return None if self.curve_ts is None else self.curve_ts.array()

    def solver_config(self):
        from jaxsim.numerics.config import SolverConfig

        return SolverConfig(solver=self.solver, rtol=self.rtol, atol=self.atol,
                            max_steps=self.max_steps, dtype=self.dtype, adjoint="forward")

    def output_names(self) -> tuple[str, ...]:
        """Every per-point variable the sweep writes (besides status and num_steps)."""
        names = list(self.summaries) + list(self.window_flags())
        if self.has_rep_rate and CARRIER_ACCUMULATION not in names:
            names.append(CARRIER_ACCUMULATION)
        names += [f"curve_{v}" for v in self.curve_vars]
        names += [f"d_{s}_d_log_{p}" for s in self.summaries for p in self.sensitivities]
        return tuple(names)

    def window_flags(self) -> tuple[str, ...]:
        """Flags stored beside the lifetime summaries asked for, saying where the window
        [0, t1] cuts them (:func:`jaxsim.observables.summaries.window_flags`)."""
        from jaxsim.observables.summaries import window_flags

        return window_flags(self.model, self.summaries)

    def bytes_per_point(self) -> int:
        """Uncompressed bytes stored per grid point (an upper bound for the store's size)."""
        item = 4 if self.dtype == "float32" else 8
        n_t = 0 if self.curve_ts is None else len(self.curve_ts)
        n_scalar = len(self.summaries) * (1 + len(self.sensitivities)) + len(self.window_flags())
        if self.has_rep_rate and CARRIER_ACCUMULATION not in self.summaries:
            n_scalar += 1
        return item * (n_scalar + len(self.curve_vars) * n_t) + 1 + 4 + 8  # status, steps, index

    def estimated_bytes(self) -> int:
        return self.n_points * self.bytes_per_point()

    def replace(self, **changes) -> "SweepSpec":
        """A copy with fields changed, validated again (the model object is kept: it need
        not be registered)."""
        new = replace(self, **changes)
        return from_dict({**to_dict(new), "model": new.model})

    def to_toml(self) -> str:
        return to_toml(self)

    def fingerprint(self) -> str:
        """Hash of everything that determines the stored numbers (not name/description)."""
        d = to_dict(self)
        d.pop("name", None)
        d.pop("description", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def from_dict(raw: Mapping) -> SweepSpec:
    """Validate a plain dict (the TOML's structure) into a :class:`SweepSpec`."""
    raw = dict(raw)
    unknown = set(raw) - set(SPEC_KEYS)
    if unknown:
        raise SpecError(f"unknown key(s) {sorted(unknown)}: expected some of {list(SPEC_KEYS)}")
    try:
        model = get_model(raw.get("model", "trap_detrap"))
    except ParameterError as err:
        raise SpecError(f"model: {err}") from None
    table = model.parameters

    def row(name, where):
        if name == REP_RATE:
            from jaxsim.numerics.pulses import REP_RATE as rep_row

            return rep_row
        try:
            return table_lookup(table, name, model=model.name)
        except ParameterError as err:
            raise SpecError(f"{where}: {err}") from None

    if "t1" not in raw:
        raise SpecError("t1 is missing: expected the end of the time window in s (e.g. 2e-6)")
    t1 = _number(raw["t1"], where="t1")
    if t1 <= 0:
        raise SpecError(f"t1 = {t1!r}: expected a time > 0 s")

    fixed_raw = raw.get("fixed", {})
    if not isinstance(fixed_raw, Mapping):
        raise SpecError(f"fixed = {fixed_raw!r}: expected a table of parameter = value")
    fixed = []
    for k, v in fixed_raw.items():
        r = row(k, f"fixed.{k}")
        v = _number(v, where=f"fixed.{k}")
        try:
            r.check(v, where=f"fixed.{k}")
        except ParameterError as err:
            raise SpecError(str(err)) from None
        fixed.append((k, v))

    axes_raw = raw.get("axes")
    if not isinstance(axes_raw, Mapping) or not axes_raw:
        raise SpecError("axes is missing or empty: expected a table such as "
                        "[axes] A = { logspace = [1e5, 1e8, 16] }")
    axes = []
    for k, v in axes_raw.items():
        r = row(k, f"axes.{k}")
        if k in fixed_raw:
            raise SpecError(f"axes.{k}: {k!r} is also in [fixed]: a parameter is either swept "
                            "or fixed")
        vals = Values.parse(v, where=f"axes.{k}")
        arr = vals.array()
        try:
            r.check(arr, where=f"axes.{k}")
        except ParameterError as err:
            raise SpecError(str(err)) from None
        if len(np.unique(arr)) != arr.size:
            raise SpecError(f"axes.{k} has repeated values: expected distinct values")
        axes.append(Axis(k, vals, r.unit))

    obs = raw.get("observables", {})
    if not isinstance(obs, Mapping):
        raise SpecError(f"observables = {obs!r}: expected a table with summaries and/or curves")
    bad = set(obs) - {"summaries", "curves"}
    if bad:
        raise SpecError(f"observables: unknown key(s) {sorted(bad)}: expected summaries, curves")
    from jaxsim.observables.summaries import curve_units, summary_table

    known_summaries = summary_table(model)
    summaries = obs.get("summaries", [])
    if not isinstance(summaries, list) or not all(isinstance(s, str) for s in summaries):
        raise SpecError(f"observables.summaries = {summaries!r}: expected a list of names")
    pulse_train = REP_RATE in axes_raw or REP_RATE in fixed_raw
    for s in summaries:
        if s == CARRIER_ACCUMULATION and not pulse_train:
            raise SpecError(f"observables.summaries: {s!r} needs a pulse train: expected "
                            "rep_rate (Hz) in [axes] or [fixed]")
        if s not in known_summaries and s != CARRIER_ACCUMULATION:
            raise SpecError(f"observables.summaries: unknown observable {s!r} for model "
                            f"{model.name!r}: expected some of {', '.join(known_summaries)}"
                            + (f", {CARRIER_ACCUMULATION}" if pulse_train else ""))
    if len(set(summaries)) != len(summaries):
        raise SpecError("observables.summaries has repeated names")
    curve_vars, curve_ts = (), None
    curves = obs.get("curves")
    if curves is not None:
        if not isinstance(curves, Mapping) or "ts" not in curves:
            raise SpecError("observables.curves: expected { vars = [...], ts = <times in s> }")
        curve_vars = tuple(curves.get("vars", ["pl"]))
        known_curves = curve_units(model)
        for v in curve_vars:
            if v not in known_curves:
                raise SpecError(f"observables.curves.vars: unknown curve {v!r} for model "
                                f"{model.name!r}: expected some of {', '.join(known_curves)}")
        curve_ts = Values.parse(curves["ts"], where="observables.curves.ts")
        from jaxsim.numerics.reference import check_times

        try:
            ts = check_times(curve_ts.array(), name="observables.curves.ts")
        except ParameterError as err:
            raise SpecError(str(err)) from None
        if ts[-1] > t1 * (1 + 1e-12):
            raise SpecError(f"observables.curves.ts ends at {ts[-1]!r} s, after t1 = {t1!r} s: "
                            "expected times within the window")
    if not summaries and not curve_vars:
        raise SpecError("observables: nothing to keep: expected summaries and/or curves")

    sens = raw.get("sensitivities", [])
    if not isinstance(sens, list):
        raise SpecError(f"sensitivities = {sens!r}: expected a list of parameter names")
    for p in sens:
        row(p, "sensitivities")
    if sens and not summaries:
        raise SpecError("sensitivities need observables.summaries to differentiate")
    if REP_RATE in sens:
        raise SpecError("sensitivities: 'rep_rate' is not a model parameter: expected model "
                        "parameters only")
    if sens and pulse_train:
        raise SpecError("sensitivities are not available for pulse-train sweeps (rep_rate in "
                        "[axes] or [fixed]): expected no sensitivities")
    if pulse_train:
        rates = [a.array() for a in axes if a.name == REP_RATE] or [
            np.asarray([v for k, v in fixed if k == REP_RATE])]
        f_max = float(np.max(rates[0]))
        if t1 > (1.0 / f_max) * (1 + 1e-12):
            raise SpecError(
                f"t1 = {t1!r} s is longer than one period 1/rep_rate = {1.0 / f_max!r} s at "
                f"rep_rate = {f_max!r} Hz: expected t1 <= the shortest period (each point is "
                "the steady-state pulse observed over [0, t1] within one period)")

    chunk = raw.get("chunk_size", DEFAULT_CHUNK)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise SpecError(f"chunk_size = {chunk!r}: expected a positive integer")
    order = raw.get("order_by_stiffness", True)
    if not isinstance(order, bool):
        raise SpecError(f"order_by_stiffness = {order!r}: expected true or false")
    for key in ("name", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise SpecError(f"{key} = {raw[key]!r}: expected a string")
    max_steps = raw.get("max_steps", 20_000)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int):
        raise SpecError(f"max_steps = {max_steps!r}: expected a positive integer")
    atol = raw.get("atol")
    dc = _number(raw.get("diffusion_coefficient", DEFAULT_DIFFUSION_COEFFICIENT),
                 where="diffusion_coefficient")
    if not (np.isfinite(dc) and dc > 0):
        raise SpecError(f"diffusion_coefficient = {dc!r}: expected a positive number in cm^2/s "
                        "(0.017 for a MAPbI3 film, 2.05 for a single crystal)")
    spec = SweepSpec(
        model=model, axes=tuple(axes), t1=t1, summaries=tuple(summaries),
        fixed=tuple(fixed), curve_vars=curve_vars, curve_ts=curve_ts,
        dtype=raw.get("dtype", "float64"),
        rtol=_number(raw.get("rtol", 1e-6), where="rtol"),
        atol=None if atol is None else _number(atol, where="atol"),
        max_steps=max_steps, solver=raw.get("solver", "auto"), chunk_size=chunk,
        order_by_stiffness=order, sensitivities=tuple(sens), diffusion_coefficient=dc,
        name=raw.get("name", ""), description=raw.get("description", ""),
    )
    try:
        spec.solver_config()  # validates dtype, rtol, atol, max_steps, solver
    except ParameterError as err:
        raise SpecError(str(err)) from None
    _check_corners(model, spec)
    return spec


def _check_corners(model, spec: SweepSpec) -> None:
    """Cross-field checks (e.g. effective: D <= A) at the 2^k corners of the grid."""
    from jaxsim.physics.parameters import make_params

    lo_hi = [(a.array().min(), a.array().max()) for a in spec.axes]
    grids = np.meshgrid(*[np.asarray(v) for v in lo_hi], indexing="ij")
    values = {a.name: g.ravel() for a, g in zip(spec.axes, grids) if a.name != REP_RATE}
    values.update(spec.fixed_parameters)
    try:
        make_params(model, values)
    except ParameterError as err:
        raise SpecError(f"grid corner: {err}") from None


def to_dict(spec: SweepSpec) -> dict:
    """The spec as the plain dict its TOML parses to (round-trips through :func:`from_dict`)."""
    d = dict(name=spec.name, description=spec.description, model=spec.model.name, t1=spec.t1,
             dtype=spec.dtype, rtol=spec.rtol)
    if spec.atol is not None:
        d["atol"] = spec.atol
    d.update(max_steps=spec.max_steps, solver=spec.solver, chunk_size=spec.chunk_size,
             order_by_stiffness=spec.order_by_stiffness, sensitivities=list(spec.sensitivities),
             fixed=dict(spec.fixed), axes={a.name: a.values.to_raw() for a in spec.axes})
    if spec.diffusion_coefficient != DEFAULT_DIFFUSION_COEFFICIENT:
        # only when set, so stores made before the field existed keep their fingerprint
        d["diffusion_coefficient"] = spec.diffusion_coefficient
    obs: dict = {"summaries": list(spec.summaries)}
    if spec.curve_ts is not None:
        obs["curves"] = {"vars": list(spec.curve_vars), "ts": spec.curve_ts.to_raw()}
    d["observables"] = obs
    return d


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and not 1e-3 <= abs(v) < 1e5:  # shortest round-trip form, e.g. 1e+16
            return np.format_float_scientific(v, trim="-")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for our characters
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(spec: SweepSpec) -> str:
    """TOML text that :func:`jaxsim.io.spec_files.parse_sweep_spec` reads back to an equal spec."""
    d = to_dict(spec)
    lines = []
    for k, v in d.items():
        if not isinstance(v, Mapping):
            lines.append(f"{k} = {_toml_value(v)}")
    for table in ("fixed", "axes", "observables"):
        lines.append("")
        lines.append(f"[{table}]")
        for k, v in d[table].items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
