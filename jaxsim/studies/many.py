r"""Many independent fits at once (FLIM maps, folders of decays): every decay is its own
problem (its own amplitude, background and physical parameters), all of them stepped together.

One compiled program (:mod:`jaxsim.studies.fit`'s ``jac_many``: loss, gradient and
Gauss-Newton matrix of ``batch`` rows, each with its own data) serves every call. The
Levenberg-Marquardt loop runs on a *pool* of ``batch`` slots: each slot holds one decay and
steps it until it converges or stops; then the slot takes the next decay, whose first
evaluation rides in the same batched call as the other slots' trial steps. The linear algebra of
all slots is one batched NumPy call per iteration (no Python loop over rows), memory is bounded
by ``batch`` (not by the number of decays), and every decay ends with a status code
(:data:`STATUS`) instead of a silent value.

Per decay the result holds each free parameter's value and standard error (Gauss-Newton /
Fisher covariance as in :func:`jaxsim.studies.fit.fit`: :math:`s^2 A^{-1}` with
:math:`s^2 = 1` for Poisson, the given ``sigma``:math:`^2`, or the residual variance), the
amplitude and background, the loss, the deviance (Poisson) or :math:`\chi^2` per degree of
freedom, and the iterations.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.decays import DecaySet
from jaxsim.studies.fit import (DECREMENT_TOL, LAMBDA_DOWN, _at_bound, _program, build_problem,
                                cache_wanted, use_compilation_cache)

#: status code -> meaning (per decay)
STATUS = {0: "converged", 1: "max iterations", 2: "stalled", 3: "solve failed",
          4: "too few counts", 5: "at a bound"}

CONVERGED, MAX_ITER, STALLED, FAILED, TOO_FEW, AT_BOUND = range(6)


@dataclass
class ManyFit:
    """Outcome of :func:`fit_decays` / :func:`fit_many`: arrays of N (one entry per decay).

    ``values[name]`` / ``stderr[name]`` in the parameter's unit (``units``); NaN where the
    decay was skipped or the value is not determined (stderr of a coordinate at its bound).
    ``reduced``: deviance / dof (Poisson) or chi^2 / dof (least squares with ``sigma``; without
    it the residual variance); ``status``: :data:`STATUS` codes.
    """

    model: str
    free: tuple
    units: dict
    values: dict
    stderr: dict
    amplitude: np.ndarray
    background: np.ndarray
    loss: np.ndarray
    reduced: np.ndarray
    statistic: str
    status: np.ndarray
    iterations: np.ndarray
    loss_kind: str
    timings: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.status.size)

    def counts(self) -> dict:
        """``{meaning: how many decays}`` for the statuses that occur."""
        return {STATUS[int(c)]: int(np.sum(self.status == c)) for c in np.unique(self.status)}


def _system(A, g, hold):
    """Marquardt-scaled systems of all rows with held coordinates taken out: ``(An, gn, dA)``
    with ``An`` unit-diagonal over the free coordinates and the identity on held ones."""
    keep = ~hold
    A2 = A * keep[:, :, None] * keep[:, None, :]
    dA = np.sqrt(np.clip(np.einsum("bii->bi", A2), 0, None))
    floor = np.maximum(1e-12 * dA.max(axis=1, keepdims=True), 1e-300)
    dA = np.where(dA > floor, dA, floor)
    An = A2 / (dA[:, :, None] * dA[:, None, :])
    idx = np.arange(A.shape[1])
    An[:, idx, idx] = np.where(keep, An[:, idx, idx], 1.0)
    return An, np.where(keep, g, 0.0) / dA, dA


def _solve(M, b):
    try:
        return np.linalg.solve(M, b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a singular row: least squares row by row
        return np.stack([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(M, b)])


def _held(X, G, lo, hi):
    at_lo, at_hi = _at_bound(X, lo, hi)
    return (at_lo & (G > 0)) | (at_hi & (G < 0))


def _decrement(A, G, X, lo, hi, scale):
    """Newton decrement g^T A^-1 g / s^2 of every row over its coordinates not held."""
    An, gn, _ = _system(A, G, _held(X, G, lo, hi))
    v = _solve(An + 1e-12 * np.eye(An.shape[1]), gn)
    dec = np.einsum("bi,bi->b", gn, v) / np.maximum(scale, 1e-300)
    return np.where(np.isfinite(dec) & (dec >= 0), dec, np.inf)


def _covariance(A, X, lo, hi, scale):
    """s^2 A^-1 of every row, coordinates at a bound excluded (NaN), NaN along flat directions."""
    at_lo, at_hi = _at_bound(X, lo, hi)
    skip = at_lo | at_hi
    An, _, dA = _system(A, np.zeros_like(X), skip)
    evals, evecs = np.linalg.eigh(An)
    top = np.maximum(evals.max(axis=1, keepdims=True), 1e-300)
    inv_e = np.where(evals > 1e-12 * top, 1.0 / np.where(evals > 0, evals, 1.0), np.nan)
    inv = np.einsum("bij,bj,bkj->bik", evecs, inv_e, evecs) / (dA[:, :, None] * dA[:, None, :])
    var = scale[:, None] * np.einsum("bii->bi", inv)
    return np.where(skip, np.nan, var), skip


def default_batch() -> int:
    """Decays in flight: 64 on CPU (the batched solve's time per lane grows with the batch
    there: 64 was fastest on a 2-core VM, docs/fitting.md), 1024 on an accelerator."""
    import jax

    return 64 if jax.default_backend() == "cpu" else 1024


def fit_decays(model, ds: DecaySet, *, free: Sequence[str], fixed: Mapping | None = None,
               init: Mapping | None = None, bounds: Mapping | None = None,
               loss: str | None = None, sigma: float | None = None, shift: float = 0.0,
               background: str = "auto", skip=None, max_iter: int = 100,
               batch: int | None = None,
               config=None, progress: Callable[[str], None] | None = None,
               cache: bool | None = None) -> ManyFit:
    """Fit every decay of ``ds`` on its own (the model's free parameters per decay).

    Args:
        shift: time of the pulse (s, >= 0) against the time origin, the same for every decay
            (fixed: fit the summed decay first to find it).
        background: ``"auto"`` (free unless ``ds.background`` gives it), ``"free"``, ``"fixed"``.
        skip: (N,) bool, decays not fitted (status ``too few counts``).
        batch: decays in flight at once (memory: one compiled program of this batch); default
            :func:`default_batch`.
        progress: called with a line about every second.
    Other arguments as :func:`jaxsim.studies.fit.fit`.
    """
    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"sigma = {sigma!r}: expected a positive noise level")
    if not (np.isfinite(shift) and shift >= 0):
        raise ParameterError(f"shift = {shift!r} s: expected a time >= 0 (the pulse at or after "
                             "the first bin)")
    batch = default_batch() if batch is None else batch
    if int(batch) < 1 or int(max_iter) < 1:
        raise ParameterError(f"batch = {batch!r}, max_iter = {max_iter!r}: expected integers >= 1")
    if cache_wanted(cache):
        use_compilation_cache()
    N = ds.n_decays
    skip = np.zeros(N, bool) if skip is None else np.asarray(skip, bool).reshape(N)
    pr = build_problem(model, ds, free=free, fixed=fixed, init=init, bounds=bounds, loss=loss,
                       background=background, shift="fixed", config=config)
    s = dataclasses.replace(pr.structure, n_decays=1)
    p, m = len(s.free), s.m
    n = p + m
    X0 = np.concatenate([np.tile(pr.x0[:p], (N, 1)), pr.x0[p:].reshape(N, m)], axis=1)
    LO = np.concatenate([np.tile(pr.lo[:p], (N, 1)), pr.lo[p:].reshape(N, m)], axis=1)
    HI = np.concatenate([np.tile(pr.hi[:p], (N, 1)), pr.hi[p:].reshape(N, m)], axis=1)
    d = pr.args["data"]
    data_all = {"y": np.asarray(d["y"])[:, None, :], "mask": np.asarray(d["mask"])[:, None, :],
                "n0": np.asarray(d["n0"])[:, None], "bg": np.asarray(d["bg"])[:, None],
                "shift": np.full((N, 1), float(shift))}
    n_data = np.sum(data_all["mask"][:, 0] > 0, axis=1)
    if s.loss == "loglsq":
        n_data = np.sum((data_all["mask"][:, 0] > 0) & (data_all["y"][:, 0] > 0), axis=1)
    dof = np.maximum(n_data - n, 1)
    B = int(min(batch, max(int(np.sum(~skip)), 1)))
    cap = jnp.asarray(int(s.config.max_steps), jnp.int32)
    slot_data = {k: np.repeat(v[:1], B, axis=0).copy() for k, v in data_all.items()}
    rest = {"t_first": d["t_first"], "irf": d["irf"]}
    example = {"data": {**{k: jnp.asarray(v) for k, v in slot_data.items()}, **rest},
               "fixed": pr.args["fixed"], "max_steps": cap}
    say(f"fit_many {s.model.name}: {N} decay(s) x {s.layout.n_bins} bins, free "
        f"{', '.join(s.free)} + {m} per decay, loss {s.loss}, {int(np.sum(skip))} skipped; "
        f"{B} in flight")
    prog, info = _program("jac_many", s, B, example, say)

    def scale_of(L, rows):
        if s.loss == "poisson":
            return np.ones_like(L)
        if sigma is not None:
            return np.full_like(L, sigma**2)
        return np.maximum(2 * L / dof[rows], 1e-300)

    # results
    Xo = np.full((N, n), np.nan)
    Lo = np.full(N, np.nan)
    Ao = np.full((N, n, n), np.nan)
    status = np.full(N, TOO_FEW, np.int8)
    iters = np.zeros(N, np.int32)
    # slots: -1 empty; `fresh` slots are evaluated at their start point
    row = np.full(B, -1)
    fresh = np.zeros(B, bool)
    X, L = np.zeros((B, n)), np.full(B, np.inf)
    G, A = np.zeros((B, n)), np.zeros((B, n, n))
    lam, nu, it = np.full(B, 1e-3), np.full(B, 2.0), np.zeros(B, np.int32)
    lo, hi = np.zeros((B, n)), np.ones((B, n))
    todo = np.flatnonzero(~skip)
    nxt = 0
    n_todo = todo.size
    done = 0
    calls = 0
    t_last = t_loop = time.perf_counter()

    def finish(bs, code):
        nonlocal done
        r = row[bs]
        Xo[r], Lo[r], Ao[r], status[r], iters[r] = X[bs], L[bs], A[bs], code, it[bs]
        row[bs] = -1
        done += int(np.size(bs))

    def refill():
        nonlocal nxt
        empty = np.flatnonzero(row < 0)[: todo.size - nxt]
        r = todo[nxt:nxt + empty.size]
        nxt += empty.size
        row[empty], fresh[empty] = r, True
        X[empty], lo[empty], hi[empty] = np.clip(X0[r], LO[r], HI[r]), LO[r], HI[r]
        lam[empty], nu[empty], it[empty] = 1e-3, 2.0, 0
        for k, v in data_all.items():
            slot_data[k][empty] = v[r]

    refill()
    while np.any(row >= 0):
        live = row >= 0
        step = live & ~fresh
        trial = X.copy()
        pred = np.zeros(B)
        if step.any():
            sb = np.flatnonzero(step)
            hold = _held(X[sb], G[sb], lo[sb], hi[sb])
            An, gn, dA = _system(A[sb], G[sb], hold)
            dn = _solve(An + lam[sb, None, None] * np.eye(n), -gn)
            dx = np.where(hold, 0.0, dn / dA)
            trial[sb] = np.clip(X[sb] + dx, lo[sb], hi[sb])
            dd = trial[sb] - X[sb]
            pred[sb] = -(np.einsum("bi,bi->b", G[sb], dd)
                         + 0.5 * np.einsum("bi,bij,bj->b", dd, A[sb], dd))
        # empty slots repeat a live slot's point and data (their results are ignored)
        first_live = int(np.flatnonzero(live)[0])
        pts = np.where(live[:, None], trial, trial[first_live])
        args = {"data": {**{k: jnp.asarray(np.where(
            live.reshape((-1,) + (1,) * (v.ndim - 1)), v, v[first_live])) for k, v in
            slot_data.items()}, **rest}, "fixed": pr.args["fixed"], "max_steps": cap}
        Lt, Gt, At, _, st, _ = (np.asarray(a) for a in prog(jnp.asarray(pts), args))
        calls += 1
        bad = (~np.isfinite(Lt) | ~np.all(np.isfinite(Gt), axis=1)
               | ~np.all(np.isfinite(At.reshape(B, -1)), axis=1) | np.any(st != 0, axis=1))
        Lt = np.where(bad, np.inf, Lt)
        # fresh slots: their start point
        fb = np.flatnonzero(live & fresh)
        fresh[fb] = False
        X[fb], L[fb], G[fb], A[fb] = trial[fb], Lt[fb], Gt[fb], At[fb]
        finish(fb[~np.isfinite(Lt[fb])], FAILED)
        # stepping slots: accept or reject (vectorised), then the stopping rules
        if step.any():
            sb = np.flatnonzero(step)
            acc = np.isfinite(Lt[sb]) & (Lt[sb] < L[sb])
            a_ = sb[acc]
            rho = np.where(pred[a_] > 0, (L[a_] - Lt[a_]) / np.where(pred[a_] > 0, pred[a_], 1), 0)
            small = (L[a_] - Lt[a_]) <= 1e-14 * np.abs(L[a_])
            X[a_], L[a_], G[a_], A[a_] = trial[a_], Lt[a_], Gt[a_], At[a_]
            lam[a_] = np.maximum(lam[a_] * np.maximum(LAMBDA_DOWN, 1 - (2 * rho - 1) ** 3), 1e-12)
            nu[a_] = 2.0
            r_ = sb[~acc]
            lam[r_] *= nu[r_]
            nu[r_] *= 2
            it[sb] += 1
            dec = np.full(B, np.inf)
            dec[sb] = _decrement(A[sb], G[sb], X[sb], lo[sb], hi[sb], scale_of(L[sb], row[sb]))
            stopped = np.zeros(B, bool)
            stopped[a_[small]] = True
            conv = step & (dec < DECREMENT_TOL)
            stall = step & ~conv & (stopped | (lam > 1e10))
            finish(np.flatnonzero(conv), CONVERGED)
            finish(np.flatnonzero(stall), STALLED)
            finish(np.flatnonzero(step & ~conv & ~stall & (it >= max_iter)), MAX_ITER)
        refill()
        if time.perf_counter() - t_last > 1.0 or done == n_todo:
            t_last = time.perf_counter()
            el = t_last - t_loop
            say(f"fit_many: {done} of {n_todo} decays done "
                f"({int(np.sum(status[status != TOO_FEW] == CONVERGED))} converged), "
                f"{done / max(el, 1e-9):.0f} decays/s")
    t_opt = time.perf_counter()
    fitted = status != TOO_FEW
    var = np.full((N, n), np.nan)
    at_b = np.zeros((N, n), bool)
    if fitted.any():
        f_ = np.flatnonzero(fitted)
        ok = f_[np.isfinite(Lo[f_])]
        if ok.size:
            var[ok], at_b[ok] = _covariance(Ao[ok], Xo[ok], LO[ok], HI[ok], scale_of(Lo[ok], ok))
    conv = status == CONVERGED
    status[conv & np.any(at_b[:, :p], axis=1)] = AT_BOUND
    sd = np.sqrt(np.abs(var))
    rows = {r.name: r for r in s.model.parameters}
    values, stderr = {}, {}
    for i, name in enumerate(s.free):
        if s.log[i]:
            values[name] = 10.0 ** Xo[:, i]
            stderr[name] = values[name] * math.log(10) * sd[:, i]
        else:
            values[name], stderr[name] = Xo[:, i], sd[:, i]
    amp = 10.0 ** Xo[:, p]
    bg = Xo[:, p + 1] if s.bg_free else np.where(fitted, data_all["bg"][:, 0], np.nan)
    if s.loss == "poisson":
        reduced, stat = 2 * Lo / dof, "deviance/dof"
    elif sigma is not None:
        reduced, stat = 2 * Lo / sigma**2 / dof, "reduced chi2"
    else:
        reduced, stat = 2 * Lo / dof, "residual variance"
    t_end = time.perf_counter()
    timings = {"build_s": 0.0, "compile_s": info["compile_s"], "cache_hit": info["cache_hit"],
               "optimise_s": t_opt - t_loop, "total_s": t_end - t_start, "evaluations": calls,
               "decays_per_s": n_todo / max(t_opt - t_loop, 1e-12), "batch": B}
    out = ManyFit(model=s.model.name, free=tuple(s.free),
                  units={name: rows[name].unit for name in s.free}, values=values, stderr=stderr,
                  amplitude=amp, background=bg, loss=Lo, reduced=reduced, statistic=stat,
                  status=status, iterations=iters, loss_kind=s.loss, timings=timings)
    say("fit_many done: " + ", ".join(f"{v} {k}" for k, v in out.counts().items())
        + f" in {t_opt - t_loop:.1f} s ({timings['decays_per_s']:.0f} decays/s, {calls} "
        "batched evaluations)")
    return out


def fit_many(model, t, ys, n0, *, free, fixed=None, init=None, loss="lsq", bounds=None,
             config=None, sampling="points", time_unit="s", max_iter: int = 100,
             batch: int | None = None, sigma=None, shift: float = 0.0, background=None,
             skip=None, progress=None, cache=None) -> ManyFit:
    """Many independent single-decay fits: ``ys`` (N, T) on the common grid ``t`` (in
    ``time_unit``), ``n0`` (N,) or scalar, cm^-3. Background: fixed at 0 for least squares,
    free for Poisson counts (``background`` overrides). See :func:`fit_decays`."""
    from jaxsim.studies.decays import from_arrays

    ys = np.atleast_2d(np.asarray(ys, float))
    k = ys.shape[0]
    n0 = np.broadcast_to(np.asarray(n0, float), (k,))
    counts = loss == "poisson"
    ds = from_arrays(t, ys, n0, time_unit=time_unit, is_counts=counts, sampling=sampling,
                     background=None if counts else 0.0)
    if background is None:
        background = "auto"
    return fit_decays(model, ds, free=free, fixed=fixed, init=init, bounds=bounds, loss=loss,
                      sigma=sigma, shift=shift, background=background, skip=skip,
                      max_iter=max_iter, batch=batch, config=config, progress=progress,
                      cache=cache)


__all__ = ["STATUS", "ManyFit", "fit_decays", "fit_many"]
