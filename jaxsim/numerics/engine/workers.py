"""Several chunks at once: on a CPU, XLA runs most of the loop's small kernels on one thread,
so a chunk in a second thread keeps the other cores busy (docs/performance.md, item 7)."""

from __future__ import annotations

import os
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import jax


def cpu_cores() -> int:
    """Threads worth running side by side: the CPU cores this process may use on a CPU
    backend (XLA:CPU runs one call of a small-kernel loop on one core), 1 on an accelerator."""
    if jax.default_backend() != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Chunks solved at once: on a CPU one per core (at most 4; more threads than cores were
    no faster), on an accelerator one."""
    return min(cpu_cores(), 4)


#: chunk functions that have run (so compiled) through :func:`map_chunks`
_WARM = weakref.WeakSet()


def map_chunks(f, items, workers: int | None = None):
    """Yield ``(key, f(values))`` with host (NumPy) outputs, in the order of ``items``
    (pairs ``(key, values)``), with up to ``workers`` chunks computing at once in threads (JAX
    releases the GIL while a computation runs). The first chunk of a function's first call
    runs alone (one compile, not one per thread); later calls start all workers at once (the
    solo chunk is a measurable share of a short run, docs/performance.md item 13)."""
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
