"""The sweep store: a resumable zarr v3 group that ``xarray.open_zarr`` reads.

Layout of ``STORE.zarr``::

    zarr.json              root attrs: jaxsim_spec (TOML), jaxsim_fingerprint, jaxsim_version,
                           n_points, chunk_size, n_chunks, complete
    A, D, K1, n0           coordinates (one dimension per axis; attrs units, scale)
    t                      curve times in s (only with curves)
    tau_mean_pl, ...       gridded variables, dims = axes (+ t for curves): written when complete
    status, num_steps      gridded, per point (status -1: not computed; see STATUS_MESSAGES)
    raw/                   what the run loop writes, in computation order:
        index   (point,)   flat C-order grid index of each stored position
        <var>   (point,...) one array per observable, zarr chunk = sweep chunk
        status, num_steps
        done    (chunk,)   done-marker per sweep chunk, one file each

Why two layers: with stiffness ordering a sweep chunk holds points from all over the grid.
Writing them into the gridded arrays would touch many zarr chunks per sweep chunk (slow, and
racy between processes). Instead sweep chunk ``k`` owns exactly the zarr chunk ``k`` of every
``raw/`` array, written once; zarr's local store writes each chunk file atomically (temp file,
then rename) and the done marker is written after the data, so a SIGKILL at any moment leaves
every chunk either complete-and-marked or unmarked (recomputed on resume, same numbers).
When every marker is set, :func:`finalize` scatters ``raw/`` into the gridded variables (in
slabs of bounded size; deterministic, so it may be re-run after a kill) and sets ``complete``.
"""

from __future__ import annotations

import tomllib

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.spec import SpecError, SweepSpec, from_dict

FORMAT = "jaxsim-sweep-1"


CHUNK_BYTES = 16 * 2**20  # gridded zarr chunks are at most this big (before compression)


WHOLE_BYTES = 2**30  # finalize scatters a whole variable (or column block) of up to this size


SLAB_BYTES = 256 * 2**20  # ... else slabs of the grid of up to this size (all variables)


class StoreError(ParameterError):
    """A store that cannot be used for this sweep (other spec, not a sweep store, no space)."""


def _consolidate(path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def _open(path, mode="r+"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def variable_attrs(spec: SweepSpec, name: str) -> dict:
    """Units and meaning of a stored variable."""
    from jaxsim.observables.summaries import WINDOW_FLAGS, curve_units, summary_table

    table = summary_table(spec.model)
    if name in table:
        s = table[name]
        attrs = {"units": s.unit, "long_name": s.meaning}
        if name == "diffusion_length":
            attrs["diffusion_coefficient_cm2_per_s"] = spec.diffusion_coefficient
        if s.flag:  # where the window cuts this lifetime: the flag stored beside it
            attrs.update(window_flag=s.flag, window_limited_where=WINDOW_FLAGS[s.flag])
        if name.startswith("biexp_flag"):
            attrs["flag_values"] = "-1 not computed, 0 ok, bits 1 window, 2 ill-conditioned"
        return attrs
    if name == "carrier_accumulation_percent":
        from jaxsim.numerics.pulses import PULSE_SUMMARIES

        unit, meaning = PULSE_SUMMARIES[name]
        return {"units": unit, "long_name": meaning}
    if name.startswith("curve_"):
        var = name[6:]
        return {"units": curve_units(spec.model)[var],
                "long_name": f"{var}(t) on the curve time grid"}
    if name.startswith("d_") and "_d_log_" in name:
        s, p = name[2:].split("_d_log_")
        return {"units": table[s].unit,
                "long_name": f"elasticity d {s} / d ln {p} (change of {s} per e-fold of {p})"}
    if name == "status":
        from jaxsim.numerics.config import STATUS_MESSAGES

        return {"units": "1", "long_name": "solver status per point: -1 not computed, " +
                ", ".join(f"{i} {m}" for i, m in enumerate(STATUS_MESSAGES))}
    if name == "num_steps":
        return {"units": "1", "long_name": "accepted + rejected solver steps per point"}
    return {}


def _var_layout(spec: SweepSpec) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, trailing shape) for every per-point variable."""
    n_t = 0 if spec.curve_ts is None else len(spec.curve_ts)
    out = {}
    for name in spec.output_names():
        dtype = "int8" if _is_code(name) else spec.dtype
        out[name] = (dtype, (n_t,) if name.startswith("curve_") else ())
    out["status"] = ("int8", ())
    out["num_steps"] = ("int32", ())
    return out


def check_disk(spec: SweepSpec, path) -> int:
    """Raise :class:`StoreError` when the store's uncompressed size would not fit on the disk."""
    need = spec.estimated_bytes() * 2  # raw/ plus the gridded copy
    parent = Path(path).resolve().parent
    while not parent.exists():
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    if os.path.exists(path):
        free += _dir_size(path)
    if need > free:
        raise StoreError(
            f"store {str(path)!r} would need about {need / 1e9:.3g} GB ({spec.n_points:.4g} points "
            f"x {spec.bytes_per_point()} bytes, raw + gridded, before compression) but only "
            f"{free / 1e9:.3g} GB are free on {parent}: shrink the grid, drop curves, or use "
            "dtype = \"float32\"")
    return need


def _dir_size(path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


@dataclass
class Store:
    """An open sweep store (see the module docstring for the layout)."""

    path: Path
    spec: SweepSpec
    group: zarr.Group

    @property
    def n_chunks(self) -> int:
        return -(-self.spec.n_points // self.spec.chunk_size)

    def chunk_bounds(self, k: int) -> tuple[int, int]:
        c = self.spec.chunk_size
        return k * c, min((k + 1) * c, self.spec.n_points)

    def done_mask(self) -> np.ndarray:
        return np.asarray(self.group["raw/done"][:], dtype=bool)

    def index(self, k: int) -> np.ndarray:
        """Flat grid indices of the points of sweep chunk ``k``."""
        a, b = self.chunk_bounds(k)
        return np.asarray(self.group["raw/index"][a:b], dtype=np.int64)

    def write_chunk(self, k: int, outputs: dict) -> None:
        """Write chunk ``k`` (data, then its done-marker). ``outputs`` may be padded."""
        a, b = self.chunk_bounds(k)
        n = b - a
        raw = self.group["raw"]
        flags = set(self.spec.window_flags())
        for name, (dtype, tail) in _var_layout(self.spec).items():
            if name in flags and name not in outputs:
                # a custom chunk function (chunk_fn=) without the window flags: not computed
                raw[name][a:b] = np.full((n, *tail), _fill(name, dtype), dtype=dtype)
                continue
            v = np.asarray(outputs[name][:n])
            if _is_code(name) and v.dtype.kind == "f":  # failed points: NaN -> not computed
                v = np.where(np.isfinite(v), v, -1)
            raw[name][a:b] = v.astype(dtype, copy=False)
        raw["done"][k] = 1  # last: the chunk counts only once all its data is on disk

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))


def create_store(path, spec: SweepSpec, index: np.ndarray | None, *, overwrite: bool = False,
                 version: str = "") -> Store:
    """Create an empty store for ``spec`` (``index``: computation order, None for grid order)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise StoreError(f"{path} exists: open it to resume, or pass overwrite=True")
        _remove_store(path)
    check_disk(spec, path)
    n, c = spec.n_points, spec.chunk_size
    g = _open(path, mode="w")
    for ax in spec.axes:
        arr = g.create_array(ax.name, shape=(len(ax),), dtype="float64", dimension_names=[ax.name])
        arr[:] = ax.array()
        arr.attrs.update(units=ax.unit, scale=ax.values.scale)
    if spec.curve_ts is not None:
        t = g.create_array("t", shape=(len(spec.curve_ts),), dtype="float64", dimension_names=["t"])
        t[:] = spec.curve_times()
        t.attrs.update(units="s", long_name="curve time after the pulse",
                       scale=spec.curve_ts.scale)
    raw = g.create_group("raw")
    idx = raw.create_array("index", shape=(n,), chunks=(c,), dtype="int64",
                           dimension_names=["point"], fill_value=-1)
    step = c * max(1, 2**22 // c)
    for a in range(0, n, step):  # in slabs: memory set by the slab, not the grid
        b = min(a + step, n)
        idx[a:b] = np.arange(a, b) if index is None else index[a:b]
    for name, (dtype, tail) in _var_layout(spec).items():
        fill = _fill(name, dtype)
        dims = ["point"] + (["t"] if tail else [])
        arr = raw.create_array(name, shape=(n, *tail), chunks=(c, *tail), dtype=dtype,
                               dimension_names=dims, fill_value=fill)
        arr.attrs.update(variable_attrs(spec, name))
    raw.create_array("done", shape=(-(-n // c),), chunks=(1,), dtype="uint8",
                     dimension_names=["chunk"], fill_value=0)
    g.attrs.update(format=FORMAT, jaxsim_spec=spec.to_toml(), jaxsim_fingerprint=spec.fingerprint(),
                   jaxsim_version=version, model=spec.model.name, n_points=n, chunk_size=c,
                   n_chunks=-(-n // c), axes=list(spec.axis_names), complete=False,
                   order="stiffness" if index is not None else "grid")
    _consolidate(path)
    return Store(path, spec, g)


def _remove_store(path: Path) -> None:
    if path.is_dir() and not (path / "zarr.json").exists() and any(path.iterdir()):
        raise StoreError(f"{path} is a non-empty directory that is not a zarr store: "
                         "refusing to delete it")
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def open_store(path, spec: SweepSpec | None = None) -> Store:
    """Open an existing sweep store; with ``spec``, refuse a store made from another spec."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise StoreError(f"{path} is not a zarr store")
    g = _open(path)
    attrs = dict(g.attrs)
    if attrs.get("format") != FORMAT or "jaxsim_spec" not in attrs:
        raise StoreError(f"{path} is not a jaxsim sweep store (no {FORMAT!r} attributes)")
    stored = _stored_spec(attrs["jaxsim_spec"], source=f"{path} (stored spec)")
    if spec is not None and stored.fingerprint() != spec.fingerprint():
        diff = _spec_diff(stored, spec)
        raise StoreError(
            f"store {str(path)!r} was made from a different sweep spec (differs in: {diff}); "
            "pass --overwrite (overwrite=True) to delete it and start again, or choose "
            "another --out")
    if spec is not None and not attrs.get("complete"):
        # a store begun by an older jaxsim lacks the variables added since; its finished
        # chunks have no values for them, so resuming would leave holes in them
        missing = sorted(set(_var_layout(stored)) - set(g["raw"].array_keys()))
        if missing:
            raise StoreError(
                f"store {str(path)!r} was begun by jaxsim {attrs.get('jaxsim_version', '?')}, "
                f"which did not compute {', '.join(missing)}: its finished chunks cannot be "
                "resumed without them; pass --overwrite (overwrite=True) to start again, or "
                "choose another --out")
    return Store(path, stored, g)


def _spec_diff(a: SweepSpec, b: SweepSpec) -> str:
    from jaxsim.studies.spec import to_dict

    da, db = to_dict(a), to_dict(b)
    keys = []
    for k in da.keys() | db.keys():
        if k in ("name", "description"):
            continue
        if isinstance(da.get(k), dict) and isinstance(db.get(k), dict):
            keys += [f"{k}.{j}" for j in da[k].keys() | db[k].keys()
                     if da[k].get(j) != db[k].get(j)]
        elif da.get(k) != db.get(k):
            keys.append(k)
    return ", ".join(sorted(keys)) or "?"


def _slabs(shape: tuple[int, ...], row_bytes: int, budget: int | None = None):
    """Split a C-order grid into contiguous slabs of <= budget bytes (at least one row).

    Returns (chunk shape over the grid dims, list of (flat start, flat stop, region slices)).
    """
    budget = SLAB_BYTES if budget is None else budget
    n = len(shape)
    j, inner = n, 1  # smallest j with prod(shape[j:]) * row_bytes <= budget
    while j > 0 and inner * shape[j - 1] * row_bytes <= budget:
        j -= 1
        inner *= shape[j]
    if j == 0:
        return tuple(shape), [(0, inner, ())]
    g = int(min(shape[j - 1], max(1, budget // (inner * row_bytes))))
    chunk = (1,) * (j - 1) + (g,) + tuple(shape[j:])
    slabs = []
    for lead in np.ndindex(*shape[:j - 1]):
        for i0 in range(0, shape[j - 1], g):
            i1 = min(i0 + g, shape[j - 1])
            start = int(np.ravel_multi_index(lead + (i0,) + (0,) * (n - j), shape))
            region = tuple(slice(i, i + 1) for i in lead) + (slice(i0, i1),)
            slabs.append((start, start + (i1 - i0) * inner, region))
    return chunk, slabs


def _is_code(name: str) -> bool:
    """Per-point integer codes besides status: the two-exponential fits' flags."""
    return name.startswith("biexp_flag")


def _fill(name: str, dtype: str):
    if name == "status" or _is_code(name):
        return -1
    return 0 if dtype.startswith("int") else np.nan


def _gather(store: Store, start: int, stop: int, names=None) -> dict[str, np.ndarray]:
    """Every variable of raw/ for flat grid indices [start, stop), from the finished chunks.

    Reads each finished chunk once (its index, then its values where they fall in the range).
    """
    raw = store.group["raw"]
    layout = _var_layout(store.spec)
    if names is not None:
        layout = {k: layout[k] for k in names}
    out = {name: np.full((stop - start, *tail), _fill(name, dt), dtype=dt)
           for name, (dt, tail) in layout.items()}
    for k in np.flatnonzero(store.done_mask()):
        a, b = store.chunk_bounds(int(k))
        idx = np.asarray(raw["index"][a:b])
        m = (idx >= start) & (idx < stop)
        if m.any():
            pos = idx[m] - start
            for name in layout:
                out[name][pos] = np.asarray(raw[name][a:b])[m]
    return out


def finalize(store: Store) -> None:
    """Scatter raw/ into the gridded variables and mark the store complete (idempotent).

    Each variable (or block of curve columns) of up to ``WHOLE_BYTES`` is read whole, in
    computation order, and scattered with the stored permutation (``out[index] = raw``): every
    raw chunk is read once. Larger ones go slab by slab through the grid (every slab reads
    every finished chunk): slower, same result, memory bounded by ``SLAB_BYTES``.
    """
    spec = store.spec
    done = store.done_mask()
    if not done.all():
        raise StoreError(f"{store.path}: {int((~done).sum())} chunks are not done yet")
    g = store.group
    raw = g["raw"]
    n = spec.n_points
    dims = list(spec.axis_names)
    index = None
    slab_vars = []
    for name, (dtype, tail) in _var_layout(spec).items():
        item = np.dtype(dtype).itemsize
        n_t = tail[0] if tail else 1
        t_chunk = min(n_t, 128)
        whole = n * item * t_chunk <= WHOLE_BYTES
        if not whole:
            t_chunk = n_t
        grid_chunk, _ = _slabs(spec.shape, item * t_chunk, CHUNK_BYTES)
        if name in g:
            del g[name]
        arr = g.create_array(name, shape=spec.shape + tail,
                             chunks=grid_chunk + ((t_chunk,) if tail else ()), dtype=dtype,
                             dimension_names=dims + (["t"] if tail else []),
                             fill_value=_fill(name, dtype))
        arr.attrs.update(variable_attrs(spec, name))
        if not whole:
            slab_vars.append(name)
            continue
        if index is None:
            index = np.asarray(raw["index"][:], dtype=np.int64)
        if not tail:
            out = np.empty(n, dtype=dtype)
            out[index] = raw[name][:]
            arr[...] = out.reshape(spec.shape)
            continue
        step = t_chunk * max(1, WHOLE_BYTES // (n * item * t_chunk))
        for t0 in range(0, n_t, step):
            t1 = min(t0 + step, n_t)
            out = np.empty((n, t1 - t0), dtype=dtype)
            out[index] = raw[name][:, t0:t1]
            arr[..., t0:t1] = out.reshape(spec.shape + (t1 - t0,))
    del index
    if slab_vars:
        layout = _var_layout(spec)
        row_bytes = max(np.dtype(layout[v][0]).itemsize * int(np.prod(layout[v][1]))
                        for v in slab_vars)
        _, slabs = _slabs(spec.shape, row_bytes)
        for start, stop, region in slabs:
            vals = _gather(store, start, stop, names=slab_vars)
            sub = tuple(s.stop - s.start for s in region) + spec.shape[len(region):]
            for name in slab_vars:
                tail = layout[name][1]
                full = region + (slice(None),) * (len(spec.shape) - len(region) + len(tail))
                g[name][full] = vals[name].reshape(sub + tail)
    g.attrs.update(complete=True, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _consolidate(store.path)


def open_sweep(path):
    """The store as a gridded ``xarray.Dataset`` (dims = axes), complete or not.

    A complete store is ``xarray.open_zarr(path)``; an unfinished one is assembled in memory
    from ``raw/`` (NaN and status -1 where not computed yet), so keep that for small grids.
    """
    import xarray as xr

    store = open_store(path)
    if store.complete:
        return xr.open_zarr(str(path))
    spec = store.spec
    coords = {a.name: (a.name, a.array(), {"units": a.unit, "scale": a.values.scale})
              for a in spec.axes}
    if spec.curve_ts is not None:
        coords["t"] = ("t", spec.curve_times(), {"units": "s"})
    data = {}
    gathered = _gather(store, 0, spec.n_points)
    for name, (dtype, tail) in _var_layout(spec).items():
        vals = gathered[name].reshape(spec.shape + tail)
        dims = list(spec.axis_names) + (["t"] if tail else [])
        data[name] = (dims, vals, variable_attrs(spec, name))
    return xr.Dataset(data, coords=coords, attrs=dict(store.group.attrs))


def _stored_spec(text: str, *, source: str) -> SweepSpec:
    """The spec a store records in its attributes (TOML written by ``to_toml``)."""
    try:
        return from_dict(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, SpecError) as err:
        raise SpecError(f"{source}: {err}") from None
