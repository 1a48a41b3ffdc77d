r"""Which parameter controls an observable, and where: local elasticities and Sobol indices.

Local (one point of a grid at a time)
    :func:`with_elasticities` wraps the engine's chunk function so it also returns, for each
    summary :math:`s` and parameter :math:`p`,

    .. math::

        \texttt{d\_<s>\_d\_log\_<p>} = \frac{\partial s}{\partial \ln p}
        = p\,\frac{\partial s}{\partial p},

    in the unit of :math:`s` (natural log; per decade multiply by :math:`\ln 10`). The
    dimensionless elasticity :math:`\partial\ln s/\partial\ln p` is this divided by :math:`s`
    (:func:`normalised_elasticity`). Derivatives are exact derivatives of the discretised solve,
    by forward mode: one ``jax.jvp`` per parameter with tangent :math:`\dot p = p`, the tangents
    ``vmap``-ed together so the primal solve is shared.

Global (over ranges of several parameters)
    Saltelli sampling (:func:`saltelli_design`): two independent quasi-random matrices
    :math:`A, B` (N x D, the two halves of a 2D-dimensional scrambled Sobol sequence) and, for
    each parameter :math:`j`, :math:`A_B^{(j)}` = :math:`A` with column :math:`j` from :math:`B`:
    :math:`N(D+2)` model runs. With :math:`f` the model output, standardised over all runs
    (:math:`y \to (y - \bar y)/\sigma_y`, as SALib does: the estimators below are not shift
    invariant), :math:`V = \mathrm{Var}[f(A), f(B)]`,

    .. math::

        S_j = \frac{\tfrac1N\sum_i f(B)_i\,[f(A_B^{(j)})_i - f(A)_i]}{V}
        \quad\text{(Saltelli 2010)},\qquad
        S_{Tj} = \frac{\tfrac1{2N}\sum_i [f(A)_i - f(A_B^{(j)})_i]^2}{V}
        \quad\text{(Jansen 1999)}.

    Confidence intervals: ``z * std`` of the estimates over bootstrap resamples of the N rows
    (z the normal quantile of ``conf_level``), SALib's procedure, so with the same ``seed`` the
    intervals match SALib's ``sobol.analyze`` too.

Parameters whose range spans a decade or more are sampled log-uniformly by default.
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm, qmc

from jaxsim.numerics.config import SUCCESS, SolverConfig
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.fields import number
from jaxsim.physics.parameters import table_lookup
from jaxsim.physics.registry import get_model

INDEX_KEYS = ("S1", "S1_conf", "ST", "ST_conf")


def elasticity_name(summary: str, param: str) -> str:
    """Store name of :math:`\\partial s/\\partial\\ln p` (e.g. ``d_tau_mean_pl_d_log_A``)."""
    return f"d_{summary}_d_log_{param}"


def with_elasticities(chunk_fn: Callable, wrt: Sequence[str], summaries: Sequence[str]) -> Callable:
    r"""Wrap ``chunk_fn`` so it also returns :math:`\partial s/\partial\ln p`.

    Args:
        chunk_fn: ``f(values: dict[str, Array(chunk,)]) -> dict[str, Array]`` in physical units,
            differentiable in forward mode (``jaxsim.numerics.engine.chunk_solver``; a solve built with
            ``SolverConfig(adjoint="checkpoint")`` cannot be pushed forward).
        wrt: parameter names; each must be a key of ``values`` (sweep axes or broadcast fixed
            values, one entry per point).
        summaries: keys of ``chunk_fn``'s output to differentiate.

    Returns ``g(values)`` (jitted) with ``chunk_fn``'s outputs plus ``d_<s>_d_log_<p>`` of shape
    ``(chunk,)`` for each summary and parameter, in the unit of ``s`` per unit of natural log.
    Where ``status != 0`` (solve failed) the derivatives are NaN, flagged by ``status``.
    """
    wrt = tuple(wrt)
    summaries = tuple(summaries)
    if not wrt:
        raise ParameterError("wrt = (): expected at least one parameter name")
    if len(set(wrt)) != len(wrt):
        raise ParameterError(f"wrt = {wrt!r}: expected distinct parameter names")

    @jax.jit
    def run(values):
        shapes = jax.eval_shape(chunk_fn, values)  # fail fast on a bad name, before the jvp
        for s in summaries:
            if s not in shapes:
                raise ParameterError(
                    f"with_elasticities: summary {s!r} is not an output of chunk_fn: expected "
                    f"one of {', '.join(k for k in shapes if k not in ('status', 'num_steps'))}")

        def push(tangent):
            return jax.jvp(chunk_fn, (values,), (tangent,))

        # One tangent per parameter, dp = p (i.e. d ln p = 1); vmapped so the primal (unbatched)
        # solve is traced once and only the tangent lanes are batched.
        tangents = {k: jnp.stack([v if k == p else jnp.zeros_like(v) for p in wrt])
                    for k, v in values.items()}
        outs, douts = jax.vmap(push)(tangents)
        result = {k: v[0] for k, v in outs.items()}
        ok = result["status"] == SUCCESS if "status" in result else True
        for s in summaries:
            for i, p in enumerate(wrt):
                result[elasticity_name(s, p)] = jnp.where(ok, douts[s][i], jnp.nan)
        return result

    def g(values: Mapping[str, object]) -> dict:
        missing = [p for p in wrt if p not in values]
        if missing:
            raise ParameterError(
                f"with_elasticities: parameter {missing[0]!r} is not in values (keys: "
                f"{', '.join(values)}): expected every name in wrt = {wrt!r} as a per-point array")
        vals = {k: jnp.asarray(v, dtype=jnp.result_type(float)) for k, v in values.items()}
        try:
            out = run(vals)
        except TypeError as err:
            if "custom_vjp" in str(err):
                raise ParameterError(
                    "chunk_fn cannot be differentiated in forward mode: build it with "
                    "SolverConfig(adjoint='forward')") from err
            raise
        return out

    # keep the engine's metadata (model, t1, summaries, ...) so helpers such as
    # jaxsim.numerics.engine.solve_points accept the wrapped function like the original
    g.__dict__.update(getattr(chunk_fn, "__dict__", {}))
    g.elasticities = tuple(elasticity_name(s, p) for s in summaries for p in wrt)
    return g


def normalised_elasticity(ds, summary: str, param: str):
    r"""Dimensionless :math:`\partial\ln s/\partial\ln p` from a store holding ``s`` and
    ``d_<s>_d_log_<p>`` (xarray objects or dicts of arrays)."""
    return ds[elasticity_name(summary, param)] / ds[summary]


def dominant_parameter(ds, summary: str, params):
    """Index into ``params`` of the largest |d summary / d ln p| at every point (NaN where any
    derivative is missing), as a DataArray with ``attrs["params"]``."""
    missing = [p for p in params if elasticity_name(summary, p) not in ds]
    if missing:
        raise ParameterError(f"variable {elasticity_name(summary, missing[0])!r} is not in the "
                             "store: expected elasticities for every parameter listed")
    import xarray as xr

    stack = xr.concat([abs(ds[elasticity_name(summary, p)]) for p in params], dim="param")
    ok = stack.notnull().all("param")
    idx = stack.fillna(-1).argmax("param").where(ok)
    idx.attrs["params"] = list(params)
    return idx


def local_sensitivity_grid(model, axes: Mapping[str, Sequence[float]], *, t1: float,
                           summaries: Sequence[str], wrt: Sequence[str], fixed=None,
                           config: SolverConfig | None = None, chunk: int = 256):
    """Elasticities on the full grid ``axes`` (name -> values) as an ``xarray.Dataset``.

    A small stand-in for a sweep with ``sensitivities = [...]``: dims are the axis names,
    variables the summaries, ``status`` and ``d_<s>_d_log_<p>``. Parameters in ``wrt`` that are
    not axes are held at ``fixed`` (or the model default) and differentiated there.
    """
    import xarray as xr

    model = get_model(model)
    fixed = dict(fixed or {})
    for k in (*axes, *fixed, *wrt):
        table_lookup(model.parameters, k, model=model.name)
    names = list(axes)
    grids = np.meshgrid(*[np.asarray(axes[k], float) for k in names], indexing="ij")
    shape = grids[0].shape
    flat = {k: g.ravel() for k, g in zip(names, grids)}
    size = grids[0].size
    for p in wrt:
        if p not in flat:
            row = table_lookup(model.parameters, p, model=model.name)
            flat[p] = np.full(size, float(fixed.get(p, row.default)))
    fn = with_elasticities(
        _chunk_fn(model, t1, tuple(summaries), config or SolverConfig(), fixed), wrt, summaries)
    out = _map_chunks(fn, flat, chunk)
    data = {k: (names, np.asarray(v).reshape(shape)) for k, v in out.items()}
    coords = {k: np.asarray(axes[k], float) for k in names}
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(model=model.name, t1=float(t1),
                    elasticity="d_<s>_d_log_<p> = d s / d ln p (natural log, unit of s)")
    return ds


def _chunk_fn(model, t1, summaries, config, fixed):
    """The engine's chunk function (fallback: ``jaxsim.solve`` + ``observables.summaries``)."""
    try:
        from jaxsim.numerics.engine import chunk_solver
    except ImportError:  # pragma: no cover - the engine is part of the package
        return _fallback_chunk_fn(model, t1, summaries, config, fixed)
    return chunk_solver(model, t1=t1, summaries=summaries, config=config, fixed=fixed)


def _fallback_chunk_fn(model, t1, summaries, config, fixed):  # pragma: no cover
    from jaxsim.numerics.reference import solve
    from jaxsim.observables.summaries import summaries as summarise

    def f(values):
        sol = solve(model, {**fixed, **values}, np.array([float(t1)]), config=config)
        out = summarise(sol, summaries)
        return {**out, "status": sol.status, "num_steps": sol.num_steps}

    return f


def _map_chunks(fn, flat: dict, chunk: int, progress=None) -> dict:
    """Apply ``fn`` to ``flat`` (name -> (M,)) in chunks of ``chunk`` (last one padded by
    repeating its last point, so one compiled shape serves every chunk)."""
    m = len(next(iter(flat.values())))
    chunk = max(1, min(int(chunk), m))
    parts: dict[str, list] = {}
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        idx = np.minimum(np.arange(start, start + chunk), stop - 1)
        out = fn({k: v[idx] for k, v in flat.items()})
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v)[: stop - start])
        if progress is not None:
            progress(stop - start)
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate(model, points: Mapping[str, np.ndarray], *, t1: float, observables: Sequence[str],
             fixed=None, config: SolverConfig | None = None, chunk: int = 1024,
             progress: bool = False) -> dict:
    """Summaries at every point (name -> (M,) physical values), batched through the engine.

    Points are sorted by stiffness before chunking (so one stiff point does not hold a whole
    chunk back) and returned in the original order, with ``status`` and ``num_steps``.
    """
    model = get_model(model)
    flat = {k: np.asarray(v, float) for k, v in points.items()}
    m = len(next(iter(flat.values())))
    try:
        from jaxsim.numerics.engine import stiffness_order
    except ImportError:  # pragma: no cover
        order = np.arange(m)
    else:
        order = np.asarray(stiffness_order(model, {**(fixed or {}), **flat}))
    fn = _chunk_fn(model, float(t1), tuple(observables), config or SolverConfig(),
                   dict(fixed or {}))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=m, unit="solve", desc="sensitivity")
    try:
        out = _map_chunks(fn, {k: v[order] for k, v in flat.items()}, chunk,
                          bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    inv = np.empty_like(order)
    inv[order] = np.arange(m)
    return {k: v[inv] for k, v in out.items()}


@dataclass(frozen=True)
class Range:
    """Sampling range of one parameter (physical units); ``log=None`` picks log-uniform when
    ``high / low >= 10`` (the range spans a decade or more) and ``low > 0``."""

    name: str
    low: float
    high: float
    log: bool | None = None

    def __post_init__(self):
        lo, hi = float(self.low), float(self.high)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ParameterError(
                f"range of {self.name!r} = [{self.low!r}, {self.high!r}]: expected finite "
                "low < high")
        if self.log is None:
            object.__setattr__(self, "log", bool(lo > 0 and hi / lo >= 10))
        if self.log and lo <= 0:
            raise ParameterError(
                f"range of {self.name!r} has low = {self.low!r} with log = true: expected "
                "low > 0 for a log-uniform range")

    def scale(self, u: np.ndarray) -> np.ndarray:
        """Map unit-cube coordinates u in [0, 1) to physical values."""
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            return np.exp(a + u * (b - a))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class SaltelliDesign:
    """The N(D+2) points of a Saltelli design, physical units, ``A`` and ``B`` (N, D) and
    ``AB`` (D, N, D) with ``AB[j] = A`` except column j from ``B``."""

    names: tuple[str, ...]
    A: np.ndarray
    B: np.ndarray
    AB: np.ndarray

    @property
    def n(self) -> int:
        return self.A.shape[0]

    def points(self) -> np.ndarray:
        """All runs, (N(D+2), D), in the order [A; B; AB_0; ...; AB_{D-1}]."""
        return np.concatenate([self.A, self.B, *self.AB])

    def split(self, y: np.ndarray):
        """Outputs of :meth:`points` -> (y_A (N,), y_B (N,), y_AB (D, N))."""
        n, d = self.n, len(self.names)
        y = np.asarray(y)
        if y.shape[0] != n * (d + 2):
            raise ParameterError(f"outputs have {y.shape[0]} rows: expected N(D+2) = {n * (d + 2)}")
        return y[:n], y[n:2 * n], y[2 * n:].reshape(d, n, *y.shape[1:])

    def salib_order(self) -> np.ndarray:
        """Permutation p with ``points()[p]`` in SALib's row order (per i: A, AB_0.., B)."""
        n, d = self.n, len(self.names)
        i = np.arange(n)[:, None]
        cols = [i, *(2 * n + j * n + i for j in range(d)), n + i]
        return np.concatenate(cols, axis=1).ravel()


def saltelli_design(ranges: Sequence[Range], n: int, *, seed: int | None = 0,
                    scramble: bool = True) -> SaltelliDesign:
    """Saltelli's design from a scrambled Sobol sequence in 2D dimensions (``scipy.stats.qmc``).

    Same construction as SALib's ``sobol.sample(..., calc_second_order=False)``: the same seed
    gives the same unit-cube points. ``n`` must be a power of two (Sobol balance).
    """
    ranges = tuple(ranges)
    names = tuple(r.name for r in ranges)
    if not ranges:
        raise ParameterError("ranges = (): expected at least one parameter range")
    if len(set(names)) != len(names):
        raise ParameterError(f"parameter names {names!r}: expected each at most once")
    n = int(n)
    if n < 2 or n & (n - 1):
        raise ParameterError(f"N = {n!r}: expected a power of two >= 2 (e.g. 256, 1024)")
    d = len(ranges)
    base = qmc.Sobol(d=2 * d, scramble=scramble, seed=seed).random(n)
    ua, ub = base[:, :d], base[:, d:]
    uab = np.repeat(ua[None], d, axis=0)
    for j in range(d):
        uab[j, :, j] = ub[:, j]

    def phys(u):
        return np.stack([r.scale(u[..., j]) for j, r in enumerate(ranges)], axis=-1)

    return SaltelliDesign(names, phys(ua), phys(ub), phys(uab))


def _over_variance(numerator, a, b):
    """numerator / Var[f(A), f(B)] along axis 0; 0 where that variance vanishes."""
    v = np.var(np.concatenate([a, b]), axis=0)
    ok = v > np.finfo(float).eps
    return np.where(ok, numerator / np.where(ok, v, 1.0), 0.0)


def _first_order(a, ab, b):
    """Saltelli et al. (2010): S_j = E[f(B) (f(A_B^j) - f(A))] / V."""
    return _over_variance(np.mean(b * (ab - a), axis=0), a, b)


def _total_order(a, ab, b):
    """Jansen (1999): S_Tj = E[(f(A) - f(A_B^j))^2] / (2 V)."""
    return _over_variance(0.5 * np.mean((a - ab) ** 2, axis=0), a, b)


def sobol_indices(y_a, y_b, y_ab, *, num_resamples: int = 100, conf_level: float = 0.95,
                  seed: int | None = 1) -> dict[str, np.ndarray]:
    """First-order (Saltelli 2010) and total (Jansen) Sobol indices with bootstrap intervals.

    Args:
        y_a, y_b: outputs at ``A`` and ``B``, shape (N,); y_ab: (D, N) outputs at ``AB[j]``.
        num_resamples: bootstrap resamples of the N rows; conf_level: two-sided level.
        seed: bootstrap seed (``numpy.random.default_rng(seed).integers(N, size=(N, R))``,
            the draw SALib makes for a nonzero seed).

    Returns ``{"S1", "S1_conf", "ST", "ST_conf"}``, each an array (D,). A constant output
    gives zeros (no variance to apportion).
    """
    y_a, y_b, y_ab = (np.asarray(x, float) for x in (y_a, y_b, y_ab))
    if y_ab.ndim != 2 or y_a.shape != y_b.shape or y_ab.shape[1:] != y_a.shape or y_a.ndim != 1:
        raise ParameterError(f"output shapes A {y_a.shape}, B {y_b.shape}, AB {y_ab.shape}: "
                             "expected (N,), (N,), (D, N)")
    every = np.concatenate([y_a, y_b, y_ab.ravel()])
    if not np.all(np.isfinite(every)):
        raise ParameterError(
            f"{int(np.sum(~np.isfinite(every)))} model outputs are not finite: expected finite "
            "outputs (drop failed rows before computing indices)")
    if not 0 < conf_level < 1:
        raise ParameterError(f"conf_level = {conf_level!r}: expected a number in (0, 1)")
    n, d = y_a.size, y_ab.shape[0]
    sd = every.std()
    if sd == 0:
        zeros = np.zeros(d)
        return {k: zeros.copy() for k in INDEX_KEYS}
    mu = every.mean()
    a, b, ab = (y_a - mu) / sd, (y_b - mu) / sd, (y_ab.T - mu) / sd  # ab: (N, D)
    r = np.random.default_rng(seed).integers(n, size=(n, int(num_resamples)))
    z = norm.ppf(0.5 + conf_level / 2)
    resampled_spread = np.ptp(np.concatenate([a[r], b[r]]))
    out = {k: np.zeros(d) for k in INDEX_KEYS}
    for j in range(d):
        out["S1"][j] = _first_order(a, ab[:, j], b)
        out["ST"][j] = _total_order(a, ab[:, j], b)
        if resampled_spread != 0:
            out["S1_conf"][j] = z * _first_order(a[r], ab[r, j], b[r]).std(ddof=1)
            out["ST_conf"][j] = z * _total_order(a[r], ab[r, j], b[r]).std(ddof=1)
    return out


def observable_base(name: str) -> str:
    """``"log10:tau_mean_pl"`` -> ``"tau_mean_pl"`` (the summary the engine computes)."""
    return name[len(LOG_PREFIX):] if name.startswith(LOG_PREFIX) else name


LOG_PREFIX = "log10:"


def observable_values(name: str, out: Mapping) -> np.ndarray:
    """Values of an observable from the engine's outputs; ``log10:NAME`` takes log10 (values
    <= 0 become non-finite and their rows are dropped)."""
    y = np.asarray(out[observable_base(name)], float)
    if name.startswith(LOG_PREFIX):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log10(y)
    return y


class StudyError(ParameterError):
    """A sensitivity study whose model runs failed too often to give indices."""


@dataclass(frozen=True)
class SensitivitySpec:
    """A global sensitivity study (the TOML spec of ``jaxsim sensitivity``; see docs)."""

    ranges: tuple[Range, ...]
    observables: tuple[str, ...]
    t1: float
    model: str = "trap_detrap"
    fixed: dict = field(default_factory=dict)
    n: int = 256
    seed: int = 0
    num_resamples: int = 100
    conf_level: float = 0.95
    chunk: int = 1024
    solver: dict = field(default_factory=dict)

    def __post_init__(self):
        model = get_model(self.model)
        object.__setattr__(self, "model", model)
        for r in self.ranges:
            row = table_lookup(model.parameters, r.name, model=model.name)
            for end in (r.low, r.high):
                row.check(float(end), where=f"range of {r.name!r}")
        for k, v in self.fixed.items():
            row = table_lookup(model.parameters, k, model=model.name)
            row.check(v, where="fixed")
            if k in {r.name for r in self.ranges}:
                raise ParameterError(
                    f"parameter {k!r} is both fixed and given a range: expected one of the two")
        if not self.observables:
            raise ParameterError("observables = []: expected at least one summary name")
        from jaxsim.observables.summaries import summary_table

        known = summary_table(model)
        for o in self.observables:
            base = observable_base(o)
            if base not in known:
                raise ParameterError(
                    f"observable {o!r} is not known for model {model.name!r}: expected one of "
                    f"{', '.join(known)}, optionally as 'log10:NAME'")
        if not (math.isfinite(self.t1) and self.t1 > 0):
            raise ParameterError(f"t1 = {self.t1!r}: expected a window end > 0 s")
        if not 0 < self.conf_level < 1:
            raise ParameterError(f"conf_level = {self.conf_level!r}: expected a number in (0, 1)")
        if int(self.num_resamples) < 2:
            raise ParameterError(f"num_resamples = {self.num_resamples!r}: expected >= 2")
        if int(self.chunk) < 1:
            raise ParameterError(f"chunk = {self.chunk!r}: expected a positive integer")
        self.config  # validates the solver table

    @property
    def config(self) -> SolverConfig:
        try:
            return SolverConfig(**self.solver)
        except TypeError as err:
            raise ParameterError(f"solver settings {self.solver!r}: {err}") from None


SOLVER_KEYS = ("rtol", "atol", "dtype", "max_steps")  # top-level, as in sweep specs


SPEC_KEYS = {"model", "fixed", "ranges", "observables", "N", "seed", "t1", "num_resamples",
             "conf_level", "chunk_size", "description", *SOLVER_KEYS}


def _number(value, field: str, kind=float):
    """``kind(value)`` for a spec field, or a ParameterError naming the field."""
    return number(value, field, integer=kind is int)


def spec_from_dict(d: Mapping) -> SensitivitySpec:
    """Build a :class:`SensitivitySpec` from a parsed TOML table (keys as in the docs)."""
    unknown = set(d) - SPEC_KEYS
    if unknown:
        raise ParameterError(f"spec key {sorted(unknown)[0]!r} is not known: expected one of "
                             f"{', '.join(sorted(SPEC_KEYS))}")
    for key in ("ranges", "observables", "t1"):
        if key not in d:
            raise ParameterError(f"spec has no {key!r}: expected it (see docs/sensitivity.md)")
    if not isinstance(d["ranges"], Mapping):
        raise ParameterError(f"ranges = {d['ranges']!r}: expected a table [ranges]")
    ranges = []
    for name, r in d["ranges"].items():
        if isinstance(r, Mapping):
            extra = set(r) - {"low", "high", "log"}
            if extra or not {"low", "high"} <= set(r):
                raise ParameterError(f"ranges.{name} = {dict(r)!r}: expected keys low, high "
                                     "and optionally log")
            log = r.get("log")
            if log is not None and not isinstance(log, bool):
                raise ParameterError(f"ranges.{name}.log = {log!r}: expected true or false")
            ranges.append(Range(name, _number(r["low"], f"ranges.{name}.low"),
                                _number(r["high"], f"ranges.{name}.high"), log))
        elif isinstance(r, Sequence) and not isinstance(r, str) and len(r) == 2:
            ranges.append(Range(name, _number(r[0], f"ranges.{name}[0]"),
                                _number(r[1], f"ranges.{name}[1]")))
        else:
            raise ParameterError(f"ranges.{name} = {r!r}: expected [low, high] or "
                                 "{low = .., high = .., log = ..}")
    obs = d["observables"]
    if isinstance(obs, str) or not all(isinstance(o, str) for o in obs):
        raise ParameterError(f"observables = {obs!r}: expected a list of summary names")
    fixed = d.get("fixed", {})
    if not isinstance(fixed, Mapping):
        raise ParameterError(f"fixed = {fixed!r}: expected a table [fixed]")
    return SensitivitySpec(
        ranges=tuple(ranges), observables=tuple(obs), t1=_number(d["t1"], "t1"),
        model=d.get("model", "trap_detrap"),
        fixed={k: _number(v, f"fixed.{k}") for k, v in fixed.items()},
        n=_number(d.get("N", 256), "N", int), seed=_number(d.get("seed", 0), "seed", int),
        num_resamples=_number(d.get("num_resamples", 100), "num_resamples", int),
        conf_level=_number(d.get("conf_level", 0.95), "conf_level"),
        chunk=_number(d.get("chunk_size", 1024), "chunk_size", int),
        solver={k: d[k] for k in SOLVER_KEYS if k in d})


@dataclass(frozen=True)
class SensitivityResult:
    """Indices per observable and parameter plus the design and outputs behind them."""

    spec: SensitivitySpec
    indices: dict  # {observable: {param: {"S1", "S1_conf", "ST", "ST_conf"}}}
    design: SaltelliDesign
    outputs: dict  # observable -> (N(D+2),), plus status
    dropped_rows: int

    def to_json(self) -> dict:
        return self.indices

    def write(self, out_dir, *, samples: bool = False) -> dict[str, pathlib.Path]:
        """``sensitivity.json`` (indices), ``sensitivity_meta.json`` (spec, failures) and,
        with ``samples``, ``samples.npz`` (design points in the order A, B, AB_0.. and the
        engine's outputs). The bar chart is drawn by :func:`jaxsim.plots.sensitivity.sobol_bars`
        (``jaxsim sensitivity`` writes it beside them)."""
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "sensitivity.json", "meta": out / "sensitivity_meta.json",
                 "samples": out / "samples.npz"}
        paths["json"].write_text(json.dumps(self.indices, indent=2) + "\n")
        s = self.spec
        runs = int(self.design.points().shape[0])
        meta = dict(model=s.model.name, t1=s.t1, N=s.n, seed=s.seed, runs=runs,
                    dropped_rows=self.dropped_rows, num_resamples=s.num_resamples,
                    conf_level=s.conf_level, fixed=s.fixed, solver=s.solver,
                    ranges={r.name: dict(low=r.low, high=r.high, log=r.log) for r in s.ranges},
                    estimators="S1: Saltelli 2010; ST: Jansen 1999; outputs standardised; "
                               "conf: z * bootstrap std")
        paths["meta"].write_text(json.dumps(meta, indent=2) + "\n")
        if not samples:
            del paths["samples"]
        else:
            np.savez_compressed(paths["samples"], names=np.array(self.design.names),
                                points=self.design.points(),
                                **{f"y_{k}": v for k, v in self.outputs.items()})
        return paths


def run(spec: SensitivitySpec, *, progress: bool = False, evaluate_fn=None) -> SensitivityResult:
    """Sample, evaluate every run through the engine, and compute the indices.

    A Saltelli row i (its A, B and AB points) with any failed solve or non-finite output is
    dropped from every observable's estimate (a warning says how many); more than 5 % dropped
    raises, as the indices would then describe a different input distribution.
    """
    design = saltelli_design(spec.ranges, spec.n, seed=spec.seed)
    pts = design.points()
    points = {name: pts[:, j] for j, name in enumerate(design.names)}
    ev = evaluate_fn or evaluate
    bases = tuple(dict.fromkeys(observable_base(o) for o in spec.observables))
    out = ev(spec.model, points, t1=spec.t1, observables=bases, fixed=spec.fixed,
             config=spec.config, chunk=spec.chunk, progress=progress)
    n = design.n
    bad = np.zeros(pts.shape[0], bool)
    if "status" in out:
        bad |= np.asarray(out["status"]) != SUCCESS
    for o in spec.observables:
        if observable_base(o) not in out:
            raise StudyError(f"observable {o!r} was not computed by the engine")
        bad |= ~np.isfinite(observable_values(o, out))
    ba, bb, bab = design.split(bad)
    bad_rows = ba | bb | bab.any(axis=0)
    dropped = int(bad_rows.sum())
    if dropped > 0.05 * n:
        raise StudyError(
            f"{dropped} of {n} Saltelli rows have a failed solve or non-finite output: raise "
            "max_steps or loosen rtol, or narrow the ranges")
    if dropped:
        warnings.warn(f"dropped {dropped} of {n} Saltelli rows with failed solves", stacklevel=2)
    keep = ~bad_rows
    indices = {}
    for o in spec.observables:
        ya, yb, yab = design.split(observable_values(o, out))
        s = sobol_indices(ya[keep], yb[keep], yab[:, keep], num_resamples=spec.num_resamples,
                          conf_level=spec.conf_level, seed=spec.seed + 1)
        indices[o] = {name: {k: float(s[k][j]) for k in INDEX_KEYS}
                      for j, name in enumerate(design.names)}
    return SensitivityResult(spec, indices, design, {k: np.asarray(v) for k, v in out.items()},
                             dropped)
