r"""``chunk_solver``: one compiled function that solves a chunk of parameter points.

It assembles the pieces of the package: the lanes' problem (:mod:`.problem`), the step
(:mod:`.step`), the dense output (:mod:`.dense`), the lanes (:mod:`.lanes`) and their loop
(:mod:`.loop`), and turns the loop's results into physical outputs (:mod:`.outputs`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics.config import DTYPES, SolverConfig
from jaxsim.numerics.engine.checks import (
    check_chunk_values,
    check_curve_request,
    check_summaries,
)
from jaxsim.numerics.engine.dense import (
    DenseOutput,
    SaveGrid,
    quantities_from_states,
    states_to_save,
)
from jaxsim.numerics.engine.lanes import NREF, Limits, initial_state
from jaxsim.numerics.engine.loop import ChunkLoop
from jaxsim.numerics.engine.outputs import curve, mask_failed, physical_summaries
from jaxsim.numerics.engine.problem import LaneProblem, needed_integrals
from jaxsim.numerics.engine.step import Controller, fusion_plan, runtime_one
from jaxsim.numerics.engine.tableau import ERR_ABS_SUM
from jaxsim.numerics.reference import check_times
from jaxsim.observables.summaries import summary_table
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.parameters import table_lookup
from jaxsim.physics.registry import get_model

#: save points written per step at most (a longer step is cut at the k-th next save point)
DEFAULT_WINDOW = 16

#: runs of at least this many chunks use tail compaction (:func:`default_tail_halvings`)
TAIL_FROM_CHUNKS = 256

#: default grid (points on [0, t1]) of curve-based summaries when no ``curve_ts`` is given
DEFAULT_SUMMARY_POINTS = 512


def default_block() -> int:
    """Steps between two refills of finished lanes: a finished lane idles for half of it on
    average, and each refill (results written, new points started) costs about one step."""
    return 8


def default_tail_halvings(n_chunks: int) -> int:
    """``tail_halvings`` for a run of ``n_chunks`` chunks: 2 on a CPU from
    :data:`TAIL_FROM_CHUNKS` chunks on, else 0. Each halving compiles the loop once more, so it
    pays on long runs only; it was measured on a CPU only (docs/performance.md, item 12)."""
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
        summaries: names from :func:`jaxsim.observables.summary_table` (model). Integral ones
            (``tau_mean_*``, ``plqy``, ``pl_integrated``, ``share_*``) are integrated with the
            ODE; curve ones (``tau_avg_*``, ``tau_1e_*``, ``diffusion_length``) are evaluated
            by :func:`jaxsim.observables.summaries` on ``curve_ts`` if given, else on
            ``summary_ts`` (default: 512 points evenly spaced on [0, t1]).
        curve_ts: save times in s (``<= t1``) of the curves, or None for no curves.
        curve_vars: which curves: ``n``, ``n_d`` (cm^-3), ``pl`` (cm^-3 s^-1), ``pl_norm``
            (PL / PL(0)).
        config: :class:`jaxsim.numerics.config.SolverConfig`: ``rtol``, ``atol`` (scaled),
            ``dtype``, ``max_steps`` (loop iterations, accepted plus rejected), ``t_ref``.
            ``solver`` must be ``auto``/``tsit5`` (this engine is explicit; the scaled problem
            is only mildly stiff, DESIGN §2.1).
        fixed: parameter values held constant over the chunk (scalars), merged under
            ``values``; names in neither take the model's defaults.
        window: with curves, save points a step covers at most (a longer step is cut).
        lanes: trajectories stepped together (:func:`default_lanes`).
        block: steps between two refills of finished lanes (:func:`default_block`).
        tail_halvings: once no point of the chunk waits for a lane, move the points left to
            half the lanes whenever they fit, up to this many times (not below
            :data:`.lanes.TAIL_MIN_LANES` lanes): the chunk's tail, where lanes go idle one by one,
            then costs about half per halving. Each halving compiles the loop once more,
            so it pays on large sweeps (:func:`default_tail_halvings`, which
            :func:`jaxsim.studies.sweep.run_sweep` uses).
        summary_ts: grid of the curve summaries when no ``curve_ts`` is given.
        diffusion_coefficient: D_c in cm^2 s^-1 of ``diffusion_length``.

    Returns ``f(values: dict[str, Array(chunk,)]) -> dict`` with each summary ``(chunk,)``,
    ``curve_<var>`` ``(chunk, len(curve_ts))``, ``status`` int32 (0 success, 1 max_steps, 2
    failed, 3 non-finite; see :data:`jaxsim.numerics.config.STATUS_MESSAGES`) and
    ``num_steps`` int32. ``f`` is jitted: one compile per chunk size (pad the last chunk:
    :func:`.points.pad_chunk`). Points that did not succeed have NaN outputs and a non-zero
    status.
    """
    model = get_model(model)
    t1 = float(t1)
    if not (np.isfinite(t1) and t1 > 0):
        raise ParameterError(f"t1 = {t1!r}: expected a positive end time in s")
    if config.solver not in ("auto", "tsit5"):
        raise ParameterError(
            f"solver = {config.solver!r}: the engine steps Tsit5 only (expected 'auto' or "
            "'tsit5'); use jaxsim.numerics.reference.solve for implicit solvers")
    names, needs_curve = check_summaries(model, summaries)
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
    ts_key = None if save_ts is None else tuple(float(x) for x in save_ts)
    core = _compiled_chunk(model, t1, names, curve_vars if curve_ts is not None else (), ts_key,
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
def _compiled_chunk(*key):
    """One jitted function per request (model, times, outputs, settings): chunk solvers asked
    twice for the same thing share their compiles."""
    return jax.jit(_chunk_function(*key))


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


def _saved_quantities(model, curve_vars, names) -> tuple[str, ...]:
    """Quantities saved on the grid: those of the curves (states by name, and pl), then those
    of the curve summaries (PL for ``*_pl``, else the free carriers), each once."""
    quantities = ["pl" if var == "pl_norm" else var for var in curve_vars]
    table = summary_table(model)
    for name in names:
        if table[name].curve is not None:
            quantities.append("pl" if table[name].curve == "pl" else model.free_state.name)
    return tuple(dict.fromkeys(quantities))


def _chunk_function(model, t1, names, curve_vars, ts_key, return_curves, config, window, lanes,
                    dc, block, tail_halvings):
    """The chunk function, ``run(parameter arrays in model.parameter_names order) -> dict``,
    before ``jit``. ``ts_key``: the save times (curves or curve summaries) or None."""
    dtype = DTYPES[config.dtype]
    t_ref = config.t_ref
    n_state = len(model.state_names)
    integrands = needed_integrals(model, names)
    t_end = t1 / t_ref
    max_steps = int(config.max_steps)
    problem = LaneProblem(model, integrands, dtype, float(config.rtol), float(config.abs_tol),
                          t_end)
    controller = Controller(problem.rtol, problem.atol,
                            4.0 * float(np.finfo(dtype).eps) * ERR_ABS_SUM, n_state)
    dense, quantities, n_ts = None, (), 0
    if ts_key is not None:
        ts = _save_times(ts_key, t_ref, t_end, dtype, config.dtype)
        n_ts = len(ts)
        grid = SaveGrid(ts, dtype, t_end, int(min(window, n_ts)))
        quantities = _saved_quantities(model, curve_vars, names)
        dense = DenseOutput(grid, states_to_save(model, quantities), int(block))

    def run(parameter_values):
        vals = dict(zip(model.parameter_names, parameter_values))
        n_ref = vals["n0"]
        one = runtime_one(n_ref, dtype)
        plan = fusion_plan(one, n_state, len(integrands))
        shape = jnp.shape(n_ref)
        n_points = int(np.prod(shape))
        coefs_all = {k: jnp.broadcast_to(jnp.asarray(v, dtype), shape).reshape(n_points)
                     for k, v in model.coefficients(vals, n_ref, t_ref).items()}
        coefs_all[NREF] = jnp.asarray(n_ref, dtype).reshape(n_points)
        t_end_array = jnp.asarray(t_end, dtype)
        # a step below 1e-13 of the window cannot be resolved: the point failed
        limits = Limits(t_end_array, t_end_array * 1e-13, max_steps)
        loop = ChunkLoop(problem, dense, limits, controller, plan, coefs_all, one, n_points,
                         int(block))
        state = initial_state(min(lanes, n_points), n_points, coefs_all, problem.start,
                              n_state + len(integrands), dtype,
                              len(dense.saved_states) if dense else 0, n_ts, loop.empty_log)
        # every point may take max_steps steps; int32 block counter
        max_blocks = min(n_points * (max_steps // int(block) + 2), np.iinfo(np.int32).max)
        state = loop.run(state, tail_halvings, max_blocks)

        code, n_steps, curves = state.status, state.steps, state.curves
        if dense:
            curves = tuple(o.reshape(n_points, n_ts) for o in curves)
        code = code.reshape(shape)
        n_steps = n_steps.reshape(shape)
        saved = {}
        if dense:
            # the states come in cm^-3; PL (scaled) is computed from them, densely
            saved = quantities_from_states(model, quantities,
                                           dict(zip(dense.saved_states, curves)), coefs_all,
                                           coefs_all[NREF], n_ts, dtype, shape)
        results = tuple(r.reshape(shape) for r in state.results)
        finals = results[:n_state]
        integrals = dict(zip(integrands, results[n_state:]))
        c = {k: v.reshape(shape) for k, v in coefs_all.items()}
        y_init = tuple(jnp.broadcast_to(jnp.asarray(v, dtype), shape)
                       for v in model.initial_state(c))
        out = physical_summaries(model, names, vals, c, n_ref, finals, integrals, saved, ts_key,
                                 t1, t_ref, dc, shape, dtype, code)
        if return_curves:
            for var in curve_vars:
                out[f"curve_{var}"] = curve(model, var, saved, c, vals, n_ref, y_init)
        return mask_failed(out, code, n_steps, bool(names), shape)

    return run
