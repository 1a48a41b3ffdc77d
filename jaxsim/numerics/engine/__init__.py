"""The fast chunk engine (see chunk.py)."""

from jaxsim.numerics.engine.checks import CURVE_VARS, check_chunk_values, check_curve_request
from jaxsim.numerics.engine.chunk import (
    DEFAULT_SUMMARY_POINTS,
    DEFAULT_WINDOW,
    FAILED_ROWS,
    TAIL_FROM_CHUNKS,
    TAIL_MIN_LANES,
    chunk_solver,
    default_block,
    default_lanes,
    default_tail_halvings,
)
from jaxsim.numerics.engine.points import pad_chunk, solve_points, stiffness_order
from jaxsim.numerics.engine.workers import default_workers, map_chunks

__all__ = [
    "CURVE_VARS",
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
