r"""Observables of a decay: lifetimes, PLQY, diffusion length, recombination shares.

Pure ``jax.numpy`` functions (usable under ``jit``/``vmap``); times in s, densities in cm^-3.

Lifetimes (all stated with the observable they were computed on, ``_n`` for the carrier
density :math:`n(t)`, ``_pl`` for :math:`\mathrm{PL}(t) = B n p`):

- ``tau_avg``: the paper's procedure. A two-exponential fit
  :math:`y(t) \approx a_1 e^{-t/\tau_1} + a_2 e^{-t/\tau_2}` of the normalised decay over a window,
  then :math:`\tau_\mathrm{avg} = (a_1\tau_1^2 + a_2\tau_2^2) / (a_1\tau_1 + a_2\tau_2)`.
- ``tau_mean``: the fit-free first moment :math:`\int t I\,dt / \int I\,dt` over
  :math:`[0, t_1]` (integrated alongside the ODE, so exact to solver tolerance). For an exact
  two-exponential over an infinite window it equals ``tau_avg``.
- ``tau_1e``: the time at which the normalised decay first falls to :math:`1/e` (log-linear
  interpolation between saved points; ``inf`` if it never does inside the saved window).

Other summaries: ``plqy`` :math:`= \int B n p\,dt / (n_0 + G t_1)`, ``pl_integrated``
:math:`= \int B n p\,dt` (cm^-3), ``diffusion_length`` :math:`L = \sqrt{D_c\,\tau_\mathrm{avg,n}}`
(cm), and the recombination shares: the fraction of the carriers put in (:math:`n_0 + G t_1`)
that went through each of the model's fluxes (``share_<flux>``, one per ``Model.flux_table``
entry) by :math:`t_1`. Over the loss fluxes plus ``share_remaining`` (carriers still in the
free and trapped states at :math:`t_1`) they sum to 1 (carrier conservation); shares of
fluxes between two states (``share_trapping``/``share_detrapping`` of ``trap_detrap``) are
gross flows, not losses.
"""

from __future__ import annotations

import functools

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: grid pairs evaluated together by biexp_fit (bounds its memory per decay)
GRID_BATCH = 8
#: curves fitted together by the batched fits of summaries (bounds a sweep chunk's memory)
FIT_BATCH = 256

E_INV = float(np.exp(-1.0))

#: relative bias of a lifetime that marks it window-limited (1 %)
WINDOW_BIAS = 0.01


def first_moment_bias(f):
    r"""Relative bias of the first moment of a single exponential truncated at :math:`t_1`,
    as a function of the fraction :math:`f = e^{-t_1/\tau}` of its area still left at
    :math:`t_1`: :math:`\tau_{[0,t_1]}/\tau - 1 = \ln f \cdot f/(1 - f)` (negative: the window
    cuts the tail, so the lifetime comes out short)."""
    f = np.asarray(f, dtype=float)
    return np.log(f) * f / (1.0 - f)


def _tail_limit(bias: float) -> float:
    """The fraction left at which :func:`first_moment_bias` reaches ``-bias`` (bisection in
    log f: the bias grows monotonically with f)."""
    lo, hi = 1e-300, 0.5
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        lo, hi = (lo, mid) if -first_moment_bias(mid) > bias else (mid, hi)
    return float(lo)


#: a first-moment lifetime whose window tail (:func:`window_tail`) exceeds this is window-limited:
#: for a single exponential its bias is then beyond WINDOW_BIAS (f = 1.54e-3, t1 = 6.47 tau)
WINDOW_TAIL_LIMIT = _tail_limit(WINDOW_BIAS)

#: longest tail a final state may extrapolate to, in windows: bounds the estimate where the
#: signal no longer falls (a steady state under CW bias: the tail is then ~1, window-limited)
#: or its slope is at the solver's noise floor
TAIL_WINDOWS = 1e3


def window_tail(integral, level, slope, t1):
    r"""Estimated fraction of :math:`\int_0^\infty I\,dt` that falls after the window's end
    :math:`t_1`, from what the window gives: :math:`\int_0^{t_1} I\,dt` (``integral``),
    :math:`I(t_1)` (``level``) and :math:`dI/dt(t_1)` (``slope``).

    The tail is extrapolated as one exponential at the final log-slope,
    :math:`\int_{t_1}^\infty I\,dt \approx I(t_1)^2 / (-I'(t_1))`, its time constant capped
    at ``TAIL_WINDOWS`` windows (a signal that stops falling counts as left almost whole).
    Exact for a single exponential: :math:`e^{-t_1/\tau}`. In [0, 1]; batch-shaped.
    """
    level = jnp.maximum(level, 0.0)
    tau_cap = TAIL_WINDOWS * t1
    rate = jnp.maximum(-slope, level / tau_cap)
    tail = jnp.where(level > 0, level * level / jnp.where(level > 0, rate, 1.0), 0.0)
    total = jnp.maximum(integral, 0.0) + tail
    return jnp.clip(jnp.where(total > 0, tail / jnp.where(total > 0, total, 1.0), 0.0), 0.0, 1.0)


class BiexpFit(NamedTuple):
    """Result of :func:`biexp_fit` (``tau1 <= tau2``; times in the units of ``t``)."""

    a1: jax.Array
    tau1: jax.Array
    a2: jax.Array
    tau2: jax.Array
    tau_avg: jax.Array
    rss: jax.Array
    flag: jax.Array = 0  # FIT_* bits: 0 a trustworthy tau_avg (see fit_flag)
    condition: jax.Array = 0.0  # relative condition number of tau_avg (see fit_flag)


def _amplitudes(phi, y, w):
    r"""Weighted linear least squares for the amplitudes given the basis ``phi`` (T, k).

    A ridge of a few ulps of the trace keeps the normal matrix invertible when the two time
    constants coincide (then the amplitude splits evenly, which leaves tau_avg unchanged).
    """
    m = phi.T @ (w[:, None] * phi)
    b = phi.T @ (w * y)
    k = m.shape[0]
    eps = 100 * jnp.finfo(m.dtype).eps
    m = m + eps * (jnp.trace(m) + jnp.finfo(m.dtype).tiny) * jnp.eye(k, dtype=m.dtype)
    return jnp.linalg.solve(m, b)


def _basis(t, log_taus):
    return jnp.exp(-t[:, None] * jnp.exp(-log_taus)[None, :])


def _vp_residual(log_taus, t, y, sw):
    """Variable-projection residual: amplitudes eliminated by linear least squares."""
    phi = _basis(t, log_taus)
    a = _amplitudes(phi, y, sw**2)
    return sw * (y - phi @ a)


def biexp_fit(t, y, weights=None, *, iterations: int = 40, grid: int = 24) -> BiexpFit:
    r"""Fit :math:`y(t) \approx a_1 e^{-t/\tau_1} + a_2 e^{-t/\tau_2}` by weighted least squares.

    Variable projection: for given :math:`(\tau_1, \tau_2)` the amplitudes solve a 2x2 linear
    least-squares problem, so the fit is over :math:`(\log\tau_1, \log\tau_2)` only. It starts
    from the best pair on a log grid of ``grid`` values spanning :math:`10^{-3}` to
    :math:`10^{2}` times the time span, then takes a fixed number of Levenberg-Marquardt steps
    (Jacobian by forward-mode autodiff; log-taus kept within :math:`[10^{-4}, 10^{3}]` spans),
    so it has a fixed cost and works under ``jit``/``vmap``. Single-exponential data give
    :math:`\tau_\mathrm{avg} = \tau` (one amplitude vanishes or the taus merge). Never NaN for
    finite input: a degenerate fit (e.g. all-zero data) falls back to the best single
    exponential on the grid.

    Args:
        t: (T,) times (any unit; results are in the same unit). ``t`` need not start at 0.
        y: (T,) data, typically normalised so that ``y[0] = 1``.
        weights: (T,) non-negative weights of the squared residuals (0 drops a point:
            use it to restrict the fit window with fixed shapes); default uniform.

    Returns :class:`BiexpFit` with :math:`\tau_1 \le \tau_2` and
    :math:`\tau_\mathrm{avg} = (a_1\tau_1^2 + a_2\tau_2^2)/(a_1\tau_1 + a_2\tau_2)`.
    """
    t = jnp.asarray(t)
    dtype = jnp.result_type(t.dtype, jnp.asarray(y).dtype, jnp.float32)
    t = t.astype(dtype)
    y = jnp.asarray(y, dtype)
    w = jnp.ones_like(y) if weights is None else jnp.asarray(weights, dtype)
    w = jnp.where(jnp.isfinite(y) & jnp.isfinite(w), jnp.clip(w, 0.0), 0.0)
    y = jnp.where(jnp.isfinite(y), y, 0.0)
    # scale time to the weighted window and y to O(1), so the fit is dimensionless
    active = w > 0
    t_lo = jnp.min(jnp.where(active, t, jnp.inf))
    t_hi = jnp.max(jnp.where(active, t, -jnp.inf))
    t_lo = jnp.where(jnp.isfinite(t_lo), t_lo, t[0])
    span = jnp.where(jnp.isfinite(t_hi) & (t_hi > t_lo), t_hi - t_lo, jnp.ptp(t) + 1)
    span = jnp.where(span > 0, span, 1.0)
    ts = t / span
    ys_scale = jnp.max(jnp.where(active, jnp.abs(y), 0.0))
    ys_scale = jnp.where(ys_scale > 0, ys_scale, 1.0)
    ys = y / ys_scale
    sw = jnp.sqrt(w / jnp.maximum(jnp.max(w), jnp.finfo(dtype).tiny))

    lo, hi = float(np.log(1e-4)), float(np.log(1e3))
    g = jnp.linspace(float(np.log(1e-3)), float(np.log(1e2)), grid, dtype=dtype)
    i, j = np.triu_indices(grid, k=1)
    pairs = jnp.stack([g[i], g[j]], axis=-1)  # (P, 2), tau1 < tau2

    def rss_of(p):
        r = _vp_residual(p, ts, ys, sw)
        return jnp.sum(r**2)

    # a few pairs at a time: the whole grid at once holds (pairs x T) values per decay, which
    # under a vmap over a sweep chunk's decays reached gigabytes
    rss_grid = jax.lax.map(rss_of, pairs, batch_size=GRID_BATCH)
    rss_grid = jnp.where(jnp.isfinite(rss_grid), rss_grid, jnp.inf)
    p0 = pairs[jnp.argmin(rss_grid)]
    # single-exponential fallback: best single tau on the grid
    rss1 = jax.lax.map(lambda lt: jnp.sum(_vp_residual(lt[None], ts, ys, sw) ** 2), g,
                       batch_size=GRID_BATCH)
    tau_single = jnp.exp(g[jnp.argmin(jnp.where(jnp.isfinite(rss1), rss1, jnp.inf))])

    def lm_step(_, state):
        p, rss, lam = state
        r = _vp_residual(p, ts, ys, sw)
        jac = jax.jacfwd(_vp_residual)(p, ts, ys, sw)
        jtj = jac.T @ jac
        grad = jac.T @ r
        damp = lam * (jnp.diag(jtj) + 1e-12) + jnp.finfo(dtype).eps
        step = jnp.linalg.solve(jtj + jnp.diag(damp), -grad)
        trial = jnp.clip(p + step, lo, hi)
        rss_t = rss_of(trial)
        better = jnp.isfinite(rss_t) & (rss_t < rss) & jnp.all(jnp.isfinite(step))
        p = jnp.where(better, trial, p)
        rss = jnp.where(better, rss_t, rss)
        lam = jnp.where(better, lam * 0.3, lam * 10.0)
        lam = jnp.clip(lam, 1e-12, 1e12)
        return p, rss, lam

    p, rss, lam = jax.lax.fori_loop(0, iterations, lm_step,
                                    (p0, rss_of(p0), jnp.asarray(1e-2, dtype)))

    def solution(p):
        p = jnp.sort(p)
        a = _amplitudes(_basis(ts, p), ys, sw**2)
        taus = jnp.exp(p)
        den = jnp.sum(a * taus)
        tau_avg = jnp.sum(a * taus**2) / den
        ok = jnp.isfinite(tau_avg) & (den > 0) & (tau_avg > 0)
        return a, taus, jnp.where(ok, tau_avg, tau_single), ok

    a, taus, tau_avg, ok = solution(p)
    # converged? a quarter more steps must not move tau_avg (else its value depends on where
    # the iteration stopped: the jumps of a flat valley); only the flag uses them
    p_more, _, _ = jax.lax.fori_loop(0, max(iterations // 4, 1), lm_step, (p, rss, lam))
    moved = jnp.abs(solution(p_more)[2] - tau_avg) > WINDOW_BIAS * tau_avg
    flag, kappa = fit_flag(ts, ys, sw, a, taus, ~ok | moved)
    # amplitudes refer to exp(-t/tau), i.e. the value at t = 0 (not at the window start)
    amp = a * ys_scale
    return BiexpFit(a1=amp[0], tau1=taus[0] * span, a2=amp[1], tau2=taus[1] * span,
                    tau_avg=tau_avg * span, rss=rss * ys_scale**2, flag=flag, condition=kappa)


#: :attr:`BiexpFit.flag` bits
FIT_OK, FIT_WINDOW, FIT_ILL_CONDITIONED = 0, 1, 2
#: a fit whose tau_avg moves by more than this many times a relative change of its data
#: (RMS) is ill-conditioned: at 1e4, data right to 1e-6 (the solver's rtol) pin tau_avg to
#: 1 % (measured: docs/sweep.md, "Window-limited lifetimes")
CONDITION_LIMIT = 1e4
FIT_FLAG_MEANING = ("two-exponential fit flag, bits: 1 a component carrying > 1 % of tau_avg "
                    "has a time constant longer than the fit window (tau_avg extrapolates "
                    "beyond the data), 2 ill-conditioned (tau_avg moves by > 1e4 x a relative "
                    "change of the data, a negative amplitude carries > 1 % of the area, the fit "
                    "had not converged (more iterations move tau_avg by > 1 %), or no "
                    "two-exponential fit: a single exponential was used); 0 trustworthy")


def fit_flag(ts, ys, sw, a, taus, fallback):
    r"""Why a two-exponential ``tau_avg`` cannot be trusted, as :data:`FIT_WINDOW` |
    :data:`FIT_ILL_CONDITIONED` bits, and its relative condition number :math:`\kappa`.

    In the fit's scaled units (window of length 1, data of peak 1). ``FIT_WINDOW``: a component
    whose share of :math:`\sum a\tau^2` exceeds :data:`WINDOW_BIAS` has :math:`\tau > 1` (the
    window). :math:`\kappa`: the largest relative change of ``tau_avg`` per relative (weighted
    RMS) change of the data, by linearising the four-parameter model at the fit,
    :math:`\kappa^2 = g^T (J^T W J)^+ g\,\|W^{1/2} y\|^2` with :math:`g = \nabla\ln\tau_\mathrm{avg}`
    (pseudo-inverse: directions the data cannot see, such as how two equal time constants
    split an amplitude, do not move ``tau_avg`` and do not count). ``FIT_ILL_CONDITIONED``:
    :math:`\kappa >` :data:`CONDITION_LIMIT`, a negative amplitude with more than
    :data:`WINDOW_BIAS` of :math:`\sum |a\tau|`, or ``fallback`` (no two-exponential fit,
    or one that more iterations move by more than :data:`WINDOW_BIAS`).
    """
    dtype = ys.dtype
    num_i = a * taus**2
    den_i = a * taus
    num, den = jnp.sum(num_i), jnp.sum(den_i)
    share = num_i / jnp.maximum(jnp.sum(jnp.abs(num_i)), jnp.finfo(dtype).tiny)
    window = jnp.any((taus > 1.0) & (share > WINDOW_BIAS))
    negative = jnp.any((a < 0) & (jnp.abs(den_i) > WINDOW_BIAS * jnp.sum(jnp.abs(den_i))))
    # Jacobian of sum a_i exp(-t/tau_i) in (a_1, a_2, ln tau_1, ln tau_2), weighted
    e = jnp.exp(-ts[:, None] / taus[None, :])
    jac = sw[:, None] * jnp.concatenate([e, a[None, :] * (ts[:, None] / taus[None, :]) * e],
                                        axis=1)
    safe_num = jnp.where(num != 0, num, 1.0)
    safe_den = jnp.where(den != 0, den, 1.0)
    g = jnp.concatenate([taus**2 / safe_num - taus / safe_den,
                         a * (2 * taus**2 / safe_num - taus / safe_den)])
    m = jac.T @ jac
    scale = jnp.sqrt(jnp.diag(m)) + jnp.finfo(dtype).tiny
    lam, u = jnp.linalg.eigh(m / (scale[:, None] * scale[None, :]))
    keep = lam > jnp.max(lam) * (1e3 * jnp.finfo(dtype).eps)
    proj = u.T @ (g / scale)
    kappa2 = jnp.sum(jnp.where(keep, proj**2 / jnp.where(keep, lam, 1.0), 0.0))
    kappa = jnp.sqrt(kappa2 * jnp.sum((sw * ys) ** 2))
    ill = negative | fallback | ~(kappa <= CONDITION_LIMIT)
    flag = jnp.where(window, FIT_WINDOW, 0) | jnp.where(ill, FIT_ILL_CONDITIONED, 0)
    return flag.astype(jnp.int32), kappa


def window_weights(t, window=None):
    """0/1 weights selecting ``window = (t_min, t_max)`` (inclusive) of the times ``t``."""
    t = jnp.asarray(t)
    if window is None:
        return jnp.ones_like(t)
    t_min, t_max = window
    return ((t >= t_min) & (t <= t_max)).astype(t.dtype)


def first_moment(t, y):
    r"""Fit-free mean lifetime :math:`\int t\,y\,dt / \int y\,dt` of a saved curve (trapezoid).

    Prefer ``Solution.integrals`` (integrated with the ODE) when the curve is coarse.
    """
    t = jnp.asarray(t)
    y = jnp.asarray(y)
    return jnp.trapezoid(t * y, t, axis=-1) / jnp.trapezoid(y, t, axis=-1)


def tau_1e(t, y):
    r"""First time at which ``y / y[0]`` falls to :math:`1/e`.

    Interpolated linearly in :math:`\log y` between the bracketing samples (exact for an
    exponential). ``inf`` when the curve stays above :math:`1/e` within ``t`` (the lifetime is
    longer than the window), never NaN for finite positive ``y[0]``. Batched over leading axes.
    """
    t = jnp.asarray(t)
    y = jnp.asarray(y)
    r = y / y[..., :1]
    below = r <= E_INV
    found = jnp.any(below, axis=-1)
    k = jnp.argmax(below, axis=-1)
    km = jnp.maximum(k - 1, 0)
    r1 = jnp.take_along_axis(r, km[..., None], -1)[..., 0]
    r2 = jnp.take_along_axis(r, k[..., None], -1)[..., 0]
    t1 = t[km]
    t2 = t[k]
    tiny = jnp.finfo(r.dtype).tiny
    l1, l2 = jnp.log(jnp.maximum(r1, tiny)), jnp.log(jnp.maximum(r2, tiny))
    frac = jnp.where(l1 > l2, (l1 + 1.0) / jnp.where(l1 > l2, l1 - l2, 1.0), 0.0)
    frac = jnp.clip(frac, 0.0, 1.0)
    cross = jnp.where(k > 0, t1 + frac * (t2 - t1), t[0])
    return jnp.where(found, cross, jnp.inf)


def diffusion_length(tau, diffusion_coefficient=0.017):
    r"""Diffusion length :math:`L = \sqrt{D_c\,\tau}` in cm (tau in s, D_c in cm^2 s^-1)."""
    return jnp.sqrt(diffusion_coefficient * jnp.asarray(tau))


def normalised(y):
    """A decay divided by its first sample (``y / y[..., :1]``)."""
    y = jnp.asarray(y)
    return y / y[..., :1]


#: ``biexp_fit`` over a batch of curves (B, T) on one time grid (T,) with weights (T,), jitted
biexp_fit_batch = jax.jit(jax.vmap(biexp_fit, in_axes=(None, 0, None)))


@functools.partial(jax.jit, static_argnames="with_flag")  # compiled once per shape: called
# eagerly (summaries of one solve), lax.map's fresh lambda would be traced again at every call
def _vmap_fit(t, curves, w, *, with_flag=False):
    """``tau_avg`` of each curve (leading axes any), ``FIT_BATCH`` curves at a time so a sweep
    chunk's fits take a bounded amount of memory whatever its size; with ``with_flag``,
    ``(tau_avg, flag)`` (:func:`fit_flag`)."""
    flat = jnp.reshape(curves, (-1, curves.shape[-1]))
    if not with_flag:
        tau = jax.lax.map(lambda y: biexp_fit(t, y, w).tau_avg, flat, batch_size=FIT_BATCH)
        return jnp.reshape(tau, curves.shape[:-1])

    def one(y):
        fit = biexp_fit(t, y, w)
        return fit.tau_avg, fit.flag

    tau, flag = jax.lax.map(one, flat, batch_size=FIT_BATCH)
    return jnp.reshape(tau, curves.shape[:-1]), jnp.reshape(flag, curves.shape[:-1])
