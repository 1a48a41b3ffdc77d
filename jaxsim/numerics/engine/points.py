"""Any number of points through one chunk function: ordered by stiffness, cut into chunks,
the last one padded, the outputs put back in input order."""

from __future__ import annotations

import numpy as np

from jaxsim.numerics.engine.workers import map_chunks
from jaxsim.numerics.padding import pad_points
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
    """Each ``(m,)`` array padded to ``(size,)`` (:func:`jaxsim.numerics.padding.pad_points`);
    returns (padded, m)."""
    m = max(np.shape(v)[0] for v in values.values())
    return pad_points({k: np.asarray(v) for k, v in values.items()}, size), m


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
