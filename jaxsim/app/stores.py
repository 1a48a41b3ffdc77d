"""Sweep stores for the explorer: read only the slice shown, and recompute one point.

A :class:`StoreView` opens a finished sweep store read-only (zarr, no xarray/dask graph) and
serves 2-D slices of one variable. It reads only the zarr chunks the slice touches and keeps
decoded chunks in a bounded LRU cache (:class:`ChunkCache`), so moving a slider along an axis
that lies inside the same chunks costs no disk read at all. A 10^7-point store with 16 MB
chunks opens in milliseconds (metadata only) and draws its first slice in a fraction of a
second; see docs/app.md for the measured numbers.

:func:`point_decay` recomputes one grid point with the sweep's own model, fixed parameters,
solver settings and time window, and the summaries on the same time grid the sweep engine
used, so the values shown next to the stored ones must agree (to the solver tolerance).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from jaxsim.physics.errors import ParameterError

#: decoded chunks kept in memory, all stores together
CACHE_BYTES = 1 << 30

#: points of the recomputed decay curves (log and linear time)
CURVE_POINTS = 512

#: decades of time shown on the log-time decay plot, before t1
LOG_DECADES = 5

#: variables that are per-point bookkeeping, not observables
BOOKKEEPING = ("status", "num_steps")


class ChunkCache:
    """A thread-safe LRU cache of decoded zarr chunks, bounded in bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = load()
        with self._lock:
            self.misses += 1
            if key not in self._items:
                self._items[key] = value
                self._bytes += value.nbytes
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE = ChunkCache()


def read_selection(arr, sel, cache: ChunkCache = CACHE, key=()) -> np.ndarray:
    """``arr[sel]`` for ``sel`` of ints and full slices, chunk by chunk through ``cache``.

    Only the chunks the selection intersects are read; each is decoded once and kept.
    """
    shape, chunks = arr.shape, arr.chunks
    sel = tuple(sel) + (slice(None),) * (len(shape) - len(sel))
    out_shape = [n for n, s in zip(shape, sel) if isinstance(s, slice)]
    out = np.empty(out_shape, dtype=arr.dtype)
    per_dim = []
    for n, c, s in zip(shape, chunks, sel):
        if isinstance(s, slice):
            if s != slice(None):
                raise ValueError("read_selection takes ints and full slices only")
            per_dim.append([(k, slice(0, min(c, n - k * c)), slice(k * c, min((k + 1) * c, n)))
                            for k in range(-(-n // c))])
        else:
            i = int(s)
            if not 0 <= i < n:
                raise IndexError(f"index {i} out of range for an axis of {n}")
            per_dim.append([(i // c, i % c, None)])
    for combo in itertools.product(*per_dim):
        ck = tuple(k for k, _, _ in combo)

        def load(ck=ck):
            region = tuple(slice(k * c, min((k + 1) * c, n)) for k, c, n in zip(ck, chunks, shape))
            return np.asarray(arr[region])

        block = cache.get(key + ck, load)
        inner = tuple(loc for _, loc, _ in combo)
        dest = tuple(o for _, _, o in combo if o is not None)
        out[dest] = block[inner]
    return out


def is_store(path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "zarr.json").is_file()


def find_paths(folders, is_match, max_depth: int = 2) -> list[Path]:
    """Paths under ``folders`` (or given directly) for which ``is_match(path)``, searched
    ``max_depth`` folders deep; hidden entries and matched folders are not entered; each path
    once."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if is_match(folder):
            found.append(folder)
            continue
        frontier = [folder] if folder.is_dir() else []
        for _ in range(max_depth):
            nxt = []
            for d in frontier:
                try:
                    entries = sorted(d.iterdir())
                except OSError:
                    continue
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    if is_match(e):
                        found.append(e)
                    elif e.is_dir() and e.suffix != ".zarr":
                        nxt.append(e)
            frontier = nxt
    seen, out = set(), []
    for p in found:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            out.append(p)
    return out


def find_stores(folders, max_depth: int = 2) -> list[Path]:
    """Zarr stores under the given folders (a store given directly counts too)."""
    return find_paths(folders, is_store, max_depth)


@dataclasses.dataclass
class AxisInfo:
    name: str
    values: np.ndarray
    unit: str
    scale: str  # "log" or "linear"

    @property
    def log(self) -> bool:
        return self.scale == "log" and bool(np.all(self.values > 0))


@dataclasses.dataclass
class VarInfo:
    name: str
    unit: str
    long_name: str
    dims: tuple


class StoreView:
    """A finished sweep store opened read-only: axes, variables, slices and single points."""

    def __init__(self, path, cache: ChunkCache = CACHE):
        import warnings

        import zarr

        from jaxsim.studies.store import open_store

        self.path = Path(path)
        self.cache = cache
        store = open_store(self.path)  # raises StoreError with a clear message
        if not store.complete:
            raise ParameterError(
                f"{self.path}: the sweep is not finished (some chunks are missing): finish it "
                "with `jaxsim sweep SPEC --out STORE` (the same command resumes)")
        self.spec = store.spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self.group.attrs)
        self.axes = []
        for ax in self.spec.axes:
            arr = self.group[ax.name]
            self.axes.append(AxisInfo(ax.name, np.asarray(arr[:], dtype=float),
                                      arr.attrs.get("units", ax.unit),
                                      arr.attrs.get("scale", ax.values.scale)))
        self.axis_names = [a.name for a in self.axes]
        self.vars: dict[str, VarInfo] = {}
        for name in self.group.array_keys():
            if name in self.axis_names or name == "t":
                continue
            arr = self.group[name]
            dims = tuple(arr.metadata.dimension_names or ())
            if dims[:len(self.axis_names)] != tuple(self.axis_names):
                continue
            self.vars[name] = VarInfo(name, arr.attrs.get("units", ""),
                                      arr.attrs.get("long_name", ""), dims)
        self._arrays: dict = {}

    # -- names ------------------------------------------------------------------------
    @property
    def model(self):
        return self.spec.model

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.spec.n_points:,} points, {self.model.name})"

    def scalar_vars(self) -> list[str]:
        """Gridded variables with one value per point: summaries, elasticities, then status."""
        names = [n for n, v in self.vars.items() if len(v.dims) == len(self.axis_names)]
        order = {n: i for i, n in enumerate(self.spec.output_names())}
        names.sort(key=lambda n: order.get(n, len(order)))
        obs = [n for n in names if n not in BOOKKEEPING and not n.startswith("d_")]
        ela = [n for n in names if n.startswith("d_")]
        return obs + ela + [n for n in BOOKKEEPING if n in names]

    def curve_vars(self) -> list[str]:
        """Stored curves (``curve_<var>``: one value per point and curve time)."""
        n = len(self.axis_names)
        return [k for k, v in self.vars.items()
                if k.startswith("curve_") and len(v.dims) == n + 1 and v.dims[n] == "t"]

    def curve_times(self) -> np.ndarray:
        """The stored curves' time grid (s)."""
        return np.asarray(self.group["t"][:], dtype=float)

    def point_curve(self, name: str, index: dict[str, int]) -> np.ndarray:
        """A stored curve at one grid point, read chunk by chunk like the maps."""
        sel = [int(index[n]) for n in self.axis_names] + [slice(None)]
        return np.asarray(read_selection(self.array(name), sel, self.cache,
                                         key=(str(self.path.resolve()), name)), dtype=float)

    def axis(self, name) -> AxisInfo:
        return self.axes[self.axis_names.index(name)]

    def array(self, name):
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    # -- reads ------------------------------------------------------------------------
    def slice2d(self, var: str, x: str, y: str, at: dict[str, int]) -> np.ndarray:
        """``var`` over (y, x) with every other axis at the grid index ``at[name]``."""
        if var not in self.vars:
            raise ParameterError(f"{self.path.name} has no variable {var!r}: expected one of "
                                 f"{', '.join(self.scalar_vars())}")
        if x == y:
            raise ParameterError(f"x and y are both {x!r}: expected two different axes")
        sel = []
        for name in self.axis_names:
            sel.append(slice(None) if name in (x, y) else int(at.get(name, 0)))
        block = read_selection(self.array(var), sel, self.cache,
                               key=(str(self.path.resolve()), var))
        ix, iy = self.axis_names.index(x), self.axis_names.index(y)
        # block dims are the free axes in store order; return (y, x)
        return block if iy < ix else block.T

    def point(self, index: dict[str, int]) -> dict[str, float]:
        """Every scalar variable at one grid point."""
        sel = [int(index[n]) for n in self.axis_names]
        out = {}
        for name in self.scalar_vars():
            v = read_selection(self.array(name), sel, self.cache,
                               key=(str(self.path.resolve()), name))
            out[name] = float(v)
        return out

    def point_values(self, index: dict[str, int]) -> dict[str, float]:
        """Axis values (physical units) at a grid index."""
        return {a.name: float(a.values[int(index[a.name])]) for a in self.axes}


def status_message(code) -> str:
    from jaxsim.numerics.config import STATUS_MESSAGES

    code = int(code)
    if code == -1:
        return "not computed"
    if 0 <= code < len(STATUS_MESSAGES):
        return STATUS_MESSAGES[code]
    return f"status {code}"


def readout_grid(t1: float, n: int = CURVE_POINTS, decades: int = LOG_DECADES) -> np.ndarray:
    """0, then ``n - 1`` log-spaced times up to ``t1``, with the exact decades (1 ns, 10 ns,
    ...) inside the window put in place of their nearest neighbours (readable table rows)."""
    t = np.logspace(math.log10(t1) - decades, math.log10(t1), n - 1)
    for k in range(math.ceil(math.log10(t[0])), math.floor(math.log10(t1)) + 1):
        d = 10.0 ** k
        j = int(np.argmin(np.abs(np.log(t / d))))
        t[j] = d
    t = np.unique(t)
    if t.size < n - 1:  # two decades landed on one point (cannot happen for n >= 20)
        t = np.unique(np.concatenate([t, np.logspace(math.log10(t[0]), math.log10(t1),
                                                     n - 1 - t.size + 2)[1:-1]]))[: n - 1]
    return np.concatenate([[0.0], t])


def decade_times(ts: np.ndarray) -> list[float]:
    """The exact powers of ten in ``ts`` plus its last time (the rows of the readout table)."""
    out = [float(t) for t in ts if t > 0 and abs(math.log10(t) - round(math.log10(t))) < 1e-12]
    if float(ts[-1]) not in out:
        out.append(float(ts[-1]))
    return out


def summary_grid(spec) -> np.ndarray:
    """The times the sweep engine evaluated curve summaries on (curve times, else 512 even)."""
    from jaxsim.numerics.engine import DEFAULT_SUMMARY_POINTS

    if spec.curve_ts is not None:
        return spec.curve_times()
    return np.linspace(0.0, spec.t1, DEFAULT_SUMMARY_POINTS)


def solver_config(spec):
    """The sweep's solver settings, for a forward solve (the adjoint does not change values)."""
    return dataclasses.replace(spec.solver_config(), adjoint="checkpoint")


def _solve(model, params, ts, config, rep_rate):
    from jaxsim.numerics.reference import solve

    if rep_rate is None:
        return solve(model, params, ts, config=config), None
    from jaxsim.numerics.pulses import steady_state_decay

    res = steady_state_decay(model, params, ts, rep_rate, config)
    return res.solution, float(np.asarray(res.carrier_accumulation_percent))


def point_decay(spec, values: dict[str, float]) -> dict:
    """Recompute one sweep point: decay curves and the stored summaries.

    ``values``: the axis values at the point. Returns ``{"t", "n", "n_d", "pl", ... (every
    state), "t_lin", "<state>_lin", "summaries": {...}, "status", "solver", "params"}``; the
    log-time curves are on :func:`readout_grid`, the linear ones on :func:`summary_grid`.
    """
    from jaxsim.observables.summaries import summaries

    model = spec.model
    rep_rate = None
    params = dict(spec.fixed_parameters)
    for k, v in values.items():
        if k == "rep_rate":
            rep_rate = float(v)
        else:
            params[k] = float(v)
    if rep_rate is None and "rep_rate" in spec.fixed_dict:
        rep_rate = float(spec.fixed_dict["rep_rate"])
    config = solver_config(spec)
    t_sum = summary_grid(spec)
    sol, accumulation = _solve(model, params, t_sum, config, rep_rate)
    out: dict = {"summaries": {}, "solver": sol.solver, "params": params, "rep_rate": rep_rate}
    names = [s for s in (*spec.summaries, *spec.window_flags())
             if s != "carrier_accumulation_percent"]
    if rep_rate is None:
        try:
            s = summaries(sol, names, spec.diffusion_coefficient)
            out["summaries"] = {k: float(np.asarray(v)) for k, v in s.items()}
        except ParameterError as err:
            out["summary_error"] = str(err)
    else:
        # a pulse train's summaries are over the observation window [0, t1] of the steady
        # state: computed by the sweep's own steady-state function, for this one point
        from jaxsim.studies.sweep import chunk_function

        f = chunk_function(spec)
        res = f({k: np.asarray([float(v)]) for k, v in values.items()})
        out["summaries"] = {k: float(np.asarray(res[k])[0]) for k in spec.output_names()
                            if not k.startswith("curve_") and k in res}
        out["summary_note"] = ("pulse train: summaries over [0, t1] of the periodic steady "
                               "state, from the sweep's steady-state function")
    out["accumulation"] = accumulation
    out["status"] = int(np.asarray(sol.status))
    out["t_lin"] = np.asarray(sol.t)
    for name in model.state_names:
        out[f"{name}_lin"] = np.asarray(sol.states[name])
    out["pl_lin"] = np.asarray(sol.pl)
    t_log = readout_grid(spec.t1 if rep_rate is None else min(spec.t1, 1.0 / rep_rate))
    sol2, _ = _solve(model, params, t_log, config, rep_rate)
    out["t"] = np.asarray(sol2.t)
    for name in model.state_names:
        out[name] = np.asarray(sol2.states[name])
    out["pl"] = np.asarray(sol2.pl)
    out["status"] = max(out["status"], int(np.asarray(sol2.status)))
    return out
