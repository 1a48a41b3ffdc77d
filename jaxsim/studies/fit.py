r"""Global fits of rate-equation models to measured decays, with honest uncertainties.

The unknowns live in *natural coordinates* :math:`x`: :math:`\log_{10}` of every parameter the
model's table marks ``log`` (its search range ``fit_lower..fit_upper`` from the same table),
the value itself otherwise. Per decay :math:`k` there is an amplitude (:math:`\log_{10} a_k`,
always free), a background :math:`\beta_k` and a time shift :math:`s_k` (free or fixed); the
physical parameters are shared by all decays (a global fit over fluences), and ``n0`` of each
decay is given.

Losses over the unmasked bins (``mu`` from :mod:`jaxsim.studies.instrument`):

- ``poisson``: half the Poisson deviance :math:`\sum_i \mu_i - y_i + y_i\ln(y_i/\mu_i)`, the
  negative log-likelihood up to a constant (raw counts only);
- ``lsq``: :math:`\tfrac12\sum_i (\mu_i - y_i)^2` (normalised data, Gaussian noise);
- ``loglsq``: :math:`\tfrac12\sum_{y_i>0} (\ln\mu_i - \ln y_i)^2` (weights every decade).

Optimisation runs in :math:`z` with :math:`x = l + (u - l)\,\sigma(z)` (bounds by
construction): optax Adam from many starts in one vmapped batch (the given initial values plus
a Latin hypercube around them), then optax L-BFGS directions with a batched Armijo line search
on all starts, then a damped Newton polish of the best with the Hessian below.

Uncertainties: the Hessian :math:`H` of the loss in :math:`x` at the optimum, by central
differences of the autodiff gradient (default; it reuses the one compiled gradient) or by
forward-over-forward autodiff through the solver (``hessian="autodiff"``, per-decay blocks). The covariance is
:math:`H^{-1}` for ``poisson`` (a log-likelihood) and :math:`s^2 H^{-1}` for least squares with
:math:`s^2 = 2L/(N - p)` (or the given noise ``sigma``:math:`^2`). Standard errors in physical
units by the delta method (:math:`\sigma_v = v \ln 10\, \sigma_x` for log parameters).
Converged means every solve succeeded and the Newton decrement :math:`g^T H^{-1} g` (free,
not-at-bound coordinates, in units of the covariance scale) is below 0.01.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsim.numerics.config import SolverConfig
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import Model
from jaxsim.physics.parameters import make_params, table_lookup
from jaxsim.physics.registry import get_model
from jaxsim.studies.decays import DecaySet
from jaxsim.studies.instrument import Layout, make_layout, predict

LOSSES = ("poisson", "lsq", "loglsq")


PER_DECAY = ("amplitude", "background", "shift")


BIG = 1e30


class FitWarning(UserWarning):
    """A fitted parameter that the data do not determine (flat direction, at a bound...)."""


@dataclass(frozen=True)
class Structure:
    """The static part of a fit problem (hashable compile key)."""

    model: Model
    free: tuple[str, ...]
    fixed: tuple[str, ...]
    log: tuple[bool, ...]
    loss: str
    bg_free: bool
    shift_free: bool
    layout: Layout
    config: SolverConfig
    solver: str
    n_decays: int

    @property
    def m(self) -> int:  # per-decay unknowns
        return 1 + int(self.bg_free) + int(self.shift_free)

    @property
    def n_x(self) -> int:
        return len(self.free) + self.n_decays * self.m


def _decay_loss(kind: str, mu, y, mask):
    if kind == "poisson":
        mu = jnp.clip(mu, 1e-12, None)
        ylogy = jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, y, 1.0) / mu), 0.0)
        return jnp.sum(mask * (mu - y + ylogy))
    if kind == "lsq":
        return 0.5 * jnp.sum(mask * (mu - y) ** 2)
    pos = (y > 0) & (mask > 0)
    ly = jnp.log(jnp.where(pos, y, 1.0))
    lm = jnp.log(jnp.clip(mu, 1e-30, None))
    return 0.5 * jnp.sum(jnp.where(pos, (lm - ly) ** 2, 0.0))


def _phys_values(s: Structure, theta, fixed_vals: dict, n0):
    vals = dict(fixed_vals)
    for i, (name, lg) in enumerate(zip(s.free, s.log)):
        vals[name] = 10.0 ** theta[i] if lg else theta[i]
    vals["n0"] = n0
    return vals


def _decay_mu(s: Structure, theta, phi, fixed_vals, d):
    """mu (T,) and status for one decay; ``phi`` = [log10 a, (bg), (shift)]; ``d`` its data."""
    amp = 10.0 ** phi[0]
    j = 1
    bg = d["bg"]
    if s.bg_free:
        bg, j = phi[j], j + 1
    shift = phi[j] if s.shift_free else d["shift"]
    vals = _phys_values(s, theta, fixed_vals, d["n0"])
    return predict(s.model, vals, amp, bg, shift, d["t_first"], d["irf"], s.layout, s.config,
                   s.solver)


def _decay_objective(s: Structure, theta, phi, fixed_vals, d):
    mu, status = _decay_mu(s, theta, phi, fixed_vals, d)
    val = _decay_loss(s.loss, mu, d["y"], d["mask"])
    ok = (status == 0) & jnp.isfinite(val)
    return jnp.where(ok, val, BIG)


def _split(s: Structure, x):
    p = len(s.free)
    return x[:p], jnp.reshape(x[p:], (s.n_decays, s.m))


def _per_decay_data(args):
    d = args["data"]
    return {k: v for k, v in d.items() if k not in ("t_first", "irf")}


def _total_loss_aux(s: Structure, x, args):
    """Total loss and, as auxiliary output, mu (K, T) and the solve status (K,)."""
    theta, phi = _split(s, x)
    shared = {"t_first": args["data"]["t_first"], "irf": args["data"]["irf"]}

    def one(ph, dk):
        d = {**dk, **shared}
        mu, status = _decay_mu(s, theta, ph, args["fixed"], d)
        val = _decay_loss(s.loss, mu, d["y"], d["mask"])
        ok = (status == 0) & jnp.isfinite(val)
        return jnp.where(ok, val, BIG), mu, status

    vals, mu, status = jax.vmap(one)(phi, _per_decay_data(args))
    return jnp.sum(vals), (mu, status)


def _total_loss(s: Structure, x, args):
    return _total_loss_aux(s, x, args)[0]


def _to_z(x, lo, hi):
    u = np.clip((np.asarray(x) - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return np.log(u / (1 - u))


_CACHE: dict = {}


def _cached(kind, s: Structure, *extra):
    key = (kind, s, *extra)
    if key not in _CACHE:
        _CACHE[key] = _BUILDERS[kind](s, *extra)
    return _CACHE[key]


def _build_vg(s: Structure):
    vg = jax.value_and_grad(lambda x, args: _total_loss_aux(s, x, args), has_aux=True)
    return jax.jit(jax.vmap(vg, in_axes=(0, None)))


def _build_hessian(s: Structure):
    """Loss, gradient and Hessian in x by forward-over-forward autodiff through the solver,
    assembled from per-decay (P+m)^2 blocks (exact, but a slow compile)."""
    fs = dataclasses.replace(s, config=dataclasses.replace(s.config, adjoint="forward"))
    p, m, k = len(s.free), s.m, s.n_decays

    def run(x, args):
        theta, phi = _split(fs, x)
        shared = {"t_first": args["data"]["t_first"], "irf": args["data"]["irf"]}

        def block(ph, dk):
            def f(v):
                return _decay_objective(fs, v[:p], v[p:], args["fixed"], {**dk, **shared})

            v = jnp.concatenate([theta, ph])
            return f(v), jax.jacfwd(f)(v), jax.jacfwd(jax.jacfwd(f))(v)

        vals, grads, hess = jax.vmap(block)(phi, _per_decay_data(args))
        n = p + k * m
        H = jnp.zeros((n, n), x.dtype)
        g = jnp.zeros((n,), x.dtype)
        H = H.at[:p, :p].set(jnp.sum(hess[:, :p, :p], axis=0))
        g = g.at[:p].set(jnp.sum(grads[:, :p], axis=0))
        for i in range(k):
            sl = slice(p + i * m, p + (i + 1) * m)
            H = H.at[sl, sl].set(hess[i, p:, p:])
            H = H.at[:p, sl].set(hess[i, :p, p:])
            H = H.at[sl, :p].set(hess[i, p:, :p])
            g = g.at[sl].set(grads[i, p:])
        return jnp.sum(vals), g, H

    return jax.jit(run)


def _build_predict(s: Structure):
    def run(x, args):
        theta, phi = _split(s, x)
        shared = {"t_first": args["data"]["t_first"], "irf": args["data"]["irf"]}
        return jax.vmap(lambda ph, dk: _decay_mu(s, theta, ph, args["fixed"], {**dk, **shared}))(
            phi, _per_decay_data(args))

    return jax.jit(run)


_BUILDERS = {"vg": _build_vg, "hessian": _build_hessian, "predict": _build_predict}


class _Batched:
    """Loss and gradient of a batch of x, padded to a fixed batch size (one compile)."""

    def __init__(self, s: Structure, args, batch: int):
        self.f = _cached("vg", s)
        self.args = args
        self.batch = batch
        self.calls = 0

    def __call__(self, X):
        X = np.asarray(X, float)
        n = X.shape[0]
        out_l, out_g = [], []
        for i in range(0, n, self.batch):
            chunk = X[i:i + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            (l, aux), g = self.f(jnp.asarray(chunk), self.args)
            self.last_aux = aux
            self.calls += 1
            out_l.append(np.asarray(l)[: self.batch - pad])
            out_g.append(np.asarray(g)[: self.batch - pad])
        L, G = np.concatenate(out_l), np.concatenate(out_g)
        bad = ~np.isfinite(L) | (L >= BIG) | ~np.all(np.isfinite(G), axis=1)
        L = np.where(bad, np.inf, L)
        G = np.where(bad[:, None], 0.0, G)
        return L, G

    def model(self, x):
        """mu (K, T) and status (K,) at one x (same compiled program)."""
        self(np.asarray(x)[None, :])
        mu, status = self.last_aux
        return np.asarray(mu)[0], np.asarray(status)[0]


def _sig(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _zx(Z, lo, hi):
    """x(z) and dx/dz."""
    u = _sig(Z)
    return lo + (hi - lo) * u, (hi - lo) * u * (1 - u)


_ADAM_JIT: dict = {}


def _adam(vg, Z, lo, hi, steps, lr, frozen=None):
    """Batched Adam in z (each row one start); keeps each row's best point."""
    opt = optax.adam(lr)
    key = ("adam", Z.shape, float(lr))
    if key not in _ADAM_JIT:
        _ADAM_JIT[key] = jax.jit(jax.vmap(opt.update))
    upd = _ADAM_JIT[key]
    st = jax.vmap(opt.init)(jnp.asarray(Z))
    best_z, best_l = Z.copy(), np.full(Z.shape[0], np.inf)
    for _ in range(steps):
        X, dxdz = _zx(Z, lo, hi)
        L, G = vg(X)
        Gz = G * dxdz
        if frozen is not None:
            Gz[:, frozen] = 0.0
        better = L < best_l
        best_z[better], best_l[better] = Z[better], L[better]
        # a failed solve (inf) restarts that row from its best point with a smaller step
        fail = ~np.isfinite(L)
        Z = np.where(fail[:, None], best_z, Z)
        Gz = np.where(fail[:, None], 0.0, Gz)
        up, st = upd(jnp.asarray(Gz), st)
        Z = Z + np.asarray(up)
    X, _ = _zx(Z, lo, hi)
    L, _ = vg(X)
    better = L < best_l
    best_z[better], best_l[better] = Z[better], L[better]
    return best_z, best_l


_LBFGS_JIT: dict = {}


def _lbfgs(vg, Z, lo, hi, steps, frozen=None, tol=1e-10):
    """Batched L-BFGS in z: optax's L-BFGS direction, Armijo backtracking per row."""
    tx = optax.scale_by_lbfgs(memory_size=10)
    key = ("lbfgs", Z.shape)
    if key not in _LBFGS_JIT:
        _LBFGS_JIT[key] = (jax.jit(jax.vmap(tx.update)), jax.jit(jax.vmap(tx.init)))
    upd, init = _LBFGS_JIT[key]
    st = init(jnp.asarray(Z))
    X, dxdz = _zx(Z, lo, hi)
    L, G = vg(X)
    Gz = G * dxdz
    if frozen is not None:
        Gz[:, frozen] = 0.0
    active = np.isfinite(L)
    for _ in range(steps):
        if not active.any():
            break
        d, st_new = upd(jnp.asarray(Gz), st, jnp.asarray(Z))
        d = -np.asarray(d)
        slope = np.sum(d * Gz, axis=1)
        # a non-descent direction falls back to steepest descent
        bad = ~(slope < 0) | ~np.all(np.isfinite(d), axis=1)
        d[bad] = -Gz[bad]
        # cap the step at 1 in z (the first L-BFGS direction is the raw gradient)
        d *= np.minimum(1.0, 1.0 / np.maximum(np.max(np.abs(d), axis=1), 1e-300))[:, None]
        slope = np.sum(d * Gz, axis=1)
        alpha = np.ones(Z.shape[0])
        done = ~active
        newZ, newL, newG = Z.copy(), L.copy(), Gz.copy()
        for _ls in range(20):
            trial = np.where(done[:, None], Z, Z + alpha[:, None] * d)
            Xt, dxt = _zx(trial, lo, hi)
            Lt, Gt = vg(Xt)
            Gt = Gt * dxt
            if frozen is not None:
                Gt[:, frozen] = 0.0
            ok = ~done & np.isfinite(Lt) & (Lt <= L + 1e-4 * alpha * slope)
            newZ[ok], newL[ok], newG[ok] = trial[ok], Lt[ok], Gt[ok]
            done |= ok
            if done.all():
                break
            alpha = np.where(done, alpha, alpha * 0.3)
        moved = np.any(newZ != Z, axis=1)
        small = (L - newL) <= tol * (1 + np.abs(L))
        st = jax.tree_util.tree_map(
            lambda a, b: jnp.where(jnp.reshape(jnp.asarray(moved), (-1,) + (1,) * (a.ndim - 1)), a, b)
            if a.ndim >= 1 and a.shape[0] == Z.shape[0] else a, st_new, st)
        Z, L, Gz = newZ, newL, newG
        active = active & moved & ~small
    return Z, L


def _newton(vg, x, lo, hi, iters=12, tol=1e-3, scale=lambda L: 1.0):
    """Levenberg-Marquardt-damped Newton polish in x with the finite-difference Hessian,
    steps clipped to the bounds. Stops when the Newton decrement g^T H^-1 g / scale(L) < tol
    (scale: 1 for a log-likelihood, the residual variance for least squares)."""
    lam = 1e-3
    L = None
    for _ in range(iters):
        u = (x - lo) / (hi - lo)
        skip = np.minimum(u, 1 - u) < 1e-4
        L, g, H = _fd_hessian(vg, x, lo, hi, skip)
        ok = ~skip
        Hs, gs = H[np.ix_(ok, ok)], g[ok]
        if not (np.all(np.isfinite(Hs)) and np.isfinite(L)):
            break
        dH = np.sqrt(np.abs(np.diag(Hs))) + 1e-300
        Hn = Hs / np.outer(dH, dH)
        gn = gs / dH
        try:
            dec = float(gn @ np.linalg.solve(Hn, gn))
        except np.linalg.LinAlgError:
            dec = np.inf
        if 0 <= dec / scale(L) < tol:
            break
        improved = False
        for _try in range(8):
            try:
                step = -np.linalg.solve(Hn + lam * np.eye(Hn.shape[0]), gn) / dH
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            xn = x.copy()
            xn[ok] = np.clip(x[ok] + step, lo[ok], hi[ok])
            Ln, _ = vg(xn[None, :])
            if np.isfinite(Ln[0]) and Ln[0] < L:
                x, lam, improved = xn, max(lam / 10, 1e-9), True
                break
            lam *= 10
        if not improved:
            break
    return x


def _fd_hessian(vg, x, lo, hi, skip):
    """Central differences of the autodiff gradient: H[:, j] = (g(x+h e_j) - g(x-h e_j)) / 2h,
    h_j = 1e-4 of the search range, symmetrised."""
    n = x.size
    h = 1e-4 * (hi - lo)
    cols = [j for j in range(n) if not skip[j]]
    X = [x]
    for j in cols:
        for sgn in (1, -1):
            xx = x.copy()
            xx[j] += sgn * h[j]
            X.append(xx)
    L, G = vg(np.asarray(X))
    H = np.full((n, n), np.nan)
    for c, j in enumerate(cols):
        H[:, j] = (G[1 + 2 * c] - G[2 + 2 * c]) / (2 * h[j])
    idx = np.asarray(cols, int)
    Hs = H[np.ix_(idx, idx)]
    H[np.ix_(idx, idx)] = 0.5 * (Hs + Hs.T)
    return float(L[0]), G[0], H


@dataclass
class Problem:
    """A fit problem: static structure plus array arguments (data, bounds, fixed values)."""

    structure: Structure
    args: dict
    x0: np.ndarray
    names: tuple[str, ...]  # one per x entry
    ds: DecaySet
    fixed_values: dict


def _interp_bounds(row, lo=None, hi=None):
    lo = row.fit_lower if lo is None else lo
    hi = row.fit_upper if hi is None else hi
    if row.log:
        if lo is None or hi is None or lo <= 0 or hi <= lo:
            raise ParameterError(f"fit bounds of {row.name!r} = ({lo!r}, {hi!r}): expected "
                                 f"0 < lower < upper ({row.unit})")
        return math.log10(lo), math.log10(hi)
    if lo is None or hi is None or hi <= lo:
        raise ParameterError(f"fit bounds of {row.name!r} = ({lo!r}, {hi!r}): expected "
                             f"lower < upper ({row.unit})")
    return float(lo), float(hi)


def build_problem(model, ds: DecaySet, *, free: Sequence[str], fixed: Mapping | None = None,
                  init: Mapping | None = None, bounds: Mapping | None = None,
                  loss: str | None = None, background: str = "auto", shift: str = "auto",
                  shift_range_bins: float = 10.0, oversample: int = 1,
                  config: SolverConfig | None = None, solver: str = "tsit5") -> Problem:
    """Assemble a :class:`Problem` (validates names, values, data, bounds)."""
    model = get_model(model)
    config = config or SolverConfig(max_steps=4096)
    if not isinstance(ds, DecaySet):
        raise ParameterError(f"data = {type(ds).__name__}: expected a DecaySet (jaxsim.io)")
    if loss is None:
        loss = "poisson" if ds.is_counts else "lsq"
    if loss not in LOSSES:
        raise ParameterError(f"loss = {loss!r}: expected one of {', '.join(LOSSES)}")
    if loss == "poisson" and not ds.is_counts:
        raise ParameterError("loss = 'poisson' needs raw counts, but the data are normalised: "
                             "expected loss 'lsq' or 'loglsq'")
    n0 = np.asarray(ds.n0, float)
    if not np.all(np.isfinite(n0)):
        raise ParameterError(f"{ds.source}: n0 is missing: expected one excitation density "
                             f"(cm^-3) per decay ({ds.n_decays} values)")
    fixed = dict(fixed or {})
    init = dict(init or {})
    bounds = dict(bounds or {})
    free = tuple(free)
    if not free:
        raise ParameterError("free = (): expected at least one parameter to fit")
    for name in (*free, *fixed, *init, *bounds):
        table_lookup(model.parameters, name, model=model.name)
    if "n0" in free or "n0" in fixed:
        raise ParameterError("n0 is given per decay by the data: expected it neither free nor "
                             "fixed (use --n0)")
    both = set(free) & set(fixed)
    if both:
        raise ParameterError(f"parameter(s) {sorted(both)} are both free and fixed")
    if len(set(free)) != len(free):
        raise ParameterError(f"free = {free}: names repeat")
    # validate values through the parameter table
    make_params(model, **{k: v for k, v in {**init, **fixed}.items()})
    rows = {r.name: r for r in model.parameters}
    fixed_names = tuple(r.name for r in model.parameters if r.name not in free and r.name != "n0")
    fixed_vals = {n: float(fixed.get(n, rows[n].default)) for n in fixed_names}
    lo_t, hi_t, x0_t, logs = [], [], [], []
    for name in free:
        row = rows[name]
        lo, hi = _interp_bounds(row, *bounds.get(name, (None, None)))
        v = float(init.get(name, row.default))
        xv = math.log10(v) if row.log and v > 0 else (lo + hi) / 2 if row.log else v
        if not lo <= xv <= hi:
            xv = min(max(xv, lo), hi)
        lo_t.append(lo), hi_t.append(hi), x0_t.append(xv), logs.append(row.log)
    # per-decay unknowns
    y = np.asarray(ds.y, float)
    mask = np.asarray(ds.mask, float)
    known_bg = np.asarray(ds.background, float)
    bg_free = {"auto": not np.all(np.isfinite(known_bg)), "free": True, "fixed": False}.get(background)
    if bg_free is None:
        raise ParameterError(f"background = {background!r}: expected 'auto', 'free' or 'fixed'")
    has_irf = ds.irf is not None
    shift_free = {"auto": has_irf, "free": True, "fixed": False}.get(shift)
    if shift_free is None:
        raise ParameterError(f"shift = {shift!r}: expected 'auto', 'free' or 'fixed'")
    k, t = y.shape
    ymax = np.max(np.where(mask > 0, y, -np.inf), axis=1)
    tail = y[:, -max(3, t // 20):]
    bg0 = np.where(np.isfinite(known_bg), known_bg,
                   np.median(tail, axis=1) if ds.is_counts else 0.0)
    if ds.is_counts:
        bg_lo, bg_hi = np.zeros(k), np.maximum(ymax, 1.0)
    else:
        bg_lo, bg_hi = -0.2 * np.abs(ymax), 0.5 * np.abs(ymax)
    bg0 = np.clip(bg0, bg_lo + 1e-3 * (bg_hi - bg_lo), bg_hi - 1e-3 * (bg_hi - bg_lo))
    amp0 = np.maximum(ymax - np.where(np.isfinite(bg0), bg0, 0), 1e-12)
    s0 = 0.0
    if has_irf:  # the pulse sits where the data rise most steeply, as a first guess
        rise = np.argmax(np.diff(y.sum(axis=0)))
        s0 = float(ds.t[0] + (rise + 0.5) * ds.bin_width)
    srange = shift_range_bins * ds.bin_width
    lo_p = [np.log10(amp0) - 3]
    hi_p = [np.log10(amp0) + 3]
    x0_p = [np.log10(amp0)]
    if bg_free:
        lo_p.append(bg_lo), hi_p.append(bg_hi), x0_p.append(bg0)
    if shift_free:
        lo_p.append(np.full(k, s0 - srange)), hi_p.append(np.full(k, s0 + srange))
        x0_p.append(np.full(k, s0))
    stack = lambda cols: np.stack(cols, axis=1).reshape(-1)
    lo = np.concatenate([lo_t, stack(lo_p)])
    hi = np.concatenate([hi_t, stack(hi_p)])
    x0 = np.concatenate([x0_t, stack(x0_p)])
    irf = None if ds.irf is None else np.asarray(ds.irf, float)
    layout = make_layout(t, ds.bin_width, float(ds.t[0]), sampling=ds.sampling,
                         irf_len=1 if irf is None else irf.size, irf_offset=ds.irf_offset,
                         shift_min=(s0 - srange) if shift_free else s0, oversample=oversample,
                         t_ref=config.t_ref)
    s = Structure(model, free, fixed_names, tuple(logs), loss, bool(bg_free), bool(shift_free),
                  layout, config, solver, k)
    data = {"y": jnp.asarray(y), "mask": jnp.asarray(mask), "n0": jnp.asarray(n0),
            "bg": jnp.asarray(np.nan_to_num(bg0)), "shift": jnp.full((k,), s0),
            "t_first": jnp.asarray(float(ds.t[0])),
            "irf": None if irf is None else jnp.asarray(irf)}
    args = {"data": data, "fixed": {n: jnp.asarray(v) for n, v in fixed_vals.items()},
            "lo": jnp.asarray(lo), "hi": jnp.asarray(hi)}
    per = ["log10_amplitude"] + (["background"] if bg_free else []) + (["shift"] if shift_free else [])
    names = tuple(free) + tuple(f"{p}[{i}]" for i in range(k) for p in per)
    return Problem(s, args, x0, names, ds, fixed_vals)


@dataclass
class FitResult:
    """Outcome of :func:`fit`. Values in SI-cm units (s^-1, cm^3 s^-1, cm^-3, s).

    ``params[name] = {"value", "stderr", "free", "unit"}`` for every model parameter except n0;
    ``per_decay`` lists amplitude, background, shift (with stderr where free) and n0 per decay;
    ``correlation`` is over the free physical parameters (order ``free``); ``x``/``cov`` are in
    natural coordinates (log10 for log parameters) over all unknowns (``x_names``).
    """

    model: str
    free: tuple
    params: dict
    per_decay: list
    loss: float
    loss_kind: str
    reduced: float
    n_data: int
    n_free: int
    converged: bool
    newton_decrement: float
    n_starts: int
    start_losses: list
    correlation: np.ndarray
    x: np.ndarray
    cov: np.ndarray
    x_names: tuple
    warnings: list
    mu: np.ndarray
    status: np.ndarray
    problem: Problem = field(repr=False)
    #: the known noise given to :func:`fit` (None: estimated from the residuals)
    sigma: float | None = None

    def value(self, name):
        return self.params[name]["value"]

    def stderr(self, name):
        return self.params[name]["stderr"]

    def to_json(self) -> dict:
        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        return {
            "model": self.model,
            "params": {n: {"value": num(p["value"]), "stderr": num(p["stderr"]) if p["free"] else None,
                           "free": p["free"], "unit": p["unit"]} for n, p in self.params.items()},
            "per_decay": [{k: (num(v) if isinstance(v, (float, int, np.floating)) else v)
                           for k, v in d.items()} for d in self.per_decay],
            "loss": num(self.loss), "loss_kind": self.loss_kind,
            "reduced_chi2" if self.loss_kind != "poisson" else "deviance_per_dof": num(self.reduced),
            "n_data": self.n_data, "n_free": self.n_free,
            "converged": bool(self.converged), "newton_decrement": num(self.newton_decrement),
            "n_starts": self.n_starts,
            "correlation": {"names": list(self.free),
                            "matrix": [[num(v) for v in row] for row in np.asarray(self.correlation)]},
            "warnings": list(self.warnings),
            "preprocessing": list(self.problem.ds.preprocessing),
            "source": self.problem.ds.source,
        }

    def table(self) -> str:
        lines = [f"model {self.model}   loss {self.loss_kind} = {self.loss:.6g}   "
                 f"{'deviance/dof' if self.loss_kind == 'poisson' else 'reduced chi2'} = "
                 f"{self.reduced:.4g}   converged = {self.converged}   starts = {self.n_starts}",
                 f"{'parameter':<10} {'value':>12} {'stderr':>12} {'rel':>8}  unit"]
        for n, p in self.params.items():
            if p["free"]:
                rel = p["stderr"] / abs(p["value"]) if p["value"] else float("nan")
                lines.append(f"{n:<10} {p['value']:12.4e} {p['stderr']:12.3e} {rel:8.2%}  {p['unit']}")
            else:
                lines.append(f"{n:<10} {p['value']:12.4e} {'fixed':>12} {'':>8}  {p['unit']}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def _latin(rng, n, d):
    u = (rng.permuted(np.tile(np.arange(n), (d, 1)), axis=1).T + rng.uniform(size=(n, d))) / n
    return 0.03 + 0.94 * u


def _covariance(H, g, scale, skip):
    """scale * H^-1 over the coordinates not skipped (NaN elsewhere), the eigen-decomposition
    of the diagonally scaled Hessian, and the Newton decrement g^T H^-1 g."""
    n = H.shape[0]
    cov = np.full((n, n), np.nan)
    ok = ~skip
    if not ok.any():
        return cov, np.zeros(0), np.zeros((0, 0)), float("inf")
    Hs = H[np.ix_(ok, ok)]
    if not np.all(np.isfinite(Hs)):
        return cov, np.zeros(0), np.zeros((0, 0)), float("inf")
    d = np.sqrt(np.abs(np.diag(Hs)))
    d = np.where(d > 0, d, 1.0)
    Hn = Hs / np.outer(d, d)
    evals, evecs = np.linalg.eigh(Hn)
    pos = evals > 1e-12 * max(evals.max(), 1e-300)
    inv = (evecs / np.where(pos, evals, np.nan)) @ evecs.T / np.outer(d, d)
    cov[np.ix_(ok, ok)] = scale * inv
    gs = g[ok]
    dec = float(gs @ (inv @ gs)) if pos.all() else float("inf")
    return cov, evals, evecs, dec


def fit(model, ds: DecaySet, *, free: Sequence[str], fixed: Mapping | None = None,
        init: Mapping | None = None, bounds: Mapping | None = None, loss: str | None = None,
        sigma: float | None = None, background: str = "auto", shift: str = "auto",
        n_starts: int = 8, adam_steps: int = 200, adam_lr: float = 0.05,
        lbfgs_steps: int = 60, seed: int = 0, oversample: int = 1,
        config: SolverConfig | None = None, solver: str = "tsit5",
        shift_range_bins: float = 10.0, hessian: str = "fd",
        spread: float = 1.0) -> FitResult:
    """Fit ``model`` to the decays of ``ds`` (a global fit sharing the physical parameters).

    Args:
        free: physical parameters to fit (the others are fixed at ``fixed`` or the defaults).
        init: starting values of free parameters (default: the table's defaults).
        bounds: ``{name: (lower, upper)}`` overriding the table's ``fit_lower/fit_upper``.
        loss: ``poisson`` (default for counts), ``lsq`` (default for normalised), ``loglsq``.
        sigma: known noise of least-squares data (same unit as ``ds.y``); by default estimated
            from the residuals.
        background / shift: ``"auto"`` (background free unless the data give it; shift free
            only with an IRF), ``"free"`` or ``"fixed"``.
        n_starts: starting points (the given values plus a Latin hypercube within ``spread``
            decades of them, inside the bounds) run together in one vmapped batch through Adam,
            then L-BFGS; the best is polished by damped Newton steps and kept.
        config: solver settings; the default for fitting bounds ``max_steps`` at 4096 so that a
            stiff corner of the search range fails fast (that start is dropped) instead of
            stalling the whole batch.
        hessian: ``"fd"`` (central differences of the autodiff gradient; no extra compile) or
            ``"autodiff"`` (forward-over-forward through the solver; exact, slow to compile).
    """
    pr = build_problem(model, ds, free=free, fixed=fixed, init=init, bounds=bounds, loss=loss,
                       background=background, shift=shift, oversample=oversample, config=config,
                       solver=solver, shift_range_bins=shift_range_bins)
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"sigma = {sigma!r}: expected a positive noise level")
    if hessian not in ("fd", "autodiff"):
        raise ParameterError(f"hessian = {hessian!r}: expected 'fd' or 'autodiff'")
    n_starts = max(1, int(n_starts))
    s, args = pr.structure, pr.args
    lo, hi = np.asarray(args["lo"]), np.asarray(args["hi"])
    p = len(s.free)
    rng = np.random.default_rng(seed)
    X = np.tile(pr.x0, (n_starts, 1))
    if n_starts > 1:
        width = np.where(np.asarray(s.log), spread, spread * np.abs(pr.x0[:p]) + 1e-300)
        a = np.maximum(lo[:p], pr.x0[:p] - width)
        b = np.minimum(hi[:p], pr.x0[:p] + width)
        X[1:, :p] = a + (b - a) * _latin(rng, n_starts - 1, p)
    Z = _to_z(X, lo, hi)
    vg = _Batched(s, args, n_starts)
    Z, start_loss = _adam(vg, Z, lo, hi, int(adam_steps), float(adam_lr))
    Z, Lr = _lbfgs(vg, Z, lo, hi, int(lbfgs_steps))
    best = int(np.argmin(np.where(np.isfinite(Lr), Lr, np.inf)))
    if s.loss == "poisson":
        scale = lambda L: 1.0  # noqa: E731
    else:
        dof = max(int(np.sum(np.asarray(args["data"]["mask"]) > 0)) - lo.size, 1)
        scale = (lambda L: sigma**2) if sigma else (lambda L: max(2 * L / dof, 1e-300))
    x = _newton(vg, _zx(Z[best], lo, hi)[0], lo, hi, scale=scale)
    return _finish(pr, x, n_starts, Lr, sigma, vg, hessian)


def _finish(pr: Problem, x, n_starts, start_losses, sigma, vg, hessian="fd") -> FitResult:
    s, args = pr.structure, pr.args
    lo, hi = np.asarray(args["lo"]), np.asarray(args["hi"])
    p = len(s.free)
    u = (x - lo) / (hi - lo)
    at_bound = np.minimum(u, 1 - u) < 1e-4
    if hessian == "autodiff":
        L, g, H = (np.asarray(a, float) for a in _cached("hessian", s)(jnp.asarray(x), args))
        L = float(L)
    else:
        L, g, H = _fd_hessian(vg, x, lo, hi, at_bound)
    mu, status = vg.model(x)
    mask = np.asarray(args["data"]["mask"])
    y = np.asarray(args["data"]["y"])
    if s.loss == "loglsq":
        n_data = int(np.sum((mask > 0) & (y > 0)))
    else:
        n_data = int(np.sum(mask > 0))
    n_free = x.size
    dof = max(n_data - n_free, 1)
    if s.loss == "poisson":
        scale, reduced = 1.0, 2 * L / dof
    else:
        est = 2 * L / dof
        scale = est if sigma is None else sigma**2
        reduced = est / (sigma**2 if sigma is not None else 1.0)
    cov, evals, evecs, dec = _covariance(H, g, scale, at_bound)
    dec = dec / scale
    ok_solves = bool(np.all(status == 0))
    converged = bool(ok_solves and np.isfinite(L) and dec < 1e-2)
    dg = np.diag(cov)
    sd = np.where(np.isfinite(dg), np.sqrt(np.abs(dg)), np.nan)
    rows = {r.name: r for r in s.model.parameters}
    params = {}
    for i, name in enumerate(s.free):
        if s.log[i]:
            v = 10.0 ** x[i]
            params[name] = {"value": v, "stderr": v * math.log(10) * sd[i], "free": True,
                            "unit": rows[name].unit, "log10": x[i], "log10_stderr": sd[i]}
        else:
            params[name] = {"value": x[i], "stderr": sd[i], "free": True, "unit": rows[name].unit}
    for name, v in pr.fixed_values.items():
        params[name] = {"value": v, "stderr": 0.0, "free": False, "unit": rows[name].unit}
    params = {r.name: params[r.name] for r in s.model.parameters if r.name in params}
    per_decay = []
    m = s.m
    n0 = np.asarray(args["data"]["n0"])
    for k in range(s.n_decays):
        base = p + k * m
        a = 10.0 ** x[base]
        d = {"label": pr.ds.labels[k], "n0": float(n0[k]), "amplitude": float(a),
             "amplitude_stderr": float(a * math.log(10) * sd[base])}
        j = 1
        if s.bg_free:
            d["background"], d["background_stderr"] = float(x[base + j]), float(sd[base + j])
            j += 1
        else:
            d["background"] = float(np.asarray(args["data"]["bg"])[k])
        if s.shift_free:
            d["shift"], d["shift_stderr"] = float(x[base + j]), float(sd[base + j])
        else:
            d["shift"] = float(np.asarray(args["data"]["shift"])[k])
        per_decay.append(d)
    cov_t = cov[:p, :p]
    dt = np.sqrt(np.abs(np.diag(cov_t)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_t / np.outer(dt, dt)
    msgs = _identifiability(pr, x, sd, corr, at_bound, evals, evecs)
    if not ok_solves:
        msgs.append(f"{int(np.sum(status != 0))} decay solve(s) failed at the optimum "
                    "(status != 0): raise max_steps or choose solver='kvaerno5'")
    if (s.loss == "poisson" or sigma is not None) and reduced > 2.0:
        # the stderr assume the model describes the data; with a misfit they are too small
        what = "deviance/dof" if s.loss == "poisson" else "reduced chi2"
        msgs.append(f"{what} = {reduced:.3g} is well above 1: the model does not describe these "
                    "data within their noise, so the standard errors are too small "
                    "(check the model, the IRF, the background and the time window)")
    for msg in msgs:
        warnings.warn(msg, FitWarning, stacklevel=3)
    return FitResult(
        model=s.model.name, free=s.free, params=params, per_decay=per_decay, loss=float(L),
        loss_kind=s.loss, reduced=float(reduced), n_data=n_data, n_free=n_free, sigma=sigma,
        converged=converged, newton_decrement=float(dec), n_starts=int(n_starts),
        start_losses=[float(v) for v in np.asarray(start_losses)], correlation=corr, x=x,
        cov=cov, x_names=pr.names, warnings=msgs, mu=mu, status=status, problem=pr)


def _identifiability(pr, x, sd, corr, at_bound, evals, evecs) -> list[str]:
    s = pr.structure
    p = len(s.free)
    msgs = []
    for i, name in enumerate(s.free):
        if at_bound[i]:
            msgs.append(f"{name} is at the bound of its search range ({'log10 ' if s.log[i] else ''}"
                        f"{x[i]:.3g}): the data push it out of range or do not constrain it")
        elif not np.isfinite(sd[i]):
            msgs.append(f"{name} is not identifiable: the loss is flat along it (singular Hessian)")
        elif s.log[i] and sd[i] > 0.5:
            msgs.append(f"{name} is not identifiable: its 1-sigma range spans a factor "
                        f"{10 ** sd[i]:.3g}; the channel it controls carries too small a share "
                        "of the recombination (or trades off with another) to matter")
    for i in range(p):
        for j in range(i + 1, p):
            if np.isfinite(corr[i, j]) and abs(corr[i, j]) > 0.98:
                msgs.append(f"{s.free[i]} and {s.free[j]} are strongly correlated "
                            f"(r = {corr[i, j]:.3f}): only a combination is determined")
    if evals.size and np.all(np.isfinite(evals)) and evals.max() > 0:
        ratio = evals.min() / evals.max()
        if ratio <= 0:
            ok = np.flatnonzero(~at_bound)
            top = [pr.names[ok[i]] for i in np.argsort(-np.abs(evecs[:, 0]))[:3]]
            msgs.append("the Hessian is not positive definite at the end point (no minimum "
                        f"along {', '.join(top)}): the data do not determine that combination")
        elif ratio < 1e-9:
            ok = np.flatnonzero(~at_bound)
            v = evecs[:, 0]
            top = [pr.names[ok[i]] for i in np.argsort(-np.abs(v))[:3]]
            msgs.append(f"flat direction in the loss (Hessian condition {1 / ratio:.2g}) along "
                        f"{', '.join(top)}")
    return msgs


def profile_likelihood(result: FitResult, name: str, values=None, *, n_points: int = 9,
                       span_sigmas: float = 3.0, adam_steps: int = 0,
                       lbfgs_steps: int = 40) -> dict:
    """Profile of the loss over ``name``: at each value the other unknowns are re-optimised
    (L-BFGS from the optimum; all values in one batch through the fit's compiled gradient).

    Returns ``{"values", "loss", "delta", "interval95"}``: ``delta = (L - L_min) / scale``
    (scale 1 for Poisson, the residual variance for least squares; 0.5 at 1 sigma, 1.92 at
    95 %), ``interval95`` where delta crosses 1.92 (None where it does not within the grid).
    """
    pr = result.problem
    s = pr.structure
    if name not in s.free:
        raise ParameterError(f"profile: {name!r} is not a free parameter: expected one of "
                             f"{', '.join(s.free)}")
    i = s.free.index(name)
    lg = s.log[i]
    sdi = float(np.sqrt(result.cov[i, i])) if np.isfinite(result.cov[i, i]) else 0.3
    if values is None:
        grid_x = result.x[i] + np.linspace(-span_sigmas, span_sigmas, n_points) * max(sdi, 1e-4)
    else:
        v = np.asarray(values, float)
        grid_x = np.log10(v) if lg else v
    lo, hi = np.asarray(pr.args["lo"]), np.asarray(pr.args["hi"])
    grid_x = np.clip(grid_x, lo[i], hi[i])
    X = np.tile(result.x, (grid_x.size, 1))
    X[:, i] = grid_x
    Z = _to_z(X, lo, hi)
    vg = _Batched(s, pr.args, result.n_starts)
    if adam_steps:
        Z, _ = _adam(vg, Z, lo, hi, adam_steps, 0.02, frozen=i)
    Z, Lp = _lbfgs(vg, Z, lo, hi, lbfgs_steps, frozen=i)
    # the same variance as the covariance: the given sigma^2, else the residual estimate
    scale = (1.0 if s.loss == "poisson" else result.sigma**2 if result.sigma
             else 2 * result.loss / max(result.n_data - result.n_free, 1))
    lmin = min(result.loss, float(np.min(Lp)))
    delta = (Lp - lmin) / scale
    vals = 10.0 ** grid_x if lg else grid_x
    interval = [None, None]
    jmin = int(np.argmin(delta))
    for j in range(jmin, 0, -1):
        if (delta[j] - 1.92) * (delta[j - 1] - 1.92) <= 0 and delta[j] != delta[j - 1]:
            xc = grid_x[j] + (1.92 - delta[j]) * (grid_x[j - 1] - grid_x[j]) / (delta[j - 1] - delta[j])
            interval[0] = float(10.0 ** xc if lg else xc)
            break
    for j in range(jmin, grid_x.size - 1):
        if (delta[j] - 1.92) * (delta[j + 1] - 1.92) <= 0 and delta[j] != delta[j + 1]:
            xc = grid_x[j] + (1.92 - delta[j]) * (grid_x[j + 1] - grid_x[j]) / (delta[j + 1] - delta[j])
            interval[1] = float(10.0 ** xc if lg else xc)
            break
    return {"name": name, "values": vals, "loss": Lp, "delta": delta, "interval95": interval}


def _build_vg_many(s: Structure):
    vg = jax.value_and_grad(lambda x, data, fixed: _total_loss(s, x, {"data": data, "fixed": fixed}))
    axes = {"y": 0, "mask": 0, "n0": 0, "bg": 0, "shift": 0, "t_first": None, "irf": None}
    return jax.jit(jax.vmap(vg, in_axes=(0, axes, None)))


_BUILDERS["vg_many"] = _build_vg_many


def fit_many(model, t, ys, n0, *, free, fixed=None, init=None, loss="lsq", adam_steps: int = 50,
             adam_lr: float = 0.05, lbfgs_steps: int = 30, bounds=None, config=None,
             sampling="points", time_unit="s"):
    """Many independent single-decay fits in one vmapped batch (one start each).

    ``ys``: (N, T) data sets on the common grid ``t`` (in ``time_unit``); ``n0``: (N,) or
    scalar. Amplitude free per fit, background fixed at 0 for least squares. Returns
    ``(values: dict name -> (N,) physical values, loss: (N,))`` after Adam then L-BFGS.
    """
    from jaxsim.studies.decays import from_arrays

    ys = np.atleast_2d(np.asarray(ys, float))
    n = ys.shape[0]
    n0 = np.broadcast_to(np.asarray(n0, float), (n,))
    ds0 = from_arrays(t, ys[:1], n0[:1], time_unit=time_unit, is_counts=loss == "poisson",
                      sampling=sampling)
    pr = build_problem(model, ds0, free=free, fixed=fixed, init=init, bounds=bounds, loss=loss,
                       config=config, background="fixed" if loss != "poisson" else "auto")
    s = pr.structure
    p = len(s.free)
    lo = np.tile(np.asarray(pr.args["lo"]), (n, 1))
    hi = np.tile(np.asarray(pr.args["hi"]), (n, 1))
    ymax = ys.max(axis=1)
    lo[:, p], hi[:, p] = np.log10(ymax) - 3, np.log10(ymax) + 3
    X = np.tile(pr.x0, (n, 1))
    X[:, p] = np.log10(ymax)
    if s.bg_free:
        hi[:, p + 1] = ymax
        X[:, p + 1] = np.clip(np.median(ys[:, -max(3, ys.shape[1] // 20):], axis=1),
                              1e-3 * ymax, 0.5 * ymax)
    data = dict(pr.args["data"], y=jnp.asarray(ys[:, None, :]),
                mask=jnp.ones((n, 1, ys.shape[1])), n0=jnp.asarray(n0[:, None]),
                bg=jnp.zeros((n, 1)), shift=jnp.zeros((n, 1)))
    f = _cached("vg_many", s)

    def vg(X_):
        L, G = f(jnp.asarray(X_), data, pr.args["fixed"])
        L, G = np.asarray(L), np.asarray(G)
        bad = ~np.isfinite(L) | (L >= BIG) | ~np.all(np.isfinite(G), axis=1)
        return np.where(bad, np.inf, L), np.where(bad[:, None], 0.0, G)

    Z = _to_z(X, lo, hi)
    Z, _ = _adam(vg, Z, lo, hi, adam_steps, adam_lr)
    Z, L = _lbfgs(vg, Z, lo, hi, lbfgs_steps)
    X = _zx(Z, lo, hi)[0]
    vals = {name: (10.0 ** X[:, i] if s.log[i] else X[:, i]) for i, name in enumerate(s.free)}
    return vals, L


def save_json(result: FitResult, path) -> None:
    with open(path, "w") as fh:
        json.dump(result.to_json(), fh, indent=2)
