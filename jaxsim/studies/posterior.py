r"""Posterior distribution of a fit's unknowns by the No-U-Turn sampler (NUTS).

Starts from a :class:`~jaxsim.studies.fit.FitResult` (the least-squares or Poisson optimum and
its covariance) and samples every unknown of the fit: the shared physical parameters and each
decay's amplitude (and background and shift where free).

**Log-density.** The likelihood is the fit's own loss: :math:`\log p(y|x) = -L(x)/s^2` with
:math:`s^2 = 1` for ``poisson`` (half the deviance is the negative log-likelihood), the given
``sigma``:math:`^2`, or the fit's residual variance :math:`2L_{min}/(N-p)` for ``lsq`` and
``loglsq`` (the same :math:`s^2` as the fit's covariance, so in the Gaussian limit the
posterior is :math:`N(\hat x, s^2 A^{-1})`). The prior is uniform in the fit's coordinate
within a range: log-uniform for the parameters the model's table marks ``log`` (uniform in
:math:`\log_{10}`), uniform otherwise; the range is the fit's search range unless
overridden per parameter (``priors``).

**Coordinates.** Each coordinate :math:`x_i \in (a_i, b_i)` maps to an unbounded
:math:`z_i = \operatorname{logit}((x_i - a_i)/(b_i - a_i))` (with its log-Jacobian), and
:math:`z` is whitened by the optimum's covariance, :math:`z = \hat z + C u` with :math:`C
C^T` the covariance carried to :math:`z`: the chains start at :math:`u \sim N(0, I)` (the
optimum plus its covariance) and the identity is the initial inverse mass matrix; Stan's
window adaptation (step size by dual averaging, then the mass matrix in doubling windows)
still runs, shared by the chains: one step size tuned on their mean acceptance and one mass
matrix from all their draws, so that the batch's trees are alike (a batched trajectory runs
as long as its longest chain's) and each window pools four times the draws.

**Gradient.** The loss and its gradient :math:`g = J^T w` come in one call from the fit's
compiled program (forward-mode sensitivities through the solver, the Jacobian :math:`J` of
the model); :func:`jax.custom_vjp` hands :math:`g` to the sampler, so nothing is
differentiated in reverse mode through the integrator. The program is called from the
sampler through :func:`jax.pure_callback` with all chains in one batch (the chains are
``vmap``-ped and step together), so the sampler's own program is small and compiles in
seconds, while the model program is the fit's, loaded from the persistent cache.

**Diagnostics.** Rank-normalised split :math:`\hat R` and bulk / tail effective sample sizes
(ArviZ), divergent transitions; a :class:`~jaxsim.studies.fit.FitWarning` when any transition
diverged or :math:`\hat R > 1.01`. ``blackjax`` and ``arviz`` are imported only here (the
``posterior`` extra).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.fit import FitResult, FitWarning, _Evaluator, _scale_fn

#: R-hat above this says the chains have not mixed
RHAT_MAX = 1.01

#: a mean sampling acceptance this far below the target means the step size was not adapted
ACCEPTANCE_SHORTFALL = 0.2


#: iterations per compiled chunk of the sampler (a progress line after each)
CHUNK = 25


def _need_libraries():
    try:
        import arviz  # noqa: F401
        import blackjax  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(f"posterior sampling needs blackjax and arviz ({e.name} is missing): "
                          "pip install 'jaxsim[posterior]'") from None


def _import_arviz():
    with warnings.catch_warnings():  # arviz announces its refactor on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz
    return arviz


# -- the target density --------------------------------------------------------------------------

class Target:
    """The log-density of a fit's unknowns in whitened unbounded coordinates ``u``.

    ``logdensity(u)`` is a JAX function of one point (``vmap`` it over chains); ``to_x(u)``
    maps (..., n) points back to the fit's coordinates. ``a``/``b``: the prior's range in the
    fit's coordinates; ``scale``: the noise variance that divides the loss.
    """

    def __init__(self, result: FitResult, priors: Mapping | None = None, batch: int = 4):
        pr = result.problem
        s = pr.structure
        self.result, self.structure = result, s
        self.names = pr.names
        n = s.n_x
        a, b = np.array(pr.lo, float), np.array(pr.hi, float)
        for name, rng in dict(priors or {}).items():
            if name not in s.free:
                raise ParameterError(f"prior for {name!r}: expected one of the free parameters "
                                     f"{', '.join(s.free)}")
            try:
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError):
                raise ParameterError(f"prior for {name!r} = {rng!r}: expected (lower, upper) "
                                     "in the parameter's unit") from None
            i = s.free.index(name)
            unit = {r.name: r.unit for r in s.model.parameters}[name]
            if s.log[i]:
                if not (0 < lo < hi and math.isfinite(hi)):
                    raise ParameterError(f"prior range of {name!r} = ({lo:g}, {hi:g}): expected "
                                         f"0 < lower < upper ({unit}; log-uniform)")
                lo, hi = math.log10(lo), math.log10(hi)
            elif not (lo < hi and math.isfinite(lo) and math.isfinite(hi)):
                raise ParameterError(f"prior range of {name!r} = ({lo:g}, {hi:g}): expected "
                                     f"finite lower < upper ({unit})")
            a[i], b[i] = lo, hi
        self.a, self.b = a, b
        self.scale = float(_scale_fn(s, result.n_data, result.sigma)(result.loss))
        # the optimum, kept a little inside the range (a coordinate at its bound maps to inf)
        w = b - a
        x0 = np.clip(np.asarray(result.x, float), a + 1e-4 * w, b - 1e-4 * w)
        p0 = (x0 - a) / w
        self.z0 = np.log(p0) - np.log1p(-p0)
        dzdx = 1.0 / (w * p0 * (1 - p0))
        cov = np.asarray(result.cov, float)
        known = np.isfinite(np.diag(cov))
        cz = np.eye(n)  # a coordinate without a covariance (at a bound): unit width in z
        ok = np.ix_(known, known)
        cz[ok] = (dzdx[:, None] * cov * dzdx[None, :])[ok]
        self.chol = _cholesky(cz)
        self.ev = _Evaluator(s, pr.args, batch)
        self.evaluations = 0  # points evaluated
        self.calls = 0
        self.on_call: Callable[[], None] | None = None
        self._build()

    # host side: the fit's compiled program on a batch of points
    def _host(self, X):
        X = np.asarray(X, np.float64)
        shape = X.shape[:-1]
        Xf = X.reshape(-1, X.shape[-1])
        L, G, _, _, _ = self.ev(Xf)
        ok = np.isfinite(L) & np.all(np.isfinite(G), axis=1)
        L = np.where(ok, L, np.inf)
        G = np.where(ok[:, None], G, 0.0)
        self.evaluations += Xf.shape[0]
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        return L.reshape(shape), G.reshape(shape + (X.shape[-1],))

    def _build(self):
        n = self.structure.n_x
        host = self._host

        def call(x):
            shapes = (jax.ShapeDtypeStruct(x.shape[:-1], jnp.float64),
                      jax.ShapeDtypeStruct(x.shape, jnp.float64))
            return jax.pure_callback(host, shapes, x, vmap_method="broadcast_all")

        @jax.custom_vjp
        def loss(x):
            return call(x)[0]

        def loss_fwd(x):
            L, g = call(x)
            return L, g

        def loss_bwd(g, ct):
            return (ct[..., None] * g,)

        loss.defvjp(loss_fwd, loss_bwd)
        a, w = jnp.asarray(self.a), jnp.asarray(self.b - self.a)
        z0, C = jnp.asarray(self.z0), jnp.asarray(self.chol)
        log_w = jnp.sum(jnp.log(w))
        inv_scale = 1.0 / self.scale

        def logdensity(u):
            z = z0 + C @ u
            x = a + w * jax.nn.sigmoid(z)
            log_jac = log_w + jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))
            L = loss(x)
            return jnp.where(jnp.isfinite(L), -L * inv_scale + log_jac, -jnp.inf)

        self.logdensity = logdensity
        self.loss = loss
        self.n = n

    def to_x(self, u):
        """Fit coordinates of whitened points ``u`` (..., n) (NumPy)."""
        z = self.z0 + np.einsum("ij,...j->...i", self.chol, np.asarray(u, float))
        return self.a + (self.b - self.a) / (1.0 + np.exp(-z))


def _cholesky(c):
    c = 0.5 * (c + c.T)
    d = np.sqrt(np.clip(np.diag(c), 1e-300, None))
    cn = c / np.outer(d, d)
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        try:
            return d[:, None] * np.linalg.cholesky(cn + jitter * np.eye(len(d)))
        except np.linalg.LinAlgError:
            continue
    return np.diag(d)  # no usable correlations: the diagonal


# -- the sampler ----------------------------------------------------------------------------------

def _adaptation(dense: bool, target_accept: float):
    """Stan's window adaptation shared by all chains (blackjax's parts): one step size, dual
    averaging on the chains' mean acceptance, and one mass matrix from all chains' draws in
    each slow window. ``init(n, step)``, ``update(state, stage, is_window_end, U,
    acceptance)`` with ``U`` (chains, n) and ``acceptance`` (chains,), ``final(state)``.

    Shared because the chains step as one batch: a batched leapfrog loop runs until every
    chain's tree is done, so chains with different step sizes cost the longest tree each."""
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    mm_init, mm_update, mm_final = mass_matrix_adaptation(not dense)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(n, step):
        return {"ss": da_init(step), "mm": mm_init(n), "step": jnp.asarray(step, jnp.float64)}

    def update(st, stage, is_end, U, acc):
        ss = da_update(st["ss"], jnp.mean(acc))

        def pool(m):  # the window's estimate pools every chain's draws
            return jax.lax.fori_loop(0, U.shape[0], lambda i, m: mm_update(m, U[i]), m)

        mm = jax.lax.cond(stage == 1, pool, lambda m: m, st["mm"])
        st = {"ss": ss, "mm": mm, "step": jnp.exp(ss.log_step_size)}

        def window_end(st):  # the new mass matrix; the step size restarts from its average
            ss2 = da_init(da_final(st["ss"]))
            return {"ss": ss2, "mm": mm_final(st["mm"]), "step": jnp.exp(ss2.log_step_size)}

        return jax.lax.cond(is_end, window_end, lambda s_: s_, st)

    def final(st):
        return jnp.exp(st["ss"].log_step_size_avg), st["mm"].inverse_mass_matrix

    return init, update, final


@dataclass
class Posterior:
    """Outcome of :func:`sample_posterior`.

    ``x``: draws (chains, draws, n) in the fit's coordinates (log10 for log parameters; names
    ``names``); ``stats``: per draw ``diverging``, ``acceptance_rate``, ``n_steps`` (leapfrog
    steps), ``tree_depth``, ``lp`` (log-density in u), ``energy``; ``summary[name]``: median,
    ``q2.5``/``q97.5``, mean, sd (physical units), ``rhat``, ``ess_bulk``, ``ess_tail``, and
    the median's offset from the fit in the fit's standard errors (``median_offset_sigma``,
    in the fit's coordinate); ``band``: the 2.5/50/97.5 % quantiles of the model curve over
    ``band_draws`` draws (3, K, T), in the data's unit.
    """

    names: tuple
    x: np.ndarray
    stats: dict
    step_size: np.ndarray
    summary: dict
    divergences: int
    chains: int
    draws: int
    warmup: int
    seconds: dict
    warnings: list
    band: np.ndarray | None
    band_draws: int
    priors: dict
    scale: float
    evaluations: int
    result: FitResult = field(repr=False)
    ppc: np.ndarray | None = None  # (chains, thinned draws, K, T) noisy replicates
    ppc_draw: np.ndarray | None = None  # draw index of each thinned draw

    def physical(self) -> dict:
        """Draws (chains, draws) of each free physical parameter in its unit, and per-decay
        ``amplitude``/``background``/``shift`` (chains, draws, K) where sampled."""
        s = self.result.problem.structure
        p, m, K = len(s.free), s.m, s.n_decays
        out = {}
        for i, name in enumerate(s.free):
            out[name] = 10.0 ** self.x[..., i] if s.log[i] else self.x[..., i]
        loc = self.x[..., p:].reshape(self.x.shape[:2] + (K, m))
        out["amplitude"] = 10.0 ** loc[..., 0]
        j = 1
        if s.bg_free:
            out["background"], j = loc[..., j], j + 1
        if s.shift_free:
            out["shift"] = loc[..., j]
        return out

    def to_json(self) -> dict:
        """The ``posterior`` block of fit.json (strict JSON: non-finite numbers become null)."""
        def num(v):
            if v is None:
                return None
            v = float(v)
            return v if math.isfinite(v) else None

        params = {n: {k: (num(v) if not isinstance(v, str) else v) for k, v in d.items()}
                  for n, d in self.summary.items()}
        return {"sampler": "NUTS (blackjax), window adaptation shared by the chains",
                "chains": self.chains, "draws": self.draws, "warmup": self.warmup,
                "divergences": int(self.divergences),
                "rhat_max": num(max((d["rhat"] for d in self.summary.values()), default=None)),
                "ess_bulk_min": num(min((d["ess_bulk"] for d in self.summary.values()),
                                        default=None)),
                "step_size": [num(v) for v in self.step_size],
                "mean_leapfrog_steps": num(np.mean(self.stats["n_steps"])),
                "model_evaluations": int(self.evaluations),
                "noise_variance": num(self.scale),
                "priors": {k: [num(v) for v in r] for k, r in self.priors.items()},
                "params": params, "warnings": list(self.warnings),
                "seconds": {k: num(v) for k, v in self.seconds.items()},
                "band": f"2.5-97.5 % of the model curve over {self.band_draws} draws"}

    def inference_data(self):
        """The draws as an ArviZ ``InferenceData`` (posterior in physical units, with a
        ``unit`` attribute per variable; sample_stats; observed_data; a thinned
        posterior_predictive of noisy replicates)."""
        import xarray as xr

        az = _import_arviz()
        pr = self.result.problem
        s, ds = pr.structure, pr.ds
        units = {r.name: r.unit for r in s.model.parameters}
        C, D = self.x.shape[:2]
        chain, draw = np.arange(C), np.arange(D)
        decay = list(ds.labels)
        post = {}
        for name, v in self.physical().items():
            if v.ndim == 2:
                post[name] = xr.DataArray(v, dims=("chain", "draw"),
                                          attrs={"unit": units.get(name, ""),
                                                 "prior": "log-uniform" if s.log[s.free.index(name)]
                                                 else "uniform",
                                                 "prior_range": list(self.priors[name])})
            else:
                unit = {"amplitude": "data unit", "background": "data unit", "shift": "s"}[name]
                post[name] = xr.DataArray(v, dims=("chain", "draw", "decay"),
                                          attrs={"unit": unit})
        posterior = xr.Dataset(post, coords={"chain": chain, "draw": draw, "decay": decay},
                               attrs={"model": s.model.name, "loss": s.loss,
                                      "noise_variance": self.scale,
                                      "sampler": "NUTS (blackjax)", "warmup": self.warmup,
                                      "divergences": int(self.divergences),
                                      "sampling_seconds": float(self.seconds.get("sampling_s", 0)),
                                      "source": str(ds.source)})
        st = xr.Dataset({k: xr.DataArray(np.asarray(v), dims=("chain", "draw"))
                         for k, v in self.stats.items()},
                        coords={"chain": chain, "draw": draw})
        st["step_size"] = xr.DataArray(np.broadcast_to(self.step_size[:, None], (C, D)),
                                       dims=("chain", "draw"))
        t = np.asarray(ds.t, float)
        obs = xr.Dataset({"y": xr.DataArray(np.asarray(ds.y, float), dims=("decay", "time"))},
                         coords={"decay": decay, "time": t},
                         attrs={"time_unit": "s", "n0_cm-3": np.asarray(ds.n0, float)})
        groups = {"posterior": posterior, "sample_stats": st, "observed_data": obs}
        if self.ppc is not None:
            groups["posterior_predictive"] = xr.Dataset(
                {"y": xr.DataArray(self.ppc, dims=("chain", "draw", "decay", "time"))},
                coords={"chain": chain, "draw": self.ppc_draw, "decay": decay, "time": t})
        return az.InferenceData(**groups)

    def save_netcdf(self, path) -> None:
        """Write :meth:`inference_data` to ``path`` (netCDF4 through h5netcdf)."""
        self.inference_data().to_netcdf(str(path))


def _strong(tree):
    """Strong dtypes in a scan's carry: a weak-typed leaf (a Python float in) turns strong
    after one chunk, and each change of type would compile the chunk again."""
    return jax.tree.map(lambda v: jnp.asarray(v, dtype=jnp.result_type(v)), tree)


def _transition(logp, max_tree_depth: int):
    """One NUTS transition of every chain as one batch, with one step size and inverse mass
    matrix: ``(keys, states, step, imm) -> (states, info)``."""
    from blackjax.mcmc import nuts

    kernel = nuts.build_kernel()

    def step_all(keys, states, step, imm):
        return jax.vmap(lambda k, st: kernel(k, st, logp, step, imm, max_tree_depth))(keys, states)

    return step_all


def _warmup(logp, U, warmup: int, key, *, dense_mass=False, target_accept=0.8,
            max_tree_depth=10, step0=0.5, on_chunk=None):
    """Window adaptation (:func:`_adaptation`) of chains started at ``U`` (chains, n) for
    ``logp`` (one point): ``(states, step size, inverse mass matrix)``; ``on_chunk(iteration,
    step size, divergent transitions in the chunk)`` after each compiled chunk."""
    from blackjax.adaptation.window_adaptation import build_schedule
    from blackjax.mcmc import hmc

    chains, n = U.shape
    states = jax.vmap(lambda u: hmc.init(u, logp))(jnp.asarray(U))
    if not warmup:
        return states, jnp.asarray(step0), (jnp.eye(n) if dense_mass else jnp.ones(n))
    a_init, a_update, a_final = _adaptation(dense_mass, target_accept)
    step_all = _transition(logp, max_tree_depth)

    def warm_step(carry, xs):
        states, ad = carry
        keys, stage, is_end = xs
        new, info = step_all(keys, states, ad["step"], ad["mm"].inverse_mass_matrix)
        ad = a_update(ad, stage, is_end, new.position, info.acceptance_rate)
        return (new, ad), info.is_divergent

    run = jax.jit(lambda c, xs: jax.lax.scan(warm_step, _strong(c), xs))
    sched = np.asarray(build_schedule(warmup), dtype=np.int32).reshape(-1, 2)
    keys = jax.random.split(key, warmup * chains).reshape(warmup, chains, -1)
    carry = (states, a_init(n, step0))
    for i in range(0, warmup, CHUNK):
        j = min(i + CHUNK, warmup)
        carry, dv = run(carry, (keys[i:j], jnp.asarray(sched[i:j, 0]),
                                jnp.asarray(sched[i:j, 1].astype(bool))))
        if on_chunk is not None:
            on_chunk(j, float(carry[1]["step"]), int(np.sum(dv)))
    step, imm = a_final(carry[1])
    return carry[0], step, imm


def _sample(logp, states, step, imm, draws: int, key, *, max_tree_depth=10, on_chunk=None):
    """``draws`` NUTS transitions of every chain: per-draw ``position`` (chains, draws, n),
    ``lp``, ``diverging``, ``acceptance_rate``, ``n_steps``, ``energy``, ``tree_depth``
    (chains, draws); ``on_chunk(iteration, the chunk's outputs)`` after each compiled chunk."""
    step_all = _transition(logp, max_tree_depth)
    chains = jax.tree.leaves(states)[0].shape[0]

    def sample_step(states, k):
        new, info = step_all(k, states, step, imm)
        return new, {"position": new.position, "lp": new.logdensity,
                     "diverging": info.is_divergent, "acceptance_rate": info.acceptance_rate,
                     "n_steps": info.num_integration_steps, "energy": info.energy,
                     "tree_depth": info.num_trajectory_expansions}

    run = jax.jit(lambda c, ks: jax.lax.scan(sample_step, _strong(c), ks))
    keys = jax.random.split(key, draws * chains).reshape(draws, chains, -1)
    outs = []
    for i in range(0, draws, CHUNK):
        j = min(i + CHUNK, draws)
        states, o = run(states, keys[i:j])
        outs.append({k: np.asarray(v) for k, v in o.items()})
        if on_chunk is not None:
            on_chunk(j, outs[-1])
    return {k: np.swapaxes(np.concatenate([o[k] for o in outs]), 0, 1) for k in outs[0]}


def sample_posterior(result: FitResult, *, chains: int = 4, draws: int = 1000,
                     warmup: int = 150, seed: int = 0, priors: Mapping | None = None,
                     dense_mass: bool = False, target_accept: float = 0.8,
                     max_tree_depth: int = 10, band_draws: int = 200, ppc_draws: int = 25,
                     progress: Callable[[str], None] | None = None) -> Posterior:
    """Sample the posterior of ``result``'s unknowns with NUTS (see the module's notes).

    Args:
        chains, draws, warmup: chains run together (one batch), kept draws per chain,
            adaptation iterations (not kept; the chains adapt one step size and one mass
            matrix together, :func:`_adaptation`).
        seed: random seed (starting points and the sampler).
        priors: ``{name: (lower, upper)}`` in the parameter's unit: the prior's range for a
            free physical parameter (log-uniform for log parameters), instead of the fit's
            search range.
        dense_mass: adapt a dense mass matrix (default: diagonal; the coordinates are
            already whitened by the fit's covariance).
        band_draws: draws whose model curves give the 95 % band (0: none).
        ppc_draws: thinned draws per chain of noisy replicated data kept for the
            posterior predictive group (0: none).
        progress: called with a line of text per chunk of iterations.
    """
    _need_libraries()
    for what, v, least in (("chains", chains, 1), ("draws", draws, 1), ("warmup", warmup, 0),
                           ("max_tree_depth", max_tree_depth, 1)):
        if int(v) != v or v < least:
            raise ParameterError(f"{what} = {v!r}: expected an integer >= {least}")
    if not 0 < target_accept < 1:
        raise ParameterError(f"target_accept = {target_accept!r}: expected 0 < value < 1")
    chains, draws, warmup = int(chains), int(draws), int(warmup)
    say = progress or (lambda m: None)
    t_start = time.perf_counter()
    tg = Target(result, priors, batch=chains)
    n = tg.n
    logp = tg.logdensity
    key = jax.random.PRNGKey(seed)

    # starts: the optimum plus its covariance; a start whose solve fails is drawn again closer
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((chains, n))
    for shrink in (0.5, 0.25, 0.1, 0.0):
        L, _ = tg._host(tg.to_x(U))
        bad = ~np.isfinite(L)
        if not bad.any():
            break
        U[bad] *= shrink
    key, kw, ks = jax.random.split(key, 3)
    say(f"posterior: NUTS, {chains} chain(s) x {draws} draws after {warmup} warmup iterations, "
        f"{n} unknowns, noise variance {tg.scale:.4g} ({result.loss_kind})")
    t0 = time.perf_counter()

    def warm_line(j, step, dv):
        say(f"warmup {j}/{warmup}: {tg.evaluations} model evaluations, step size {step:.3g}, "
            f"{dv} divergent in this chunk, {time.perf_counter() - t0:.1f} s")

    states, step, imm = _warmup(logp, U, warmup, kw, dense_mass=dense_mass,
                                target_accept=target_accept, max_tree_depth=max_tree_depth,
                                on_chunk=warm_line)
    t_warm = time.perf_counter() - t0
    ev_warm = tg.evaluations
    t1 = time.perf_counter()
    ndiv = 0

    def sample_line(j, o):
        nonlocal ndiv
        ndiv += int(o["diverging"].sum())
        say(f"sampling {j}/{draws}: {ndiv} divergent, mean acceptance "
            f"{np.mean(o['acceptance_rate']):.2f}, {np.mean(o['n_steps']):.1f} leapfrog steps "
            f"per draw, {time.perf_counter() - t1:.1f} s")

    cat = _sample(logp, states, step, imm, draws, ks, max_tree_depth=max_tree_depth,
                  on_chunk=sample_line)
    t_samp = time.perf_counter() - t1
    U = cat.pop("position")  # (C, D, n)
    X = tg.to_x(U)
    step = np.full(chains, float(step))  # one per chain in the outputs (all alike)
    post = _summarise(result, tg, X, cat, step, chains, draws, warmup, ndiv, priors,
                      target_accept)
    post.seconds = {"setup_s": t0 - t_start, "warmup_s": t_warm, "sampling_s": t_samp}
    post.evaluations = tg.evaluations
    tb = time.perf_counter()
    if band_draws or ppc_draws:
        _predictive(post, tg, band_draws, ppc_draws, rng)
    post.seconds["predictive_s"] = time.perf_counter() - tb
    post.seconds["total_s"] = time.perf_counter() - t_start
    say(f"posterior done: {ndiv} divergent of {chains * draws}, max R-hat "
        f"{post.to_json()['rhat_max']:.4f}, min bulk ESS {post.to_json()['ess_bulk_min']:.0f}, "
        f"{ev_warm} + {tg.evaluations - ev_warm} model evaluations, warmup {t_warm:.1f} s, "
        f"sampling {t_samp:.1f} s")
    for msg in post.warnings:
        warnings.warn(msg, FitWarning, stacklevel=2)
    return post


def _summarise(result, tg: Target, X, stats, step, chains, draws, warmup, ndiv, priors,
               target_accept: float = 0.8):
    import xarray as xr

    az = _import_arviz()
    s = result.problem.structure
    names = result.problem.names
    ds = xr.Dataset({f"x{i}": xr.DataArray(X[..., i], dims=("chain", "draw"))
                     for i in range(X.shape[-1])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz: too few draws for a diagnostic (tests)
        rhat = az.rhat(ds)
        ess_b = az.ess(ds, method="bulk")
        ess_t = az.ess(ds, method="tail")
    units = {r.name: r.unit for r in s.model.parameters}
    sd_fit = np.sqrt(np.abs(np.diag(result.cov)))
    summary = {}
    rows = []
    for i, name in enumerate(names):
        v = X[..., i].ravel()
        phys = 10.0 ** v if i < len(s.free) and s.log[i] else v
        if name.startswith("log10_amplitude"):
            phys, label = 10.0 ** v, name.replace("log10_", "")
            unit = "data unit"
        else:
            label = name
            unit = units.get(name, "s" if name.startswith("shift") else "data unit")
        q = np.quantile(phys, [0.025, 0.5, 0.975])
        med_x = float(np.median(v))
        off = (med_x - result.x[i]) / sd_fit[i] if np.isfinite(sd_fit[i]) and sd_fit[i] > 0 \
            else float("nan")
        summary[label] = {"median": q[1], "q2.5": q[0], "q97.5": q[2], "mean": float(phys.mean()),
                          "sd": float(phys.std(ddof=1)), "rhat": float(rhat[f"x{i}"]),
                          "ess_bulk": float(ess_b[f"x{i}"]), "ess_tail": float(ess_t[f"x{i}"]),
                          "fit_value": float(10.0 ** result.x[i]) if (
                              i < len(s.free) and s.log[i]) or name.startswith("log10_amp")
                          else float(result.x[i]),
                          "median_offset_sigma": off, "unit": unit}
        rows.append(summary[label]["rhat"])
    msgs = []
    if ndiv:
        msgs.append(f"posterior: {ndiv} of {chains * draws} transitions diverged: the sampler "
                    "missed part of the posterior (strong curvature or a failed solve); "
                    "treat the intervals with care, or raise the warmup")
    acc = stats.get("acceptance_rate")
    if acc is not None and np.mean(acc) < target_accept - ACCEPTANCE_SHORTFALL:
        # a step size adapted too briefly (a short warmup) is too large: few moves accepted
        msgs.append(f"posterior: mean acceptance {np.mean(acc):.2f} against the target "
                    f"{target_accept:g} after {warmup} warmup iterations: the step size is "
                    "not adapted and the chains barely move; raise the warmup")
    bad = [lab for lab, d in summary.items() if not d["rhat"] <= RHAT_MAX]
    if bad:
        worst = max(summary[lab]["rhat"] for lab in bad)
        msgs.append(f"posterior: R-hat above {RHAT_MAX} for {', '.join(bad)} (max {worst:.3f}): "
                    "the chains disagree; run more draws or warmup")
    pri = {name: ((10.0 ** tg.a[i], 10.0 ** tg.b[i]) if s.log[i] else (tg.a[i], tg.b[i]))
           for i, name in enumerate(s.free)}
    return Posterior(names=names, x=X, stats=stats, step_size=step, summary=summary,
                     divergences=ndiv, chains=chains, draws=draws, warmup=warmup, seconds={},
                     warnings=msgs, band=None, band_draws=0, priors=pri, scale=tg.scale,
                     evaluations=0, result=result)


def _predictive(post: Posterior, tg: Target, band_draws: int, ppc_draws: int, rng):
    """The model's 95 % band over ``band_draws`` draws and a thinned set of noisy replicates
    (Gaussian with the noise variance, or Poisson)."""
    C, D, n = post.x.shape
    flat = post.x.reshape(-1, n)
    idx = np.unique(np.linspace(0, flat.shape[0] - 1, max(band_draws, 1)).astype(int))
    per = min(ppc_draws, D)
    draw_idx = np.unique(np.linspace(0, D - 1, per).astype(int)) if per else np.zeros(0, int)
    ppc_rows = (np.arange(C)[:, None] * D + draw_idx[None, :]).ravel()
    rows = np.union1d(idx if band_draws else np.zeros(0, int), ppc_rows)
    _, _, _, mu, _ = tg.ev(flat[rows])
    pos = {r: k for k, r in enumerate(rows)}
    if band_draws:
        mb = mu[[pos[r] for r in idx]]
        post.band = np.quantile(mb, [0.025, 0.5, 0.975], axis=0)
        post.band_draws = int(idx.size)
    if per:
        m = mu[[pos[r] for r in ppc_rows]].reshape((C, draw_idx.size) + mu.shape[1:])
        if post.result.loss_kind == "poisson":
            rep = rng.poisson(np.clip(m, 0, None)).astype(float)
        elif post.result.loss_kind == "lsq":
            rep = m + math.sqrt(post.scale) * rng.standard_normal(m.shape)
        else:  # loglsq: the noise is in log
            rep = m * np.exp(math.sqrt(post.scale) * rng.standard_normal(m.shape))
        post.ppc, post.ppc_draw = rep, draw_idx
