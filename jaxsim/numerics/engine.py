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
  :math:`\varepsilon^{-1/5}` taken in float32 (:func:`_inv_fifth_root`); a step counts as
  finite when the states are;
- each step's stages are computed once: XLA:CPU compiles each output of the loop body into
  its own kernel, and each kernel recomputed every stage its output depends on. The new states and their error estimates come
  out of one kernel, then the new time, step size, states and field out of another: the
  operands of one variadic reduce (:func:`_one_fusion`). With more than two integrals the
  stage states are materialised instead (:func:`_materialise`) and only the states packed;
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
import os
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import diffrax
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


def _tsit5_tables():
    """Tsit5's tableau (from diffrax) and the matrix M of its continuous extension.

    diffrax's ``_Tsit5Interpolation`` gives :math:`y(\\theta) = y_0 + \\sum_i b_i(\\theta) k_i`
    with quartic :math:`b_i`, :math:`b_i(0) = 0`; M[i, p-1] is the coefficient of
    :math:`\\theta^p`, recovered exactly from values at four nodes (checked at a fifth).
    """
    tab = diffrax.Tsit5.tableau
    a = tuple(tuple(float(x) for x in row) for row in tab.a_lower)
    c = (0.0,) + tuple(float(x) for x in tab.c)
    b_sol = tuple(float(x) for x in tab.b_sol)
    b_err = tuple(float(x) for x in tab.b_error)
    interp_cls = diffrax.Tsit5.interpolation_cls
    eye = np.eye(7)

    def b_of(theta):
        interp = interp_cls(t0=0.0, t1=1.0, y0=jnp.zeros(7), y1=jnp.zeros(7), k=jnp.asarray(eye))
        return np.asarray(interp.evaluate(theta), dtype=np.float64)

    nodes = np.array([0.25, 0.5, 0.75, 1.0])
    vals = np.stack([b_of(th) for th in nodes])  # (4, 7)
    vander = nodes[:, None] ** np.arange(1, 5)[None, :]
    m = np.linalg.solve(vander, vals).T  # (7, 4)
    check = b_of(0.6) - (0.6 ** np.arange(1, 5)) @ m.T
    assert np.max(np.abs(check)) < 1e-9, "Tsit5 interpolant is not the expected quartic"
    return a, c, b_sol, b_err, tuple(tuple(float(x) for x in row) for row in m)


_A, _C, _B_SOL, _B_ERR, _M = _tsit5_tables()


_ERR_ABS_SUM = sum(abs(x) for x in _B_ERR)


def _lin(coefs, ks, j):
    """sum_i coefs[i] * ks[i][j], skipping zero coefficients (the tableau is sparse)."""
    acc = None
    for w, k in zip(coefs, ks):
        if w != 0.0:
            term = w * k[j]
            acc = term if acc is None else acc + term
    return acc


def _rk_step(field, t, h, y, f0, keep=lambda k: k):
    """One Tsit5 step from (t, y) with f0 = field(t, y) (FSAL). Returns y1, f1, err, ks.

    ``keep`` is applied to each stage's input state (see :func:`_materialise`)."""
    ks = [f0]
    n = len(y)
    for s in range(1, 7):
        ys = keep(tuple(y[j] + h * _lin(_A[s - 1], ks, j) for j in range(n)))
        ks.append(field(t + _C[s] * h, ys))
    # FSAL: the last stage is evaluated at y1 = y + h sum b_i k_i (a_lower[-1] == b_sol)
    y1 = ys
    err = tuple(h * _lin(_B_ERR, ks, j) for j in range(n))
    return y1, ks[-1], err, ks


def _inv_fifth_root(x):
    r""":math:`x^{-1/5}` of the controller, in float32 as :math:`\exp(-\log(x)/5)`: XLA:CPU's
    ``power`` is a scalar libm call (measured 11 ns per lane in float64, 9 in float32, against
    3.5 and 1.5 here; ~10 % of a curve step); a step-size factor needs no more digits."""
    return jnp.exp(-0.2 * jnp.log(x.astype(jnp.float32))).astype(x.dtype)


def _one_fusion(xs):
    """``xs`` unchanged (but -0.0 becomes +0.0), computed in one XLA kernel: the outputs of a
    variadic reduce over a leading axis of 2 (each value, then 0). All of ``xs`` must have one
    shape.

    XLA:CPU fuses one output per kernel, so each output of a step (new time, step size,
    states, field) recomputed every stage it depends on; a reduce with several operands is
    one kernel, and its operands' common subexpressions are computed once per element."""
    if jax.default_backend() != "cpu":
        return tuple(xs)
    ops = tuple(jnp.stack([x, jnp.zeros_like(x)]) for x in xs)
    init = tuple(jnp.zeros((), x.dtype) for x in xs)
    return tuple(jax.lax.reduce(ops, init, lambda a, b: tuple(p + q for p, q in zip(a, b)),
                                (0,)))


def _materialise(one, n_keep):
    r"""``keep`` for :func:`_rk_step`: divide the first ``n_keep`` components (the model's
    states) of each stage's input by ``one`` (a 1 computed at run time, so not folded; the
    division is exact).

    XLA:CPU fuses elementwise producers into every consumer, so each output of the loop body
    (new state, integrals, field, step size, ...) recomputed the stages. A floating division
    counts as expensive, and expensive producers are not duplicated: the stage states are
    computed once. Used with more than two integrals, where one kernel for the whole step
    (:func:`_one_fusion`) ran slower (docs/performance.md).
    """
    return lambda k: tuple(x / one if j < n_keep else x for j, x in enumerate(k))


def _pl_states(model) -> set:
    """Indices of the states ``model.pl`` depends on: changing the state (to another value or
    to NaN) changes the result. The others are not saved for curves (PL is computed with 0)."""
    n_state = len(model.state_names)
    names = set()
    try:
        c = {k: np.float64(0.5) for k in model.coefficients(
            {row.name: row.default for row in model.parameters}, 1e16, 1e-9)}
        base = np.asarray(model.pl((np.float64(0.5),) * n_state, c))
        for j in range(n_state):
            for other in (np.nan, 0.7, 0.0):
                y = tuple(np.float64(other) if i == j else np.float64(0.5)
                          for i in range(n_state))
                val = np.asarray(model.pl(y, c))
                if not (np.isfinite(val) and val == base):
                    names.add(j)
    except Exception:  # any doubt: interpolate every state
        return set(range(n_state))
    return names


def _needed_integrals(model, names):
    """Integrands (scaled) needed by the integral summaries in ``names``."""
    need = []

    def add(x):
        if x not in need:
            need.append(x)

    for name in names:
        if name == "tau_mean_pl":
            add("pl"), add("t_pl")
        elif name == "tau_mean_n":
            add("n"), add("t_n")
        elif name in ("plqy", "pl_integrated"):
            add("pl")
        elif name.startswith("share_") and name != "share_remaining":
            ch = name[len("share_"):]
            if ch in model.fluxes_reported:
                add(ch)
    return tuple(need)


def _check_summaries(model, summaries):
    names = observables.check_summary_names(model, summaries)
    table = observables.summary_table(model)
    return names, any(table[n].needs_curve for n in names)


def check_chunk_values(model, values: dict, extra: tuple = ()) -> int:
    """Names (the model's parameters, or ``extra``) and shapes (1-D, one length) of a chunk's
    inputs; returns the chunk length. Values themselves are checked by the caller."""
    for k in values:
        if k not in extra:
            table_lookup(model.parameters, k, model=model.name)
    if not values:
        raise ParameterError("values = {}: expected at least one parameter array (chunk,)")
    shapes = {k: jnp.shape(v) for k, v in values.items()}
    n = max((s[0] for s in shapes.values() if len(s) == 1), default=None)
    if n is None or any(len(s) != 1 or s[0] != n for s in shapes.values()):
        raise ParameterError(f"values have shapes {shapes}: expected 1-D arrays of one length")
    return n


def check_curve_request(model, t1: float, curve_ts, curve_vars):
    """Validated (curve_ts or None, curve_vars): times in [0, t1], known variables."""
    curve_vars = (curve_vars,) if isinstance(curve_vars, str) else tuple(curve_vars)
    if curve_ts is None:
        return None, curve_vars
    curve_ts = check_times(curve_ts, name="curve_ts")
    if curve_ts[-1] > t1 * (1 + 1e-12):
        raise ParameterError(f"curve_ts ends at {float(curve_ts[-1]):g} s, after t1 = {t1:g} s: "
                             "expected times <= t1")
    known = observables.curve_units(model)  # the model's states, pl, pl_norm
    for var in curve_vars:
        if var not in known:
            raise ParameterError(f"curve variable {var!r} is not known for model "
                                 f"{model.name!r}: expected one of {', '.join(known)}")
    return curve_ts, curve_vars


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
        curve_vars: which curves: the model's states (cm^-3), ``pl`` (cm^-3 s^-1),
            ``pl_norm`` (PL / PL(0)).
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
    names, needs_curve = _check_summaries(model, summaries)
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


def _grid_fn(ts_s: np.ndarray, dtype, t_end: float, k_win: int):
    """``g(idx)``: save time number ``idx`` (scaled; ``inf`` from ``len(ts)`` on), with

    - ``g.before(t)``: the number of save times before ``t`` (all of them once ``t`` reaches
      the window's end), so a step from ``t0`` to ``t1`` covers the save points
      ``before(t0) <= k < before(t1)``;
    - ``g.cap(p)``: the latest end of a step from a time with ``before == p`` that covers at
      most ``k_win`` save points: half a spacing short of save point ``p + k_win`` (so that
      rounding cannot add one), ``inf`` when fewer than ``k_win`` points are left.

    Evenly spaced grids (linear time axes, TCSPC bins) are computed arithmetically; other grids
    are searched in the padded table.
    """
    n = len(ts_s)
    if n > 1:
        step = (ts_s[-1] - ts_s[0]) / (n - 1)
        uniform = step > 0 and np.allclose(np.diff(ts_s), step, rtol=1e-9, atol=0)
    else:
        step, uniform = 1.0, True
    first = float(ts_s[0])
    table = jnp.asarray(np.concatenate([ts_s, [np.inf]]), dtype)
    te = jnp.asarray(t_end, dtype)

    def g(idx):
        if uniform:
            val = first + idx.astype(dtype) * jnp.asarray(step, dtype)
            # the last point exactly (t1), not first + (n-1) * step
            val = jnp.where(idx == n - 1, jnp.asarray(ts_s[-1], dtype), val)
            return jnp.where(idx < n, val, jnp.inf)
        return jnp.take(table, jnp.minimum(idx, n), mode="clip")

    def before(t):
        if uniform:
            k = jnp.ceil((t - first) / jnp.asarray(step, dtype))
            k = jnp.clip(k, 0, n).astype(jnp.int32)
        else:
            k = jnp.searchsorted(table[:-1], t, side="left", method="scan_unrolled")
            k = k.astype(jnp.int32)
        return jnp.where(t >= te, n, k)

    def cap(p):
        m = p + k_win
        if uniform:
            c = first + (m - 0.5).astype(dtype) * jnp.asarray(step, dtype)
        else:
            lo = jnp.take(table, jnp.clip(m - 1, 0, n), mode="clip")
            hi = jnp.take(table, jnp.minimum(m, n), mode="clip")
            c = lo + 0.5 * (hi - lo)
        return jnp.where(m < n, c, jnp.inf)

    g.before, g.cap = before, cap
    g.step = float(step) if uniform else None
    return g


def _build_core(model, t1, names, curve_vars, ts_key, return_curves, config, window, lanes, dc,
                block, tail):

    dtype = DTYPES[config.dtype]
    tr = config.t_ref
    pnames = model.parameter_names
    n_state = len(model.state_names)
    integrands = _needed_integrals(model, names)
    rtol, atol = float(config.rtol), float(config.abs_tol)
    t_end = t1 / tr
    save = ts_key is not None
    max_steps = int(config.max_steps)
    if save:
        ts_s = np.minimum(np.asarray(ts_key, dtype=np.float64) / tr, t_end)
        n_ts = len(ts_s)
        k_win = int(min(window, n_ts))
        grid = _grid_fn(ts_s, dtype, t_end, k_win)
        gaps = np.diff(ts_s)
        resolution = 4 * float(np.spacing(np.asarray(t_end, dtype)))
        if gaps.size and gaps.min() < resolution:
            raise ParameterError(
                f"curve_ts: two save times are {gaps.min() * config.t_ref:.3g} s apart, below "
                f"what {config.dtype} resolves at t1 ({resolution * config.t_ref:.3g} s): expected "
                "coarser save times, or dtype float64")
        # scaled quantities saved on the grid: states by name, and pl
        state_index = {s: j for j, s in enumerate(model.state_names)}
        table = observables.summary_table(model)
        quantities = []
        for var in curve_vars:
            quantities.append("pl" if var == "pl_norm" else var)
        for name in names:
            if table[name].needs_curve:
                quantities.append("pl" if name.endswith("_pl") else model.free_state.name)
        quantities = tuple(dict.fromkeys(quantities))
        m_idx = jnp.arange(k_win, dtype=jnp.int32)
        # states interpolated on the grid (scattered): those the quantities need; PL is
        # computed afterwards from them (pl usually needs n only: one scatter, not two)
        need = set()
        for q in quantities:
            need |= {state_index[q]} if q in state_index else _pl_states(model)
        saved_states = tuple(sorted(need))

    def field(t, y, c):
        s = y[:n_state]
        ds = tuple(model.vector_field(t, s, c))
        if not integrands:
            return ds
        pl = model.pl(s, c) if any(k in ("pl", "t_pl") for k in integrands) else None
        fl = model.fluxes(s, c) if any(k in model.fluxes_reported for k in integrands) else {}
        extra = []
        for k in integrands:
            if k == "pl":
                extra.append(pl)
            elif k == "t_pl":
                extra.append(t * pl)
            elif k == "n":
                extra.append(s[0])
            elif k == "t_n":
                extra.append(t * s[0])
            else:
                extra.append(fl[k])
        return ds + tuple(extra)

    def init_lane(c):
        """Initial state, vector field and first step (Hairer & Wanner II.4: 0.01 |y0|/|f0|)."""
        shape = jnp.shape(c["u0"])
        zeros = jnp.zeros(shape, dtype)
        y0 = tuple(jnp.broadcast_to(jnp.asarray(v, dtype), shape)
                   for v in model.initial_state(c)) + tuple(zeros for _ in integrands)
        f0 = field(zeros, y0, c)
        sc = [atol + rtol * jnp.abs(y0[j]) for j in range(n_state)]
        d0 = jnp.sqrt(sum((y0[j] / sc[j]) ** 2 for j in range(n_state)) / n_state)
        d1 = jnp.sqrt(sum((f0[j] / sc[j]) ** 2 for j in range(n_state)) / n_state)
        h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.maximum(d1, 1e-30), 1e-6)
        return y0, f0, jnp.minimum(h0, jnp.asarray(t_end, dtype))

    def run(pvals):
        vals = dict(zip(pnames, pvals))
        n_ref = vals["n0"]
        # a 1 that XLA cannot fold away, also when this is traced inside another jit (shard_map,
        # jvp): n0 / n0, exact for the positive n0 every point has
        first = jnp.reshape(jnp.asarray(n_ref, dtype), (-1,))[0]
        one = first / first
        # measured (docs/performance.md, 2 workers): up to 2 integrals, the whole step fits one
        # kernel (bench summaries 1.8x, curves 1.1-1.2x); with more, that kernel ran slower
        # (default sweep, 7 integrals: 0.7x) than materialising the stage states and packing
        # only the states (1.27x over materialising alone; 4 integrals: 1.8x)
        many = len(integrands) > 2
        keep = _materialise(one, n_state) if many else (lambda k: k)
        n_pack = n_state if many else n_state + len(integrands)
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

        def scale(a, b):
            return atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b))

        def live_of(t, h, nst):
            return (t < te) & (h >= tiny_h) & (nst < max_steps)

        noise = 4.0 * float(np.finfo(dtype).eps) * _ERR_ABS_SUM

        def step(c, t, h, h_try, y, f, live):
            """One adaptive Tsit5 step of the ``live`` lanes, of at most ``h_try`` (the others
            keep their state). Returns the new (t, h, y, f)."""
            rem = te - t
            last = h_try >= rem * (1 - 1e-12)
            # step by exactly fl(t + h) - t, so that t stays the time of the state (in float32,
            # the rounding of t + h over ~100 steps shifted the curves by up to 1e-5)
            h_eff = jnp.where(last, rem, (t + h_try) - t)
            # a step below the resolution of t cannot advance it: the lane fails (status 2)
            stuck = live & (h_eff <= 0)
            y1, f1, err, _ = _rk_step(lambda tt, yy: field(tt, yy, c), t, h_eff, y, f, keep)
            # the stages once (see _one_fusion): the new states and their error estimates in
            # one kernel (with many integrals, the states only: the integrals' sums come from
            # the materialised stage states), then the new field from the new states
            packed = tuple(y1[:n_pack]) + tuple(err[:n_state])
            packed = _one_fusion(packed)
            y1 = tuple(packed[:n_pack]) + tuple(y1[n_pack:])
            err = packed[n_pack:]
            f1 = field(t + h_eff, y1, c)
            # minus the error estimate's own rounding noise (~eps h |f| sum|b_err|): in
            # float32 at rtol 2e-7 it kept the controller from growing slow steps
            # (the step sizes are not differentiated: sqrt at an error of 0 has no derivative,
            # and a tangent of the step size only moves the result within the tolerance)
            ratio = jax.lax.stop_gradient(jnp.sqrt(sum(
                (jnp.maximum(jnp.abs(err[j]) - noise * jnp.abs(h_eff * f[j]), 0.0)
                 / scale(y[j], y1[j])) ** 2 for j in range(n_state)) / n_state))
            # the states only: with the integrals in it, every output of the step recomputed
            # every integral (they depend on the states alone; a non-finite integral still
            # shows as a non-finite summary, status 3)
            finite = jnp.isfinite(ratio)
            for j in range(n_state):
                finite = finite & jnp.isfinite(y1[j])
            acc = (ratio <= 1.0) & finite & live
            fac = jnp.clip(0.9 * _inv_fifth_root(jnp.where(finite, ratio, 1e10)), 0.2, 10.0)
            h_new = h_eff * jnp.where(acc, fac, jnp.minimum(fac, 1.0))
            # a step shortened to meet t1 or a save window does not shrink the next one
            h_new = jnp.where(acc & (h_eff < h), jnp.maximum(h_new, h), h_new)
            h_new = jnp.where(live, jnp.where(stuck, 0.0, h_new), h)
            t_new = jnp.where(acc, jnp.where(last, te, t + h_eff), t)
            y_new = tuple(jnp.where(acc, a, b) for a, b in zip(y1, y))
            f_new = tuple(jnp.where(acc, a, b) for a, b in zip(f1, f))
            t_new, h_new, *rest = _one_fusion((t_new, h_new) + y_new + f_new)
            y_new, f_new = tuple(rest[:len(y)]), tuple(rest[len(y):])
            return t_new, h_new, y_new, f_new

        def second_derivative(t, y, f, c):
            """y'' = d/dt field(t, y(t)): one jvp of the field along (1, y')."""
            return jax.jvp(lambda tt, yy: field(tt, yy, c), (t, y), (jnp.ones_like(t), f))[1]

        def log_row(t, y, f, c):
            """(t, then y, y', y'' of each saved state): a quintic Hermite segment needs these
            at both ends. y'' = d/dt field(t, y(t)) by one jvp: no stage values are kept."""
            acc2 = second_derivative(t, y, f, c)
            cols = [t]
            for j in saved_states:
                cols += [y[j], f[j], acc2[j]]
            return jnp.stack(cols, axis=-1)

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
                    rows, prow = logs
                    rows = jax.lax.dynamic_update_index_in_dim(rows, log_row(t, y, f, c), i, 1)
                    prow = jax.lax.dynamic_update_index_in_dim(prow, p, i, 1)
                    logs = (rows, prow)
                    # at most k_win save points per step (the flush evaluates k_win per row)
                    h_try = jnp.minimum(h, grid.cap(p) - t)
                t_new, h_new, y_new, f_new = step(c, t, h, h_try, y, f, live)
                return (i + 1, t_new, h_new, y_new, f_new, nst + live.astype(jnp.int32), logs)

            return jax.lax.while_loop(cond, one_step, (jnp.int32(0),) + blk)

        def flush(rows, prow, n_it, pid, nref, outs):
            """Evaluate each step's quintic Hermite segment on the (at most k_win) save points
            it covers and scatter them, in cm^-3, into the outputs, lane by lane (ascending
            addresses; the slots a step does not use point past the end and are dropped)."""
            r0, r1 = rows[:, :-1], rows[:, 1:]
            p0 = prow[:, :-1]
            count = jnp.where((jnp.arange(nblock) < n_it)[None, :], prow[:, 1:] - p0, 0)
            # per step (lanes, block): the segment's coefficients in theta, in cm^-3; divided by
            # the runtime 1 so that XLA computes them once per step, not once per slot
            t0, hh = r0[..., 0], r1[..., 0] - r0[..., 0]
            inv_h = jnp.where(hh > 0, 1.0 / jnp.where(hh > 0, hh, 1.0), 0.0)
            half = 0.5 * hh * hh
            scale_ = nref[:, None]
            coefs = []
            for q in range(len(saved_states)):
                ya, fa, aa = (r0[..., 1 + 3 * q + e] for e in range(3))
                yb, fb, ab = (r1[..., 1 + 3 * q + e] for e in range(3))
                d0 = yb - ya - hh * fa - half * aa
                d1 = hh * (fb - fa) - 2.0 * half * aa
                d2 = 2.0 * half * (ab - aa)
                cs = (ya, hh * fa, half * aa, 10.0 * d0 - 4.0 * d1 + 0.5 * d2,
                      -15.0 * d0 + 7.0 * d1 - d2, 6.0 * d0 - 3.0 * d1 + 0.5 * d2)
                st = jnp.stack(cs, axis=-1) * scale_[..., None] / one
                coefs.append(tuple(st[..., e] for e in range(6)))
            # per slot (lanes, block, k): each lane's writes are contiguous in its output row
            tr_ = lambda a: a[..., None]  # noqa: E731
            ids = tr_(p0) + m_idx
            valid = m_idx < tr_(count)
            tau = grid(jnp.minimum(ids, n_ts - 1))
            theta = jnp.clip((tau - tr_(t0)) * tr_(inv_h), 0.0, 1.0)
            flat = jnp.where(valid, pid[:, None, None] * n_ts + ids, npts * n_ts).reshape(-1)
            new = []
            for o, cs in zip(outs, coefs):
                c0, c1, c2, c3, c4, c5 = (tr_(x) for x in cs)
                val = c0 + theta * (c1 + theta * (c2 + theta * (c3 + theta * (c4 + theta * c5))))
                new.append(o.at[flat].set(val.reshape(-1), mode="drop"))
            return tuple(new)

        def start(c):
            """Fresh lanes: initial state, field, first step."""
            y0, f0, h0 = init_lane(c)
            return jnp.zeros_like(h0), h0, y0, f0

        def take(pid, fresh, lane):
            """Lane state with ``fresh`` lanes (re)started on point ``pid``."""
            c, t, h, y, f, nst = lane
            safe = jnp.minimum(pid, npts - 1)
            c = {k: jnp.where(fresh, c_all[k][safe], c[k]) for k in c}
            tn, hn, yn, fn = start(c)
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
                rows, prow = logs
                rows = jax.lax.dynamic_update_index_in_dim(rows, log_row(t, y, f, c), n_it, 1)
                prow = jax.lax.dynamic_update_index_in_dim(prow, grid.before(t), n_it, 1)
                outs = flush(rows, prow, n_it, pid, c[NREF], outs)
                logs = (rows, prow)
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
        t0_, h0_, y0_, f0_ = start(c0)
        lane0 = (c0, t0_, h0_, y0_, f0_, jnp.zeros((nl,), jnp.int32))
        res0 = tuple(jnp.zeros((npts,), dtype) for _ in range(n_res))
        codes0 = jnp.full((npts,), MAX_STEPS, jnp.int32)
        steps0 = jnp.zeros((npts,), jnp.int32)
        outs0 = tuple(jnp.full((npts * n_ts,), jnp.nan, dtype)
                      for _ in saved_states) if save else ()
        max_blocks = min(npts * (max_steps // nblock + 2), np.iinfo(np.int32).max)
        def logs_for(n_l):
            return ((jnp.zeros((n_l, nblock + 1, 1 + 3 * len(saved_states)), dtype),
                     jnp.zeros((n_l, nblock + 1), jnp.int32)) if save else ())

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
            st = dict(zip(saved_states, outs))
            zero = jnp.zeros((npts, n_ts), dtype)
            inv = 1.0 / c_all[NREF][:, None]
            full = tuple(st[j] * inv if j in st else zero for j in range(n_state))
            cc = {k: v[:, None] for k, v in c_all.items()}
            saved = {q: (st[state_index[q]] if q in state_index else model.pl(full, cc))
                     .reshape(bshape + (n_ts,)) for q in quantities}
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
    if var in model.state_names:
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
        free = model.free_state.name
        if free in saved:
            states[free] = saved[free]
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


def stiffness_order(model, values) -> np.ndarray:
    """Permutation that sorts points by stiffness, the model's ``max_rate`` (for
    ``trap_detrap``: :math:`A + D + K_1 + 2 B n_0 + 3 C n_0^2`), which predicts the number of
    steps a point needs; chunks of consecutive sorted points waste few lock-step iterations."""
    model = get_model(model)
    values = dict(values)
    n = max((np.size(v) for v in values.values()), default=1)
    full = {row.name: np.broadcast_to(np.asarray(values.get(row.name, row.default), float), (n,))
            for row in model.parameters}
    return np.argsort(np.asarray(model.max_rate(full)), kind="stable")


def pad_chunk(values: dict, size: int) -> tuple[dict, int]:
    """Pad each ``(m,)`` array to ``(size,)`` by repeating its last point (a valid point, so
    the padded lanes cost nothing extra and produce no failures). Returns (padded, m)."""
    m = max(np.shape(v)[0] for v in values.values())
    if m > size:
        raise ParameterError(f"chunk of {m} points does not fit the chunk size {size}")
    out = {}
    for k, v in values.items():
        v = np.asarray(v)
        out[k] = np.concatenate([v, np.repeat(v[-1:], size - m)]) if m < size else v
    return out, m


def default_workers() -> int:
    """Chunks solved at once: on a CPU one per core (at most 4), since XLA runs most of the
    loop's small kernels on one thread and a second chunk keeps the other cores busy (measured
    1.3-1.5x on 2 cores, docs/performance.md); on an accelerator one."""
    if jax.default_backend() != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


#: chunk functions that have run (so compiled) through :func:`map_chunks`
_WARM = weakref.WeakSet()


def map_chunks(f, items, workers: int | None = None):
    """Yield ``(key, f(values))`` with host (NumPy) outputs, in the order of ``items``
    (pairs ``(key, values)``), with up to ``workers`` chunks computing at once in threads (JAX
    releases the GIL while a computation runs). The first chunk of a function's first call
    runs alone (one compile, not one per thread); later calls start all workers at once (with
    8 chunks on 2 workers the solo chunk had cost ~10 % of the run)."""
    workers = default_workers() if workers is None else int(workers)
    items = iter(items)
    try:
        warm = f in _WARM
    except TypeError:  # not weakly referenceable
        warm = False
    if not warm:
        first = next(items, None)
        if first is None:
            return
        yield first[0], jax.device_get(f(first[1]))
        try:
            _WARM.add(f)
        except TypeError:
            pass
    if workers <= 1:
        for key, values in items:
            yield key, jax.device_get(f(values))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for key, values in items:
            pending.append((key, pool.submit(lambda v=values: jax.device_get(f(v)))))
            # one more queued than there are workers: a worker never waits for the consumer
            if len(pending) > workers:
                key0, fut = pending.popleft()
                yield key0, fut.result()
        while pending:
            key0, fut = pending.popleft()
            yield key0, fut.result()


def solve_points(f, values: dict, chunk_size: int, *, sort: bool = True,
                 workers: int | None = None) -> dict:
    """Run ``f = chunk_solver(...)`` over any number of points in chunks of ``chunk_size``
    (sorted by stiffness, stiffest first; last chunk padded; one compile; ``workers`` chunks at
    once, see :func:`map_chunks`), returning outputs in input order as NumPy arrays. For many
    curves prefer writing each chunk's output where it goes (a store): assembling one big
    array in input order costs a copy of it."""
    values = {k: np.asarray(v, float) for k, v in values.items()}
    n = max(np.size(v) for v in values.values())
    values = {k: np.broadcast_to(v, (n,)) for k, v in values.items()}
    # stiffest first: lanes that finish early take the cheap points left (longest job first)
    order = stiffness_order(f.model, values)[::-1] if sort else np.arange(n)

    def chunks():
        for start in range(0, n, chunk_size):
            idx = order[start:start + chunk_size]
            chunk, m = pad_chunk({k: v[idx] for k, v in values.items()}, chunk_size)
            yield (idx, m), chunk

    results = {}
    for (idx, m), out in map_chunks(f, chunks(), workers):
        for k, v in out.items():
            v = np.asarray(v)[:m]
            if k not in results:
                results[k] = np.empty((n,) + v.shape[1:], v.dtype)
            results[k][idx] = v
    return results
