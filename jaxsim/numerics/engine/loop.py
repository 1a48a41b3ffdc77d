"""The chunk's loop: blocks of steps, each followed by the curves' scatter, a flush of the
finished lanes and a refill; optionally the chunk's tail on fewer lanes.

Inside a block (:meth:`ChunkLoop.steps`) nothing is written but the step log: the scatters
run once per block, not once per step. There is no test whether any lane is still live inside
a block: it cost more than the idle steps of the last block it would save
(docs/performance.md, item 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxsim.numerics.engine.dense import DenseOutput
from jaxsim.numerics.engine.lanes import (
    NREF,
    ChunkState,
    LaneState,
    Limits,
    compact,
    finished,
    flush,
    is_live,
    refill,
    tail_lanes,
)
from jaxsim.numerics.engine.problem import LaneProblem
from jaxsim.numerics.engine.step import Controller, FusionPlan, adaptive_step


@dataclass(frozen=True, eq=False)  # holds traced arrays: hashed by identity
class ChunkLoop:
    """Everything the loop of one chunk needs besides its state (built inside the trace)."""

    problem: LaneProblem
    dense: DenseOutput | None  #: None: no curves
    limits: Limits
    controller: Controller
    plan: FusionPlan
    coefs_all: dict  #: every point's coefficients, ``(n_points,)`` each
    one: jax.Array  #: a 1 XLA cannot fold (:func:`.step.runtime_one`)
    n_points: int
    block: int  #: steps per block

    def field(self, coefs):
        """The field with the lanes' coefficients bound: ``field(t, y)``."""
        return lambda t, y: self.problem.field(t, y, coefs)

    def empty_log(self, n_lanes: int):
        return self.dense.empty_log(n_lanes, self.problem.dtype) if self.dense else ()

    def steps(self, lanes: LaneState, log):
        """``block`` steps of every live lane, logging each step's start for the curves.
        Returns (steps run, lanes, log)."""
        coefs, dense = lanes.coefs, self.dense
        grid = dense.grid if dense else None
        field = self.field(coefs)

        def one_step(carry):
            i, lanes, log = carry
            live = is_live(lanes, self.limits)
            h_try = lanes.h
            if dense:
                before = grid.before(lanes.t)
                log = dense.write(log, i, field, lanes.t, lanes.y, lanes.f, before)
                # at most `window` save points per step (the flush evaluates that many a step)
                h_try = jnp.minimum(lanes.h, grid.cap(before) - lanes.t)
            t, h, y, f = adaptive_step(field, lanes.t, lanes.h, h_try, lanes.y, lanes.f, live,
                                       t_end=self.limits.t_end, controller=self.controller,
                                       plan=self.plan)
            return i + 1, LaneState(None, t, h, y, f, lanes.n_steps + live.astype(jnp.int32)), log

        # the coefficients do not change within a block: not carried by the loop
        i, moved, log = jax.lax.while_loop(lambda carry: carry[0] < self.block, one_step,
                                           (jnp.int32(0), lanes._replace(coefs=None), log))
        return i, moved._replace(coefs=coefs), log

    def block_then_refill(self, state: ChunkState) -> ChunkState:
        """A block of steps; then the curves of its steps, the flush of the lanes done with
        their point and their refill with the next points."""
        n_run, lanes, log = self.steps(state.lanes, state.log)
        curves = state.curves
        if self.dense:
            # the block's end closes its last segment
            log = self.dense.write(log, n_run, self.field(lanes.coefs), lanes.t, lanes.y,
                                   lanes.f)
            curves = self.dense.flush(log, n_run, state.point, lanes.coefs[NREF], curves,
                                      self.one, self.n_points)
        state = state._replace(lanes=lanes, curves=curves, log=log)
        done = finished(state, self.n_points, self.limits)
        state, done = flush(state, done, self.n_points, self.limits,
                            self.dense.grid.n if self.dense else None)
        state = refill(state, done, self.coefs_all, self.problem.start, self.n_points,
                       self.limits.t_end)
        return state._replace(blocks=state.blocks + 1)

    def run(self, state: ChunkState, tail_halvings: int, max_blocks: int) -> ChunkState:
        """Blocks until every point is done (or ``max_blocks``). With ``tail_halvings``, each
        time the points left fit half the lanes (and none waits for a lane) they move there
        (:func:`.lanes.compact`): the chunk's tail, where lanes go idle one by one, then costs
        about half as much per step (docs/performance.md, item 12)."""
        n_points = self.n_points

        def busy(state):
            return (state.blocks < max_blocks) & jnp.any(state.point < n_points)

        n_lanes = state.point.shape[0]
        for _ in range(tail_halvings):
            n_next = tail_lanes(n_lanes)
            if n_next is None:
                break

            def until_they_fit(state, n_next=n_next):
                n_held = jnp.sum(state.point < n_points, dtype=jnp.int32)
                return busy(state) & ((state.next_point < n_points) | (n_held > n_next))

            state = jax.lax.while_loop(until_they_fit, self.block_then_refill, state)
            state = compact(state, n_next, n_points, self.limits.t_end, self.empty_log)
            n_lanes = n_next
        return jax.lax.while_loop(busy, self.block_then_refill, state)
