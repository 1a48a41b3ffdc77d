"""Any number of points through one chunk function: ordered by stiffness, cut into chunks,
the last one padded, the outputs put back in input order."""

from __future__ import annotations

import numpy as np

from jaxsim.numerics.engine.workers import map_chunks
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model


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
