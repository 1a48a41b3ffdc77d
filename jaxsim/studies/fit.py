r"""Global fits of rate-equation models to measured decays, with honest uncertainties.

A fit is: load → build the problem once (:func:`build_problem`) → compile one program once
(cached per problem *shape* in the process, and on disk by JAX's persistent compilation cache,
:func:`use_compilation_cache`) → optimise (:func:`fit`).

**Unknowns** live in *natural coordinates* :math:`x`: :math:`\log_{10}` of every parameter the
model's table marks ``log`` (search range ``fit_lower..fit_upper`` from the same table), the
value itself otherwise. Per decay :math:`k` there is an amplitude (:math:`\log_{10} a_k`,
always free), a background :math:`\beta_k` and a time shift :math:`s_k` (free or fixed); the
physical parameters are shared by all decays (a global fit over fluences), and ``n0`` of each
decay is given. The forward model is :mod:`jaxsim.studies.instrument`.

**Losses** over the unmasked bins:

- ``poisson``: half the Poisson deviance :math:`\sum_i \mu_i - y_i + y_i\ln(y_i/\mu_i)`, the
  negative log-likelihood up to a constant (raw counts only);
- ``lsq``: :math:`\tfrac12\sum_i (\mu_i - y_i)^2` (normalised data, Gaussian noise);
- ``loglsq``: :math:`\tfrac12\sum_{y_i>0} (\ln\mu_i - \ln y_i)^2` (weights every decade).

**The program.** One compiled function maps a batch of points :math:`x` (one per start) to the
loss :math:`L`, its gradient :math:`g = J^T w` and the Gauss–Newton matrix :math:`A = J^T W J`
(:math:`J = \partial\mu/\partial x` by forward-mode autodiff through the solver: one tangent
per shared parameter and per free shift, the amplitude and background columns in closed
form), where for ``lsq`` :math:`w = \mu - y`, :math:`W = 1`; for ``poisson`` :math:`w = 1 -
y/\mu`, :math:`W = 1/\mu` (Fisher scoring: the expected information); for ``loglsq`` the same
with :math:`\ln\mu`.

**Optimiser**: Levenberg–Marquardt with Marquardt's diagonal scaling and Nielsen's damping
update, bounds by projection (a coordinate at its bound whose gradient points outward is held),
all starts in one batch (the given initial values plus a Latin hypercube within ``spread``
decades of them): the PEARS example has a second minimum that some starts fall into; the best
start wins and the table says how many starts reached it.

**Uncertainties**: covariance :math:`s^2 A^{-1}` over the coordinates not at a bound, with
:math:`s^2 = 1` for ``poisson``, the given ``sigma``:math:`^2`, or the residual variance
:math:`2L/(N - p)` for least squares (``hessian="gn"``, default); or the observed Hessian by
central differences of the autodiff gradient with steps relative to each coordinate's size
(``hessian="fd"``). A coordinate counts as at a bound when it lies within 1e-9 of its own size
(not of the search range) from it. Standard errors in physical units by the delta method
(:math:`\sigma_v = v \ln 10\, \sigma_x` for log parameters).

**Goodness of fit** (:func:`goodness_of_fit`): the deviance per degree of freedom (Poisson), or
the reduced :math:`\chi^2` with the given ``sigma`` or, without one, with the noise estimated
from the point-to-point scatter of the residuals (second differences, which a smooth misfit
does not reach; variance :math:`\alpha + \beta\mu` to allow shot noise), and a runs test on the
signs of the residuals of each decay. ``converged`` is claimed only when the optimiser
converged (every solve succeeded, Newton decrement :math:`g^T A^{-1} g / s^2 < 10^{-4}`) *and*
the residuals do not say that the model misses the data.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics.config import STATUS_MESSAGES, SolverConfig
from jaxsim.numerics.engine.workers import cpu_cores
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import Model
from jaxsim.physics.parameters import make_params, table_lookup
from jaxsim.physics.registry import get_model
from jaxsim.studies.decays import DecaySet
from jaxsim.studies.instrument import (
    WINDOW,
    Layout,
    convolve_irf,
    make_layout,
    solve_nodes,
    unit_curve,
    unit_times,
)
from jaxsim.studies.periodic import periodic_start

LOSSES = ("poisson", "lsq", "loglsq")


#: reduced chi^2 or deviance/dof above this says the model does not describe the data
MISFIT_REDUCED = 2.0


#: a runs-test z-score below this (too few sign changes) says the residuals are structured
MISFIT_RUNS_Z = -5.0


#: the most Levenberg-Marquardt's damping falls after a successful step (Nielsen's rule: 1/3)
LAMBDA_DOWN = 1 / 3


#: Newton decrement (in units of the noise variance) below which the optimum is converged
DECREMENT_TOL = 1e-4


class FitWarning(UserWarning):
    """A fitted parameter that the data do not determine (flat direction, at a bound...)."""


# -- persistent compilation cache ----------------------------------------------------------------

_CACHE_STATE: dict = {"dir": None, "hits": 0, "misses": 0, "listening": False}


def default_cache_dir() -> pathlib.Path:
    """``$JAXSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxsim/jax``, else ``~/.cache/jaxsim/jax``."""
    env = os.environ.get("JAXSIM_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "jaxsim" / "jax"


def cache_wanted(cache: bool | None) -> bool:
    """``cache`` if given, else on unless ``$JAXSIM_NO_CACHE`` is set (to anything but 0/'')."""
    if cache is not None:
        return bool(cache)
    return os.environ.get("JAXSIM_NO_CACHE", "") in ("", "0")


def use_compilation_cache(path=None) -> pathlib.Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default
    :func:`default_cache_dir`) so that a new process loads the fit programs instead of
    compiling them. Keeps a directory the user configured already. Returns the directory (None
    if it cannot be created)."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        _CACHE_STATE["dir"] = current
        return pathlib.Path(current)
    d = pathlib.Path(path) if path is not None else default_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    _CACHE_STATE["dir"] = str(d)
    if not _CACHE_STATE["listening"]:
        def listen(event, **kw):
            if event == "/jax/compilation_cache/cache_hits":
                _CACHE_STATE["hits"] += 1
            elif event == "/jax/compilation_cache/cache_misses":
                _CACHE_STATE["misses"] += 1

        jax.monitoring.register_event_listener(listen)
        _CACHE_STATE["listening"] = True
    return d


# -- problem structure ---------------------------------------------------------------------------

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
    n_decays: int
    #: repetition rate (Hz) of the pulse train: decays start from its periodic steady state
    #: (:mod:`jaxsim.studies.periodic`); None: a single pulse from the dark
    rep_rate: float | None = None

    @property
    def forward_model(self) -> str:
        """Which forward model, in words (notes, table, fit.json)."""
        if self.rep_rate is None:
            return "single pulse from the dark"
        return f"periodic steady state at {_hz(self.rep_rate)}"

    @property
    def m(self) -> int:  # per-decay unknowns
        return 1 + int(self.bg_free) + int(self.shift_free)

    @property
    def n_x(self) -> int:
        return len(self.free) + self.n_decays * self.m


def _hz(f: float) -> str:
    for unit, scale in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if f >= scale:
            return f"{f / scale:.4g} {unit}"
    return f"{f:.4g} Hz"


def _phys_values(s: Structure, theta, fixed_vals: dict, n0):
    vals = dict(fixed_vals)
    for i, (name, lg) in enumerate(zip(s.free, s.log)):
        vals[name] = 10.0 ** theta[i] if lg else theta[i]
    vals["n0"] = n0
    return vals


def _loss_terms(kind: str, mu, y, mask):
    """Per-bin loss, gradient weight w (dL/dmu) and Gauss-Newton weight W."""
    if kind == "poisson":
        mu_c = jnp.clip(mu, 1e-12, None)
        ylogy = jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, y, 1.0) / mu_c), 0.0)
        return mask * (mu - y + ylogy), mask * (1.0 - y / mu_c), mask / mu_c
    if kind == "lsq":
        r = mu - y
        return 0.5 * mask * r * r, mask * r, mask
    pos = ((y > 0) & (mask > 0)).astype(mu.dtype)
    mu_c = jnp.clip(mu, 1e-30, None)
    r = jnp.log(mu_c) - jnp.log(jnp.where(y > 0, y, 1.0))
    return 0.5 * pos * r * r, pos * r / mu_c, pos / (mu_c * mu_c)


def _index_map(s: Structure) -> np.ndarray:
    """(K, P + m) positions in x of each decay's local unknowns [theta, phi_k]."""
    p, m = len(s.free), s.m
    return np.stack([np.concatenate([np.arange(p), p + k * m + np.arange(m)])
                     for k in range(s.n_decays)]).astype(np.int32)


def _batch_eval(s: Structure, X, data, fixed, need_jac: bool = True, max_steps=None):
    """Loss (B,), gradient (B, n), Gauss-Newton matrix (B, n, n), mu (B, K, T) and status
    (B, K), and the solver's steps (B, K), at the B points ``X`` (B, n). ``data``: y, mask
    (B, K, T); n0, bg, shift (B, K); t_first; irf. Every start x decay is one lane of one
    batch-native solve; ``max_steps`` (run time) caps each lane's steps."""
    p, m, K = len(s.free), s.m, s.n_decays
    B = X.shape[0]
    NL = B * K
    theta = jnp.repeat(X[:, :p], K, axis=0)  # (NL, P)
    phi = jnp.reshape(X[:, p:], (NL, m))
    flat = lambda a: jnp.reshape(a, (NL,) + a.shape[2:])  # noqa: E731
    y, mask, n0 = flat(data["y"]), flat(data["mask"]), flat(data["n0"])
    amp = 10.0 ** phi[:, 0]
    j = 1
    bg = flat(data["bg"])
    if s.bg_free:
        bg, j = phi[:, j], j + 1
    shift = phi[:, j] if s.shift_free else flat(data["shift"])
    t_first, irf = data["t_first"], data["irf"]

    def coeffs(th):
        vals = dict(fixed)
        for i, (name, lg) in enumerate(zip(s.free, s.log)):
            vals[name] = 10.0 ** th[:, i] if lg else th[:, i]
        vals["n0"] = n0
        return s.model.coefficients(vals, n0, s.layout.t_ref)

    def unit(F_, p_, d_, sh, pre_, slope_):  # one row (value or tangent), all lanes
        # pre_ + slope_ * t: the signal before the pulse (pulse train), linear in time, which
        # the node data hold subtracted (exact under a Gaussian response: unit_times)
        return jax.vmap(lambda a, b_, c_, s_, q_, r_: convolve_irf(
            unit_curve(a, b_, c_, t_first, s_, s.layout)
            + q_ + r_ * unit_times(t_first, s_, s.layout), irf, s.layout))(
                F_, p_, d_, sh, pre_, slope_)

    c = coeffs(theta)
    dc = None
    if need_jac:
        dirs = jnp.eye(p, dtype=X.dtype)
        dc = jax.vmap(lambda e: jax.jvp(coeffs, (theta,),
                                        (jnp.broadcast_to(e, theta.shape),))[1])(dirs)
    start = None
    if s.rep_rate is not None:  # decays start from the pulse train's periodic steady state
        start = periodic_start(s.model, c, 1.0 / (s.rep_rate * s.layout.t_ref), s.config, dc)
    F, pp, dp, status, steps = solve_nodes(
        s.model, c, s.layout.n_nodes, s.layout.h, s.config, dc, max_steps=max_steps,
        y0=None if start is None else tuple(start.z), dy0=None if start is None else start.dz)
    if start is None:
        pre = slope = jnp.zeros((F.shape[0], NL), F.dtype)
    else:
        status = jnp.where(start.status != 0, start.status, status)
        pre, slope = start.pre, start.slope
        # the node data hold the decay minus the line the signal follows before the pulse
        # (the end of the previous period), which is added back to every bin
        tau = jnp.arange(s.layout.n_nodes, dtype=F.dtype) * s.layout.h
        F = F - pre[:, :, None] * tau - 0.5 * slope[:, :, None] * tau * tau
        pp = pp - pre[:, :, None] - slope[:, :, None] * tau
        dp = dp - slope[:, :, None]
    steps = jnp.reshape(steps, (B, K))
    if not need_jac:
        b = unit(F[0], pp[0], dp[0], shift, pre[0], slope[0])
        mu = amp[:, None] * b + bg[:, None]
        lv, _, _ = _loss_terms(s.loss, mu, y, mask)
        L = jnp.sum(jnp.reshape(jnp.sum(lv, axis=1), (B, K)), axis=1)
        st = jnp.reshape(status, (B, K))
        ok = jnp.all(st == 0, axis=1) & jnp.isfinite(L)
        return jnp.where(ok, L, jnp.inf), jnp.reshape(mu, (B, K, -1)), st, steps
    # the binned curve is linear in the node data: tangents map through it row by row
    b_all = jax.vmap(lambda a, b_, c_, q_, r_: unit(a, b_, c_, shift, q_, r_))(F, pp, dp, pre,
                                                                              slope)
    b, jb = b_all[0], b_all[1:]  # (NL, T), (P, NL, T)
    if s.shift_free:
        _, jbs = jax.jvp(lambda sh: unit(F[0], pp[0], dp[0], sh, pre[0], slope[0]), (shift,),
                         (jnp.ones_like(shift),))
        jb = jnp.concatenate([jb, jbs[None]], axis=0)
    mu = amp[:, None] * b + bg[:, None]  # (NL, T)
    cols = [amp[None, :, None] * jb[:p]]  # (P, NL, T)
    cols.append((math.log(10.0) * amp[:, None] * b)[None])
    if s.bg_free:
        cols.append(jnp.ones_like(b)[None])
    if s.shift_free:
        cols.append(amp[None, :, None] * jb[p:])
    J = jnp.concatenate(cols, axis=0)  # (P + m, NL, T)
    lv, w, W = _loss_terms(s.loss, mu, y, mask)
    g_loc = jnp.einsum("qlt,lt->lq", J, w)
    A_loc = jnp.einsum("qlt,lt,rlt->lqr", J, W, J)
    L = jnp.sum(jnp.reshape(jnp.sum(lv, axis=1), (B, K)), axis=1)
    st = jnp.reshape(status, (B, K))
    ok = jnp.all(st == 0, axis=1) & jnp.isfinite(L)
    L = jnp.where(ok, L, jnp.inf)
    idx = jnp.asarray(_index_map(s))  # (K, P + m)
    n = s.n_x
    g_loc = jnp.reshape(g_loc, (B, K) + g_loc.shape[1:])
    A_loc = jnp.reshape(A_loc, (B, K) + A_loc.shape[1:])
    g = jax.vmap(lambda gl: jnp.zeros((n,), X.dtype).at[idx].add(gl))(g_loc)
    A = jax.vmap(lambda al: jnp.zeros((n, n), X.dtype).at[idx[:, :, None], idx[:, None, :]].add(al))(A_loc)
    return L, g, A, jnp.reshape(mu, (B, K, -1)), st, steps


def _broadcast_data(data, B):
    out = dict(data)
    for k in ("y", "mask", "n0", "bg", "shift"):
        out[k] = jnp.broadcast_to(data[k], (B,) + data[k].shape)
    return out


# -- compiled programs, cached per shape --------------------------------------------------------

_PROGRAMS: dict = {}

#: XLA:CPU options for a program run a few dozen times (one fit in a fresh process): with the
#: classic fusion emitters the PEARS fit's program compiles in ~0.65x the time and runs ~1.2x
#: slower per call, a gain below ~150 calls (docs/fitting.md, "Speed")
CPU_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}


def compile_lowered(lowered, fast_compile: bool = False):
    """``lowered.compile()``; ``fast_compile``: with :data:`CPU_FAST_COMPILE` on a CPU (a
    jaxlib that no longer knows an option compiles with its defaults)."""
    if fast_compile and jax.default_backend() == "cpu":
        try:
            return lowered.compile(compiler_options=CPU_FAST_COMPILE)
        except Exception as err:  # jaxlib raises its own error type
            if "compile option" not in str(err):
                raise
    return lowered.compile()


def _program(kind: str, s: Structure, batch: int, example_args, progress=None,
             while_compiling=None, fast_compile: bool = False):
    """The compiled program ``kind`` for structure ``s`` and batch size ``batch`` (AOT:
    traced and compiled once per process, loaded from the persistent cache when there).
    ``fast_compile``: for a program called a few dozen times (:func:`compile_lowered`).

    ``while_compiling()`` is called just before XLA compiles (never when the program is
    already at hand): XLA holds no Python lock, so a thread started there runs beside it."""
    key = (kind, s, batch, fast_compile)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    if kind == "jac":  # one data set, shared by the B starts
        def fn(X, a):
            return _batch_eval(s, X, _broadcast_data(a["data"], X.shape[0]), a["fixed"],
                               max_steps=a["max_steps"])
    elif kind == "loss":
        def fn(X, a):
            return _batch_eval(s, X, _broadcast_data(a["data"], X.shape[0]), a["fixed"],
                               need_jac=False, max_steps=a["max_steps"])
    elif kind == "jac_many":  # one data set per row
        def fn(X, a):
            return _batch_eval(s, X, a["data"], a["fixed"], max_steps=a["max_steps"])
    else:  # pragma: no cover
        raise KeyError(kind)
    X = jax.ShapeDtypeStruct((batch, s.n_x), jnp.float64)
    hits0, misses0 = _CACHE_STATE["hits"], _CACHE_STATE["misses"]
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(X, example_args)
    t1 = time.perf_counter()
    if while_compiling is not None:
        while_compiling()
    compiled = compile_lowered(lowered, fast_compile)
    t2 = time.perf_counter()
    hit = _CACHE_STATE["hits"] > hits0
    info = {"trace_s": t1 - t0, "compile_s": t2 - t1, "cache_hit": hit,
            "cache_dir": _CACHE_STATE["dir"]}
    if progress:
        where = ("loaded from the persistent cache" if hit else
                 "compiled" + (f", stored in {_CACHE_STATE['dir']}"
                               if _CACHE_STATE["dir"] and _CACHE_STATE["misses"] > misses0 else ""))
        progress(f"program '{kind}' for {s.model.name}, {s.n_decays} decay(s) x {s.layout.n_bins} "
                 f"bins, {s.n_x} unknowns, batch {batch}: traced in {info['trace_s']:.1f} s, "
                 f"{where} in {info['compile_s']:.1f} s")
    _PROGRAMS[key] = (compiled, info)
    return _PROGRAMS[key]


def cpu_workers(batch: int) -> int:
    """How many parts a batch of ``batch`` points is split into, each evaluated on its own
    core: XLA:CPU runs one call of the fit's program on one core, so on a CPU the parts run
    side by side in threads (XLA holds no Python lock); one part on other devices."""
    return max(1, min(int(batch), cpu_cores()))


def _side_by_side(fn, items, workers: int) -> list:
    """``[fn(item) for item in items]`` in ``workers`` threads (this one included; item k in
    thread k mod workers). Daemon threads that end with the call: nothing is left for the
    interpreter's exit to wait on."""
    import threading

    out: list = [None] * len(items)
    errors: list = []

    def work(first):
        try:
            for k in range(first, len(items), workers):
                out[k] = fn(items[k])
        except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,), daemon=True)
               for w in range(1, min(workers, len(items)))]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


class _Evaluator:
    """Loss, gradient, Gauss-Newton matrix at a batch of points (padded to a fixed batch, so
    one compile serves every call); failed solves give L = inf.

    On a CPU the batch is split in :func:`cpu_workers` parts, one program call per part, run
    in threads side by side (the program is compiled for the part's size).

    The solver's step limit is a run-time argument that adapts: twice the steps that the best
    point of the last call needed (never below ``config.max_steps``, the default that makes a
    stiff corner of the search range fail fast instead of holding up the batch), and raised
    (up to 64 x) when every point of a call hits it."""

    def __init__(self, s: Structure, args, batch: int, progress=None, kind="jac",
                 while_compiling=None, fast_compile: bool = False):
        self.workers = cpu_workers(batch)
        self.s, self.batch, self.kind = s, -(-int(batch) // self.workers), kind
        self.cap0 = int(s.config.max_steps)
        self.cap = self.cap0
        self.args = dict(args, max_steps=jnp.asarray(self.cap, jnp.int32))
        self.prog, self.info = _program(kind, s, self.batch, self.args, progress,
                                        while_compiling, fast_compile)
        self.calls = 0
        self.time = 0.0

    def _part(self, chunk, args):
        pad = self.batch - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        return [np.asarray(r)[: self.batch - pad] for r in self.prog(jnp.asarray(chunk), args)]

    def _run(self, X):
        args = dict(self.args, max_steps=jnp.asarray(self.cap, jnp.int32))
        chunks = [X[i:i + self.batch] for i in range(0, X.shape[0], self.batch)]
        if len(chunks) > 1 and self.workers > 1:
            outs = _side_by_side(lambda c: self._part(c, args), chunks, self.workers)
        else:
            outs = [self._part(c, args) for c in chunks]
        self.calls += 1
        return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]

    def __call__(self, X):
        X = np.asarray(X, float)
        n = X.shape[0]
        t0 = time.perf_counter()
        while True:
            L, G, A, mu, status, steps = self._run(X)
            capped = np.all(np.any(status == 1, axis=1))  # 1: MAX_STEPS
            if not capped or self.cap >= 64 * self.cap0:
                break
            self.cap *= 4
        self.time += time.perf_counter() - t0
        bad = (~np.isfinite(L) | ~np.all(np.isfinite(G), axis=1)
               | ~np.all(np.isfinite(A.reshape(n, -1)), axis=1))
        L = np.where(bad, np.inf, L)
        if np.any(np.isfinite(L)):
            need = int(np.max(steps[int(np.argmin(L))]))
            self.cap = max(self.cap0, 2 * need)
        return L, G, A, mu, status


# -- Levenberg-Marquardt ------------------------------------------------------------------------

def _at_bound(x, lo, hi, rel: float = 1e-9):
    """At a bound: within ``rel`` of the coordinate's own size (or of the bound's) from it."""
    tol_lo = rel * np.maximum(np.maximum(np.abs(x), np.abs(lo)), 1e-300)
    tol_hi = rel * np.maximum(np.maximum(np.abs(x), np.abs(hi)), 1e-300)
    return (x - lo <= tol_lo), (hi - x <= tol_hi)


def _held(x, g, lo, hi, frozen):
    """Coordinates the step leaves alone: frozen, or at a bound with the gradient outward."""
    at_lo, at_hi = _at_bound(x, lo, hi)
    hold = (at_lo & (g > 0)) | (at_hi & (g < 0))
    if frozen is not None:
        hold = hold | frozen
    return hold


def _solve_scaled(A, g, lam):
    """(A + lam diag(A)) d = -g with Marquardt's scaling (floored diagonal)."""
    dA = np.sqrt(np.clip(np.diag(A), 0, None))
    floor = 1e-12 * max(dA.max(), 1e-300)
    dA = np.where(dA > floor, dA, max(floor, 1e-300))
    An = A / np.outer(dA, dA)
    gn = g / dA
    M = An + lam * np.eye(An.shape[0])
    try:
        dn = -np.linalg.solve(M, gn)
    except np.linalg.LinAlgError:
        dn = -np.linalg.lstsq(M, gn, rcond=None)[0]
    return dn / dA


def _decrement(A, g, hold):
    """Newton decrement g^T A^-1 g over the coordinates not held (inf if A is singular)."""
    ok = ~hold
    if not ok.any():
        return 0.0
    As, gs = A[np.ix_(ok, ok)], g[ok]
    d = np.sqrt(np.clip(np.diag(As), 0, None))
    if np.any(d <= 0):
        return float("inf")
    An = As / np.outer(d, d)
    try:
        v = np.linalg.solve(An, gs / d)
    except np.linalg.LinAlgError:
        return float("inf")
    dec = float((gs / d) @ v)
    return dec if dec >= 0 else float("inf")


@dataclass
class _LMResult:
    X: np.ndarray
    L: np.ndarray
    G: np.ndarray
    A: np.ndarray
    mu: np.ndarray
    status: np.ndarray
    iterations: int
    converged: np.ndarray
    decrement: np.ndarray
    same_basin: np.ndarray


def levenberg_marquardt(evaluate, X0, lo, hi, *, scale, frozen=None, max_iter: int = 100,
                        progress=None, label="LM", independent=None,
                        give_up: float = 10.0, first=None, extra: int = 12) -> _LMResult:
    """Batched, bounded Levenberg-Marquardt: every row of ``X0`` is one start.

    Rows are starts of one problem unless ``independent`` is True (``fit_many``, profiles:
    each row its own problem, run to its own convergence); for starts, once one has
    converged, a start whose local quadratic model cannot get within ``give_up`` noise
    variances of the best loss is stopped (another basin).

    ``evaluate(X) -> (L, G, A, mu, status)`` (rows of L may be inf: failed solves);
    ``scale(L)``: the noise variance in loss units (1 for a log-likelihood, the residual
    variance for least squares) that the Newton decrement is measured in; ``frozen``: mask of
    coordinates kept fixed (profiles). ``lo``/``hi`` may be (n,) or (B, n). ``first``: the
    evaluation at ``X0`` when the caller has it already.
    """
    X = np.array(X0, float)
    B, n = X.shape
    lo = np.broadcast_to(np.asarray(lo, float), (B, n))
    hi = np.broadcast_to(np.asarray(hi, float), (B, n))
    X = np.clip(X, lo, hi)
    if first is not None:
        L, G, A, mu, status = (np.array(a) for a in first)
    else:
        L, G, A, mu, status = (np.array(a) for a in evaluate(X))  # writable copies
    lam = np.full(B, 1e-3)
    nu = np.full(B, 2.0)
    active = np.isfinite(L)
    conv = np.zeros(B, bool)
    same = np.zeros(B, bool)  # stopped inside the best start's basin
    it_best = None
    dec = np.full(B, np.inf)
    it = 0
    t_last = time.perf_counter()
    for it in range(1, max_iter + 1):
        for b in np.flatnonzero(active):
            hold = _held(X[b], G[b], lo[b], hi[b], frozen)
            dec[b] = _decrement(A[b], G[b], hold) / max(scale(L[b]), 1e-300)
            if dec[b] < DECREMENT_TOL:
                conv[b], active[b] = True, False
        if independent is None and conv.any():
            # once a start has converged: a start whose local quadratic model cannot come
            # within `give_up` noise units of the best loss sits in another basin; one within
            # `give_up` standard deviations of the best point (the best's curvature) is in the
            # best's basin and would only get there: either way it stops
            # (the first only near the start's own minimum, where its quadratic model holds);
            # the others get `extra` more iterations (the table says how many starts reached
            # the best minimum)
            ib = int(np.argmin(np.where(conv, L, np.inf)))
            best = L[ib]
            if it_best is None:
                it_best = it
            for b in np.flatnonzero(active):
                near = np.isfinite(dec[b]) and dec[b] < give_up
                dx = X[b] - X[ib]
                if near and L[b] - 0.5 * dec[b] * scale(L[b]) > best + give_up * scale(best):
                    active[b] = False
                elif dx @ A[ib] @ dx / max(scale(best), 1e-300) < give_up**2:
                    active[b], same[b] = False, True
                elif it > it_best + extra:
                    active[b] = False
        if not active.any():
            break
        trial = X.copy()
        pred = np.zeros(B)
        for b in np.flatnonzero(active):
            hold = _held(X[b], G[b], lo[b], hi[b], frozen)
            d = np.zeros(n)
            ok = ~hold
            d[ok] = _solve_scaled(A[b][np.ix_(ok, ok)], G[b][ok], lam[b])
            trial[b] = np.clip(X[b] + d, lo[b], hi[b])
            dd = trial[b] - X[b]
            pred[b] = -(G[b] @ dd + 0.5 * dd @ A[b] @ dd)
        # rows that have stopped are evaluated at a moving row's trial point instead of their
        # own (a failed or stiff point would cost the whole batch its step limit every time)
        stand_in = trial[np.flatnonzero(active)[np.argmin(L[active])]]
        trial_eval = np.where(active[:, None], trial, stand_in[None, :] if independent is None
                              else np.where(np.isfinite(L)[:, None], X, stand_in[None, :]))
        Lt, Gt, At, mut, st = evaluate(trial_eval)
        for b in np.flatnonzero(active):
            if np.isfinite(Lt[b]) and Lt[b] < L[b]:
                rho = (L[b] - Lt[b]) / pred[b] if pred[b] > 0 else 0.0
                small = (L[b] - Lt[b]) <= 1e-14 * abs(L[b])
                X[b], L[b], G[b], A[b], mu[b], status[b] = trial[b], Lt[b], Gt[b], At[b], mut[b], st[b]
                lam[b] *= max(LAMBDA_DOWN, 1 - (2 * rho - 1) ** 3)
                lam[b] = max(lam[b], 1e-12)
                nu[b] = 2.0
                if small:
                    active[b] = False  # no further progress possible in floating point
            else:
                lam[b] *= nu[b]
                nu[b] *= 2
                if lam[b] > 1e10:
                    active[b] = False  # stuck (a bound, a failed region, or converged)
        if progress and (time.perf_counter() - t_last > 1.0 or not active.any()):
            t_last = time.perf_counter()
            best = np.min(L)
            progress(f"{label} iteration {it}: best loss {best:.6g}, {int(active.sum())} of "
                     f"{B} start(s) still moving")
    # final decrements of the rows that stopped for another reason
    for b in range(B):
        if not conv[b] and np.isfinite(L[b]):
            hold = _held(X[b], G[b], lo[b], hi[b], frozen)
            dec[b] = _decrement(A[b], G[b], hold) / max(scale(L[b]), 1e-300)
            conv[b] = dec[b] < DECREMENT_TOL
    return _LMResult(X, L, G, A, mu, status, it, conv, dec, same)


# -- problem ------------------------------------------------------------------------------------

@dataclass
class Problem:
    """A fit problem: static structure plus array arguments (data, bounds, fixed values)."""

    structure: Structure
    args: dict
    x0: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    names: tuple[str, ...]  # one per x entry
    ds: DecaySet
    fixed_values: dict
    notes: list = field(default_factory=list)


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


def find_rise(ds: DecaySet) -> list[dict | None]:
    """Per decay, where the signal rises from a dark (near-zero) start to its peak, or None.

    A rise is: the peak is not in the first bins, and the unmasked values before the
    half-maximum crossing average below 10 % of the peak (above the tail's level). Returns
    ``{"first": i, "peak": j}``: ``i`` the first bin at or above half the peak (over the
    baseline), ``j`` the peak bin.
    """
    out = []
    y = np.asarray(ds.y, float)
    mask = np.asarray(ds.mask) > 0
    for k in range(ds.n_decays):
        yk = np.where(mask[k], y[k], np.nan)
        if np.all(np.isnan(yk)):
            out.append(None)
            continue
        j = int(np.nanargmax(yk))
        before = yk[:j]
        before = before[np.isfinite(before)]
        if j < 2 or before.size < 2:
            out.append(None)
            continue
        base = float(np.nanmedian(before))
        peak = float(yk[j])
        if not peak > base or base > 0.1 * peak:
            out.append(None)
            continue
        half = base + 0.5 * (peak - base)
        i = int(np.argmax(np.nan_to_num(yk[: j + 1], nan=-np.inf) >= half))
        if i > 0 and np.nanmean(yk[:i]) > 0.1 * peak:
            out.append(None)
            continue
        out.append({"first": i, "peak": j})
    return out


def build_problem(model, ds: DecaySet, *, free: Sequence[str], fixed: Mapping | None = None,
                  init: Mapping | None = None, bounds: Mapping | None = None,
                  loss: str | None = None, background: str = "auto", shift: str = "auto",
                  shift_range_bins: float = 10.0, oversample: int = 1,
                  config: SolverConfig | None = None, rep_rate: float | None = None) -> Problem:
    """Assemble a :class:`Problem` (validates names, values, data, bounds).

    ``rep_rate`` (Hz): the decays are the periodic steady state of a pulse train at that rate
    (:mod:`jaxsim.studies.periodic`); the data window after the pulse must lie within one
    period. None: a single pulse from the dark.

    ``shift="auto"``: free with an instrument response; without one, free (within the bin
    before the rise) where the data rise from a dark start (the pulse is inside the window, as
    in raw TCSPC histograms), else fixed at 0 (the pulse at the first bin).
    """
    model = get_model(model)
    if not isinstance(ds, DecaySet):
        raise ParameterError(f"data = {type(ds).__name__}: expected a DecaySet (jaxsim.io)")
    if loss is None:
        loss = "poisson" if ds.is_counts else "lsq"
    if loss not in LOSSES:
        raise ParameterError(f"loss = {loss!r}: expected one of {', '.join(LOSSES)}")
    if loss == "poisson" and not ds.is_counts:
        raise ParameterError("loss = 'poisson' needs raw counts, but the data are normalised: "
                             "expected loss 'lsq' or 'loglsq'")
    if int(oversample) < 1:
        raise ParameterError(f"oversample = {oversample!r}: expected an integer >= 1")
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
        xv = min(max(xv, lo), hi)
        lo_t.append(lo), hi_t.append(hi), x0_t.append(xv), logs.append(row.log)
    notes = []
    y = np.asarray(ds.y, float)
    mask = np.asarray(ds.mask, float)
    known_bg = np.asarray(ds.background, float)
    bg_free = {"auto": not np.all(np.isfinite(known_bg)), "free": True, "fixed": False}.get(background)
    if bg_free is None:
        raise ParameterError(f"background = {background!r}: expected 'auto', 'free' or 'fixed'")
    if shift not in ("auto", "free", "fixed"):
        raise ParameterError(f"shift = {shift!r}: expected 'auto', 'free' or 'fixed'")
    gauss = float(ds.meta.get("irf_fwhm_s", 0.0)) if ds.irf is not None else 0.0
    has_irf = ds.irf is not None
    k, t = y.shape
    w = ds.bin_width
    tt = np.asarray(ds.t, float)
    rises = find_rise(ds)
    if has_irf:
        shift_free = shift != "fixed"
        s0 = np.empty(k)
        for i in range(k):  # the pulse sits where the data rise most steeply, as a first guess
            r = int(np.argmax(np.diff(np.where(mask[i] > 0, y[i], 0.0))))
            s0[i] = tt[0] + (r + 0.5) * w
        srange = shift_range_bins * w
        s_lo, s_hi = s0 - srange, s0 + srange
    else:
        found = all(r is not None for r in rises)
        shift_free = shift == "free" or (shift == "auto" and found)
        s0 = np.zeros(k)
        s_lo, s_hi = np.zeros(k), np.zeros(k)
        for i in range(k):
            r = rises[i]
            if r is None:
                first = int(np.argmax(np.where(mask[i] > 0, y[i], -np.inf)))
                r = {"first": first, "peak": first}
            f = r["first"]
            if ds.sampling == "points":  # pulse between the last dark sample and the first bright
                s_lo[i] = tt[max(f - 1, 0)] + 1e-6 * w if f > 0 else tt[0] - w
                s_hi[i] = tt[f]
                s0[i] = tt[f] - (0.5 * w if f > 0 else 0.0)
            else:  # the pulse's bin is the rise's or the one before it
                s_lo[i] = tt[max(f - 1, 0)] - (w if f == 0 else 0.0)
                s_hi[i] = tt[f] + w
                s0[i] = tt[f]
        if shift_free and shift == "auto":
            notes.append("shift: the decays rise from a dark start at t = "
                         + ", ".join(f"{v / 1e-9:.4g}" for v in s0) + " ns: the pulse time of each "
                         "is fitted within the bin of its rise (--shift auto)")
        if not shift_free:
            s0 = np.zeros(k)
            if shift == "fixed" or any(r is not None for r in rises):
                late = [i for i, r in enumerate(rises) if r is not None and tt[r["first"]] > tt[0] + 2 * w]
                if late:
                    notes.append(f"shift fixed at t = 0, but decay(s) {', '.join(str(i + 1) for i in late)} "
                                 f"rise only at t = {tt[rises[late[0]]['first']] / 1e-9:.4g} ns: the "
                                 "model starts before the data do (use --shift auto or free, or "
                                 "--shift-to-peak)")
    ymax = np.max(np.where(mask > 0, y, -np.inf), axis=1)
    tail = y[:, -max(3, t // 20):]
    bg0 = np.where(np.isfinite(known_bg), known_bg,
                   np.median(tail, axis=1) if ds.is_counts else 0.0)
    if ds.is_counts:
        bg_lo, bg_hi = np.zeros(k), np.maximum(ymax, 1.0)
    else:
        bg_lo, bg_hi = -0.2 * np.abs(ymax), 0.5 * np.abs(ymax)
    bg0 = np.clip(bg0, bg_lo + 1e-3 * (bg_hi - bg_lo), bg_hi - 1e-3 * (bg_hi - bg_lo))
    if not bg_free and ds.is_counts and not np.all(np.isfinite(known_bg)):
        notes.append("background fixed at the median of each decay's last 5 % of bins: "
                     + ", ".join(f"{v:.4g}" for v in bg0) + " counts per bin")
    amp0 = np.maximum(ymax - np.where(np.isfinite(bg0), bg0, 0), 1e-12)
    lo_p, hi_p, x0_p = [np.log10(amp0) - 3], [np.log10(amp0) + 3], [np.log10(amp0)]
    if bg_free:
        lo_p.append(bg_lo), hi_p.append(bg_hi), x0_p.append(bg0)
    if shift_free:
        lo_p.append(s_lo), hi_p.append(s_hi), x0_p.append(np.clip(s0, s_lo, s_hi))

    def stack(cols):
        return np.stack(cols, axis=1).reshape(-1)

    lo = np.concatenate([lo_t, stack(lo_p)])
    hi = np.concatenate([hi_t, stack(hi_p)])
    x0 = np.concatenate([x0_t, stack(x0_p)])
    irf = None if ds.irf is None else np.asarray(ds.irf, float)
    shift_min = float(np.min(s_lo if shift_free else s0))
    sigma_irf = gauss / (2 * math.sqrt(2 * math.log(2))) if gauss > 0 else 0.0
    lay = make_layout(t, w, float(tt[0]), sampling=ds.sampling,
                      irf_len=1 if irf is None or gauss > 0 else irf.size,
                      irf_offset=0 if gauss > 0 else ds.irf_offset, shift_min=shift_min,
                      oversample=int(oversample), t_ref=(config or SolverConfig()).t_ref,
                      irf_sigma=sigma_irf)
    if config is None:
        # a step covers at most WINDOW nodes; a lane that needs many times more steps than
        # that is stiff (a corner of the search range): it fails fast and the optimiser steps
        # back, instead of holding up the whole batch (the limit then follows what the best
        # point needs: _Evaluator)
        # rtol 1e-7: forward-model errors well below the noise of 1e6-count decays
        config = SolverConfig(rtol=1e-7, max_steps=max(512, 6 * (lay.n_nodes // WINDOW + 1)))
    elif config.max_steps < lay.n_nodes // WINDOW + 16:
        raise ParameterError(f"config.max_steps = {config.max_steps}: expected at least "
                             f"{lay.n_nodes // WINDOW + 16} for {lay.n_nodes} solve nodes")
    if rep_rate is not None:
        from jaxsim.numerics.pulses import REP_RATE

        REP_RATE.check(rep_rate, where="fit")
        rep_rate = float(rep_rate)
        period = 1.0 / rep_rate
        used = np.flatnonzero(np.any(mask > 0, axis=0))  # masked (cropped) bins are not compared
        end = float(tt[used[-1]]) + (w if ds.sampling == "bins" else 0.0)
        span = end - shift_min  # last compared bin's end after the earliest pulse
        before = float(np.max(s_hi if shift_free else s0)) - float(tt[used[0]])  # bins before
        if span > period or before > period:
            raise ParameterError(
                f"rep_rate = {rep_rate!r} Hz: the period 1/rep_rate = {period:.4g} s is shorter "
                f"than the data window around the pulse ({max(span, before):.4g} s): expected "
                "a window within one period (crop the data, or fit a single pulse)")
    s = Structure(model, free, fixed_names, tuple(logs), loss, bool(bg_free), bool(shift_free),
                  lay, config, k, rep_rate)
    notes.append(f"forward model: {s.forward_model}")
    f64 = lambda a: jnp.asarray(np.asarray(a, np.float64))  # noqa: E731  (strong dtypes: AOT)
    data = {"y": f64(y), "mask": f64(mask), "n0": f64(n0), "bg": f64(np.nan_to_num(bg0)),
            "shift": f64(s0), "t_first": f64(float(tt[0])),
            "irf": None if irf is None or gauss > 0 else f64(irf)}
    args = {"data": data, "fixed": {n: f64(v) for n, v in fixed_vals.items()}}
    per = ["log10_amplitude"] + (["background"] if bg_free else []) + (["shift"] if shift_free else [])
    names = tuple(free) + tuple(f"{p}[{i}]" for i in range(k) for p in per)
    return Problem(s, args, x0, lo, hi, names, ds, fixed_vals, notes)


# -- goodness of fit ----------------------------------------------------------------------------

def noise_from_scatter(resid, level, mask):
    r"""Noise of each point from the point-to-point scatter of the residuals.

    Second differences :math:`d_i = (r_{i-1} - 2 r_i + r_{i+1})/\sqrt 6` of the residuals
    :math:`r = y - \mu` have variance :math:`\sigma^2` for independent noise and do not see a
    smooth misfit (nor the signal's curvature). Their squares are regressed (non-negative
    least squares) on :math:`[1, \mu_i]`: :math:`\sigma_i^2 = \alpha + \beta\mu_i` (constant
    noise plus shot noise). Returns ``sigma`` (K, T) or None when the data show no scatter.
    """
    r = np.asarray(resid, float)
    lev = np.abs(np.asarray(level, float))
    m = np.asarray(mask) > 0
    d2, lv = [], []
    for k in range(r.shape[0]):
        ok = m[k, :-2] & m[k, 1:-1] & m[k, 2:]
        d = (r[k, :-2] - 2 * r[k, 1:-1] + r[k, 2:]) / math.sqrt(6.0)
        d2.append((d * d)[ok])
        lv.append(((lev[k, :-2] + lev[k, 1:-1] + lev[k, 2:]) / 3.0)[ok])
    d2 = np.concatenate(d2)
    lv = np.concatenate(lv)
    if d2.size < 20 or not np.any(d2 > 0):
        return None
    scale = max(float(np.max(lv)), 1e-300)
    M = np.column_stack([np.ones_like(lv), lv / scale])
    coef = _nnls2(M, d2, np.ones_like(d2))
    for _ in range(2):  # weighted by 1 / var(d^2) ~ 1 / sigma^4 of the previous estimate
        v = M @ coef
        if not np.all(v > 0):
            break
        coef = _nnls2(M, d2, 1.0 / v**2)
    var = coef[0] + coef[1] * lev / scale
    top = float(np.max(var)) if var.size else 0.0
    if not top > 0 or not np.median(d2) > 1e-20 * max(float(np.max(lev)), 1e-300) ** 2:
        return None
    return np.sqrt(np.where(var > 1e-12 * top, var, np.nan))


def _nnls2(M, b, w):
    """Weighted least squares of b on the two columns of M with non-negative coefficients
    (closed form: the unconstrained solution, else the better one-column fit)."""
    Mw = M * w[:, None]
    G = M.T @ Mw
    r = Mw.T @ b
    try:
        c = np.linalg.solve(G, r)
    except np.linalg.LinAlgError:
        c = np.array([-1.0, -1.0])
    if np.all(c >= 0):
        return c
    best, cost = np.zeros(2), np.inf
    for j in (0, 1):
        cj = max(r[j] / G[j, j], 0.0) if G[j, j] > 0 else 0.0
        e = b - cj * M[:, j]
        val = float(np.sum(w * e * e))
        if val < cost:
            best, cost = np.where(np.arange(2) == j, cj, 0.0), val
    return best


def runs_test(resid, mask) -> list[dict]:
    """Wald-Wolfowitz runs test on the signs of each decay's residuals (zeros dropped):
    ``{"runs", "expected", "z", "longest"}``; z << 0 means long runs of one sign."""
    out = []
    for k in range(resid.shape[0]):
        r = resid[k][(np.asarray(mask[k]) > 0) & (resid[k] != 0) & np.isfinite(resid[k])]
        n = r.size
        npos = int(np.sum(r > 0))
        nneg = n - npos
        if n < 10 or npos == 0 or nneg == 0:
            out.append({"runs": None, "expected": None, "z": None, "longest": n})
            continue
        sgn = r > 0
        changes = np.flatnonzero(sgn[1:] != sgn[:-1])
        runs = changes.size + 1
        bounds = np.concatenate([[-1], changes, [n - 1]])
        longest = int(np.max(np.diff(bounds)))
        mean = 1 + 2 * npos * nneg / n
        var = 2 * npos * nneg * (2 * npos * nneg - n) / (n * n * (n - 1))
        z = (runs - mean) / math.sqrt(var) if var > 0 else 0.0
        out.append({"runs": int(runs), "expected": float(mean), "z": float(z), "longest": longest})
    return out


def goodness_of_fit(loss_kind: str, y, mu, mask, n_free: int, sigma=None) -> dict:
    """How well the model describes the data: the reduced chi^2 (least squares; with the given
    ``sigma`` or with the noise from :func:`noise_from_scatter`) or deviance/dof (Poisson), the
    runs test of each decay, and whether the residuals say the model misses (``adequate``:
    True, False, or None when it cannot be judged)."""
    y = np.asarray(y, float)
    mu = np.asarray(mu, float)
    mask = np.asarray(mask, float)
    if loss_kind == "loglsq":
        pos = (y > 0) & (mask > 0) & (mu > 0)
        r = np.where(pos, np.log(np.where(pos, y, 1.0)) - np.log(np.where(pos, mu, 1.0)), 0.0)
        m = pos.astype(float)
        level = np.ones_like(mu)
    else:
        r = np.where(mask > 0, y - mu, 0.0)
        m = mask
        level = mu
    n_data = int(np.sum(m > 0))
    dof = max(n_data - n_free, 1)
    out = {"n_data": n_data, "dof": dof, "statistic": None, "reduced": None, "noise": None,
           "noise_source": None}
    if loss_kind == "poisson":
        mu_c = np.clip(mu, 1e-12, None)
        dev = 2 * np.sum(m * (mu - y + np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu_c), 0)))
        out.update(statistic="deviance/dof", reduced=float(dev / dof), noise_source="Poisson")
        pearson = np.where(m > 0, (y - mu) / np.sqrt(mu_c), 0.0)
        runs = runs_test(pearson, m)
    else:
        out["statistic"] = "reduced chi2"
        out["residual_rms"] = float(np.sqrt(np.sum(r * r) / dof))
        if sigma is not None:
            out.update(reduced=float(np.sum(r * r) / sigma**2 / dof), noise=float(sigma),
                       noise_source="given")
        else:
            sd = noise_from_scatter(r, level, m)
            if sd is not None:
                ok = (m > 0) & np.isfinite(sd)
                chi2 = float(np.sum((r[ok] / sd[ok]) ** 2))
                dof_ok = max(int(ok.sum()) - n_free, 1)
                out.update(reduced=chi2 / dof_ok, noise=float(np.nanmedian(sd[m > 0])),
                           noise_source="scatter of the residuals (second differences)",
                           noise_sd=sd)
            else:
                out["noise_source"] = ("none: the residuals show no point-to-point scatter, so "
                                       "no reduced chi2 can be computed without --sigma")
        runs = runs_test(r, m)
    out["runs"] = runs
    zs = [d["z"] for d in runs if d["z"] is not None]
    out["runs_z_min"] = float(min(zs)) if zs else None
    reasons = []
    if out["reduced"] is not None and out["reduced"] > MISFIT_REDUCED:
        reasons.append(f"{out['statistic']} = {out['reduced']:.3g} (noise {out['noise_source']})")
    if zs and min(zs) < MISFIT_RUNS_Z:
        worst = int(np.argmin([d["z"] if d["z"] is not None else np.inf for d in runs]))
        reasons.append(f"residuals of decay {worst + 1} keep one sign for long runs (runs test "
                       f"z = {runs[worst]['z']:.1f}, longest run {runs[worst]['longest']} bins)")
    if reasons:
        out["adequate"] = False
    elif out["reduced"] is None and not zs:
        out["adequate"] = None
    else:
        out["adequate"] = True
    out["reasons"] = reasons
    return out


# -- the fit ------------------------------------------------------------------------------------

@dataclass
class FitResult:
    """Outcome of :func:`fit`. Values in SI-cm units (s^-1, cm^3 s^-1, cm^-3, s).

    ``params[name] = {"value", "stderr", "stderr_source", "free", "unit"}`` for every model
    parameter except n0; ``per_decay`` lists amplitude, background, shift (with stderr where
    free) and n0 per decay; ``correlation`` is over the free physical parameters (order
    ``free``); ``x``/``cov`` are in natural coordinates (log10 for log parameters) over all
    unknowns (``x_names``). ``converged`` = ``optimizer_converged`` and the residuals do not
    say the model misses the data (``gof["adequate"]`` is not False).
    """

    model: str
    free: tuple
    params: dict
    per_decay: list
    loss: float
    loss_kind: str
    reduced: float | None
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
    #: the known noise given to :func:`fit` (None: estimated)
    sigma: float | None = None
    optimizer_converged: bool = False
    gof: dict = field(default_factory=dict)
    covariance_source: str = ""
    n_at_best: int = 1
    iterations: int = 0
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    #: the fit's program was compiled with ``quick_compile`` (its profile reuses it)
    quick_compile: bool = False

    def value(self, name):
        return self.params[name]["value"]

    def stderr(self, name):
        return self.params[name]["stderr"]

    def to_json(self) -> dict:
        def num(v):
            if v is None:
                return None
            v = float(v)
            return v if math.isfinite(v) else None

        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            if isinstance(v, (int, np.integer)):
                return int(v)
            if isinstance(v, (float, np.floating)):
                return num(v)
            return v

        red_key = "deviance_per_dof" if self.loss_kind == "poisson" else "reduced_chi2"
        return clean({
            "model": self.model,
            "forward_model": {"kind": ("single_pulse" if self.problem.structure.rep_rate is None
                                       else "periodic_steady_state"),
                              "rep_rate_hz": self.problem.structure.rep_rate,
                              "description": self.problem.structure.forward_model},
            "params": {n: {"value": p["value"], "stderr": p["stderr"] if p["free"] else None,
                           "stderr_source": p.get("stderr_source"), "free": p["free"],
                           "unit": p["unit"]} for n, p in self.params.items()},
            "per_decay": self.per_decay,
            "loss": self.loss, "loss_kind": self.loss_kind,
            red_key: self.reduced,
            "noise": self.gof.get("noise"), "noise_source": self.gof.get("noise_source"),
            "n_data": self.n_data, "n_free": self.n_free,
            "converged": bool(self.converged),
            "optimizer_converged": bool(self.optimizer_converged),
            "model_describes_data": self.gof.get("adequate"),
            "misfit_reasons": self.gof.get("reasons", []),
            "runs_test": self.gof.get("runs", []),
            "newton_decrement": self.newton_decrement,
            "covariance": self.covariance_source,
            "n_starts": self.n_starts, "starts_at_best": self.n_at_best,
            "start_losses": self.start_losses, "iterations": self.iterations,
            "correlation": {"names": list(self.free),
                            "matrix": np.asarray(self.correlation).tolist()},
            "warnings": list(self.warnings), "notes": list(self.notes),
            "timings_s": self.timings,
            "preprocessing": list(self.problem.ds.preprocessing),
            "source": self.problem.ds.source,
        })

    def table(self) -> str:
        g = self.gof
        head = f"model {self.model}   loss {self.loss_kind} = {self.loss:.6g}"
        lines = [head]
        if self.loss_kind == "poisson":
            lines.append(f"deviance/dof = {self.reduced:.4g} (dof {g.get('dof')}; ~1 for a good "
                         "fit of Poisson counts)")
        else:
            rms = g.get("residual_rms")
            if g.get("noise_source") == "given":
                lines.append(f"noise sigma = {g['noise']:.4g} (given)   reduced chi2 = "
                             f"{self.reduced:.4g}   residual rms = {rms:.4g}")
            elif self.reduced is not None:
                lines.append(f"noise = {g['noise']:.4g} (estimated from the point-to-point "
                             f"scatter of the residuals; median)   reduced chi2 = "
                             f"{self.reduced:.4g}   residual rms = {rms:.4g}")
            else:
                lines.append(f"residual rms = {rms:.4g}; {g.get('noise_source')}")
        zmin = g.get("runs_z_min")
        runs = f"   residual runs test: min z = {zmin:.2f}" if zmin is not None else ""
        verdict = {True: "describes the data", False: "does NOT describe the data",
                   None: "cannot be judged"}[g.get("adequate")]
        lines.append(f"model {verdict}{runs}")
        for reason in g.get("reasons", []):
            lines.append(f"  misfit: {reason}")
        lines.append(f"converged = {self.converged}   (optimiser converged = "
                     f"{self.optimizer_converged}, Newton decrement {self.newton_decrement:.2g}; "
                     f"{self.n_at_best} of {self.n_starts} starts reached the best minimum; "
                     f"{self.iterations} iterations)")
        lines.append(f"stderr: {self.covariance_source}")
        lines.append(f"{'parameter':<10} {'value':>12} {'stderr':>12} {'rel':>8}  {'unit':<12} source")
        for n, p in self.params.items():
            if p["free"]:
                se = p["stderr"]
                if se is not None and math.isfinite(se):
                    rel = se / abs(p["value"]) if p["value"] else float("nan")
                    lines.append(f"{n:<10} {p['value']:12.4e} {se:12.3e} {rel:8.2%}  "
                                 f"{p['unit']:<12} {p.get('stderr_source', '')}")
                else:
                    lines.append(f"{n:<10} {p['value']:12.4e} {'none':>12} {'':>8}  "
                                 f"{p['unit']:<12} {p.get('stderr_source', '')}")
            else:
                lines.append(f"{n:<10} {p['value']:12.4e} {'fixed':>12} {'':>8}  {p['unit']}")
        for note in self.notes:
            lines.append(f"note: {note}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def _latin(rng, n, d):
    u = (rng.permuted(np.tile(np.arange(n), (d, 1)), axis=1).T + rng.uniform(size=(n, d))) / n
    return 0.03 + 0.94 * u


def _covariance(H, scale, skip):
    """scale * H^-1 over the coordinates not skipped (NaN elsewhere) and the eigenvalues /
    vectors of the diagonally scaled H."""
    n = H.shape[0]
    cov = np.full((n, n), np.nan)
    ok = ~skip
    if not ok.any():
        return cov, np.zeros(0), np.zeros((0, 0))
    Hs = H[np.ix_(ok, ok)]
    if not np.all(np.isfinite(Hs)):
        return cov, np.zeros(0), np.zeros((0, 0))
    d = np.sqrt(np.abs(np.diag(Hs)))
    d = np.where(d > 0, d, 1.0)
    Hn = Hs / np.outer(d, d)
    evals, evecs = np.linalg.eigh(Hn)
    pos = evals > 1e-12 * max(evals.max(), 1e-300)
    inv = (evecs / np.where(pos, evals, np.nan)) @ evecs.T / np.outer(d, d)
    cov[np.ix_(ok, ok)] = scale * inv
    return cov, evals, evecs


def _fd_hessian(ev: _Evaluator, x, skip, sd_hint):
    """Observed Hessian by central differences of the autodiff gradient, steps 1e-4 of each
    coordinate's own size (its value, or its standard error where the value is ~0)."""
    n = x.size
    h = 1e-4 * np.maximum(np.abs(x), np.where(np.isfinite(sd_hint), sd_hint, 0.0))
    h = np.where(h > 0, h, 1e-8)
    cols = [j for j in range(n) if not skip[j]]
    X = []
    for j in cols:
        for sgn in (1, -1):
            xx = x.copy()
            xx[j] += sgn * h[j]
            X.append(xx)
    if not X:
        return np.full((n, n), np.nan)
    _, G, _, _, _ = ev(np.asarray(X))
    H = np.full((n, n), np.nan)
    for c, j in enumerate(cols):
        H[:, j] = (G[2 * c] - G[2 * c + 1]) / (2 * h[j])
    idx = np.asarray(cols, int)
    Hs = H[np.ix_(idx, idx)]
    H[np.ix_(idx, idx)] = 0.5 * (Hs + Hs.T)
    return H


def _scale_fn(s: Structure, n_data: int, sigma):
    if s.loss == "poisson":
        return lambda L: 1.0
    dof = max(n_data - s.n_x, 1)
    if sigma:
        return lambda L: sigma**2
    return lambda L: max(2 * L / dof, 1e-300)


def _n_data(s: Structure, args) -> int:
    mask = np.asarray(args["data"]["mask"])
    y = np.asarray(args["data"]["y"])
    if s.loss == "loglsq":
        return int(np.sum((mask > 0) & (y > 0)))
    return int(np.sum(mask > 0))


def fit(model, ds: DecaySet, *, free: Sequence[str], fixed: Mapping | None = None,
        init: Mapping | None = None, bounds: Mapping | None = None, loss: str | None = None,
        sigma: float | None = None, background: str = "auto", shift: str = "auto",
        n_starts: int = 8, seed: int = 0, oversample: int = 1,
        config: SolverConfig | None = None, shift_range_bins: float = 10.0,
        hessian: str = "gn", spread: float = 1.0, max_iter: int = 100,
        progress: Callable[[str], None] | None = None, cache: bool | None = None,
        rep_rate: float | None = None, quick_compile: bool = False,
        while_compiling: Callable[[], None] | None = None) -> FitResult:
    """Fit ``model`` to the decays of ``ds`` (a global fit sharing the physical parameters).

    Args:
        free: physical parameters to fit (the others are fixed at ``fixed`` or the defaults).
        init: starting values of free parameters (default: the table's defaults).
        bounds: ``{name: (lower, upper)}`` overriding the table's ``fit_lower/fit_upper``.
        loss: ``poisson`` (default for counts), ``lsq`` (default for normalised), ``loglsq``.
        sigma: known noise of least-squares data (same unit as ``ds.y``); by default the
            covariance uses the residual variance, and the reduced chi^2 the noise estimated
            from the residuals' point-to-point scatter.
        background / shift: ``"auto"`` (see :func:`build_problem`), ``"free"`` or ``"fixed"``.
        n_starts: starting points (the given values plus a Latin hypercube within ``spread``
            decades of them, inside the bounds), optimised together in one batch.
        oversample: solve nodes per bin (raise it when the decay changes within a bin).
        config: solver settings (rtol, dtype, max_steps).
        hessian: ``"gn"`` (Gauss-Newton / Fisher information from the Jacobian) or ``"fd"``
            (observed Hessian by central differences of the gradient).
        progress: called with a line of text at each stage (compiling, iterations, ...).
        cache: JAX's persistent compilation cache (default on, off with
            ``$JAXSIM_NO_CACHE=1``); see :func:`use_compilation_cache`.
        rep_rate: repetition rate of the pulse train in Hz: each decay is the periodic steady
            state (carriers left from earlier pulses included); None: a single pulse from the
            dark.
        quick_compile: compile the fit's program for a process that fits once (the command
            line): on a CPU in ~0.65x the time, each call then ~1.2x slower
            (:data:`CPU_FAST_COMPILE`); a process that fits again and again keeps the default.
        while_compiling: called once just before XLA compiles the fit's program (not when
            it is already compiled in this process); a thread it starts runs beside the
            compiler, which holds no Python lock (the command line loads its figure there).
    """
    t_start = time.perf_counter()
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"sigma = {sigma!r}: expected a positive noise level")
    if hessian not in ("gn", "fd"):
        raise ParameterError(f"hessian = {hessian!r}: expected 'gn' or 'fd'")
    if cache_wanted(cache):
        use_compilation_cache()
    pr = build_problem(model, ds, free=free, fixed=fixed, init=init, bounds=bounds, loss=loss,
                       background=background, shift=shift, oversample=oversample, config=config,
                       shift_range_bins=shift_range_bins, rep_rate=rep_rate)
    s, args = pr.structure, pr.args
    say = progress or (lambda msg: None)
    say(f"fit {s.model.name}: {s.n_decays} decay(s) x {s.layout.n_bins} {ds.sampling}, "
        f"free {', '.join(s.free)} + {s.m} per decay = {s.n_x} unknowns, loss {s.loss}, "
        f"{max(1, int(n_starts))} start(s)")
    for note in pr.notes:
        say(f"note: {note}")
    n_starts = max(1, int(n_starts))
    lo, hi = pr.lo, pr.hi
    p = len(s.free)
    rng = np.random.default_rng(seed)
    X = np.tile(pr.x0, (n_starts, 1))
    width = np.where(np.asarray(s.log), spread, spread * np.abs(pr.x0[:p]) + 1e-300)
    a = np.maximum(lo[:p], pr.x0[:p] - width)
    b = np.minimum(hi[:p], pr.x0[:p] + width)
    if n_starts > 1:
        X[1:, :p] = a + (b - a) * _latin(rng, n_starts - 1, p)
    t_build = time.perf_counter()
    ev = _Evaluator(s, args, n_starts, progress, while_compiling=while_compiling,
                    fast_compile=quick_compile)
    t_comp = time.perf_counter()
    n_data = _n_data(s, args)
    scale = _scale_fn(s, n_data, sigma)
    first = ev(X)
    for _ in range(3):  # starts where the solver fails (a stiff corner) are drawn again
        bad = ~np.isfinite(first[0])
        bad[0] = False  # the given start stays
        if n_starts == 1 or not bad.any():
            break
        X[bad, :p] = a + (b - a) * _latin(rng, int(bad.sum()), p)
        again = ev(X)
        first = tuple(np.where(bad.reshape((-1,) + (1,) * (o.ndim - 1)), o2, o)
                      for o, o2 in zip(first, again))
    parts = f", {ev.workers} parts on as many cores" if ev.workers > 1 else ""
    say(f"optimising: Levenberg-Marquardt from {n_starts} start(s) in one batch{parts} "
        f"({int(np.sum(np.isfinite(first[0])))} with a solution)")
    res = levenberg_marquardt(ev, X, lo, hi, scale=scale, max_iter=max_iter, progress=say,
                              first=first)
    t_opt = time.perf_counter()
    timings = {"build_s": t_build - t_start, "trace_s": ev.info["trace_s"],
               "compile_s": ev.info["compile_s"], "cache_hit": ev.info["cache_hit"],
               "quick_compile": bool(quick_compile),
               "optimise_s": t_opt - t_comp, "evaluations": ev.calls}
    out = _finish(pr, res, sigma, ev, hessian, timings, say)
    out.timings["total_s"] = time.perf_counter() - t_start
    return out


def _finish(pr: Problem, res: _LMResult, sigma, ev: _Evaluator, hessian: str, timings: dict,
            say=lambda m: None) -> FitResult:
    s, args = pr.structure, pr.args
    lo, hi = pr.lo, pr.hi
    p = len(s.free)
    Lr = res.L
    if not np.any(np.isfinite(Lr)):
        raise RuntimeError(
            f"fit {s.model.name}: every start failed (the solver did not finish within "
            f"{s.config.max_steps} steps or gave non-finite values"
            + ("" if s.rep_rate is None else ", or the periodic steady state of the pulse "
               "train did not converge") + "): check the bounds and the "
            "initial values, or raise config.max_steps")
    best = int(np.argmin(np.where(np.isfinite(Lr), Lr, np.inf)))
    x = res.X[best]
    L = float(Lr[best])
    G, A = res.G[best], res.A[best]
    mu, status = res.mu[best], res.status[best]
    n_at_best = int(np.sum((np.isfinite(Lr) & (Lr <= L + max(1e-6 * abs(L), 1e-9)))
                           | res.same_basin))
    at_lo, at_hi = _at_bound(x, lo, hi)
    at_bound = at_lo | at_hi
    n_data = _n_data(s, args)
    n_free = x.size
    dof = max(n_data - n_free, 1)
    y = np.asarray(args["data"]["y"])
    mask = np.asarray(args["data"]["mask"])
    gof = goodness_of_fit(s.loss, y, mu, mask, n_free, sigma)
    if s.loss == "poisson":
        scale, scale_src = 1.0, "Fisher information of the Poisson likelihood"
    elif sigma is not None:
        scale, scale_src = sigma**2, f"sigma^2 (J^T J)^-1 with the given sigma = {sigma:g}"
    else:
        scale = 2 * L / dof
        scale_src = (f"s^2 (J^T J)^-1 with s = {math.sqrt(scale):.4g}, the residual rms "
                     "(no --sigma given)")
    if hessian == "fd":
        cov0, _, _ = _covariance(A, scale, at_bound)
        H = _fd_hessian(ev, x, at_bound, np.sqrt(np.abs(np.diag(cov0))))
        cov, evals, evecs = _covariance(H, scale, at_bound)
        src = ("observed Hessian (central differences of the gradient)"
               + (", scaled by " + scale_src.split(" (J")[0] if s.loss != "poisson" else ""))
    else:
        cov, evals, evecs = _covariance(A, scale, at_bound)
        src = ("Gauss-Newton: " + scale_src) if s.loss != "poisson" else scale_src
    dec = float(res.decrement[best])
    ok_solves = bool(np.all(status == 0))
    opt_conv = bool(ok_solves and np.isfinite(L) and dec < DECREMENT_TOL)
    converged = bool(opt_conv and gof["adequate"] is not False)
    dg = np.diag(cov)
    sd = np.where(np.isfinite(dg), np.sqrt(np.abs(dg)), np.nan)
    rows = {r.name: r for r in s.model.parameters}
    params = {}
    for i, name in enumerate(s.free):
        source = "at its bound: none" if at_bound[i] else (
            "flat direction: none" if not np.isfinite(sd[i]) else
            ("FD Hessian" if hessian == "fd" else "Fisher" if s.loss == "poisson"
             else "GN, sigma given" if sigma is not None else "GN, s from residuals"))
        if s.log[i]:
            v = 10.0 ** x[i]
            params[name] = {"value": v, "stderr": v * math.log(10) * sd[i], "free": True,
                            "unit": rows[name].unit, "log10": x[i], "log10_stderr": sd[i],
                            "stderr_source": source}
        else:
            params[name] = {"value": x[i], "stderr": sd[i], "free": True,
                            "unit": rows[name].unit, "stderr_source": source}
    for name, v in pr.fixed_values.items():
        params[name] = {"value": v, "stderr": 0.0, "free": False, "unit": rows[name].unit,
                        "stderr_source": "fixed"}
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
            if at_bound[base + j]:
                d["background_at_bound"] = True
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
        bad = np.flatnonzero(status != 0)
        msgs.append(f"{bad.size} decay solve(s) failed at the optimum ({STATUS_MESSAGES[int(status[bad[0]])]}): "
                    "raise config.max_steps or narrow the bounds")
    if gof["adequate"] is False:
        msgs.append("the model does not describe these data within their noise ("
                    + "; ".join(gof["reasons"]) + "): the standard errors assume it does and are "
                    "too small; check the model, the time origin (--shift), the IRF, the "
                    "background and the window")
    for msg in msgs:
        warnings.warn(msg, FitWarning, stacklevel=3)
    say(f"done: loss {L:.6g}, {gof['statistic']} = "
        + (f"{gof['reduced']:.4g}" if gof["reduced"] is not None else "n/a")
        + f", converged = {converged}")
    return FitResult(
        model=s.model.name, free=s.free, params=params, per_decay=per_decay, loss=L,
        loss_kind=s.loss, reduced=gof["reduced"], n_data=n_data, n_free=n_free, sigma=sigma,
        converged=converged, newton_decrement=dec, n_starts=int(Lr.size),
        start_losses=[float(v) for v in Lr], correlation=corr, x=x, cov=cov,
        x_names=pr.names, warnings=msgs, mu=mu, status=status, problem=pr,
        optimizer_converged=opt_conv, gof=gof, covariance_source=src, n_at_best=n_at_best,
        iterations=res.iterations, timings=timings, notes=list(pr.notes),
        quick_compile=bool(timings.get("quick_compile")))


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
        ok = np.flatnonzero(~at_bound)
        top = [pr.names[ok[i]] for i in np.argsort(-np.abs(evecs[:, 0]))[:3]]
        if ratio <= 0:
            msgs.append("the Hessian is not positive definite at the end point (no minimum "
                        f"along {', '.join(top)}): the data do not determine that combination")
        elif ratio < 1e-9:
            msgs.append(f"flat direction in the loss (Hessian condition {1 / ratio:.2g}) along "
                        f"{', '.join(top)}")
    return msgs


def profile_likelihood(result: FitResult, name: str, values=None, *, n_points: int = 9,
                       span_sigmas: float = 3.0, max_iter: int = 60) -> dict:
    """Profile of the loss over ``name``: at each value the other unknowns are re-optimised
    (Levenberg-Marquardt from the optimum; all values in batches of the fit's compiled
    program).

    Returns ``{"values", "loss", "delta", "interval95"}``: ``delta = (L - L_min) / scale``
    (scale 1 for Poisson, the noise variance for least squares; 0.5 at 1 sigma, 1.92 at 95 %),
    ``interval95`` where delta crosses 1.92 (None where it does not within the grid).
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
    lo, hi = pr.lo, pr.hi
    grid_x = np.clip(grid_x, lo[i], hi[i])
    X = np.tile(result.x, (grid_x.size, 1))
    X[:, i] = grid_x
    # the fit's own program (compiled already, or loaded from the cache)
    ev = _Evaluator(s, pr.args, result.n_starts, fast_compile=result.quick_compile)
    scale_v = (1.0 if s.loss == "poisson" else result.sigma**2 if result.sigma
               else 2 * result.loss / max(result.n_data - result.n_free, 1))
    frozen = np.zeros(s.n_x, bool)
    frozen[i] = True
    res = levenberg_marquardt(ev, X, lo, hi, scale=lambda L: scale_v, frozen=frozen,
                              max_iter=max_iter, independent=True)
    Lp = res.L
    lmin = min(result.loss, float(np.min(Lp)))
    delta = (Lp - lmin) / scale_v
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


def fit_many(*args, **kwargs):
    """Many independent single-decay fits in one batched optimiser:
    :func:`jaxsim.studies.many.fit_many` (returns a :class:`~jaxsim.studies.many.ManyFit`)."""
    from jaxsim.studies.many import fit_many as _fit_many

    return _fit_many(*args, **kwargs)


def save_json(result: FitResult, path, extra: Mapping | None = None) -> None:
    """Write ``result.to_json()`` and the blocks of ``extra`` (e.g. ``{"posterior": ...}``)
    (strict JSON: non-finite numbers become null)."""
    with open(path, "w") as fh:
        json.dump({**result.to_json(), **dict(extra or {})}, fh, indent=2, allow_nan=False)


def save_profile_json(prof: dict, path) -> None:
    """Write a :func:`profile_likelihood` result (strict JSON: non-finite numbers become null)."""
    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    with open(path, "w") as fh:
        json.dump({"name": prof["name"], "values": [num(v) for v in prof["values"]],
                   "loss": [num(v) for v in prof["loss"]],
                   "delta": [num(v) for v in prof["delta"]],
                   "interval95": [None if v is None else num(v) for v in prof["interval95"]]},
                  fh, indent=2, allow_nan=False)
