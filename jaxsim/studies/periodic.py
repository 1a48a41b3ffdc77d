r"""The fit's forward model for a pulse train: each decay starts from the periodic steady state.

At repetition rate :math:`f` (period :math:`T = 1/f`) a pulse adds :math:`\Delta = y_0(n_0)`
(:func:`jaxsim.numerics.pulses.pulse_increment`, the model's ``initial_state``: the states the
pulse fills) to what the previous periods left. With :math:`z` the state just after a pulse,
:math:`y^- = z - \Delta` the state just before it and :math:`\Phi_T` the flow of the rate
equations over one period, the measured decay starts from the fixed point

.. math::

    z^* = \Phi_T(z^*; \theta) + \Delta(\theta),

found, as :func:`jaxsim.numerics.pulses.periodic_state` finds it, by Newton's method on
:math:`r(z) = \Phi_T(z) + \Delta - z` from the first pulse from the dark, with
:math:`\partial\Phi_T/\partial z` from the variational equations, the Newton matrix's null
space (a conserved quantity) deflated by :func:`~jaxsim.numerics.pulses.deflated_solve`. Here
the period is integrated by the L-stable Rodas4 method (:func:`jaxsim.numerics.rosenbrock.flow`,
one lane per start x decay, the same error control meaning as the decays, pure JAX), so it is
one program with the fit: late in a period a fast mode (trapping into empty traps) is still in
the Jacobian while the solution changes slowly, and an explicit method would be held to steps
of a few times its time constant over the whole period.

Derivatives by the implicit function theorem, not through the Newton iterations: the period's
solve at the converged :math:`z^*` carries (as derivatives of its discrete steps) :math:`k` tangents along the state (giving
:math:`\Phi_z`) and one per fitted parameter (:math:`\Phi_\theta`), and

.. math::

    \frac{dz^*}{d\theta} = (I - \Phi_z)^{-1} (\Phi_\theta + \partial_\theta\Delta).

Before the pulse the signal is the end of the previous period. Over the bins before the pulse
(a small fraction of the period) the forward model continues it by its tangent at the pulse,
:math:`\hat p(\tau) = \hat p^- + \tau\,\dot{\hat p}^-` for :math:`\tau < 0`, with
:math:`\hat p^- = \mathrm{PL}(y^-)/\mathrm{PL}(\Delta)` and its rate of change from the rate
equations at :math:`y^-` (the error is second order in the distance from the pulse).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics import rosenbrock
from jaxsim.numerics.config import FAILED, SUCCESS, SolverConfig
from jaxsim.numerics.pulses import default_tol, deflated_solve, pulse_increment
from jaxsim.physics.model import Model

#: Newton iterations at most before a lane's periodic state counts as not converged
MAX_NEWTON = 40

#: step limit of one period's solve (a period is many decay windows long; Rodas4 needs a few
#: hundred steps where the solution changes, however stiff)
PERIOD_MAX_STEPS = 100_000


class PeriodicStart(NamedTuple):
    """Start of each lane's decay (scaled units; lanes last)."""

    z: jax.Array  # (k, lanes): state just after the pulse
    dz: jax.Array | None  # (P, k, lanes): dz*/d(coefficient directions); None without tangents
    pre: jax.Array  # (1 + P, lanes): PL just before the pulse / PL(Delta), and tangents
    slope: jax.Array  # (1 + P, lanes): its rate of change (per scaled time), and tangents
    status: jax.Array  # (lanes,) int32: 0, or the failed solve's code, or FAILED (no convergence)
    residual: jax.Array  # (lanes,): max_i |F_i(z) - z_i| / (1 + |z_i|)
    iterations: jax.Array  # Newton iterations (all lanes together)


def _level_slope(model: Model, y: tuple, c: dict):
    """PL of state ``y`` over the PL just after a single pulse from the dark, and its rate of
    change (per scaled time) under the rate equations."""
    pl0 = model.pl(tuple(model.initial_state(c)), c)
    v, dv = jax.jvp(lambda *q: model.pl(q, c), tuple(y), tuple(model.vector_field(0.0, y, c)))
    return jnp.stack([v / pl0, dv / pl0])


def periodic_start(model: Model, c: dict, t_period: float, config: SolverConfig,
                   dc: dict | None = None, *, tol: float | None = None,
                   max_newton: int = MAX_NEWTON,
                   max_steps: int = PERIOD_MAX_STEPS) -> PeriodicStart:
    """Periodic steady state of each lane (coefficients ``c``: scalars or ``(lanes,)``) at
    scaled period ``t_period``, with its tangents along ``dc`` (each ``(P, lanes)``, as
    :func:`~jaxsim.studies.instrument.solve_nodes` takes them) by the implicit function
    theorem. Newton stops at ``tol`` (default :func:`~jaxsim.numerics.pulses.default_tol`);
    a lane that has not converged after ``max_newton`` iterations, or whose period's solve
    failed, has a non-zero ``status`` (never a silent NaN)."""
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    tol = default_tol(config) if tol is None else float(tol)
    c = {kk: jnp.asarray(v, dtype) for kk, v in c.items()}
    shapes = [jnp.shape(v) for v in c.values()]
    if dc:
        shapes += [jnp.shape(v)[1:] for v in dc.values()]
    lanes = int(np.broadcast_shapes(*shapes, (1,))[0])
    c = {kk: jnp.broadcast_to(v, (lanes,)) for kk, v in c.items()}
    inc = pulse_increment(model, c).astype(dtype)  # (k, lanes)
    k = inc.shape[0]
    P = int(jnp.shape(next(iter(dc.values())))[0]) if dc else 0
    eye = jnp.eye(k, dtype=dtype)
    # tangent directions of the period's solve: k along the state, then P along dc
    zeros_k = jnp.zeros((k, lanes), dtype)
    dcs = {}
    for name in c:
        d = None if not dc else dc.get(name)
        d = (jnp.zeros((P, lanes), dtype) if d is None
             else jnp.broadcast_to(jnp.reshape(jnp.asarray(d, dtype), (P, -1)), (P, lanes)))
        dcs[name] = jnp.concatenate([zeros_k, d])
    dy0 = jnp.concatenate([jnp.broadcast_to(eye[:, :, None], (k, k, lanes)),
                           jnp.zeros((P, k, lanes), dtype)])

    def one_period(z):
        out = rosenbrock.flow(model, c, z, float(t_period), config, dcs, dy0,
                              max_steps=max_steps)
        return jnp.concatenate([out.y[None], out.dy]), out.status  # (1 + k + P, k, lanes)

    big = jnp.asarray(jnp.inf, dtype)

    def body(carry):
        z, it, _res, _st, _done, _end = carry
        end, st = one_period(z)
        fz = end[0] + inc
        r = fz - z
        res = jnp.max(jnp.abs(r) / (1.0 + jnp.abs(z)), axis=0)
        res = jnp.where(jnp.isfinite(res), res, big)
        conv = (res <= tol) & (st == SUCCESS)
        m = jnp.transpose(end[1:1 + k], (2, 1, 0)) - eye  # (lanes, state, direction)
        step = jax.vmap(deflated_solve)(m, -r.T).T
        z_new = jnp.maximum(z + step, 0.0)
        # a non-finite Newton iterate falls back to the next pulse's state, then to the dark
        z_new = jnp.where(jnp.all(jnp.isfinite(z_new), axis=0), z_new,
                          jnp.where(jnp.all(jnp.isfinite(fz), axis=0), fz, inc))
        done = conv | (st != SUCCESS)
        return jnp.where(done, z, z_new), it + 1, res, st, done, end

    def cond(carry):
        return (carry[1] < max_newton) & ~jnp.all(carry[4])

    carry = (inc, jnp.asarray(0, jnp.int32), jnp.full((lanes,), big),
             jnp.zeros((lanes,), jnp.int32), jnp.zeros((lanes,), bool),
             jnp.zeros((1 + k + P, k, lanes), dtype))
    z, it, res, st, _done, end = jax.lax.while_loop(cond, body, carry)
    conv = (res <= tol) & (st == SUCCESS)
    status = jnp.where(conv, SUCCESS, jnp.where(st != SUCCESS, st, FAILED)).astype(jnp.int32)
    y_pre = z - inc
    pre = _level_slope(model, tuple(y_pre[i] for i in range(k)), c)  # (2, lanes)
    if not P:
        return PeriodicStart(z, None, pre[:1], pre[1:], status, res, it)
    # implicit function theorem at z*: (I - Phi_z) dz = Phi_theta + dDelta/dtheta
    m = jnp.transpose(end[1:1 + k], (2, 1, 0)) - eye
    dc_only = {name: v[k:] for name, v in dcs.items()}
    dinc = jax.vmap(lambda d: jax.jvp(lambda cc: pulse_increment(model, cc), (c,), (d,))[1])(
        dc_only)  # (P, k, lanes)
    rhs = jnp.transpose(end[1 + k:] + dinc, (2, 1, 0))  # (lanes, k, P)
    dz = jnp.transpose(jax.vmap(deflated_solve)(m, -rhs), (2, 1, 0))  # (P, k, lanes)
    d_pre = dz - dinc
    pre_t = jax.vmap(lambda dy, d: jax.jvp(
        lambda yy, cc: _level_slope(model, tuple(yy[i] for i in range(k)), cc),
        (y_pre, c), (dy, d))[1])(d_pre, dc_only)  # (P, 2, lanes)
    return PeriodicStart(z, dz, jnp.concatenate([pre[None, 0], pre_t[:, 0]]),
                         jnp.concatenate([pre[None, 1], pre_t[:, 1]]), status, res, it)
