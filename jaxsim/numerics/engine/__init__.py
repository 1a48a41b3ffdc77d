r"""The fast batched engine: one compiled function per chunk of grid points.

``chunk_solver(model, t1=..., summaries=..., curve_ts=...)`` returns ``f(values)`` that solves
a whole chunk of parameter points (each value an array of shape ``(chunk,)``) in one lock-step
adaptive Runge-Kutta loop and returns summaries, curves, a status and a step count per point.
The sweep, the benchmark and the sensitivity analysis build on it.

Why not ``jit(vmap(diffeqsolve))``: under ``vmap`` the solver steps every lane until the slowest
lane is done, and ``SaveAt(ts=...)`` runs an inner loop over the save points inside every step.
Here instead (DESIGN §2.1; measurements in docs/performance.md):

- :mod:`.lanes`: ``lanes`` trajectories run at a time, each with its own time and step; lanes
  done with their point are flushed and refilled with the next points between blocks of
  steps, and the chunk's tail can move to fewer lanes;
- :mod:`.loop`: the blocks of steps and what runs between them;
- :mod:`.step`: one Tsit5 step (:mod:`.tableau`: diffrax's coefficients) with diffrax's
  I-controller, written so that XLA:CPU computes its stages once;
- :mod:`.problem`: the model's states plus the integrals the summaries need, carried as extra
  state, and a lane's first step;
- :mod:`.dense`: curves from a quintic Hermite log of the steps, scattered once per block;
- :mod:`.outputs`: physical summaries, curves and status from the loop's results;
- :mod:`.chunk`: :func:`chunk_solver`, which assembles them;
- :mod:`.workers`, :mod:`.points`: several chunks at once in threads on a CPU, and any number
  of points through a chunk function.

Order the grid by :func:`stiffness_order`, stiffest first (:func:`solve_points` does): chunks
then hold similar points, and within a chunk the long trajectories start first while lanes that
finish early take the cheap ones (longest job first). Everything is pure JAX, so ``jax.jvp``
goes through (forward mode).
"""

from jaxsim.numerics.engine.checks import (
    check_chunk_values,
    check_curve_request,
)
from jaxsim.numerics.engine.chunk import (
    DEFAULT_SUMMARY_POINTS,
    DEFAULT_WINDOW,
    TAIL_FROM_CHUNKS,
    chunk_solver,
    default_block,
    default_lanes,
    default_tail_halvings,
)
from jaxsim.numerics.engine.lanes import FAILED_ROWS, TAIL_MIN_LANES
from jaxsim.numerics.engine.points import pad_chunk, solve_points, stiffness_order
from jaxsim.numerics.engine.workers import default_workers, map_chunks

__all__ = [
    "DEFAULT_SUMMARY_POINTS",
    "DEFAULT_WINDOW",
    "FAILED_ROWS",
    "TAIL_FROM_CHUNKS",
    "TAIL_MIN_LANES",
    "check_chunk_values",
    "check_curve_request",
    "chunk_solver",
    "default_block",
    "default_lanes",
    "default_tail_halvings",
    "default_workers",
    "map_chunks",
    "pad_chunk",
    "solve_points",
    "stiffness_order",
]
