r"""One adaptive Runge-Kutta step of every lane, written for XLA:CPU.

The step is Tsit5 (:mod:`.tableau`) with the I-controller of diffrax's default
``PIDController``: :math:`h \leftarrow h\,\mathrm{clip}(0.9\,\varepsilon^{-1/5}, 0.2, 10)`,
where :math:`\varepsilon = \mathrm{RMS}_i\,\max(|e_i| - \nu_i, 0) /
(\mathrm{atol} + \mathrm{rtol}\max(|y_i|, |y_i'|))` runs over the model's states only (the
integrals carried as extra state follow the states' steps) and
:math:`\nu_i = 4\epsilon h |f_i| \sum_k |b^{err}_k|` is the error estimate's own rounding noise.

Two tricks keep XLA:CPU from computing the stages more than once (docs/performance.md, "How it
is fast", item 3). XLA:CPU gives each output of the loop body its own kernel and fuses every
elementwise producer into each consumer, so each output (each state, the error, the step size,
the field) recomputed every stage it depends on:

- :func:`one_fusion` makes several outputs one kernel (used with up to two integrals);
- :func:`materialise` makes the stage states expensive to duplicate, so XLA computes them once
  (used with more integrals, where one kernel for everything ran slower).

:func:`fusion_plan` chooses between them. Lanes are a tuple of ``(lanes,)`` arrays, one per
component; nothing here is stacked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsim.numerics.engine.tableau import TSIT5


def _combine(weights, ks, j):
    """sum_i weights[i] * ks[i][j], skipping zero weights (the tableau is sparse)."""
    acc = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            term = w * k[j]
            acc = term if acc is None else acc + term
    return acc


def rk_step(field, t, h, y, f0, keep=lambda k: k):
    """One Tsit5 step of size ``h`` from ``(t, y)`` with ``f0 = field(t, y)`` (FSAL).

    Returns ``(y1, err)``: the new state and the local error estimate, per component.
    ``keep`` is applied to each stage's input state (:func:`materialise`). The caller evaluates
    the field at ``y1`` itself, after :func:`one_fusion`: the last stage's value would make the
    field one more output computed from the stages."""
    ks = [f0]
    n = len(y)
    for s in range(1, TSIT5.n_stages):
        ys = keep(tuple(y[j] + h * _combine(TSIT5.a[s - 1], ks, j) for j in range(n)))
        ks.append(field(t + TSIT5.c[s] * h, ys))
    y1 = ys  # FSAL: the last stage's input is the new state (checked in tableau.py)
    err = tuple(h * _combine(TSIT5.b_err, ks, j) for j in range(n))
    return y1, err


def inv_fifth_root(x):
    r""":math:`x^{-1/5}` of the controller, in float32 as :math:`\exp(-\log(x)/5)`.

    XLA:CPU lowers ``power`` to a scalar libm call, several times slower than ``exp`` and
    ``log`` in float32 (docs/performance.md, item 10); a step-size factor needs no more
    digits."""
    return jnp.exp(-0.2 * jnp.log(x.astype(jnp.float32))).astype(x.dtype)


def one_fusion(xs):
    """``xs`` unchanged (but -0.0 becomes +0.0), computed in one XLA kernel: the outputs of a
    variadic reduce over a leading axis of 2 (each value, then 0). All of ``xs`` must have one
    shape.

    XLA:CPU fuses one output per kernel, so each output of a step (new time, step size,
    states, field) recomputed every stage it depends on; a reduce with several operands is
    one kernel, and its operands' common subexpressions are computed once per element. Other
    backends fuse several outputs by themselves: there this is the identity.
    (``lax.optimization_barrier`` does not do it: XLA:CPU removes it before fusion.)"""
    if jax.default_backend() != "cpu":
        return tuple(xs)
    ops = tuple(jnp.stack([x, jnp.zeros_like(x)]) for x in xs)
    init = tuple(jnp.zeros((), x.dtype) for x in xs)
    return tuple(jax.lax.reduce(ops, init, lambda a, b: tuple(p + q for p, q in zip(a, b)),
                                (0,)))


def materialise(one, n_keep):
    r"""``keep`` for :func:`rk_step`: divide the first ``n_keep`` components (the model's
    states) of each stage's input by ``one``.

    ``one`` is a 1 computed at run time (:func:`runtime_one`), so XLA cannot fold the division
    away, and it is exact. A floating division counts as expensive, and XLA does not duplicate
    expensive producers into their consumers: the stage states are computed once instead of
    once per output of the step.
    """
    return lambda k: tuple(x / one if j < n_keep else x for j, x in enumerate(k))


def runtime_one(n_ref, dtype):
    """A 1 that XLA cannot fold away, also when the chunk function is traced inside another
    jit (``shard_map``, ``jvp``): ``n0 / n0`` of the first point, exact for the positive n0
    every point has. (A literal 1 was folded inside ``shard_map``, which changed step counts
    between device counts.)"""
    first = jnp.reshape(jnp.asarray(n_ref, dtype), (-1,))[0]
    return first / first


class FusionPlan(NamedTuple):
    """How a step keeps XLA:CPU from recomputing its stages (module docstring)."""

    keep: Callable  #: applied to each stage's input state (identity, or :func:`materialise`)
    n_pack: int  #: leading components of the new state computed in one kernel with the error


def fusion_plan(one, n_state: int, n_integrals: int) -> FusionPlan:
    """With up to two integrals the whole step fits one kernel (states, integrals and error
    estimates packed by :func:`one_fusion`); with more, that kernel ran slower than
    materialising the stage states and packing only the states (docs/performance.md, item
    3c)."""
    if n_integrals > 2:
        return FusionPlan(materialise(one, n_state), n_state)
    return FusionPlan(lambda k: k, n_state + n_integrals)


class Controller(NamedTuple):
    """Step-size control: the error norm's tolerances (scaled problem)."""

    rtol: float
    atol: float
    noise: float  #: rounding noise of the error estimate per unit of ``h |f|`` (4 eps sum|b_err|)
    n_state: int  #: the norm runs over the first ``n_state`` components (the model's states)

    def error_ratio(self, err, y0, y1, f0, h):
        """The weighted RMS of the error estimate, less its own rounding noise (in float32 at
        rtol 2e-7 that noise kept the controller from growing slow steps)."""
        def scale(a, b):
            return self.atol + self.rtol * jnp.maximum(jnp.abs(a), jnp.abs(b))

        return jnp.sqrt(sum(
            (jnp.maximum(jnp.abs(err[j]) - self.noise * jnp.abs(h * f0[j]), 0.0)
             / scale(y0[j], y1[j])) ** 2 for j in range(self.n_state)) / self.n_state)

    @staticmethod
    def factor(ratio, finite):
        """The I-controller's step-size factor; a non-finite step shrinks by the most (0.2)."""
        return jnp.clip(0.9 * inv_fifth_root(jnp.where(finite, ratio, 1e10)), 0.2, 10.0)


def adaptive_step(field, t, h, h_try, y, f, live, *, t_end, controller: Controller,
                  plan: FusionPlan):
    """One adaptive step of the ``live`` lanes, of at most ``h_try``; the other lanes keep their
    state. ``field(t, y)`` is the vector field with the lanes' coefficients bound, ``f`` its
    value at ``(t, y)``, ``h`` the controller's step size (``h_try`` is shorter where a save
    window or ``t_end`` cuts the step). Returns the new ``(t, h, y, f)``: a rejected step keeps
    ``t``, ``y``, ``f``; a lane whose step cannot advance ``t`` gets ``h = 0`` (it fails)."""
    n_state, n_pack = controller.n_state, plan.n_pack
    remaining = t_end - t
    last = h_try >= remaining * (1 - 1e-12)
    # step by exactly fl(t + h) - t, so that t stays the time of the state (in float32 the
    # rounding of t + h had shifted the curves: docs/performance.md, item 6)
    h_step = jnp.where(last, remaining, (t + h_try) - t)
    # a step below the resolution of t cannot advance it: the lane fails (status 2)
    stuck = live & (h_step <= 0)
    y1, err = rk_step(field, t, h_step, y, f, plan.keep)
    # the stages once: the new states (all components when they fit one kernel, else the
    # model's states only: the integrals' sums come from the materialised stage states) and
    # their error estimates in one kernel, then the new field from the new states
    packed = one_fusion(tuple(y1[:n_pack]) + tuple(err[:n_state]))
    y1 = tuple(packed[:n_pack]) + tuple(y1[n_pack:])
    err = packed[n_pack:]
    f1 = field(t + h_step, y1)
    # the step sizes are not differentiated: sqrt at an error of 0 has no derivative, and a
    # tangent of the step size only moves the result within the tolerance
    ratio = jax.lax.stop_gradient(controller.error_ratio(err, y, y1, f, h_step))
    # finite: the states only. With the integrals in the test every output of the step
    # recomputed every integral; a non-finite integral still shows as a non-finite summary
    # (status 3)
    finite = jnp.isfinite(ratio)
    for j in range(n_state):
        finite = finite & jnp.isfinite(y1[j])
    accepted = (ratio <= 1.0) & finite & live
    factor = controller.factor(ratio, finite)
    h_new = h_step * jnp.where(accepted, factor, jnp.minimum(factor, 1.0))
    # a step shortened to meet t_end or a save window does not shrink the next one
    h_new = jnp.where(accepted & (h_step < h), jnp.maximum(h_new, h), h_new)
    h_new = jnp.where(live, jnp.where(stuck, 0.0, h_new), h)
    t_new = jnp.where(accepted, jnp.where(last, t_end, t + h_step), t)
    y_new = tuple(jnp.where(accepted, a, b) for a, b in zip(y1, y))
    f_new = tuple(jnp.where(accepted, a, b) for a, b in zip(f1, f))
    # everything the loop carries on, out of one kernel
    t_new, h_new, *rest = one_fusion((t_new, h_new) + y_new + f_new)
    return t_new, h_new, tuple(rest[:len(y)]), tuple(rest[len(y):])

