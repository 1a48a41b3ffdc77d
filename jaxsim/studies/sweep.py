r"""Run a sweep: grid -> (stiffness order) -> chunks -> engine -> store, resumable and sharded.

The grid of a :class:`~jaxsim.studies.spec.SweepSpec` is the C-order outer product of its axes, flat
index :math:`i \in [0, N)`. With ``order_by_stiffness`` the points are permuted by
:func:`jaxsim.numerics.engine.stiffness_order` (a vmapped adaptive solve steps every lane until the
slowest is done, so similar points share a chunk), and sweep chunk :math:`k` holds positions
:math:`[kC, (k+1)C)` of that permutation; the permutation is stored (``raw/index``), so a
resumed run computes exactly the chunks it did not finish.

Scale-out:

- several local devices (GPUs, or CPU with ``--xla_force_host_platform_device_count``): every
  chunk is split over a 1-D :class:`jax.sharding.Mesh` with :func:`jax.shard_map`; each device
  runs its slice independently (its own lock-step), one compiled program for all;
- several processes (hosts) after :func:`jax.distributed.initialize`: process :math:`p` of
  :math:`P` takes chunks :math:`p, p+P, \dots` of the same store; process 0 creates the store
  and, once every chunk is done, writes the gridded variables.

Memory is set by the chunk (and by an int64 permutation of the grid when ordering), not by the
grid: values are made per chunk from flat indices, and every chunk is written as it finishes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxsim.numerics.padding import pad_points
from jaxsim.observables.lifetimes import FIT_BATCH
from jaxsim.observables.summaries import SUMMARIES
from jaxsim.physics.errors import ParameterError
from jaxsim.studies.spec import SweepSpec
from jaxsim.studies.store import (
    Store,
    StoreError,
    check_disk,
    create_store,
    finalize,
    open_store,
)

FULL_ORDER_LIMIT = 2**23  # above this many points the stiffness key is computed in blocks


BARRIER_TIMEOUT_MS = 24 * 3600 * 1000


# tests only: a pause after each written chunk, so a kill test can land mid-run reliably
_CHUNK_DELAY_S = float(os.environ.get("JAXSIM_SWEEP_CHUNK_DELAY_S", "0") or 0)


@dataclass(frozen=True)
class SweepResult:
    """What one call of :func:`run_sweep` did."""

    path: Path
    n_points: int
    n_chunks: int
    chunks_run: int
    points_run: int
    seconds: float
    complete: bool
    failed_points: int  # points of this run with status != 0

    @property
    def points_per_s(self) -> float:
        return self.points_run / self.seconds if self.seconds > 0 else float("nan")


def grid_values(spec: SweepSpec, flat_index) -> dict[str, np.ndarray]:
    """Axis values (physical units) at the given flat C-order grid indices."""
    multi = np.unravel_index(np.asarray(flat_index, dtype=np.int64), spec.shape)
    return {ax.name: ax.array()[i] for ax, i in zip(spec.axes, multi)}


def _stiffness_key(spec: SweepSpec, a: int, b: int) -> np.ndarray:
    """The model's stiffness bound at flat grid indices [a, b); for a pulse train, times the
    period (the stiffness index of one period, which sets the steps of each solve)."""
    from jaxsim.physics.registry import get_model

    model = get_model(spec.model)
    defaults = {p.name: p.default for p in model.parameters}
    vals = {**defaults, **spec.fixed_dict, **grid_values(spec, np.arange(a, b))}
    key = np.broadcast_to(np.asarray(model.max_rate(vals), dtype=float), (b - a,))
    if spec.has_rep_rate:
        key = key / np.broadcast_to(np.asarray(vals["rep_rate"], dtype=float), (b - a,))
    return key


def period_solver(spec: SweepSpec) -> str:
    """The solver of a pulse-train sweep, for the whole grid (so every chunk, on any process
    or device split, computes with the same one): the spec's, or for ``"auto"`` Kvaerno5 when
    the stiffness index of one period (max_rate / rep_rate) exceeds the core's threshold
    anywhere on the grid, else Tsit5 (:func:`jaxsim.numerics.pulses.choose_period_solver`'s rule)."""
    if spec.solver != "auto":
        return spec.solver
    from jaxsim.numerics.config import STIFF_THRESHOLD

    worst, step = 0.0, 2**22
    for a in range(0, spec.n_points, step):
        worst = max(worst, float(np.max(_stiffness_key(spec, a, min(a + step, spec.n_points)))))
    return "kvaerno5" if worst > STIFF_THRESHOLD else "tsit5"


def computation_order(spec: SweepSpec) -> np.ndarray | None:
    """Permutation of the flat grid by stiffness, or ``None`` (grid order)."""
    if not spec.order_by_stiffness or spec.n_points <= spec.chunk_size:
        return None

    n = spec.n_points
    if n <= FULL_ORDER_LIMIT and not spec.has_rep_rate:
        from jaxsim.numerics.engine import stiffness_order

        values = {**spec.fixed_dict, **grid_values(spec, np.arange(n))}
        return np.asarray(stiffness_order(spec.model, values), dtype=np.int64)
    # large grids (and pulse trains): the same key, in blocks, then one argsort
    key = np.empty(n, dtype=np.float64)
    step = 2**22
    for a in range(0, n, step):
        b = min(a + step, n)
        key[a:b] = _stiffness_key(spec, a, b)
    return np.argsort(key, kind="stable").astype(np.int64)


def chunk_lanes(spec: SweepSpec, n_dev: int = 1) -> int:
    """Lanes of each chunk: the chunk size (a grid smaller than one chunk: its points) padded
    so each device's share is a multiple of 8 lanes."""
    step = n_dev * LANE_MULTIPLE
    return -(-min(spec.chunk_size, spec.n_points) // step) * step


#: working memory of one two-exponential fit per time point of its curve, and of the engine
#: per lane (measured: docs/sweep.md, "Memory"); fits run FIT_BATCH curves at a time
BIEXP_BYTES_PER_TIME = 600
ENGINE_BYTES_PER_LANE = 24_000
SUMMARY_TIMES = 512


def chunk_memory_bytes(spec: SweepSpec, lanes: int | None = None) -> int:
    """An upper estimate of one chunk's working memory in bytes."""
    lanes = chunk_lanes(spec) if lanes is None else lanes
    item = 4 if spec.dtype == "float32" else 8
    curve_ts = spec.curve_times()
    n_t = 0 if curve_ts is None else len(curve_ts)
    per_lane = ENGINE_BYTES_PER_LANE + 3 * n_t * len(spec.curve_vars) * item
    curve_summaries = [n for n in spec.summaries if SUMMARIES.get(n) and SUMMARIES[n].needs_curve]
    fits = 0
    if curve_summaries:
        t_grid = n_t or SUMMARY_TIMES
        per_lane += 3 * 2 * t_grid * 8  # the curves the summaries are read from
        fits = min(lanes, FIT_BATCH) * BIEXP_BYTES_PER_TIME * t_grid
    return int(lanes * per_lane + fits)


def physical_memory_bytes() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_chunk_memory(spec: SweepSpec, *, fraction: float = 0.5) -> None:
    """Refuse, before any work, a chunk whose working memory (times the chunks computed at
    once) would exceed ``fraction`` of this machine's memory; say which chunk size fits."""
    from jaxsim.numerics.engine import default_workers

    at_once = default_workers() + 1  # computing, plus the one being written
    need = chunk_memory_bytes(spec) * at_once
    have = physical_memory_bytes()
    if need <= fraction * have:
        return
    per_point = need / chunk_lanes(spec)
    lo, hi = 0, spec.chunk_size  # largest chunk size (a multiple of 64) that fits
    while hi - lo > 64:
        mid = (lo + hi) // 2 // 64 * 64 or 64
        ok = chunk_memory_bytes(spec, chunk_lanes(spec.replace(chunk_size=mid))) * at_once \
            <= fraction * have
        lo, hi = (mid, hi) if ok else (lo, mid)
    fits = max(lo, LANE_MULTIPLE)
    raise ParameterError(
        f"chunk_size = {spec.chunk_size}: {at_once} chunks in flight need about "
        f"{need / 1e9:.1f} GB ({per_point / 1e3:.0f} kB per point for this spec's curves and "
        f"curve summaries), more than {fraction:.0%} of this machine's {have / 1e9:.1f} GB: "
        f"expected chunk_size <= {fits}")


def chunk_function(spec: SweepSpec, tail_halvings: int = 0):
    """``f(values: dict[name, (C,)]) -> dict[str, array]`` for this spec (engine + sensitivities).

    A pulse-train spec (``rep_rate`` an axis or fixed) gets
    :func:`jaxsim.numerics.pulses.steady_state_chunk_solver` instead: periodic steady-state pulses, plus
    ``carrier_accumulation_percent``, with the solver of :func:`period_solver`.

    ``tail_halvings``: see :func:`jaxsim.numerics.engine.chunk_solver` (run_sweep sets it for large
    sweeps: :func:`jaxsim.numerics.engine.default_tail_halvings`). Cached on what the numbers depend on, so repeated runs
    in one process compile once.
    """
    # the key drops the fields the numbers do not depend on; no re-validation needed
    key = dataclasses.replace(spec, chunk_size=1, order_by_stiffness=False, name="",
                              description="")
    return _chunk_function(key, int(tail_halvings))


@functools.lru_cache(maxsize=8)
def _chunk_function(spec: SweepSpec, tail_halvings: int):
    if spec.has_rep_rate:
        from jaxsim.numerics.pulses import steady_state_chunk_solver

        return steady_state_chunk_solver(
            spec.model, t1=spec.t1,
            summaries=tuple(n for n in spec.output_names() if not n.startswith("curve_")),
            curve_ts=spec.curve_times(), curve_vars=spec.curve_vars or ("pl",),
            config=spec.solver_config(), fixed=spec.fixed_dict, solver=period_solver(spec),
            diffusion_coefficient=spec.diffusion_coefficient)
    from jaxsim.numerics.engine import chunk_solver

    f = chunk_solver(spec.model, t1=spec.t1, summaries=spec.summaries + spec.window_flags(),
                     curve_ts=spec.curve_times(), curve_vars=spec.curve_vars or ("pl",),
                     config=spec.solver_config(), fixed=spec.fixed_dict,
                     tail_halvings=tail_halvings,
                     diffusion_coefficient=spec.diffusion_coefficient)
    if spec.sensitivities:
        from jaxsim.studies.sensitivity import with_elasticities

        f = with_elasticities(f, list(spec.sensitivities), list(spec.summaries))
    return f


def chunk_values(spec: SweepSpec, flat_index) -> dict[str, np.ndarray]:
    """Per-point inputs of the chunk function: the axes, plus every parameter differentiated
    by ``sensitivities`` that is not an axis (broadcast from ``fixed`` or its default)."""
    values = grid_values(spec, flat_index)
    if spec.sensitivities:
        from jaxsim.physics.registry import get_model

        defaults = {p.name: p.default for p in get_model(spec.model).parameters}
        n = np.size(flat_index)
        for p in spec.sensitivities:
            if p not in values:
                values[p] = np.full(n, spec.fixed_dict.get(p, defaults[p]))
    return values


#: per-device chunk sizes are padded to a multiple of this (see run_sweep)
LANE_MULTIPLE = 8


def shard_chunk_function(f, devices=None):
    """Split each call of ``f`` over ``devices`` (default: this process's local devices).

    Returns ``(g, n_dev)``; ``g`` takes numpy inputs whose leading size is a multiple of
    ``n_dev`` and returns arrays sharded along the leading axis. With one device, ``g = f``.
    """
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = list(devices) if devices is not None else jax.local_devices()
    if len(devices) == 1:
        return f, 1
    mesh = Mesh(np.asarray(devices), ("points",))
    sharding = NamedSharding(mesh, P("points"))
    mapped = jax.jit(jax.shard_map(f, mesh=mesh, in_specs=(P("points"),),
                                   out_specs=P("points"), check_vma=False))

    def g(values):
        return mapped(jax.device_put(values, sharding))

    return g, len(devices)


def _process() -> tuple[int, int]:
    import jax

    return jax.process_index(), jax.process_count()


def _barrier(name: str, count: int) -> None:
    if count <= 1:
        return
    from jax._src.distributed import global_state

    global_state.client.wait_at_barrier(f"jaxsim_{name}", BARRIER_TIMEOUT_MS)


def prepare_store(spec: SweepSpec, out, *, overwrite: bool = False, process: int = 0,
                  count: int = 1) -> Store:
    """Create, or open and check, the store for ``spec`` (process 0 creates; others wait).

    With several processes, process 0 publishes "ok" or its error (e.g. a store of another
    spec) in the coordination service's key-value store before the barrier, so every process
    stops with the same message instead of waiting for a store that will not come.
    """
    from jaxsim import __version__

    out = Path(out)
    if process == 0:
        error = None
        try:
            if out.exists() and not overwrite:
                store = open_store(out, spec)
            else:
                check_disk(spec, out)  # before the (possibly long) ordering
                store = create_store(out, spec, computation_order(spec), overwrite=overwrite,
                                     version=__version__)
        except Exception as err:  # noqa: BLE001 (re-raised below, after telling the others)
            error = err
        _kv_set("store_status", "ok" if error is None else str(error), count)
        _barrier("store_ready", count)
        if error is not None:
            raise error
    else:
        _barrier("store_ready", count)
        status = _kv_get("store_status")
        if status != "ok":
            raise StoreError(f"process 0 could not prepare the store: {status}")
        store = open_store(out, spec)
    return store


def _kv_set(key: str, value: str, count: int) -> None:
    if count > 1:
        from jax._src.distributed import global_state

        global_state.client.key_value_set(f"jaxsim_{key}", value)


def _kv_get(key: str) -> str:
    from jax._src.distributed import global_state

    return global_state.client.blocking_key_value_get(f"jaxsim_{key}", BARRIER_TIMEOUT_MS)


def run_sweep(spec: SweepSpec, out, *, overwrite: bool = False, limit_points: int | None = None,
              progress: bool = True, devices=None, chunk_fn=None) -> SweepResult:
    """Run (or resume) ``spec`` into the zarr store ``out``.

    Args:
        spec: the sweep.
        out: store path (``.zarr`` directory). An existing store of the same spec is resumed;
            one of another spec raises :class:`~jaxsim.studies.store.StoreError` unless ``overwrite``.
        limit_points: stop after about this many points (whole chunks) in this call; a later
            call resumes.
        progress: show a tqdm bar (points done, points/s, time left) on stderr.
        devices: local devices to shard each chunk over (default: all local devices).
        chunk_fn: override of :func:`chunk_function` (tests).

    Returns a :class:`SweepResult`; the store is finalized (gridded variables, ``complete``)
    when every chunk is done.
    """
    if limit_points is not None and limit_points < 1:
        raise ParameterError(f"limit_points = {limit_points!r}: expected a positive integer")
    check_chunk_memory(spec)
    process, count = _process()
    store = prepare_store(spec, out, overwrite=overwrite, process=process, count=count)
    spec = store.spec
    t0 = time.perf_counter()
    done = store.done_mask()
    mine = np.arange(process, store.n_chunks, count)
    todo = [int(k) for k in mine if not done[k]]
    sizes = {int(k): (lambda ab: ab[1] - ab[0])(store.chunk_bounds(int(k))) for k in mine}
    total = int(sum(sizes.values()))
    already = total - int(sum(sizes[k] for k in todo))

    chunks_run = points_run = failed = 0
    if todo:
        from jaxsim.numerics.engine import default_tail_halvings

        # chunks this call will run (whole chunks up to limit_points)
        n_run = len(todo) if limit_points is None else min(
            len(todo), -(-limit_points // max(spec.chunk_size, 1)))
        f = chunk_fn or chunk_function(spec, tail_halvings=default_tail_halvings(n_run))
        g, n_dev = shard_chunk_function(f, devices)
        # each device's share padded to a multiple of 8 lanes: XLA:CPU computes a remainder
        # that does not fill a vector register with scalar code, whose rounding (FMA) differs,
        # and the adaptive steps then differ between device counts
        c_pad = chunk_lanes(spec, n_dev)
        bar = _progress_bar(total, already, progress, spec)
        from jaxsim.numerics.engine import default_workers, map_chunks

        def inputs():
            nonlocal chunks_run, points_run
            for k in todo:
                if limit_points is not None and points_run >= limit_points:
                    return
                idx = store.index(k)
                chunks_run += 1
                points_run += idx.size
                values = chunk_values(spec, idx)
                yield k, pad_points({n: np.asarray(v, np.float64) for n, v in values.items()},
                                    c_pad)

        # chunks compute in worker threads (several at once on a CPU) while this thread
        # writes the finished ones, in order, each with its done marker
        workers = default_workers() if n_dev == 1 else 1
        try:
            for k, outputs in map_chunks(g, inputs(), workers):
                failed += _write(store, k, outputs, bar)
        finally:
            bar.close()
    seconds = time.perf_counter() - t0

    _barrier("chunks_done", count)
    complete = store.complete
    if process == 0 and not complete and store.done_mask().all():
        finalize(store)
        complete = True
    _barrier("finalized", count)
    return SweepResult(Path(out), spec.n_points, store.n_chunks, chunks_run, points_run,
                       seconds, bool(complete or store.done_mask().all()), failed)


@dataclass(frozen=True)
class WindowCount:
    """How many computed points of a lifetime summary its window flag marks."""

    summary: str
    flag: str
    where: str  # the flag's threshold, e.g. "window_tail_pl > 0.00154"
    limited: int
    points: int  # points with status 0


def window_limited_counts(path) -> list[WindowCount]:
    """For each lifetime summary of the store at ``path`` that has a window flag, how many of
    its successful points the flag marks window-limited (read chunk by chunk from ``raw/``,
    so memory is set by the chunk)."""
    from jaxsim.observables.summaries import WINDOW_FLAGS, summary_table, window_limited

    store = open_store(path)
    table = summary_table(store.spec.model)
    raw = store.group["raw"]
    wanted = [(n, table[n].flag) for n in store.spec.summaries
              if n in table and table[n].flag and table[n].flag in raw]
    counts = {n: [0, 0] for n, _ in wanted}
    flags = dict.fromkeys(f for _, f in wanted)
    for k in np.flatnonzero(store.done_mask()):
        a, b = store.chunk_bounds(int(k))
        ok = np.asarray(raw["status"][a:b]) == 0
        marked = {f: window_limited(f, raw[f][a:b]) & ok for f in flags}
        for n, f in wanted:
            counts[n][0] += int(marked[f].sum())
            counts[n][1] += int(ok.sum())
    return [WindowCount(n, f, WINDOW_FLAGS[f], *counts[n]) for n, f in wanted]


def _write(store: Store, k: int, outputs: dict, bar) -> int:
    a, b = store.chunk_bounds(k)
    host = {name: np.asarray(v) for name, v in outputs.items()}
    flags = store.spec.window_flags()  # chunk_fn= overrides may leave them out (not computed)
    missing = [n for n in store.spec.output_names() + ("status", "num_steps")
               if n not in host and n not in flags]
    if missing:
        raise RuntimeError(f"chunk function returned no {missing} (keys: {sorted(host)})")
    store.write_chunk(k, host)
    bar.update(b - a)
    if _CHUNK_DELAY_S:
        time.sleep(_CHUNK_DELAY_S)
    return int(np.sum(host["status"][: b - a] != 0))


def _progress_bar(total: int, initial: int, enabled: bool, spec: SweepSpec):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="pt", unit_scale=True, smoothing=0.05,
                desc=spec.name or "sweep", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)
