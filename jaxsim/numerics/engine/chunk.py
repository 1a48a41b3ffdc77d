r"""Fast batched engine: one compiled function per chunk of grid points.

``chunk_solver(model, t1=..., summaries=..., curve_ts=...)`` returns ``f(values)`` that solves
a whole chunk of parameter points (each value an array of shape ``(chunk,)``) in one lock-step
adaptive Runge-Kutta loop and returns summaries, curves, a status and a step count per point.
The sweep, the benchmark and the sensitivity analysis build on it.

Why not ``jit(vmap(diffeqsolve))``: under ``vmap`` the solver steps every lane until the slowest
lane is done, and ``SaveAt(ts=...)`` runs an inner loop over the save points inside every step.
Here instead (DESIGN §2.1):

- the loop is batch-native: the state is a tuple of ``(lanes,)`` arrays (one per variable, no
  stacking), each lane keeps its own time and step; ``lanes`` trajectories run at a time. The
  loop runs in blocks of ``block`` steps: inside a block nothing is written but a small log;
  between blocks the lanes that reached :math:`\tau_1` (or failed) write their results and take
  the next points of the chunk (so a chunk costs about its total number of steps, not chunk x
  the slowest lane's, and the scatters run once per block, not once per step);
- the Runge-Kutta step is Tsitouras' 5(4) pair with diffrax's tableau (``diffrax.Tsit5``),
  unrolled; the step-size controller is the I-controller of diffrax's default
  ``PIDController``:
  :math:`h \leftarrow h\,\mathrm{clip}(0.9\,\varepsilon^{-1/5}, 0.2, 10)`, with the error
  :math:`\varepsilon = \mathrm{RMS}_i\, e_i / (\mathrm{atol} + \mathrm{rtol}\max(|y_i|,|y_i'|))`
  over the model's states (not the integrals below, which follow the states' steps), each
  :math:`|e_i|` less its own rounding noise :math:`4\epsilon h |f_i| \sum_k |b^{err}_k|` (in
  float32 at rtol 2e-7 that noise had held the steps ~10 % short), and
  :math:`\varepsilon^{-1/5}` taken in float32 (:func:`.step.inv_fifth_root`); a step counts as
  finite when the states are;
- each step's stages are computed once: XLA:CPU compiles each output of the loop body into
  its own kernel, and each kernel recomputed every stage its output depends on. The new states and their error estimates come
  out of one kernel, then the new time, step size, states and field out of another: the
  operands of one variadic reduce (:func:`.step.one_fusion`). With more than two integrals the
  stage states are materialised instead (:func:`.step.materialise`) and only the states packed;
- summaries come from integrals carried as extra state:
  :math:`\int \mathrm{PL}`, :math:`\int t\,\mathrm{PL}`, :math:`\int n`, :math:`\int t\,n`,
  :math:`\int \phi_k` for each flux, only those the requested summaries need;
- curves come from a quintic Hermite interpolant between accepted steps: the log keeps, at
  the start of every step, :math:`(t, y, y', y'')` of the saved states (:math:`y'` is the
  carried field, :math:`y'' = \mathrm{d}f/\mathrm{d}t` one ``jvp``: nothing that depends on the
  stages, which XLA would recompute for every extra output) and the number of save points
  before :math:`t` (arithmetic on an even grid). At the end of a block each step's segment

  .. math:: y(t_0 + \theta h) = y_0 + \theta h y_0' + \tfrac12 \theta^2 h^2 y_0''
            + \theta^3 (c_3 + \theta (c_4 + \theta c_5))

  is evaluated on the (at most ``window``) save points it covers and scattered, lane by lane,
  into the output; a step that would cover more is cut short. The interpolation error,
  :math:`O(h^6)`, stays far below the step's own. Only the states the outputs need are
  scattered, in cm^-3 (PL is computed from the saved n afterwards, densely); a failed point's
  rows are set to NaN in the loop;
- optionally (``tail_halvings``, on for large sweeps), once every point of the chunk has had a
  lane, the points left move to half the lanes each time they fit, so that the chunk's tail,
  where lanes go idle one by one, costs less;
- several chunks run at once in threads on a CPU (:func:`map_chunks`).

Order the grid by :func:`stiffness_order`, stiffest first (:func:`solve_points` does):
chunks then hold similar points, and within a chunk the long trajectories start first while
lanes that finish early take the cheap ones (longest job first). Everything is pure JAX, so
``jax.jvp`` goes through (forward mode).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import observables
from jaxsim.numerics.config import (
    DTYPES,
    FAILED,
    MAX_STEPS,
    NON_FINITE,
    SUCCESS,
    SolverConfig,
)
from jaxsim.numerics.engine.checks import (
    check_chunk_values,
    check_curve_request,
    check_summaries,
)
from jaxsim.numerics.engine.dense import (
    CURVE_QUANTITY,
    DenseOutput,
    SaveGrid,
    quantities_from_states,
    states_to_save,
)
from jaxsim.numerics.engine.problem import LaneProblem, needed_integrals
from jaxsim.numerics.engine.step import Controller, adaptive_step, fusion_plan, runtime_one
from jaxsim.numerics.engine.tableau import ERR_ABS_SUM
from jaxsim.numerics.reference import Solution, check_times
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import pl_scale
from jaxsim.physics.parameters import Params, table_lookup
from jaxsim.physics.registry import get_model

#: save points written per step at most (a longer step is cut at the k-th next save point)
DEFAULT_WINDOW = 16


#: failed points whose curve rows are set to NaN per block (more wait for the next block)
FAILED_ROWS = 2


#: fewest lanes a chunk's tail is moved to (``chunk_solver(tail_halvings=...)``)
TAIL_MIN_LANES = 256


#: runs of at least this many chunks use tail compaction (:func:`default_tail_halvings`)
TAIL_FROM_CHUNKS = 256


#: key of the per-point reference density among the lanes' coefficients
NREF = "_n_ref"


#: default grid (points on [0, t1]) of curve-based summaries when no ``curve_ts`` is given
DEFAULT_SUMMARY_POINTS = 512


def default_block() -> int:
    """Steps between two refills of finished lanes: a finished lane idles for half of it on
    average, and each refill (results written, new points started) costs about one step."""
    return 8


def default_tail_halvings(n_chunks: int) -> int:
    """``tail_halvings`` for a run of ``n_chunks`` chunks: 2 on a CPU from
    :data:`TAIL_FROM_CHUNKS` chunks on, else 0. Each halving compiles the loop once more
    (~0.7 s on a CPU) and saves ~10-30 % of each chunk (measured on the bench grid: the
    stiffest chunk's kernels 52.7 -> 37-43 ms on one thread); the default sweep's 86 chunks
    ran slower with it (compile). Not measured on a GPU, so off there."""
    return 2 if jax.default_backend() == "cpu" and n_chunks >= TAIL_FROM_CHUNKS else 0


def default_lanes() -> int:
    """Lanes stepped together: enough to fill SIMD units and hide the loop's per-iteration
    cost on a CPU, many more on a GPU."""
    return 1024 if jax.default_backend() == "cpu" else 65536


def chunk_solver(model, *, t1, summaries=(), curve_ts=None, curve_vars=("pl",),
                 config: SolverConfig = SolverConfig(), fixed=None,
                 window: int = DEFAULT_WINDOW, lanes: int | None = None, summary_ts=None,
                 block: int | None = None, tail_halvings: int = 0,
                 diffusion_coefficient: float = 0.017):
    r"""A function that solves one chunk of parameter points: ``f(values) -> dict``.

    Args:
        model: model name or object.
        t1: end of the time window in s (the decay starts at t = 0).
        summaries: names from :data:`jaxsim.observables.SUMMARIES`. Integral ones
            (``tau_mean_*``, ``plqy``, ``pl_integrated``, ``share_*``) are integrated with the
            ODE; curve ones (``tau_avg_*``, ``tau_1e_*``, ``diffusion_length``) are evaluated
            by :func:`jaxsim.observables.summaries` on ``curve_ts`` if given, else on
            ``summary_ts`` (default: 512 points evenly spaced on [0, t1]).
        curve_ts: save times in s (``<= t1``) of the curves, or None for no curves.
        curve_vars: which curves: ``n``, ``n_d`` (cm^-3), ``pl`` (cm^-3 s^-1), ``pl_norm``
            (PL / PL(0)).
        config: :class:`jaxsim.solve.SolverConfig`: ``rtol``, ``atol`` (scaled), ``dtype``,
            ``max_steps`` (loop iterations, accepted plus rejected), ``t_ref``. ``solver`` must
            be ``auto``/``tsit5`` (this engine is explicit; the scaled problem is only mildly
            stiff, DESIGN §2.1).
        fixed: parameter values held constant over the chunk (scalars), merged under
            ``values``; names in neither take the model's defaults.
        window: with curves, save points a step covers at most (a longer step is cut).
        lanes: trajectories stepped together (:func:`default_lanes`).
        block: steps between two refills of finished lanes (:func:`default_block`).
        tail_halvings: once no point of the chunk waits for a lane, move the points left to
            half the lanes whenever they fit, up to this many times (not below
            :data:`TAIL_MIN_LANES` lanes): the chunk's tail, where lanes go idle one by one,
            then costs about half per halving. Each halving compiles the loop once more
            (~0.7 s on a CPU), so it pays on large sweeps (:func:`default_tail_halvings`,
            which :func:`jaxsim.sweep.run_sweep` uses).
        summary_ts: grid of the curve summaries when no ``curve_ts`` is given.
        diffusion_coefficient: D_c in cm^2 s^-1 of ``diffusion_length``.

    Returns ``f(values: dict[str, Array(chunk,)]) -> dict`` with each summary ``(chunk,)``,
    ``curve_<var>`` ``(chunk, len(curve_ts))``, ``status`` int32 (0 success, 1 max_steps, 2
    failed, 3 non-finite; see :data:`jaxsim.solve.STATUS_MESSAGES`) and ``num_steps`` int32.
    ``f`` is jitted: one compile per chunk size (pad the last chunk: :func:`pad_chunk`).
    Points that did not succeed have NaN outputs and a non-zero status.
    """
    model = get_model(model)
    t1 = float(t1)
    if not (np.isfinite(t1) and t1 > 0):
        raise ParameterError(f"t1 = {t1!r}: expected a positive end time in s")
    if config.solver not in ("auto", "tsit5"):
        raise ParameterError(
            f"solver = {config.solver!r}: the engine steps Tsit5 only (expected 'auto' or "
            "'tsit5'); use jaxsim.solve.solve for implicit solvers")
    names, needs_curve = check_summaries(summaries)
    fixed = dict(fixed or {})
    for k, v in fixed.items():
        table_lookup(model.parameters, k, model=model.name).check(v, where="fixed")
    curve_ts, curve_vars = check_curve_request(model, t1, curve_ts, curve_vars)
    if needs_curve:
        sum_ts = curve_ts if curve_ts is not None else (
            check_times(summary_ts, name="summary_ts") if summary_ts is not None
            else np.linspace(0.0, t1, DEFAULT_SUMMARY_POINTS))
    else:
        sum_ts = None
    save_ts = curve_ts if curve_ts is not None else sum_ts
    lanes = default_lanes() if lanes is None else lanes
    if int(lanes) < 1:
        raise ParameterError(f"lanes = {lanes!r}: expected a positive integer")
    block = default_block() if block is None else block
    if int(block) < 1:
        raise ParameterError(f"block = {block!r}: expected a positive integer")
    if int(window) < 1:
        raise ParameterError(f"window = {window!r}: expected a positive integer")
    if int(tail_halvings) < 0:
        raise ParameterError(f"tail_halvings = {tail_halvings!r}: expected an integer >= 0")
    core = _make_core(model, t1, names, curve_vars if curve_ts is not None else (), save_ts,
                      curve_ts is not None, config, int(window), int(lanes),
                      diffusion_coefficient, int(block), int(tail_halvings))
    dtype = DTYPES[config.dtype]
    pnames = model.parameter_names

    def f(values):
        values = dict(values)
        n = check_chunk_values(model, values)
        for k, v in values.items():
            if not isinstance(v, jax.core.Tracer):
                table_lookup(model.parameters, k, model=model.name).check(np.asarray(v))
        full = {}
        for row in model.parameters:
            v = values.get(row.name, fixed.get(row.name, row.default))
            full[row.name] = jnp.broadcast_to(jnp.asarray(v, dtype), (n,))
        return core(tuple(full[p] for p in pnames))

    f.model = model
    f.t1 = t1
    f.summaries = names
    f.curve_ts = curve_ts
    f.curve_vars = curve_vars if curve_ts is not None else ()
    f.config = config
    f.core = core
    return f


@functools.lru_cache(maxsize=64)
def _cached_core(*key):
    return _build_core(*key)


def _make_core(model, t1, names, curve_vars, save_ts, return_curves, config, window, lanes, dc,
               block, tail):
    ts_key = None if save_ts is None else tuple(float(x) for x in save_ts)
    return _cached_core(model, t1, names, curve_vars, ts_key, return_curves, config, window,
                        lanes, dc, block, tail)


def _save_times(ts_key, t_ref, t_end, dtype, dtype_name):
    """The save times, scaled, checked to be resolved by ``dtype`` at the window's end."""
    ts = np.minimum(np.asarray(ts_key, dtype=np.float64) / t_ref, t_end)
    gaps = np.diff(ts)
    resolution = 4 * float(np.spacing(np.asarray(t_end, dtype)))
    if gaps.size and gaps.min() < resolution:
        raise ParameterError(
            f"curve_ts: two save times are {gaps.min() * t_ref:.3g} s apart, below "
            f"what {dtype_name} resolves at t1 ({resolution * t_ref:.3g} s): expected "
            "coarser save times, or dtype float64")
    return ts


def _saved_quantities(curve_vars, names) -> tuple[str, ...]:
    """Scaled quantities saved on the grid: those of the curves, then those of the curve
    summaries (PL for ``*_pl``, else n), each once."""
    quantities = [CURVE_QUANTITY[var] for var in curve_vars]
    for name in names:
        if observables.SUMMARIES[name].needs_curve:
            quantities.append("pl" if name.endswith("_pl") else "n")
    return tuple(dict.fromkeys(quantities))


def _build_core(model, t1, names, curve_vars, ts_key, return_curves, config, window, lanes, dc,
                block, tail):

    dtype = DTYPES[config.dtype]
    tr = config.t_ref
    pnames = model.parameter_names
    n_state = len(model.state_names)
    integrands = needed_integrals(model, names)
    rtol, atol = float(config.rtol), float(config.abs_tol)
    controller = Controller(rtol, atol, 4.0 * float(np.finfo(dtype).eps) * ERR_ABS_SUM, n_state)
    t_end = t1 / tr
    save = ts_key is not None
    max_steps = int(config.max_steps)
    problem = LaneProblem(model, integrands, dtype, rtol, atol, t_end)
    field = problem.field
    if save:
        ts_s = _save_times(ts_key, tr, t_end, dtype, config.dtype)
        n_ts = len(ts_s)
        grid = SaveGrid(ts_s, dtype, t_end, int(min(window, n_ts)))
        quantities = _saved_quantities(curve_vars, names)
        saved_states = states_to_save(model, quantities)
        dense = DenseOutput(grid, saved_states, int(block))

    def run(pvals):
        vals = dict(zip(pnames, pvals))
        n_ref = vals["n0"]
        one = runtime_one(n_ref, dtype)
        plan = fusion_plan(one, n_state, len(integrands))
        bshape = jnp.shape(n_ref)
        npts = int(np.prod(bshape))
        c_all = {k: jnp.broadcast_to(jnp.asarray(v, dtype), bshape).reshape(npts)
                 for k, v in model.coefficients(vals, n_ref, tr).items()}
        c_all[NREF] = jnp.asarray(n_ref, dtype).reshape(npts)
        nl = min(lanes, npts)
        te = jnp.asarray(t_end, dtype)
        tiny_h = te * 1e-13
        n_res = n_state + len(integrands)
        nblock = int(block)

        def live_of(t, h, nst):
            return (t < te) & (h >= tiny_h) & (nst < max_steps)

        def inner(c, blk):
            """``block`` steps of every live lane: no writes but the log rows. (A test whether
            any lane is still live cost ~6 kernels per step, ~8 % of a curve chunk; it would
            only save the last block's idle steps.)"""

            def cond(ic):
                return ic[0] < nblock

            def one_step(ic):
                i, t, h, y, f, nst, logs = ic
                live = live_of(t, h, nst)
                h_try = h
                if save:
                    p = grid.before(t)
                    logs = dense.write(logs, i, lambda tt, yy: field(tt, yy, c), t, y, f, p)
                    # at most `window` save points per step (the flush evaluates that many)
                    h_try = jnp.minimum(h, grid.cap(p) - t)
                t_new, h_new, y_new, f_new = adaptive_step(
                    lambda tt, yy: field(tt, yy, c), t, h, h_try, y, f, live, t_end=te,
                    controller=controller, plan=plan)
                return (i + 1, t_new, h_new, y_new, f_new, nst + live.astype(jnp.int32), logs)

            return jax.lax.while_loop(cond, one_step, (jnp.int32(0),) + blk)

        def take(pid, fresh, lane):
            """Lane state with ``fresh`` lanes (re)started on point ``pid``."""
            c, t, h, y, f, nst = lane
            safe = jnp.minimum(pid, npts - 1)
            c = {k: jnp.where(fresh, c_all[k][safe], c[k]) for k in c}
            tn, hn, yn, fn = problem.start(c)
            empty = pid >= npts
            t = jnp.where(fresh, tn, jnp.where(empty, te, t))
            h = jnp.where(fresh, hn, h)
            y = tuple(jnp.where(fresh, a, b) for a, b in zip(yn, y))
            f = tuple(jnp.where(fresh, a, b) for a, b in zip(fn, f))
            nst = jnp.where(fresh, 0, nst)
            return c, t, h, y, f, nst

        def outer(oc):
            (blocks, pid, nxt, lane, res, codes, steps, outs, logs) = oc
            c, t, h, y, f, nst = lane
            # the logs are reused: rows past this block's last are never read
            n_it, t, h, y, f, nst, logs = inner(c, (t, h, y, f, nst, logs))
            if save:
                logs = dense.write(logs, n_it, lambda tt, yy: field(tt, yy, c), t, y, f)
                outs = dense.flush(logs, n_it, pid, c[NREF], outs, one, npts)
            # lanes done with their point: record it, take the next one
            fin = ~live_of(t, h, nst) & (pid < npts)
            if save:
                # the curves of a failed point are NaN throughout (not only after the failure):
                # up to FAILED_ROWS rows per block; further failed lanes wait for the next block
                bad = fin & (t < te)
                fin = fin & (~bad | (jnp.cumsum(bad.astype(jnp.int32)) <= FAILED_ROWS))
                bad = bad & fin
                n_l = bad.shape[0]
                rows_ = jnp.nonzero(bad, size=FAILED_ROWS, fill_value=n_l)[0]
                bad_pid = jnp.where(rows_ < n_l, pid[jnp.minimum(rows_, n_l - 1)], npts)
                cols = (bad_pid[:, None] * n_ts + jnp.arange(n_ts)).reshape(-1)
                outs = tuple(o.at[cols].set(jnp.nan, mode="drop") for o in outs)
            where = jnp.where(fin, pid, npts)
            res = tuple(r.at[where].set(v, mode="drop") for r, v in zip(res, y))
            code = jnp.where(t >= te, SUCCESS, jnp.where(h < tiny_h, FAILED, MAX_STEPS))
            codes = codes.at[where].set(code.astype(jnp.int32), mode="drop")
            steps = steps.at[where].set(nst, mode="drop")
            new_pid = nxt + jnp.cumsum(fin.astype(jnp.int32)) - 1
            pid = jnp.where(fin, jnp.minimum(new_pid, npts), pid)
            nxt = nxt + jnp.sum(fin, dtype=jnp.int32)
            lane = take(pid, fin & (pid < npts), (c, t, h, y, f, nst))
            return (blocks + 1, pid, nxt, lane, res, codes, steps, outs, logs)

        pid0 = jnp.arange(nl, dtype=jnp.int32)
        c0 = {k: v[:nl] for k, v in c_all.items()}
        t0_, h0_, y0_, f0_ = problem.start(c0)
        lane0 = (c0, t0_, h0_, y0_, f0_, jnp.zeros((nl,), jnp.int32))
        res0 = tuple(jnp.zeros((npts,), dtype) for _ in range(n_res))
        codes0 = jnp.full((npts,), MAX_STEPS, jnp.int32)
        steps0 = jnp.zeros((npts,), jnp.int32)
        outs0 = tuple(jnp.full((npts * n_ts,), jnp.nan, dtype)
                      for _ in saved_states) if save else ()
        max_blocks = min(npts * (max_steps // nblock + 2), np.iinfo(np.int32).max)

        def logs_for(n_l):
            return dense.empty_log(n_l, dtype) if save else ()

        oc = (jnp.int32(0), pid0, jnp.int32(nl), lane0, res0, codes0, steps0, outs0,
              logs_for(nl))
        # the chunk's tail: once every point has a lane, lanes go idle one by one while the
        # last points finish (measured: ~19 % of lane-steps idle in the stiffer chunks of the
        # bench). Each time half the lanes would do, the points left move to half the lanes: a
        # step costs about half (the kernels' time grows with the lanes). Measured side by
        # side, 2 workers, 2 halvings: bench summaries ~1.15x, curves ~1.1x; halving beat
        # quartering.
        def busy(oc):
            return (oc[0] < max_blocks) & jnp.any(oc[1] < npts)

        n_l = nl
        for _ in range(tail):
            # a multiple of 8: lanes in a vector register's scalar remainder round otherwise
            n_next = -(-(n_l // 2) // 8) * 8
            if n_next < TAIL_MIN_LANES or n_next >= n_l:
                break

            def head(oc, n_next=n_next):
                n_busy = jnp.sum(oc[1] < npts, dtype=jnp.int32)
                return busy(oc) & ((oc[2] < npts) | (n_busy > n_next))

            oc = jax.lax.while_loop(head, outer, oc)
            blocks, pid, nxt, lane, res_, codes_, steps_, outs_, _ = oc
            cnt = jnp.sum(pid < npts, dtype=jnp.int32)
            idx = jnp.nonzero(pid < npts, size=n_next, fill_value=0)[0]
            kept = jnp.arange(n_next) < cnt
            cs_, t_, h_, y_, f_, nst_ = lane
            lane = ({k: v[idx] for k, v in cs_.items()},
                    jnp.where(kept, t_[idx], te), h_[idx],
                    tuple(v[idx] for v in y_), tuple(v[idx] for v in f_), nst_[idx])
            oc = (blocks, jnp.where(kept, pid[idx], npts), nxt, lane, res_, codes_, steps_,
                  outs_, logs_for(n_next))
            n_l = n_next
        oc = jax.lax.while_loop(busy, outer, oc)
        res, code, nst, outs = oc[4], oc[5], oc[6], oc[7]
        if save:
            outs = tuple(o.reshape(npts, n_ts) for o in outs)
        code = code.reshape(bshape)
        nst = nst.reshape(bshape)
        saved = {}
        if save:
            # the states come in cm^-3; PL (scaled) is computed from them, densely
            saved = quantities_from_states(model, quantities, dict(zip(saved_states, outs)),
                                           c_all, c_all[NREF], n_ts, dtype, bshape)
        res = tuple(r.reshape(bshape) for r in res)
        finals = res[:n_state]
        integ = dict(zip(integrands, res[n_state:]))
        c = {k: v.reshape(bshape) for k, v in c_all.items()}
        y_init = tuple(jnp.broadcast_to(jnp.asarray(v, dtype), bshape)
                       for v in model.initial_state(c))
        out = _summaries(model, names, vals, c, n_ref, finals, integ, saved, ts_key, t1, tr, dc,
                         bshape, dtype, observables, code)
        if return_curves:
            for var in curve_vars:
                out[f"curve_{var}"] = _curve(model, var, saved, c, vals, n_ref, y_init)
        ok = code == SUCCESS
        finite = jnp.ones(bshape, bool)
        for k, v in out.items():
            if k.startswith("curve_"):
                # finite by construction (accepted steps are finite, so is their interpolant):
                # a check would cost a pass over the largest arrays
                continue
            # tau_1e is +inf by definition when the decay stays above 1/e inside the window
            good = ~jnp.isnan(v) if k.startswith("tau_1e") else jnp.isfinite(v)
            finite = finite & jnp.all(good.reshape(bshape + (-1,)), axis=-1)
        code = jnp.where(ok & ~finite, NON_FINITE, code)
        ok = code == SUCCESS
        # curves: failed points' rows are NaN already (written in the loop); a summary can
        # still turn a point non-finite, and then its curves are masked too (one more pass)
        out = {k: v if (k.startswith("curve_") and not names) else
               jnp.where(ok.reshape(bshape + (1,) * (v.ndim - len(bshape))), v, jnp.nan)
               for k, v in out.items()}
        out["status"] = code.astype(jnp.int32)
        out["num_steps"] = nst
        return out

    return jax.jit(run)


def _curve(model, var, saved, c, vals, n_ref, y0):
    if var in ("n", "n_d"):
        return saved[var]  # cm^-3 already
    if var == "pl":
        return saved["pl"] * pl_scale(vals, n_ref)[..., None]
    n_state = len(model.state_names)
    return saved["pl"] / model.pl(y0[:n_state], c)[..., None]


def _summaries(model, names, vals, c, n_ref, finals, integ, saved, ts_key, t1, tr, dc, bshape,
               dtype, observables, code):
    """Physical summaries: integrals straight from the carried state; curve ones through
    :func:`jaxsim.observables.summaries` on a :class:`Solution` built from the saved curves."""
    if not names:
        return {}
    pls = pl_scale(vals, n_ref)
    scale = {"pl": pls * tr, "t_pl": pls * tr**2, "n": n_ref * tr, "t_n": n_ref * tr**2}
    integrals = {k: v * scale.get(k, n_ref) for k, v in integ.items()}
    final = {s: v * n_ref for s, v in zip(model.state_names, finals)}
    if saved:
        t = jnp.asarray(np.asarray(ts_key), dtype)
        states = {}
        if "n" in saved:
            states["n"] = saved["n"]
        # the PL curve only enters shape summaries (tau_avg_pl, tau_1e_pl: normalised), which
        # with B = 0 are those of the B -> 0 limit (PL per unit B, n p): scale by 1 there
        pl = saved["pl"] * jnp.where(pls > 0, pls, 1.0)[..., None] if "pl" in saved else None
    else:
        # the window's end: carriers put in (n0 + G t1) normalise plqy and the shares
        t = jnp.full((1,), t1, dtype)
        states, pl = {}, None
    sol = Solution(model=model, t=t, states=states, pl=pl, integrals=integrals,
                   final=final, status=code, num_steps=jnp.zeros(bshape, jnp.int32),
                   params=Params(model=model, values=vals), solver="tsit5")
    out = dict(observables.summaries(sol, names, dc))
    if "tau_mean_pl" in out:
        # from the scaled integrals: independent of B, so defined (the B -> 0 limit) at B = 0
        out["tau_mean_pl"] = integ["t_pl"] / integ["pl"] * tr
    return out
