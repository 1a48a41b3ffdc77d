r"""Repeated pulses: the one-period map, its periodic steady state, and carrier accumulation.

At repetition rate :math:`f` (period :math:`T = 1/f`) each pulse adds the model's pulse
increment :math:`\Delta = y_0(n_0)` (``model.initial_state``: :math:`n_0` free carriers; for
``btd`` also :math:`n_0` holes) to whatever is left from the previous pulses. With
:math:`z` the state just after a pulse, one period is the map

.. math::

    F(z) = \Phi_T(z) + \Delta,

:math:`\Phi_T` the flow of the fast rate equations (including a CW generation :math:`G`) over one
period. What TCSPC measures after :math:`10^6`–:math:`10^8` pulses is the fixed point
:math:`z^* = F(z^*)`, the periodic steady state. We find it by Newton's method on
:math:`r(z) = F(z) - z` with the Jacobian :math:`\partial F/\partial z` (a 2×2 or 3×3 matrix)
from the variational equations solved with the state, under the same error control
(:func:`advance_with_jacobian`; the rate equations' Jacobian by ``jax.jacfwd``), falling back
to plain fixed-point iteration (pulse by pulse) when Newton does not converge. :func:`brute_force`
simulates pulse by pulse for reference.

Carrier accumulation (PEARS, Péan et al.): with :math:`F_1` the PL decay after the first pulse
(from the dark, or from the CW steady state when :math:`G > 0`) and :math:`F_s` the
steady-state decay,

.. math::

    \mathrm{CA} = 100\,\% \times \max_{t \in [0, T]}
        \left| \frac{F_1(t)}{F_1(0)} - \frac{F_s(t)}{F_s(0)} \right|,

evaluated, as PEARS does, on :math:`t = 0` plus log-spaced times from :math:`10^{-4}` ns to
:math:`T`.

All fast solves integrate the core's scaled problem (:class:`~jaxsim.numerics.problem.ScaledProblem`:
:math:`u = n/n_\mathrm{ref}`, time in ``config.t_ref``, the same integrands, first step and
:func:`~jaxsim.numerics.problem.integrate`, so ``rtol`` means what it means everywhere,
:mod:`jaxsim.numerics.config`); :func:`periodic_steady_state` lets the caller choose
:math:`n_\mathrm{ref}` per lane, which CW-only or dark lanes (:math:`n_0 = 0`) need.

Sweeps: :func:`steady_state_chunk_solver` is a chunk function with the call contract of
:func:`jaxsim.numerics.engine.chunk_solver`'s, the repetition rate ``rep_rate`` (Hz) one more input per
point; :mod:`jaxsim.studies.sweep` uses it when a spec has ``rep_rate``.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxsim import observables
from jaxsim.numerics import _diffrax as diffrax
from jaxsim.numerics.config import (
    DTYPES,
    FAILED,
    NON_FINITE,
    SOLVERS,
    SUCCESS,
    SolverConfig,
    choose_solver,
)
from jaxsim.numerics.problem import ScaledProblem, flag_non_finite, integrate
from jaxsim.numerics.reference import ScaledSolution, Solution
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import Model, pl_scale
from jaxsim.physics.parameters import Parameter, Params, as_params, broadcast
from jaxsim.physics.registry import get_model

#: PEARS evaluates carrier accumulation on t = 0 plus this many log-spaced times from 1e-4 ns to T
ACCUMULATION_POINTS = 2001


#: default Newton tolerance on max_i |F_i(z) - z_i| / (1 + |z_i|) (scaled units)
NEWTON_TOL = 1e-9


def advance(model: Model, c: dict, y0: tuple, t1, config: SolverConfig, solver: str = "tsit5",
            forward: bool = False):
    """State after scaled time ``t1`` from state ``y0`` at 0: :math:`\\Phi_{t_1}(y_0)`.

    Pure; ``forward=True`` makes it differentiable with ``jax.jvp``/``jacfwd`` (diffrax
    ``ForwardMode``). Returns ``(y1, status)``.
    """
    problem = ScaledProblem(model)
    dtype = DTYPES[config.dtype]
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    y0 = tuple(jnp.asarray(v, dtype) for v in y0)
    t1 = jnp.asarray(t1, dtype)
    sol, status = integrate(problem.state_field(c), y0, t1, diffrax.SaveAt(t1=True), config,
                            solver, dt0=problem.initial_step(c, t1), forward=forward)
    return tuple(v[-1] for v in sol.ys), status


def advance_with_jacobian(model: Model, c: dict, z, t1, config: SolverConfig,
                          solver: str = "tsit5"):
    r"""State after scaled time ``t1`` from ``z`` (array (k,)) and its Jacobian
    :math:`\Phi = \partial y(t_1)/\partial z`, from the variational equations
    :math:`\dot\Phi = J_f(y)\,\Phi`, :math:`\Phi(0) = I`, solved with the state.

    Why not ``jax.jacfwd`` through :func:`advance`: the step-size controller sees only the
    state. Near the rounding floor (float32 with the core's local tolerances of a few ulps)
    it takes steps at the edge of stability where the stiff mode of the state is already
    rounding noise, but the tangent's stiff mode starts at O(1) and grows: jacfwd over one
    period returned entries of 1e9-1e25 for a true Jacobian of 1e-4. Here the controller
    bounds the error of :math:`\Phi` too. Returns ``(y1 (k,), phi (k, k), status)``.
    """
    dtype = DTYPES[config.dtype]
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    k = len(model.state_names)

    def f(t, s):
        return jnp.stack(model.vector_field(t, tuple(s[i] for i in range(k)), c))

    def field(t, y, args):
        s, phi = y
        return f(t, s), jax.jacfwd(lambda x: f(t, x))(s) @ phi

    t1 = jnp.asarray(t1, dtype)
    y0 = (jnp.asarray(z, dtype), jnp.eye(k, dtype=dtype))
    sol, status = integrate(field, y0, t1, diffrax.SaveAt(t1=True), config, solver,
                            dt0=ScaledProblem(model).initial_step(c, t1), forward=False)
    s1, phi1 = (v[-1] for v in sol.ys)
    return s1, phi1, status


def flow(model: Model, c: dict, y0: tuple, ts, t1, config: SolverConfig,
         solver: str = "tsit5") -> ScaledSolution:
    """Solve from state ``y0`` at 0 to ``t1`` (scaled), saving at ``ts`` (<= ``t1``).

    Like :func:`jaxsim.numerics.solve_scaled` (same :class:`ScaledSolution`, same integrals of PL,
    t PL, n, t n and every reported flux over [0, t1]) but from an arbitrary state and with the
    end time independent of the save times, as one period of a pulse train needs.
    """
    problem = ScaledProblem(model)
    dtype = DTYPES[config.dtype]
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    k = problem.n_states
    saveat = diffrax.SaveAt(subs=[
        diffrax.SubSaveAt(ts=jnp.asarray(ts, dtype), fn=lambda t, y, args: y[:k]),
        diffrax.SubSaveAt(t1=True)])
    t1 = jnp.asarray(t1, dtype)
    sol, status = integrate(problem.augmented_field(c), problem.augmented_state(y0, dtype), t1,
                            saveat, config, solver, dt0=problem.initial_step(c, t1),
                            forward=False)
    ys, last = sol.ys
    final, integrals = problem.split(tuple(v[-1] for v in last))
    status = flag_non_finite(status, *ys, *final, *integrals.values())
    return ScaledSolution(ys=tuple(ys), integrals=integrals, final=final, status=status,
                          num_steps=jnp.asarray(sol.stats["num_steps"], jnp.int32))


def pulse_increment(model: Model, c: dict) -> jax.Array:
    """What one pulse adds to the state (scaled), as an array: ``model.initial_state(c)``."""
    return jnp.stack([jnp.asarray(v) for v in model.initial_state(c)])


def deflated_solve(m, rhs):
    r"""Solve :math:`M x = b` for the Newton matrix :math:`M = \partial F/\partial z - I` of the
    one-period map, deflating its null space (``rhs``: (k,) or (k, P)).

    A linear invariant :math:`w \cdot y` of the flow that the pulse does not change (``btd``:
    charge neutrality) makes :math:`M` singular (:math:`w^\top M = 0`); each left singular
    vector :math:`u` with a negligible singular value adds :math:`u u^\top` to :math:`M`, which
    imposes :math:`u \cdot x = 0` and leaves the other equations unchanged (:math:`u \perp`
    the range of :math:`M` and of a consistent ``rhs``). Used for Newton steps and for the
    implicit-function derivative :math:`dz^*/d\theta` alike.
    """
    u, sv, _vt = jnp.linalg.svd(m)
    scale = jnp.maximum(1.0, sv[0])
    null = (sv < 1e-10 * scale).astype(m.dtype)
    return jnp.linalg.solve(m + scale * (u * null) @ u.T, rhs)


class PeriodicState(eqx.Module):
    """Fixed point of the one-period map (scaled), and how it was found."""

    z: jax.Array  # state just after the pulse, (n_state,)
    residual: jax.Array  # max_i |F_i(z) - z_i| / (1 + |z_i|)
    iterations: jax.Array  # Newton iterations + fixed-point iterations
    converged: jax.Array  # bool
    newton: jax.Array  # bool: Newton converged (no fallback)
    status: jax.Array  # worst solver status met


def periodic_state(model: Model, c: dict, t_period, config: SolverConfig, solver: str = "tsit5",
                   *, z0=None, increment=None, tol: float = NEWTON_TOL, max_newton: int = 30,
                   max_fixed: int = 3000) -> PeriodicState:
    r"""Periodic steady state :math:`z^* = \Phi_T(z^*) + \Delta` (scaled units; pure, vmappable).

    Newton: :math:`z \leftarrow \max(0, z - M^{-1}(F(z) - z))` with :math:`M = J - I`,
    :math:`J = \partial F/\partial z` from :func:`advance_with_jacobian`; stops when
    :math:`\max_i |F_i(z) - z_i| / (1 + |z_i|) \le \mathrm{tol}` (scaled units, u ~ 1).

    Conserved quantities: a linear invariant :math:`w \cdot y` of the flow that the pulse does
    not change (``btd``: :math:`n_e + n_t - n_h`, charge neutrality) makes :math:`M` singular
    (:math:`w^\top M = 0`) and the fixed points a family; the physical one keeps the invariant
    of the starting state. Newton keeps it by deflation: each left singular vector :math:`u`
    of :math:`M` with a negligible singular value adds :math:`u u^\top` to :math:`M`, which
    imposes :math:`u \cdot \delta z = 0` and leaves the other equations unchanged (since
    :math:`u \perp` the range of :math:`M` and the residual).

    If Newton has not converged after ``max_newton`` steps (or left the finite states), the
    same loop continues as plain iteration :math:`z \leftarrow F(z)` (pulse by pulse) for up to
    ``max_fixed`` pulses. ``increment`` overrides :math:`\Delta` (zero gives the CW steady
    state); ``z0`` the starting state (default :math:`\Delta`, i.e. the first pulse from the
    dark).
    """
    inc = pulse_increment(model, c) if increment is None else jnp.asarray(increment)
    dtype = DTYPES[config.dtype]
    inc = inc.astype(dtype)
    k = inc.shape[0]
    eye = jnp.eye(k, dtype=dtype)
    big = jnp.asarray(jnp.inf, dtype)

    def F(z):  # F(z), dF/dz (variational equations: see advance_with_jacobian)
        y, phi, st = advance_with_jacobian(model, c, z, t_period, config, solver)
        fz = y + inc
        return phi, (fz, st)

    def cond(s):
        z, it, res, st, newton_ok = s
        return (it < max_newton + max_fixed) & (res > tol)

    def body(s):
        z, it, res, st, _ = s
        jac, (fz, st1) = F(z)
        r = fz - z
        res_z = jnp.max(jnp.abs(r) / (1.0 + jnp.abs(z)))
        res_z = jnp.where(jnp.isfinite(res_z), res_z, big)
        dz = deflated_solve(jac - eye, -r)
        z_newton = jnp.maximum(z + dz, 0.0)
        use_newton = (it < max_newton) & jnp.all(jnp.isfinite(z_newton))
        z_next = jnp.where(use_newton, z_newton, fz)
        # fall back to the pulse-by-pulse state if the iterate is not finite
        z_next = jnp.where(jnp.all(jnp.isfinite(z_next)), z_next, inc)
        z_out = jnp.where(res_z > tol, z_next, z)
        return z_out, it + 1, res_z, jnp.maximum(st, st1), it <= max_newton

    z_start = inc if z0 is None else jnp.asarray(z0, dtype)
    s = (z_start, jnp.asarray(0), big, jnp.asarray(0, jnp.int32), jnp.asarray(True))
    z, it, res, st, newton_ok = jax.lax.while_loop(cond, body, s)
    converged = res <= tol
    # `it` counts evaluations; the last one only confirmed convergence
    return PeriodicState(z=z, residual=res, iterations=it - converged.astype(it.dtype),
                         converged=converged, newton=converged & newton_ok, status=st)


def brute_force(model: Model, c: dict, t_period, n_pulses: int, config: SolverConfig,
                solver: str = "tsit5", z0=None):
    """Pulse-by-pulse reference: the states just after each of ``n_pulses`` pulses, (n, k)."""
    inc = pulse_increment(model, c).astype(DTYPES[config.dtype])
    k = inc.shape[0]

    def step(z, _):
        y, _st = advance(model, c, tuple(z[i] for i in range(k)), t_period, config, solver)
        z_next = jnp.stack(y) + inc
        return z_next, z

    z_start = inc if z0 is None else jnp.asarray(z0)
    _, zs = jax.lax.scan(step, z_start, None, length=n_pulses)
    return zs


def pears_times(period_s: float, points: int = ACCUMULATION_POINTS) -> np.ndarray:
    """PEARS's accumulation grid: 0 and ``points`` log-spaced times from 1e-4 ns to T (in s)."""
    return np.concatenate([[0.0], np.logspace(-13.0, np.log10(period_s), points)])


def choose_period_solver(model: Model, values: dict, period_s) -> str:
    """The core's solver rule (:func:`~jaxsim.numerics.config.choose_solver`) over one period."""
    return choose_solver(model, values, period_s, repeated=True)


def _lane(model: Model, config: SolverConfig, solver: str, tol: float, max_newton: int,
          max_fixed: int):
    """One lane: periodic state, steady-state decay on ts, first-pulse decay, accumulation.

    The steady state and the CW state before the first pulse (increment 0) are one vmapped
    ``periodic_state``; both decays are one vmapped ``flow`` on the union of the user's times
    and PEARS's grid, so each is traced once.
    """
    k = len(model.state_names)

    def one(values, n_ref, rep_rate, ts, ts_acc):
        c = model.coefficients(values, n_ref, config.t_ref)
        t_period = 1.0 / (rep_rate * config.t_ref)
        inc = pulse_increment(model, c)
        incs = jnp.stack([inc, jnp.zeros_like(inc)])
        ps = jax.vmap(lambda i, z0: periodic_state(
            model, c, t_period, config, solver, z0=z0, increment=i, tol=tol,
            max_newton=max_newton, max_fixed=max_fixed))(incs, incs)
        # steady state; first pulse = CW steady state (zero when G = 0) plus one pulse
        starts = jnp.stack([ps.z[0], ps.z[1] + inc])
        n_ts = ts.shape[0]
        # clip: a save time equal to the period may exceed it by an ulp after scaling
        t_all = jnp.minimum(jnp.concatenate([ts, ts_acc]), t_period)
        order = jnp.argsort(t_all)
        inverse = jnp.argsort(order)
        sols = jax.vmap(lambda z: flow(model, c, tuple(z[i] for i in range(k)), t_all[order],
                                       t_period, config, solver))(starts)
        ys = tuple(y[:, inverse] for y in sols.ys)
        on_ts = tuple(y[:, :n_ts] for y in ys)
        on_acc = tuple(y[:, n_ts:] for y in ys)
        pl = model.pl(on_acc, c)  # (2, n_acc)
        ca = 100.0 * jnp.max(jnp.abs(pl[1] / pl[1, 0] - pl[0] / pl[0, 0]))
        pick = lambda i: ScaledSolution(  # noqa: E731
            ys=tuple(y[i] for y in on_ts),
            integrals={kk: v[i] for kk, v in sols.integrals.items()},
            final=tuple(y[i] for y in sols.final), status=sols.status[i],
            num_steps=sols.num_steps[i])
        status = jnp.maximum(jnp.max(ps.status), jnp.max(sols.status))
        # a periodic state that did not converge is a failure, whatever the solves said
        status = jnp.where((status == SUCCESS) & ~(ps.converged[0] & ps.converged[1]),
                           FAILED, status)
        return dict(z=ps.z[0], residual=ps.residual[0], iterations=ps.iterations[0],
                    converged=ps.converged[0] & ps.converged[1], newton=ps.newton[0],
                    steady=pick(0), first=pick(1), accumulation=ca, status=status)

    return one


_CACHE: dict = {}


def _batched(model, config, solver, tol, max_newton, max_fixed):
    key = (model, config, solver, tol, max_newton, max_fixed)
    if key not in _CACHE:
        _CACHE[key] = jax.jit(jax.vmap(_lane(model, config, solver, tol, max_newton, max_fixed),
                                       in_axes=(0, 0, 0, None, 0)))
    return _CACHE[key]


class PulseTrainResult(eqx.Module):
    """Periodic steady state of a pulse train (see module docstring).

    ``solution``: the steady-state pulse on the requested times (a :class:`Solution`, integrals
    over the whole period); ``first``: the first pulse (from the dark, or from the CW steady
    state if G > 0); ``carrier_accumulation_percent``: PEARS's CA; ``iterations`` (Newton plus
    any fixed-point pulses); ``converged``; ``newton`` (converged without the fallback);
    ``residual`` (max_i |F_i(z) - z_i| / (1 + |z_i|), scaled); ``start`` (state just after the pulse
    in the steady state, cm^-3, by state name); ``rep_rate`` (Hz).
    """

    solution: Solution
    first: Solution
    carrier_accumulation_percent: object
    iterations: object
    converged: object
    newton: object
    residual: object
    start: dict
    rep_rate: object


def _physical(model: Model, params: Params, flat: dict, n_ref, out: ScaledSolution, ts, shape,
              config: SolverConfig, solver: str, period=None) -> Solution:
    tr = config.t_ref

    def phys(x, scale):
        x = jnp.asarray(x)
        return jnp.reshape(x * scale[(...,) + (None,) * (x.ndim - 1)], shape + x.shape[1:])

    states = {nm: phys(y, n_ref) for nm, y in zip(model.state_names, out.ys)}
    final = {nm: phys(y, n_ref) for nm, y in zip(model.state_names, out.final)}
    c = model.coefficients(flat, n_ref, tr)
    c = {k: jnp.asarray(v)[:, None] for k, v in c.items()}
    pls = pl_scale(flat, n_ref)
    pl = phys(model.pl(out.ys, c), pls)
    scales = ScaledProblem(model).integral_scales(flat, n_ref, tr)
    integ = {k: phys(v, scales[k]) for k, v in out.integrals.items()}
    return Solution(model=model, t=jnp.asarray(ts), states=states, pl=pl, integrals=integ,
                    final=final, status=jnp.reshape(out.status, shape),
                    num_steps=jnp.reshape(out.num_steps, shape), params=params, solver=solver,
                    window_end=None if period is None else jnp.reshape(period, shape))


def steady_state_decay(model, params: Params | dict | None, ts, rep_rate,
                       config: SolverConfig | None = None, *, tol: float = NEWTON_TOL,
                       max_newton: int = 30, max_fixed: int = 3000,
                       accumulation_points: int = ACCUMULATION_POINTS) -> PulseTrainResult:
    """The periodic steady-state decay of a pulse train at ``rep_rate`` (Hz).

    Args:
        model: model name or object (every model: ``trap_detrap``, ``abc``, ``effective``,
            ``btd``); a CW bias is the model's ``G`` (cm^-3 s^-1).
        params: :class:`Params` or dict of physical values; arrays broadcast to a batch.
        ts: save times in s within one period, ``0 <= ts[-1] <= 1/rep_rate``.
        rep_rate: repetition rate in Hz, > 0; scalar or an array broadcasting with the batch
            (a sweep axis).
        config: :class:`SolverConfig`; ``solver="auto"`` picks Kvaerno5 when
            max_rate / rep_rate > 1e5.

    Returns a :class:`PulseTrainResult`. Failures to converge are reported in ``converged`` and
    the solutions' ``status``, never as silent NaN.
    """
    model = get_model(model)
    params = as_params(model, params)
    config = config or SolverConfig()
    rr = np.asarray(rep_rate, dtype=float)
    if rr.size == 0 or not np.all(np.isfinite(rr)) or np.any(rr <= 0):
        bad = rr[~(np.isfinite(rr) & (rr > 0))].flat[0] if rr.size else rep_rate
        raise ParameterError(f"rep_rate = {bad!r} is not allowed: expected a finite repetition "
                             "rate > 0 Hz")
    from jaxsim.numerics.reference import check_times

    ts = check_times(ts)
    t_max = 1.0 / float(np.max(rr))
    if ts[-1] > t_max * (1 + 1e-12):
        raise ParameterError(
            f"times extend to {float(ts[-1]):g} s, beyond one period 1/rep_rate = {float(t_max):g} s: expected "
            "save times within one period")
    p = broadcast(params)
    try:
        shape = jnp.broadcast_shapes(p.batch_shape, rr.shape)
    except ValueError:
        raise ParameterError(f"rep_rate shape {rr.shape} does not broadcast with the parameter "
                             f"batch shape {p.batch_shape}") from None
    flat = {k: jnp.reshape(jnp.broadcast_to(v, shape), (-1,)) for k, v in p.values.items()}
    rr_flat = np.reshape(np.broadcast_to(rr, shape), (-1,))
    solver = config.solver
    if solver == "auto":
        solver = choose_period_solver(model, flat, 1.0 / rr_flat)
    dtype = DTYPES[config.dtype]
    ts_scaled = jnp.asarray(ts / config.t_ref, dtype)
    ts_acc = np.stack([pears_times(1.0 / f, accumulation_points) for f in rr_flat])
    ts_acc[:, -1] = np.minimum(ts_acc[:, -1], 1.0 / rr_flat)
    ts_acc = jnp.asarray(ts_acc / config.t_ref, dtype)
    n_ref = flat["n0"]
    fn = _batched(model, config, solver, float(tol), int(max_newton), int(max_fixed))
    out = fn(flat, n_ref, jnp.asarray(rr_flat, dtype), ts_scaled, ts_acc)
    # the integrals (plqy, shares) cover the whole period, not just [0, ts[-1]]
    period = jnp.asarray(1.0 / rr_flat)
    steady = _physical(model, params, flat, n_ref, out["steady"], ts, shape, config, solver, period)
    first = _physical(model, params, flat, n_ref, out["first"], ts, shape, config, solver, period)
    steady = eqx.tree_at(lambda s: s.status, steady, jnp.reshape(out["status"], shape))
    z = out["z"]
    start = {nm: jnp.reshape(z[:, i] * n_ref, shape) for i, nm in enumerate(model.state_names)}

    def sc(x):
        x = np.reshape(np.asarray(x), shape)
        return x.item() if x.ndim == 0 else x

    return PulseTrainResult(
        solution=steady, first=first, carrier_accumulation_percent=sc(out["accumulation"]),
        iterations=sc(out["iterations"]), converged=sc(out["converged"]),
        newton=sc(out["newton"]), residual=sc(out["residual"]), start=start,
        rep_rate=sc(rr_flat))


def periodic_steady_state(model, values: dict, rep_rate, n_ref, ts, config: SolverConfig,
                          solver: str = "tsit5", *, tol: float = NEWTON_TOL,
                          max_newton: int = 30, max_fixed: int = 3000):
    """Batched periodic steady states from raw (unvalidated) physical values, for other modules.

    ``values``: dict of arrays (lanes,) in physical units, ``n0`` may be 0 (CW only or dark);
    ``n_ref`` (lanes,) the density scale of each lane; ``rep_rate`` (lanes,) Hz; ``ts`` save
    times in s common to all lanes (within every lane's period). Returns a dict with ``z``
    (lanes, k) scaled start state, ``steady`` (a :class:`ScaledSolution`), ``converged``,
    ``iterations``, ``status``.
    """
    model = get_model(model)
    dtype = DTYPES[config.dtype]
    key = ("pss", model, config, solver, tol, max_newton, max_fixed)
    if key not in _CACHE:
        def one(vals, nref, f, ts_s):
            c = {k: jnp.asarray(v, dtype) for k, v in
                 model.coefficients(vals, nref, config.t_ref).items()}
            t_period = (1.0 / (f * config.t_ref)).astype(dtype)
            ps = periodic_state(model, c, t_period, config, solver, tol=tol,
                                max_newton=max_newton, max_fixed=max_fixed)
            k = len(model.state_names)
            steady = flow(model, c, tuple(ps.z[i] for i in range(k)),
                          jnp.minimum(ts_s, t_period), t_period, config, solver)
            return dict(z=ps.z, steady=steady, converged=ps.converged,
                        iterations=ps.iterations, status=jnp.maximum(ps.status, steady.status))

        _CACHE[key] = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))
    ts_scaled = jnp.asarray(np.asarray(ts, float) / config.t_ref, dtype)
    # values and n_ref in the widest float: C n_ref^2 overflows float32 at n_ref = 1e20 before
    # the coefficients are cast to the solve's dtype
    pdt = param_dtype(config)
    vals = {k: jnp.asarray(v, pdt) for k, v in values.items()}
    return _CACHE[key](vals, jnp.asarray(n_ref, pdt), jnp.asarray(rep_rate, pdt), ts_scaled)


#: the sweep quantity ``rep_rate``: not a model parameter, but validated like one
REP_RATE = Parameter("rep_rate", "Hz", 1e6, "repetition rate of the pulse train (period "
                     "1/rep_rate)", lower=0.0, lower_inclusive=False)


#: summaries only a pulse train has (name -> unit, meaning), beside the model's summary_table
PULSE_SUMMARIES = {
    "carrier_accumulation_percent": (
        "%", "carrier accumulation (PEARS): 100 max_t |F1(t)/F1(0) - Fs(t)/Fs(0)|, "
        "first-pulse vs steady-state PL over one period"),
}


CARRIER_ACCUMULATION = "carrier_accumulation_percent"


def param_dtype(config: SolverConfig):
    """dtype of physical values: float64 when JAX has it (jaxsim enables it), so coefficients
    such as C n_ref^2 (1e40 at n_ref = 1e20: beyond float32) are formed before the cast to the
    solve's ``config.dtype``."""
    return jnp.float64 if jax.config.jax_enable_x64 else DTYPES[config.dtype]


def default_tol(config: SolverConfig) -> float:
    """Newton tolerance for ``config``'s dtype: :data:`NEWTON_TOL`, at least 256 ulps (float32:
    3e-5, about where the residual of a period's solve stops falling; float64: 1e-9)."""
    return max(NEWTON_TOL, 256 * float(np.finfo(DTYPES[config.dtype]).eps))


def _window_flow(model: Model, c: dict, y0, ts_states, ts_pl, t_win, t_end,
                 config: SolverConfig, solver: str):
    """One solve over [0, t_end] from ``y0`` (scaled): the states at ``ts_states``, scaled PL at
    ``ts_pl`` and states + integrals at ``t_win`` (<= t_end), so summaries cover [0, t_win]."""
    problem = ScaledProblem(model)
    dtype = DTYPES[config.dtype]
    k = problem.n_states
    saveat = diffrax.SaveAt(subs=[
        diffrax.SubSaveAt(ts=ts_states, fn=lambda t, y, args: y[:k]),
        diffrax.SubSaveAt(ts=ts_pl, fn=lambda t, y, args: model.pl(y[:k], c)),
        diffrax.SubSaveAt(ts=jnp.reshape(t_win, (1,)))])
    sol, status = integrate(problem.augmented_field(c), problem.augmented_state(y0, dtype),
                            t_end, saveat, config, solver, dt0=problem.initial_step(c, t_end),
                            forward=False)
    ys, pl, win = sol.ys
    final, integrals = problem.split(tuple(v[0] for v in win))
    status = flag_non_finite(status, *ys, pl, *final, *integrals.values())
    return dict(ys=tuple(ys), pl=pl, final=final, integrals=integrals, status=status,
                num_steps=jnp.asarray(sol.stats["num_steps"], jnp.int32))


@functools.lru_cache(maxsize=16)
def _steady_core(model: Model, config: SolverConfig, solver: str, t1: float, ts_key: tuple,
                 names: tuple, curve_vars: tuple, tol: float, max_newton: int, max_fixed: int,
                 n_acc: int, dc: float, cw: bool):
    """jit(f(params tuple, rep_rate)) for one chunk: see :func:`steady_state_chunk_solver`.

    ``cw=False`` (G is 0 at every point) skips the CW state before the first pulse (it is 0).
    """

    dtype = DTYPES[config.dtype]
    tr = config.t_ref
    k = len(model.state_names)
    pnames = model.parameter_names
    save_ts = np.asarray(ts_key, dtype=np.float64)
    ts_scaled = save_ts / tr
    t_win = t1 / tr

    def lane(vals, f):
        n_ref = vals["n0"]
        c = {kk: jnp.asarray(v, dtype) for kk, v in model.coefficients(vals, n_ref, tr).items()}
        t_period = (1.0 / (f * tr)).astype(dtype)
        inc = pulse_increment(model, c).astype(dtype)
        # the steady state, and the CW state before the first pulse (increment 0)
        incs = jnp.stack([inc, jnp.zeros_like(inc)]) if cw else inc[None]
        ps = jax.vmap(lambda i: periodic_state(
            model, c, t_period, config, solver, z0=i, increment=i, tol=tol,
            max_newton=max_newton, max_fixed=max_fixed))(incs)
        starts = jnp.stack([ps.z[0], (ps.z[1] if cw else 0.0) + inc])
        # PEARS's grid: 0 and n_acc log-spaced times from 1e-4 ns to T (clipped to T: rounding)
        log_t = jnp.linspace(-13.0, jnp.log10(t_period * tr), n_acc)
        acc = jnp.minimum(jnp.concatenate([jnp.zeros((1,), dtype), 10.0**log_t / tr]), t_period)
        ts_s = jnp.minimum(jnp.asarray(ts_scaled, dtype), t_period)
        t_w = jnp.minimum(jnp.asarray(t_win, dtype), t_period)
        sols = jax.vmap(lambda z: _window_flow(model, c, tuple(z[i] for i in range(k)), ts_s,
                                               acc, t_w, t_period, config, solver))(starts)
        pl = sols["pl"]  # (2, n_acc + 1): steady, first
        ca = 100.0 * jnp.max(jnp.abs(pl[1] / pl[1, 0] - pl[0] / pl[0, 0]))
        status = jnp.maximum(jnp.max(ps.status), jnp.max(sols["status"]))
        converged = jnp.all(ps.converged)
        status = jnp.where(converged | (status != SUCCESS), status, FAILED)
        return dict(z=ps.z[0], ys=tuple(y[0] for y in sols["ys"]),
                    final=tuple(y[0] for y in sols["final"]),
                    integrals={kk: v[0] for kk, v in sols["integrals"].items()},
                    accumulation=ca, status=status.astype(jnp.int32),
                    num_steps=sols["num_steps"][0], iterations=ps.iterations[0])

    def run(pvals, rep_rate):
        vals = dict(zip(pnames, pvals))  # param_dtype: coefficients are cast after computing
        out = jax.vmap(lane)(vals, rep_rate)
        n_ref = vals["n0"]
        pls = pl_scale(vals, n_ref)
        c = {kk: jnp.asarray(v, dtype)[:, None]
             for kk, v in model.coefficients(vals, n_ref, tr).items()}
        params = Params(model=model, values=vals)
        code = out["status"]
        res = {}
        table = observables.summary_table(model)
        integral_names = tuple(n for n in names if n in table and not table[n].needs_curve)
        curve_names = tuple(n for n in names if n in table and table[n].needs_curve)
        states = {nm: y * n_ref[:, None] for nm, y in zip(model.state_names, out["ys"])}
        pl = model.pl(out["ys"], c) * pls[:, None]
        if integral_names:
            scales = ScaledProblem(model).integral_scales(vals, n_ref, tr)
            integ = {kk: v * scales[kk] for kk, v in out["integrals"].items()}
            final = {nm: y * n_ref for nm, y in zip(model.state_names, out["final"])}
            # t: [0, t1], so carriers_in = n0 + G t1 whatever the save times
            sol = Solution(model=model, t=jnp.asarray([0.0, t1], dtype), states={},
                           pl=None, integrals=integ, final=final, status=code,
                           num_steps=out["num_steps"], params=params, solver=solver)
            res.update(observables.summaries(sol, integral_names, dc))
        if curve_names:
            sol = Solution(model=model, t=jnp.asarray(save_ts, dtype), states=states, pl=pl,
                           integrals={}, final={}, status=code, num_steps=out["num_steps"],
                           params=params, solver=solver)
            res.update(observables.summaries(sol, curve_names, dc))
        res[CARRIER_ACCUMULATION] = out["accumulation"]  # always: it is computed anyway
        pl0 = model.pl(tuple(out["z"][:, i] for i in range(k)),
                       {kk: v[:, 0] for kk, v in c.items()})
        for var in curve_vars:
            if var == "pl":
                res[f"curve_{var}"] = pl
            elif var == "pl_norm":
                res[f"curve_{var}"] = pl / (pl0 * pls)[:, None]
            else:
                res[f"curve_{var}"] = states[var]
        finite = jnp.ones(code.shape, bool)
        for kk, v in res.items():
            # tau_1e_* is inf when the decay stays above 1/e in the window: a value, not a failure
            ok_v = ~jnp.isnan(v) if kk.startswith("tau_1e_") else jnp.isfinite(v)
            finite = finite & jnp.all(ok_v.reshape(code.shape + (-1,)), axis=-1)
        code = jnp.where((code == SUCCESS) & ~finite, NON_FINITE, code)
        ok = code == SUCCESS
        res = {kk: jnp.where(ok.reshape(ok.shape + (1,) * (v.ndim - 1)), v, jnp.nan)
               for kk, v in res.items()}
        res["status"] = code
        res["num_steps"] = out["num_steps"]
        res["iterations"] = out["iterations"]
        return res

    return jax.jit(run)


def steady_state_chunk_solver(model, *, t1, summaries=(), curve_ts=None, curve_vars=("pl",),
                              config: SolverConfig = SolverConfig(), fixed=None,
                              solver: str | None = None, tol: float | None = None,
                              max_newton: int = 30, max_fixed: int = 3000,
                              accumulation_points: int = ACCUMULATION_POINTS,
                              summary_points: int = 512, diffusion_coefficient: float = 0.017):
    r"""A chunk function of periodic steady-state pulses: ``f(values) -> dict``.

    The call contract of :func:`jaxsim.numerics.engine.chunk_solver`'s result, with the repetition rate
    ``rep_rate`` (Hz) as one more per-point input (or a scalar in ``fixed``). Per point:
    the periodic steady state of the pulse train (:func:`periodic_state`, Newton with
    fixed-point fallback), then the steady-state pulse over [0, ``t1``] (``t1`` <= the
    shortest period), whose summaries come from :func:`jaxsim.observables.summaries` exactly
    as the single-pulse engine's do (integral summaries over [0, t1]; curve summaries on
    ``curve_ts``, else ``summary_points`` evenly spaced times on [0, t1]), and PEARS's
    ``carrier_accumulation_percent`` over the whole period (as :func:`steady_state_decay`).
    Shares and ``plqy`` are fractions of what one pulse puts in (n0 + G t1): in the steady
    state a pulse also starts with the carriers left from earlier pulses.

    Args:
        model: model name or object.
        t1: end of the observation window in s, within every point's period.
        summaries: names of :func:`jaxsim.observables.summary_table` (model) and/or
            ``"carrier_accumulation_percent"``.
        curve_ts, curve_vars: curves of the steady-state pulse (the model's states, ``pl``,
            ``pl_norm`` = PL / PL(0) of the steady-state pulse) on ``curve_ts`` (s, <= t1).
        config: :class:`SolverConfig` (``rtol``, ``atol``, ``dtype``, ``max_steps`` per solve).
        fixed: values held constant over the chunk (model parameters and/or ``rep_rate``).
        solver: diffrax solver name; default ``config.solver``, where ``"auto"`` picks per call
            from concrete values (:func:`choose_period_solver`) and Tsit5 when traced.
        tol: Newton tolerance (scaled); default :func:`default_tol` (1e-9 in float64).

    Returns ``f(values: dict[str, Array(chunk,)]) -> dict`` with each summary ``(chunk,)``
    (``carrier_accumulation_percent`` always),
    ``curve_<var>`` ``(chunk, len(curve_ts))``, ``status`` int32 (0 success, 1 a solve ran out
    of steps, 2 solver failed or the periodic state did not converge, 3 non-finite),
    ``num_steps`` int32 (steps of the steady-state pulse's solve over one period) and
    ``iterations`` (Newton plus fixed-point iterations). Points that did not succeed have NaN
    outputs; ``tau_1e_*`` is ``inf`` (a value, status 0) when the steady-state decay stays
    above 1/e within [0, t1]. Compiled once per chunk size and solver.
    """
    from jaxsim.numerics.engine import check_chunk_values, check_curve_request
    from jaxsim.physics.parameters import table_lookup

    model = get_model(model)
    t1 = float(t1)
    if not (np.isfinite(t1) and t1 > 0):
        raise ParameterError(f"t1 = {t1!r}: expected a positive end time in s")
    names = observables.check_summary_names(model, summaries, extra=tuple(PULSE_SUMMARIES))
    curve_ts, curve_vars = check_curve_request(model, t1, curve_ts, curve_vars)
    if curve_ts is not None:
        save_ts = np.minimum(curve_ts, t1)
    else:
        curve_vars = ()
        save_ts = np.linspace(0.0, t1, int(summary_points))
    fixed = dict(fixed or {})
    for kk, v in fixed.items():
        row = REP_RATE if kk == "rep_rate" else table_lookup(model.parameters, kk,
                                                              model=model.name)
        row.check(v, where="fixed")
    if "rep_rate" in fixed:
        _check_window(t1, fixed["rep_rate"], where="fixed")
    solver = solver or config.solver
    if solver not in ("auto", *SOLVERS):
        raise ParameterError(f"solver = {solver!r} is not known: expected 'auto' or one of "
                             f"{', '.join(SOLVERS)}")
    tol = default_tol(config) if tol is None else float(tol)
    ts_key = tuple(float(x) for x in save_ts)
    key = (config, t1, ts_key, names, curve_vars, tol, int(max_newton), int(max_fixed),
           int(accumulation_points), float(diffusion_coefficient))

    def f(values):
        values = dict(values)
        n = check_chunk_values(model, values, extra=("rep_rate",))
        concrete = not any(isinstance(v, jax.core.Tracer) for v in values.values())
        if "rep_rate" not in values and "rep_rate" not in fixed:
            raise ParameterError("rep_rate is missing: expected it (Hz) in values or in fixed")
        if concrete:
            for kk, v in values.items():
                row = REP_RATE if kk == "rep_rate" else table_lookup(model.parameters, kk,
                                                                      model=model.name)
                row.check(np.asarray(v))
            if "rep_rate" in values:
                _check_window(t1, np.asarray(values["rep_rate"]), where="values")
        full = {}
        for row in (*model.parameters, REP_RATE):
            v = values.get(row.name, fixed.get(row.name, row.default))
            full[row.name] = jnp.broadcast_to(jnp.asarray(v, param_dtype(config)), (n,))
        name = solver
        if name == "auto":
            name = (choose_period_solver(model, {kk: np.asarray(v) for kk, v in full.items()},
                                         1.0 / np.asarray(full["rep_rate"]))
                    if concrete else "tsit5")
        g_fixed = fixed.get("G", {r.name: r.default for r in model.parameters}.get("G", 0.0))
        cw = "G" in values or float(np.max(np.abs(g_fixed))) != 0.0
        core = _steady_core(model, config, name, t1, ts_key, *key[3:], cw)
        return core(tuple(full[p] for p in model.parameter_names), full["rep_rate"])

    f.model = model
    f.t1 = t1
    f.summaries = names
    f.curve_ts = curve_ts
    f.curve_vars = curve_vars
    f.config = config
    return f


def _check_window(t1: float, rep_rate, *, where: str) -> None:
    rr = np.asarray(rep_rate, dtype=float)
    f_max = float(np.max(rr))
    if t1 > (1.0 / f_max) * (1 + 1e-12):
        raise ParameterError(
            f"{where}: rep_rate = {f_max!r} Hz has a period 1/rep_rate = {1.0 / f_max!r} s "
            f"shorter than t1 = {t1!r} s: expected t1 <= the shortest period (the steady-state "
            "pulse is observed over [0, t1] within one period)")
