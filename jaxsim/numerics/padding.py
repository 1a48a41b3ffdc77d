"""Padding batches to a few fixed sizes, so ``jit`` compiles once per size, not per call.

Padded lanes repeat the batch's first point: a valid point of the same stiffness, so they add
no steps to the batch and no failures; their results are dropped.
"""

from __future__ import annotations

import numpy as np

from jaxsim.physics.errors import ParameterError


def bucket_size(n: int) -> int:
    """Lanes a batch of n is padded to: a power of two >= 8 up to 1024, then multiples of 1024
    (a handful of compiles, each a few seconds, instead of one per batch size)."""
    if n <= 1024:
        return max(8, 1 << max(n - 1, 0).bit_length())
    return -(-n // 1024) * 1024


def pad_points(values, size: int):
    """Each array of ``values`` (a dict of arrays, or one array) padded along axis 0 to
    ``size`` by repeating its first row."""
    if isinstance(values, dict):
        return {k: pad_points(v, size) for k, v in values.items()}
    v = np.asarray(values)
    m = v.shape[0]
    if m > size:
        raise ParameterError(f"a batch of {m} points does not fit the padded size {size}")
    if m == size:
        return v
    return np.concatenate([v, np.repeat(v[:1], size - m, axis=0)], axis=0)


__all__ = ["bucket_size", "pad_points"]
