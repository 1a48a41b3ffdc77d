"""Lanes: the trajectories a chunk steps together, and the points of the chunk they take.

A chunk of ``n_points`` points runs on ``lanes`` lanes (``lanes <= n_points``). Each lane holds
one point at a time, with its own time and step size (:class:`LaneState`). Between two blocks
of steps, the lanes done with their point (reached the window's end, or failed) write it out
(:func:`flush`) and take the next point nobody has taken (:func:`refill`): a chunk costs about
its total number of steps, not ``n_points`` times the slowest point's. Once every point has a
lane, the chunk's tail can move to fewer lanes (:func:`compact`). Everything is elementwise per
lane, so a point's result does not depend on the lane that held it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsim.numerics.config import FAILED, MAX_STEPS, SUCCESS

#: failed points whose curve rows are set to NaN per block (more wait for the next block)
FAILED_ROWS = 2

#: fewest lanes a chunk's tail is moved to (:func:`compact`)
TAIL_MIN_LANES = 256

#: key of the per-point reference density (n0, cm^-3) among the lanes' coefficients
NREF = "_n_ref"


class LaneState(NamedTuple):
    """Each lane's trajectory: ``(lanes,)`` arrays, one per quantity (no stacking)."""

    coefs: dict  #: the model's coefficients of the lane's point, and :data:`NREF`
    t: jax.Array  #: time (scaled)
    h: jax.Array  #: step size the controller proposes
    y: tuple  #: the model's states, then the integrals
    f: tuple  #: the field at (t, y) (Tsit5 is FSAL)
    n_steps: jax.Array  #: int32, steps taken on this point, accepted and rejected


class Limits(NamedTuple):
    """When a lane is done with its point."""

    t_end: jax.Array  #: the window's end (scaled): success
    min_step: jax.Array  #: a step size below this: failure
    max_steps: int  #: this many steps: out of steps


def is_live(lanes: LaneState, limits: Limits):
    """Lanes still stepping their point (an idle lane has ``t = t_end``)."""
    return ((lanes.t < limits.t_end) & (lanes.h >= limits.min_step)
            & (lanes.n_steps < limits.max_steps))


def status(lanes: LaneState, limits: Limits):
    """Each lane's status code (:data:`jaxsim.numerics.config.STATUS_MESSAGES`), as its point
    would end now: success at the window's end, failed when its step shrank below
    ``min_step``, else out of steps. Non-finite outputs (status 3) are found afterwards."""
    return jnp.where(lanes.t >= limits.t_end, SUCCESS,
                     jnp.where(lanes.h < limits.min_step, FAILED, MAX_STEPS))


class ChunkState(NamedTuple):
    """What the block loop carries: the lanes, and the chunk's points and outputs."""

    blocks: jax.Array  #: int32, blocks run
    point: jax.Array  #: (lanes,) int32, the point each lane holds (``n_points``: none)
    next_point: jax.Array  #: int32, the first point not yet taken by a lane
    lanes: LaneState
    results: tuple  #: (n_points,) per component of y: final states and integrals
    status: jax.Array  #: (n_points,) int32
    steps: jax.Array  #: (n_points,) int32
    curves: tuple  #: (n_points * save points,) per saved state, cm^-3; () without curves
    log: tuple  #: the block's :class:`.dense.StepLog`; () without curves


def initial_state(n_lanes, n_points, coefs_all, start, n_results, dtype, n_saved=0, n_ts=0,
                  log=lambda n_lanes: ()) -> ChunkState:
    """The first ``n_lanes`` points on the lanes, outputs empty (status: out of steps, curves
    NaN), ``log(n_lanes)`` the empty step log. ``start(coefs)`` starts lanes on points."""
    point = jnp.arange(n_lanes, dtype=jnp.int32)
    coefs = {k: v[:n_lanes] for k, v in coefs_all.items()}
    t, h, y, f = start(coefs)
    lanes = LaneState(coefs, t, h, y, f, jnp.zeros((n_lanes,), jnp.int32))
    results = tuple(jnp.zeros((n_points,), dtype) for _ in range(n_results))
    codes = jnp.full((n_points,), MAX_STEPS, jnp.int32)
    steps = jnp.zeros((n_points,), jnp.int32)
    curves = tuple(jnp.full((n_points * n_ts,), jnp.nan, dtype) for _ in range(n_saved))
    return ChunkState(blocks=jnp.int32(0), point=point, next_point=jnp.int32(n_lanes),
                      lanes=lanes, results=results, status=codes, steps=steps, curves=curves,
                      log=log(n_lanes))


def finished(state: ChunkState, n_points, limits: Limits):
    """Lanes done with the point they hold."""
    return ~is_live(state.lanes, limits) & (state.point < n_points)


def _blank_failed(state: ChunkState, done, n_points, n_ts, limits: Limits):
    """Set the curve rows of up to :data:`FAILED_ROWS` failed points to NaN throughout (not
    only after the failure); further failed lanes stay on their point until the next block.
    Returns (curves, done)."""
    failed = done & (state.lanes.t < limits.t_end)
    done = done & (~failed | (jnp.cumsum(failed.astype(jnp.int32)) <= FAILED_ROWS))
    failed = failed & done
    n_lanes = failed.shape[0]
    lane = jnp.nonzero(failed, size=FAILED_ROWS, fill_value=n_lanes)[0]
    failed_point = jnp.where(lane < n_lanes, state.point[jnp.minimum(lane, n_lanes - 1)],
                             n_points)
    cols = (failed_point[:, None] * n_ts + jnp.arange(n_ts)).reshape(-1)
    curves = tuple(o.at[cols].set(jnp.nan, mode="drop") for o in state.curves)
    return curves, done


def flush(state: ChunkState, done, n_points, limits: Limits, n_ts=None):
    """Write out the points of the lanes ``done``: final states and integrals, status, step
    count; with curves (``n_ts`` save points) a failed point's curve row becomes NaN, a few
    per block (:func:`_blank_failed`). Returns the state and the lanes actually flushed."""
    curves = state.curves
    if n_ts is not None:
        curves, done = _blank_failed(state, done, n_points, n_ts, limits)
    lanes = state.lanes
    where = jnp.where(done, state.point, n_points)  # n_points: dropped
    results = tuple(r.at[where].set(v, mode="drop") for r, v in zip(state.results, lanes.y))
    code = status(lanes, limits)
    codes = state.status.at[where].set(code.astype(jnp.int32), mode="drop")
    steps = state.steps.at[where].set(lanes.n_steps, mode="drop")
    return state._replace(results=results, status=codes, steps=steps, curves=curves), done


def _restart(lanes: LaneState, point, fresh, coefs_all, start, n_points, t_end) -> LaneState:
    """``lanes`` with the ``fresh`` ones started on ``point``; lanes left without a point
    (``point == n_points``) idle at ``t_end``."""
    safe = jnp.minimum(point, n_points - 1)
    coefs = {k: jnp.where(fresh, coefs_all[k][safe], lanes.coefs[k]) for k in lanes.coefs}
    t0, h0, y0, f0 = start(coefs)
    empty = point >= n_points
    t = jnp.where(fresh, t0, jnp.where(empty, t_end, lanes.t))
    h = jnp.where(fresh, h0, lanes.h)
    y = tuple(jnp.where(fresh, a, b) for a, b in zip(y0, lanes.y))
    f = tuple(jnp.where(fresh, a, b) for a, b in zip(f0, lanes.f))
    n_steps = jnp.where(fresh, 0, lanes.n_steps)
    return LaneState(coefs, t, h, y, f, n_steps)


def refill(state: ChunkState, done, coefs_all, start, n_points, t_end) -> ChunkState:
    """The lanes ``done`` take the next points of the chunk, in order (``coefs_all``: every
    point's coefficients; ``start(coefs)`` starts lanes). Once the chunk's points run out, they
    idle."""
    new_point = state.next_point + jnp.cumsum(done.astype(jnp.int32)) - 1
    point = jnp.where(done, jnp.minimum(new_point, n_points), state.point)
    next_point = state.next_point + jnp.sum(done, dtype=jnp.int32)
    lanes = _restart(state.lanes, point, done & (point < n_points), coefs_all, start,
                     n_points, t_end)
    return state._replace(point=point, next_point=next_point, lanes=lanes)


def tail_lanes(n_lanes: int) -> int | None:
    """Lanes of the next compaction from ``n_lanes``: half, rounded up to a multiple of 8
    (lanes in a vector register's scalar remainder run slower), or None below
    :data:`TAIL_MIN_LANES`."""
    n_next = -(-(n_lanes // 2) // 8) * 8
    return None if n_next < TAIL_MIN_LANES or n_next >= n_lanes else n_next


def compact(state: ChunkState, n_lanes, n_points, t_end, empty_log) -> ChunkState:
    """Move the points still held to the first ``n_lanes`` lanes (they must fit), with a fresh
    step log ``empty_log(n_lanes)``; the lanes left over idle. Call it once every point has had
    a lane (``next_point == n_points``): a step then costs about the lanes' share, and the
    points left finish the same way (a point's steps do not depend on its lane)."""
    # the comparison is written twice so that the lowered program stays op for op the one
    # measured in docs/performance.md
    count = jnp.sum(state.point < n_points, dtype=jnp.int32)
    idx = jnp.nonzero(state.point < n_points, size=n_lanes, fill_value=0)[0]
    kept = jnp.arange(n_lanes) < count
    lanes = state.lanes
    lanes = LaneState({k: v[idx] for k, v in lanes.coefs.items()},
                      jnp.where(kept, lanes.t[idx], t_end), lanes.h[idx],
                      tuple(v[idx] for v in lanes.y), tuple(v[idx] for v in lanes.f),
                      lanes.n_steps[idx])
    return state._replace(point=jnp.where(kept, state.point[idx], n_points), lanes=lanes,
                          log=empty_log(n_lanes))
