r"""Throughput benchmark: a SciPy loop, the naive diffrax vmap and the jaxsim engine, side by side.

One random ``trap_detrap`` grid (log-uniform A 1e5-1e8, D 1e5-1e8 with 10 % exact zeros,
K1 1e2-1e7, n0 1e15-1e18; B, C at their defaults), one window [0, 2 us], one process. For each
way of solving and each output kind:

- ``summary``: ``tau_mean_pl`` (first moment of PL) and ``plqy``;
- ``curves``: n(t) and PL(t) on 1000 evenly spaced times;

it reports points/s (steady state, compile excluded, the fastest of ``REPEATS`` or more passes
filling ``BenchSizes.min_timed_s`` seconds; the passes of one output kind's rows run in turns,
so that a change of load on a shared machine hits them alike), ``compile_s``, ``max_rel_err``
against a float64 SciPy Radau solve (rtol 1e-11) on a subsample, and ``peak_rss_mb`` (the
process's resident set sampled while the row prepared and ran its passes). The ways of
solving:

- ``scipy``: ``solve_ivp(method="RK45", rtol=1e-6)`` in a Python loop on a subsample
  (extrapolated: points/s is subsample size / time); summaries from two extra integrated states.
- ``diffrax_naive``: ``jit(vmap(diffeqsolve(Tsit5, PIDController(1e-6), SaveAt(ts=1000 points))))``
  on unsorted chunks; summaries from the saved PL curve (trapezoid rule), the naive way.
- ``jaxsim``: :func:`jaxsim.numerics.engine.chunk_solver`, sorted chunks, several at once on a
  CPU (:func:`jaxsim.numerics.engine.map_chunks`), as a large sweep runs them (on a CPU with the
  chunks' tails moved to fewer lanes, :func:`jaxsim.numerics.engine.default_tail_halvings`); one
  row per engine dtype (``float64`` and ``float32`` by default; the baselines always run in
  float64). The ratios are ``{output}_{dtype}_vs_{baseline}``.

Relative error of a summary is :math:`|x - x_\mathrm{ref}| / |x_\mathrm{ref}|`; of a curve
:math:`\max_t |y - y_\mathrm{ref}| / (|y_\mathrm{ref}| + f\max_t |y_\mathrm{ref}|)` with
:math:`f = 10^{-6}` for n(t) and :math:`10^{-12}` for PL(t) :math:`\propto n^2`: relative down
to n = 1e-6 n0, the ratio atol/rtol of the solves, below which the tolerance is absolute.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import threading
import time
from dataclasses import dataclass

import numpy as np

T1 = 2e-6


N_CURVE = 1000


SUMMARY_NAMES = ("tau_mean_pl", "plqy")


#: curve points count down to this fraction of the peak: n >= 1e-6 n0 (atol / rtol, below it the
#: tolerance is absolute), PL ~ n^2 >= 1e-12 PL(0)
CURVE_FLOOR = {"curve_n": 1e-6, "curve_pl": 1e-12}


RTOL = 1e-6


#: the engine's tolerance: global error grows to ~5x rtol over the window, and PL ~ n^2 doubles
#: it, so rtol 1e-6 gives max errors of ~1e-5 on curves; 2e-7 keeps them below (~15 % more steps)
ENGINE_RTOL = 2e-7


#: every row is timed over its points at least this many times, and for at least
#: ``BenchSizes.min_timed_s`` seconds in all, and reports the fastest pass: on a shared machine
#: single passes of the same computation differed by up to 1.8x, and a 0.2 s pass is easily
#: hit whole by another tenant
REPEATS = 3


@dataclass(frozen=True)
class BenchSizes:
    """How many points each row solves (steady state is timed on these)."""

    jaxsim: int
    naive: int
    scipy: int
    reference: int
    chunk: int
    naive_chunk: int
    memory_chunks: tuple
    memory_points: int
    min_timed_s: float = 0.0


# curve chunks of 4096 x 1000 float64 values (32.8 MB) stay below glibc's largest mmap
# threshold (32 MiB), so freed chunk buffers can be reused: measured 2.6 page faults per point
# against 3.9 with 8192-point chunks (float64 curves)
QUICK = BenchSizes(jaxsim=32768, naive=1024, scipy=24, reference=16, chunk=4096,
                   naive_chunk=512, memory_chunks=(256, 1024, 4096), memory_points=16384,
                   min_timed_s=1.5)


#: a smoke test of the machinery (numbers meaningless)
TINY = BenchSizes(jaxsim=64, naive=16, scipy=3, reference=3, chunk=32, naive_chunk=16,
                  memory_chunks=(32,), memory_points=64)


FULL = BenchSizes(jaxsim=262144, naive=4096, scipy=200, reference=64, chunk=4096,
                  naive_chunk=1024, memory_chunks=(256, 1024, 4096, 16384),
                  memory_points=131072, min_timed_s=3.0)


def random_grid(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The benchmark's trap_detrap points (physical units), log-uniform, 10 % with D = 0."""
    rng = np.random.default_rng(seed)

    def lu(lo, hi):
        return 10 ** rng.uniform(np.log10(lo), np.log10(hi), n)

    d = lu(1e5, 1e8)
    d[rng.random(n) < 0.1] = 0.0
    return dict(A=lu(1e5, 1e8), D=d, K1=lu(1e2, 1e7), n0=lu(1e15, 1e18))


def curve_times() -> np.ndarray:
    return np.linspace(0.0, T1, N_CURVE)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):  # not Linux: the process peak so far
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Context manager sampling the resident set every 5 ms; ``.peak_mb`` afterwards."""

    def __enter__(self):
        self.peak_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def _scaled_coefficients(p: dict, t_ref: float = 1e-9) -> dict:
    from jaxsim.physics.registry import get_model

    model = get_model("trap_detrap")
    vals = {row.name: float(p.get(row.name, row.default)) for row in model.parameters}
    return {k: float(v) for k, v in model.coefficients(vals, vals["n0"], t_ref).items()}


def _rhs(c):
    a, b, cc, d, k1 = c["a"], c["b"], c["c"], c["d"], c["k1"]

    def f(t, y):
        u, v = y[0], y[1]
        pl = u * u
        return np.array([-a * u - b * pl - cc * u**3 + d * v, a * u - d * v - k1 * v, pl, t * pl])

    def jac(t, y):
        u, v = y[0], y[1]
        return np.array([[-a - 2 * b * u - 3 * cc * u * u, d, 0, 0],
                         [a, -d - k1, 0, 0],
                         [2 * u, 0, 0, 0],
                         [2 * t * u, 0, 0, 0]])

    return f, jac


def _scipy_one(p, ts_s, method, rtol, atol, curves):
    from scipy.integrate import solve_ivp

    c = _scaled_coefficients(p)
    f, jac = _rhs(c)
    kw = dict(jac=jac) if method in ("Radau", "BDF", "LSODA") else {}
    sol = solve_ivp(f, (0.0, ts_s[-1]), np.array([c["u0"], 0.0, 0.0, 0.0]), method=method,
                    rtol=rtol, atol=atol, t_eval=ts_s if curves else None, **kw)
    if not sol.success:
        raise RuntimeError(f"scipy {method} failed at {p}: {sol.message}")
    return c, sol


def _physical(p, c, sol, curves, t_ref=1e-9):
    """Summaries and curves in physical units from a scaled SciPy solution."""
    n0, b = float(p["n0"]), float(p.get("B", 1e-10))
    ipl, itpl = sol.y[2, -1], sol.y[3, -1]
    out = {"tau_mean_pl": itpl / ipl * t_ref, "plqy": ipl * b * n0**2 * t_ref / n0}
    if curves:
        out["curve_n"] = sol.y[0] * n0
        out["curve_pl"] = sol.y[0] ** 2 * b * n0**2
    return out


def reference(points: dict, ts: np.ndarray) -> list[dict]:
    """Float64 Radau (rtol 1e-11, atol 1e-16 scaled, analytic Jacobian) at each point."""
    ts_s = ts / 1e-9
    out = []
    for i in range(len(points["A"])):
        p = {k: v[i] for k, v in points.items()}
        c, sol = _scipy_one(p, ts_s, "Radau", 1e-11, 1e-16, True)
        out.append(_physical(p, c, sol, True))
    return out


def rel_err(rows: list[dict] | dict, ref: list[dict], kind: str) -> float:
    """Largest relative error over points (and times), as defined in the module docstring."""
    worst = 0.0
    for i, r in enumerate(ref):
        got = rows[i] if isinstance(rows, list) else {k: v[i] for k, v in rows.items()}
        if kind == "summary":
            for name in SUMMARY_NAMES:
                worst = max(worst, abs(float(got[name]) - r[name]) / abs(r[name]))
        else:
            for name in ("curve_n", "curve_pl"):
                y, yr = np.asarray(got[name], float), r[name]
                den = np.abs(yr) + CURVE_FLOOR[name] * np.max(np.abs(yr))
                worst = max(worst, float(np.max(np.abs(y - yr) / den)))
    return worst if np.isfinite(worst) else float("inf")


def _compile_seconds(fn, chunk) -> float:
    """Compile time of ``fn``: its first call on ``chunk`` less a second, compiled one."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(chunk))
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(chunk))
    return max(t_first - (time.perf_counter() - t0), 0.0)


class _Row:
    points: int

    def __init__(self):
        self.peak_mb = 0.0
        self.compile_s = 0.0

    def tracked(self, fn):
        with PeakRSS() as mem:
            out = fn()
        self.peak_mb = max(self.peak_mb, mem.peak_mb)
        return out

    def prepare(self):
        pass

    def one_pass(self) -> float:
        raise NotImplementedError

    def result(self, best_s: float) -> dict:
        raise NotImplementedError


class _ScipyRow(_Row):
    def __init__(self, points, ts, kind, ref_points):
        super().__init__()
        self.pts, self.kind, self.ref_points = points, kind, ref_points
        self.ts_s = ts / 1e-9
        self.points = len(points["A"])

    def one_pass(self):
        curves = self.kind == "curves"
        t0 = time.perf_counter()
        res = []
        for i in range(self.points):
            p = {k: v[i] for k, v in self.pts.items()}
            c, sol = _scipy_one(p, self.ts_s, "RK45", RTOL, RTOL * 1e-6, curves)
            res.append(_physical(p, c, sol, curves))
        el = time.perf_counter() - t0
        self.res = res[:self.ref_points]
        return el

    def result(self, best_s):
        err = rel_err(self.res, _REF_CACHE["ref"], self.kind)
        return dict(points_per_s=self.points / best_s, compile_s=0.0, max_rel_err=err,
                    peak_rss_mb=self.peak_mb, points=self.points)


def _naive_fn(chunk: int):
    """``jit(vmap(diffeqsolve(..., SaveAt(ts=1000 points))))``: the baseline, as one writes it."""
    import diffrax
    import jax
    import jax.numpy as jnp

    ts_s = jnp.asarray(curve_times() / 1e-9)

    def one(a, d, k1, n0):
        b, cc = 1e-10 * n0 * 1e-9, 1e-28 * n0**2 * 1e-9
        a, d, k1 = a * 1e-9, d * 1e-9, k1 * 1e-9

        def f(t, y, args):
            u, v = y
            return (-a * u - b * u**2 - cc * u**3 + d * v, a * u - d * v - k1 * v)

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(f), diffrax.Tsit5(), 0.0, ts_s[-1], None,
            (jnp.ones(()), jnp.zeros(())), saveat=diffrax.SaveAt(ts=ts_s),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=RTOL * 1e-6),
            max_steps=4096, throw=False)
        u = sol.ys[0]
        pl = u**2 * 1e-10 * n0**2
        ipl = jnp.trapezoid(pl, ts_s * 1e-9)
        itpl = jnp.trapezoid(ts_s * 1e-9 * pl, ts_s * 1e-9)
        return {"curve_n": u * n0, "curve_pl": pl, "tau_mean_pl": itpl / ipl,
                "plqy": ipl / n0,
                "status": jnp.where(sol.result == diffrax.RESULTS.successful, 0, 1)}

    return jax.jit(jax.vmap(one))


class _NaiveRow(_Row):
    """The naive vmap over the points in grid order, in chunks of ``chunk`` (the last padded)."""

    def __init__(self, points, kind, chunk, ref_points):
        super().__init__()
        from jaxsim.numerics.engine import pad_chunk

        self.kind, self.ref_points = kind, ref_points
        self.keys = SUMMARY_NAMES if kind == "summary" else ("curve_n", "curve_pl")
        self.points = len(points["A"])
        self.chunks = [(start, *pad_chunk({k: v[start:start + chunk] for k, v in points.items()},
                                          chunk)) for start in range(0, self.points, chunk)]
        fn_ = _naive_fn(chunk)
        self.fn = lambda c: fn_(c["A"], c["D"], c["K1"], c["n0"])

    def prepare(self):
        self.compile_s = _compile_seconds(self.fn, self.chunks[0][1])

    def one_pass(self):
        import jax

        outs = {}
        t0 = time.perf_counter()
        for start, c, m in self.chunks:
            r = jax.block_until_ready(self.fn(c))
            # only the error subsample (the first ref_points points) is kept, as for the engine
            take = max(0, min(m, self.ref_points - start))
            for k in self.keys:
                outs.setdefault(k, []).append(np.array(np.asarray(r[k])[:take]))
        el = time.perf_counter() - t0
        self.outs = {k: np.concatenate(v) for k, v in outs.items()}
        return el

    def result(self, best_s):
        err = rel_err(self.outs, _REF_CACHE["ref"], self.kind)
        return dict(points_per_s=self.points / best_s, compile_s=self.compile_s,
                    max_rel_err=err, peak_rss_mb=self.peak_mb, points=self.points)


def engine_fn(kind: str, dtype: str = "float64", rtol: float = ENGINE_RTOL, lanes=None,
              tail_halvings: int = 0):
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.numerics.engine import chunk_solver

    cfg = SolverConfig(rtol=rtol, atol=RTOL * 1e-6, dtype=dtype, max_steps=4096)
    if kind == "summary":
        return chunk_solver("trap_detrap", t1=T1, summaries=SUMMARY_NAMES, config=cfg,
                            lanes=lanes, tail_halvings=tail_halvings)
    return chunk_solver("trap_detrap", t1=T1, curve_ts=curve_times(), curve_vars=("n", "pl"),
                        config=cfg, lanes=lanes, tail_halvings=tail_halvings)


class _JaxsimRow(_Row):
    """The engine as a sweep drives it: points sorted by stiffness (stiffest first), chunks of
    ``chunk`` (the last padded), ``workers`` chunks at once
    (:func:`jaxsim.numerics.engine.map_chunks`), each chunk's outputs fetched to host memory as
    it finishes and dropped once the error subsample's rows are copied out; as a large sweep
    runs it (``jaxsim.numerics.engine.TAIL_FROM_CHUNKS`` chunks or more): on a CPU with the
    chunks' tails moved to fewer lanes (compile_s includes the extra loops)."""

    def __init__(self, points, kind, chunk, ref_points, dtype="float64", workers=None):
        super().__init__()
        from jaxsim.numerics.engine import (
            TAIL_FROM_CHUNKS,
            default_tail_halvings,
            default_workers,
            pad_chunk,
            stiffness_order,
        )

        self.kind, self.ref_points, self.dtype = kind, ref_points, dtype
        self.tail = default_tail_halvings(TAIL_FROM_CHUNKS)
        self.f = engine_fn(kind, dtype, tail_halvings=self.tail)
        self.workers = default_workers() if workers is None else workers
        self.keys = SUMMARY_NAMES if kind == "summary" else ("curve_n", "curve_pl")
        self.points = n = len(points["A"])
        order = stiffness_order(self.f.model, points)[::-1]
        self.items = []
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            c, m = pad_chunk({k: v[idx] for k, v in points.items()}, chunk)
            self.items.append(((idx, m), c))

    def prepare(self):
        self.compile_s = _compile_seconds(self.f, self.items[0][1])

    def one_pass(self):
        from jaxsim.numerics.engine import map_chunks

        t0 = time.perf_counter()
        # as a sweep does (it writes each chunk and lets it go), only what is checked is kept:
        # the error subsample (the grid's first ref_points points), status, steps; holding
        # every chunk's curves had cost page faults and 1.6 GB
        kept = []
        for (idx, m), out in map_chunks(self.f, self.items, self.workers):
            sel = np.flatnonzero(idx[:m] < self.ref_points)
            kept.append((idx[:m][sel], {k: np.array(out[k][sel]) for k in self.keys},
                         np.array(out["status"][:m]), np.array(out["num_steps"][:m])))
            del out
        el = time.perf_counter() - t0
        self.kept = kept
        return el

    def result(self, best_s):
        kept = self.kept
        got = np.concatenate([i for i, _, _, _ in kept])
        sub = {k: np.concatenate([o[k] for _, o, _, _ in kept])[np.argsort(got)]
               for k in self.keys}
        status = np.concatenate([s_ for _, _, s_, _ in kept])
        steps = np.concatenate([s_ for _, _, _, s_ in kept])
        err = rel_err(sub, _REF_CACHE["ref"], self.kind)
        return dict(points_per_s=self.points / best_s, compile_s=self.compile_s,
                    max_rel_err=err, peak_rss_mb=self.peak_mb, points=self.points,
                    failed=int(np.sum(status != 0)), mean_steps=float(np.mean(steps)),
                    dtype=self.dtype, workers=self.workers, tail_halvings=self.tail)


def _time_rows(rows: list, min_s: float) -> list[dict]:
    """Prepare every row, then time them in turns (one pass of each row per round) until each
    has had REPEATS passes and ``min_s`` seconds; each reports its fastest pass."""
    for row in rows:
        row.tracked(row.prepare)
    best = [np.inf] * len(rows)
    spent = [0.0] * len(rows)
    k = 0
    while k < REPEATS or min(spent) < min_s:
        for i, row in enumerate(rows):
            if k < REPEATS or spent[i] < min_s:
                el = row.tracked(row.one_pass)
                best[i], spent[i] = min(best[i], el), spent[i] + el
        k += 1
    return [row.result(b) for row, b in zip(rows, best)]


def run_scipy(points, ts, kind, ref_points, min_s=0.0):
    return _time_rows([_ScipyRow(points, ts, kind, ref_points)], min_s)[0]


def run_naive(points, kind, chunk, ref_points, min_s=0.0):
    return _time_rows([_NaiveRow(points, kind, chunk, ref_points)], min_s)[0]


def run_jaxsim(points, kind, chunk, ref_points, dtype="float64", workers=None, min_s=0.0):
    return _time_rows([_JaxsimRow(points, kind, chunk, ref_points, dtype, workers)], min_s)[0]


def memory_check(sizes: BenchSizes) -> list[dict]:
    """Peak RSS of a summary sweep vs chunk size (and vs grid size at one chunk size)."""
    from jaxsim.numerics.engine import solve_points

    f = engine_fn("summary")
    rows = []
    base = _rss_mb()
    for chunk in sorted(sizes.memory_chunks):
        for npts in (sizes.memory_points // 4, sizes.memory_points):
            pts = random_grid(npts, seed=7)
            with PeakRSS() as mem:
                solve_points(f, pts, chunk)
            rows.append(dict(chunk=chunk, points=npts, peak_rss_mb=mem.peak_mb,
                             rss_before_mb=base))
    return rows


_REF_CACHE: dict = {}


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {platform.system()}"


def run_benchmark(quick: bool = True, sizes: BenchSizes | None = None, *, seed: int = 0,
                  dtype: str = "both", log=print, fit_rows: bool | str = True) -> dict:
    """Run all rows and return the JSON-able report (see the module docstring).

    ``fit_rows``: append :func:`jaxsim.bench.fit.fit_benchmark_rows` rows: True (default) for a
    full run only (``quick`` skips them to stay under 2 minutes), ``"always"`` also when quick,
    False never."""
    import jax

    sizes = sizes or (QUICK if quick else FULL)
    n_all = max(sizes.jaxsim, sizes.naive, sizes.scipy, sizes.reference)
    grid = random_grid(n_all, seed)
    ts = curve_times()

    def take(n):
        return {k: v[:n] for k, v in grid.items()}

    # memory first, while the process is small: peak RSS is a high-water mark
    log("memory: peak RSS of summary sweeps vs chunk size ...")
    memory = memory_check(sizes)
    log(f"reference: float64 Radau on {sizes.reference} points ...")
    _REF_CACHE["ref"] = reference(take(sizes.reference), ts)
    if dtype not in ("both", "float64", "float32"):
        raise ValueError(f"dtype = {dtype!r}: expected 'both', 'float64' or 'float32'")
    dtypes = ("float64", "float32") if dtype == "both" else (dtype,)
    results = []
    for kind in ("summary", "curves"):
        runs = [("scipy", None), ("diffrax_naive", None)] + [("jaxsim", d) for d in dtypes]
        log(f"{kind}: " + ", ".join(f"{n}{' ' + d if d else ''}" for n, d in runs)
            + " (passes in turns) ...")
        rows = []
        for name, dt in runs:
            if name == "scipy":
                rows.append(_ScipyRow(take(max(sizes.scipy, sizes.reference)), ts, kind,
                                      sizes.reference))
            elif name == "diffrax_naive":
                rows.append(_NaiveRow(take(max(sizes.naive, sizes.reference)), kind,
                                      sizes.naive_chunk, sizes.reference))
            else:
                rows.append(_JaxsimRow(take(max(sizes.jaxsim, sizes.reference)), kind,
                                       sizes.chunk, sizes.reference, dt))
        for (name, dt), r in zip(runs, _time_rows(rows, sizes.min_timed_s)):
            r.setdefault("dtype", "float64")
            results.append({"name": name, "output": kind, **r})
            log(f"    {name}{' ' + dt if dt else ''}: {r['points_per_s']:.4g} points/s, "
                f"compile {r['compile_s']:.1f} s, max rel err {r['max_rel_err']:.2e}, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB")
    # the fitting rows take over 2 minutes of their own on 2 cores (measured: 2 min 45 s wall,
    # 70 s CPU for fit_benchmark_rows(True)), so ``--quick`` leaves them out (it must finish
    # in under 2 minutes); fit_rows="always" runs them anyway
    if want_fit_rows(quick, fit_rows):
        log("fit rows (jaxsim.bench.fit) ...")
        results.extend(_fit_rows(quick, log))
    report = {"machine": machine_info(), "device": str(jax.devices()[0]),
              "device_kind": jax.devices()[0].device_kind, "quick": quick, "seed": seed,
              "grid": {"model": "trap_detrap", "A": [1e5, 1e8], "D": [0, 1e8],
                       "K1": [1e2, 1e7], "n0": [1e15, 1e18], "t1": T1, "curve_points": N_CURVE,
                       "rtol": RTOL, "engine_rtol": ENGINE_RTOL, "dtypes": list(dtypes)},
              "results": results,
              "ratios": ratios(results)}
    report["memory"] = memory
    return report


def want_fit_rows(quick: bool, fit_rows: bool | str) -> bool:
    """Whether :func:`run_benchmark` appends the fitting rows: a full run (``fit_rows``
    True), or ``fit_rows == "always"`` (also when quick); never with False."""
    if fit_rows not in (True, False, "always"):
        raise ValueError(f"fit_rows = {fit_rows!r}: expected True, False or 'always'")
    return fit_rows == "always" or (fit_rows is True and not quick)


def _fit_rows(quick: bool, log=print) -> list[dict]:
    """Rows of the fitting benchmark (:mod:`jaxsim.bench.fit`)."""
    mod = importlib.import_module("jaxsim.bench.fit")
    return list(mod.fit_benchmark_rows(quick, log=log))


def ratios(results: list[dict]) -> dict:
    """jaxsim points/s over each baseline's, per output kind and engine dtype:
    ``{kind}_{dtype}_vs_{baseline}``."""
    out = {}
    for kind in ("summary", "curves"):
        for j in (r for r in results if r["name"] == "jaxsim" and r["output"] == kind):
            for base in ("scipy", "diffrax_naive"):
                b = next((r for r in results if r["name"] == base and r["output"] == kind),
                         None)
                if b and b["points_per_s"] > 0:
                    key = f"{kind}_{j.get('dtype', 'float64')}_vs_{base}"
                    out[key] = j["points_per_s"] / b["points_per_s"]
    return out


def format_table(report: dict) -> str:
    lines = [f"machine: {report['machine']}", f"device:  {report['device']}", "",
             f"{'name':<14} {'output':<8} {'dtype':<8} {'points/s':>11} {'compile_s':>9} "
             f"{'max_rel_err':>11} {'peak_rss_mb':>11}"]
    others = []
    for r in report["results"]:
        if not all(k in r for k in ("points_per_s", "compile_s", "max_rel_err", "peak_rss_mb")):
            others.append(r)
            continue
        lines.append(f"{r['name']:<14} {r['output']:<8} {r.get('dtype', 'float64'):<8} "
                     f"{r['points_per_s']:>11.4g} "
                     f"{r['compile_s']:>9.2f} {r['max_rel_err']:>11.2e} {r['peak_rss_mb']:>11.0f}")
    if others:
        lines.append("")
        lines.append("other rows (jaxsim.bench.fit):")
        for r in others:
            rest = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in r.items()
                             if k not in ("name", "output") and not isinstance(v, (dict, list)))
            lines.append(f"  {r.get('name', '?')} / {r.get('output', '?')}: {rest}")
    lines.append("")
    for k, v in report.get("ratios", {}).items():
        lines.append(f"ratio {k:<36} {v:8.1f}x")
    if report.get("memory"):
        lines.append("")
        lines.append("memory (summary sweep): chunk, points -> peak RSS MB")
        for m in report["memory"]:
            lines.append(f"  chunk {m['chunk']:>6}  points {m['points']:>8}  {m['peak_rss_mb']:8.0f}")
    return "\n".join(lines)


def write_report(report: dict, path) -> None:
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2, default=float)
