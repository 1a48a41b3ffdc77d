r"""Curves: a quintic Hermite log of the accepted steps, evaluated on the save points.

At the start of every step the loop logs :math:`(t, y, y', y'')` of the saved states
(:math:`y'` is the carried field, :math:`y'' = \mathrm{d}f/\mathrm{d}t` one ``jvp``): values
the loop has anyway. The stages are not logged: Tsit5's own quartic interpolant would need
them, and every extra output built from the stages makes XLA:CPU recompute the step
(:mod:`.step`). At the end of a block (:func:`DenseOutput.flush`) each step's segment

.. math:: y(t_0 + \theta h) = y_0 + \theta h y_0' + \tfrac12 \theta^2 h^2 y_0''
          + \theta^3 (c_3 + \theta (c_4 + \theta c_5))

is evaluated on the (at most ``window``) save points it covers and scattered, lane by lane,
into the curves; a step that would cover more is cut short (:meth:`SaveGrid.cap`). The
interpolation error, :math:`O(h^6)`, stays far below the step's own. Only states are saved,
in cm^-3; PL is computed from them afterwards, densely (:func:`quantities_from_states`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: scaled quantity saved on the grid for each curve variable


class SaveGrid:
    """The save times (scaled), with

    - ``grid.time(idx)``: save time number ``idx`` (``inf`` from ``len(ts)`` on);
    - ``grid.before(t)``: the number of save times before ``t`` (all of them once ``t`` reaches
      the window's end), so a step from ``t0`` to ``t1`` covers the save points
      ``before(t0) <= k < before(t1)``;
    - ``grid.cap(p)``: the latest end of a step from a time with ``before == p`` that covers at
      most ``window`` save points: half a spacing short of save point ``p + window`` (so that
      rounding cannot add one), ``inf`` when fewer than ``window`` points are left.

    Evenly spaced grids (linear time axes, TCSPC bins) are computed arithmetically; other grids
    are searched in the padded table.
    """

    def __init__(self, ts: np.ndarray, dtype, t_end: float, window: int):
        n = len(ts)
        if n > 1:
            spacing = (ts[-1] - ts[0]) / (n - 1)
            uniform = spacing > 0 and np.allclose(np.diff(ts), spacing, rtol=1e-9, atol=0)
        else:
            spacing, uniform = 1.0, True
        self.ts, self.n, self.dtype, self.window = ts, n, dtype, window
        self.uniform, self.spacing, self.first = uniform, spacing, float(ts[0])
        self.table = jnp.asarray(np.concatenate([ts, [np.inf]]), dtype)
        self.t_end = jnp.asarray(t_end, dtype)

    def time(self, idx):
        n, dtype = self.n, self.dtype
        if self.uniform:
            val = self.first + idx.astype(dtype) * jnp.asarray(self.spacing, dtype)
            # the last point exactly (t1), not first + (n-1) * spacing
            val = jnp.where(idx == n - 1, jnp.asarray(self.ts[-1], dtype), val)
            return jnp.where(idx < n, val, jnp.inf)
        return jnp.take(self.table, jnp.minimum(idx, n), mode="clip")

    def before(self, t):
        n = self.n
        if self.uniform:
            k = jnp.ceil((t - self.first) / jnp.asarray(self.spacing, self.dtype))
            k = jnp.clip(k, 0, n).astype(jnp.int32)
        else:
            k = jnp.searchsorted(self.table[:-1], t, side="left", method="scan_unrolled")
            k = k.astype(jnp.int32)
        return jnp.where(t >= self.t_end, n, k)

    def cap(self, p):
        n, m = self.n, p + self.window
        if self.uniform:
            c = self.first + (m - 0.5).astype(self.dtype) * jnp.asarray(self.spacing, self.dtype)
        else:
            lo = jnp.take(self.table, jnp.clip(m - 1, 0, n), mode="clip")
            hi = jnp.take(self.table, jnp.minimum(m, n), mode="clip")
            c = lo + 0.5 * (hi - lo)
        return jnp.where(m < n, c, jnp.inf)


def pl_states(model) -> set:
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


def states_to_save(model, quantities) -> tuple[int, ...]:
    """The states the saved quantities need: a state by name, or those PL depends on (PL
    usually needs n only: one scatter, not two)."""
    index = {s: j for j, s in enumerate(model.state_names)}
    need = set()
    for q in quantities:
        need |= {index[q]} if q in index else pl_states(model)
    return tuple(sorted(need))


class StepLog(NamedTuple):
    """A block's log, one row per step start and one for the block's end (``block + 1``)."""

    rows: jax.Array  #: (lanes, block + 1, 1 + 3 * saved states): t, then y, y', y'' of each
    before: jax.Array  #: (lanes, block + 1) int32: save points before the row's t


def _segment_coefficients(start, end, h, half_h2):
    r"""Coefficients in :math:`\theta` of the quintic through ``start`` and ``end``, each
    ``(y, y', y'')``, over a step ``h`` (``half_h2`` = h^2 / 2)."""
    ya, fa, aa = start
    yb, fb, ab = end
    d0 = yb - ya - h * fa - half_h2 * aa
    d1 = h * (fb - fa) - 2.0 * half_h2 * aa
    d2 = 2.0 * half_h2 * (ab - aa)
    return (ya, h * fa, half_h2 * aa, 10.0 * d0 - 4.0 * d1 + 0.5 * d2,
            -15.0 * d0 + 7.0 * d1 - d2, 6.0 * d0 - 3.0 * d1 + 0.5 * d2)


class DenseOutput:
    """Curves of the states ``saved_states`` on ``grid``, for blocks of ``block`` steps."""

    def __init__(self, grid: SaveGrid, saved_states: tuple[int, ...], block: int):
        self.grid, self.saved_states, self.block = grid, saved_states, block
        self.slots = jnp.arange(grid.window, dtype=jnp.int32)  # save points a step may cover

    def empty_log(self, n_lanes: int, dtype) -> StepLog:
        # reused from block to block: rows past a block's last step are never read
        return StepLog(jnp.zeros((n_lanes, self.block + 1, 1 + 3 * len(self.saved_states)),
                                 dtype),
                       jnp.zeros((n_lanes, self.block + 1), jnp.int32))

    def log_row(self, field, t, y, f):
        """``(t, then y, y', y'' of each saved state)``; y'' = d/dt field(t, y(t)) is one jvp
        of the field along (1, y')."""
        second = jax.jvp(field, (t, y), (jnp.ones_like(t), f))[1]
        cols = [t]
        for j in self.saved_states:
            cols += [y[j], f[j], second[j]]
        return jnp.stack(cols, axis=-1)

    def write(self, log: StepLog, i, field, t, y, f, before=None) -> StepLog:
        """``log`` with row ``i`` holding ``(t, y, f)``; ``before`` = ``grid.before(t)`` if the
        caller has it."""
        rows = jax.lax.dynamic_update_index_in_dim(log.rows, self.log_row(field, t, y, f), i, 1)
        if before is None:
            before = self.grid.before(t)
        return StepLog(rows, jax.lax.dynamic_update_index_in_dim(log.before, before, i, 1))

    def flush(self, log: StepLog, n_steps, point, n_ref, curves, one, n_points):
        """Evaluate the block's ``n_steps`` logged segments on the save points each covers and
        scatter them, in cm^-3 (times ``n_ref`` of the lane), into ``curves`` (flat
        ``(n_points * len(ts),)`` per saved state) at the rows of the lanes' ``point``.
        Each lane's writes are contiguous in its row (ascending addresses); the slots a step
        does not use point past the end and are dropped."""
        grid, n_ts = self.grid, self.grid.n
        start, end = log.rows[:, :-1], log.rows[:, 1:]
        first = log.before[:, :-1]
        count = jnp.where((jnp.arange(self.block) < n_steps)[None, :],
                          log.before[:, 1:] - first, 0)
        # per step (lanes, block): the segment's coefficients in theta, in cm^-3; divided by
        # the runtime 1 (step.runtime_one) so that XLA computes them once per step, not once
        # per slot
        t0, h = start[..., 0], end[..., 0] - start[..., 0]
        inv_h = jnp.where(h > 0, 1.0 / jnp.where(h > 0, h, 1.0), 0.0)
        half_h2 = 0.5 * h * h
        scale = n_ref[:, None]
        coefs = []
        for q in range(len(self.saved_states)):
            cs = _segment_coefficients(tuple(start[..., 1 + 3 * q + e] for e in range(3)),
                                       tuple(end[..., 1 + 3 * q + e] for e in range(3)),
                                       h, half_h2)
            stacked = jnp.stack(cs, axis=-1) * scale[..., None] / one
            coefs.append(tuple(stacked[..., e] for e in range(6)))
        # per slot (lanes, block, window)
        def per_slot(a):
            return a[..., None]

        ids = per_slot(first) + self.slots
        valid = self.slots < per_slot(count)
        tau = grid.time(jnp.minimum(ids, n_ts - 1))
        theta = jnp.clip((tau - per_slot(t0)) * per_slot(inv_h), 0.0, 1.0)
        flat = jnp.where(valid, point[:, None, None] * n_ts + ids, n_points * n_ts).reshape(-1)
        new = []
        for curve, cs in zip(curves, coefs):
            c0, c1, c2, c3, c4, c5 = (per_slot(x) for x in cs)
            val = c0 + theta * (c1 + theta * (c2 + theta * (c3 + theta * (c4 + theta * c5))))
            new.append(curve.at[flat].set(val.reshape(-1), mode="drop"))
        return tuple(new)


def quantities_from_states(model, quantities, curves, coefs, n_ref, n_ts, dtype, shape):
    """The saved quantities ``shape + (len(ts),)`` from the saved states' curves (cm^-3,
    ``{state index: array}``): states as they are, PL (scaled) from the states, densely;
    states PL does not depend on are not saved and enter as 0."""
    n_points = n_ref.shape[0]
    n_state = len(model.state_names)
    zero = jnp.zeros((n_points, n_ts), dtype)
    inv = 1.0 / n_ref[:, None]
    scaled = tuple(curves[j] * inv if j in curves else zero for j in range(n_state))
    cc = {k: v[:, None] for k, v in coefs.items()}
    index = {s: j for j, s in enumerate(model.state_names)}
    return {q: (curves[index[q]] if q in index else model.pl(scaled, cc)).reshape(shape + (n_ts,))
            for q in quantities}
