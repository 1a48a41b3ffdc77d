r"""An L-stable Rosenbrock method (Rodas4) for batches of small stiff systems, with tangents.

What it is for: one period of a pulse train in the fit (:mod:`jaxsim.studies.periodic`). Late
in a period the carriers are few and the slow modes (trap relaxation, recombination) set the
solution, but a fast mode (e.g. trapping into empty traps) is still in the Jacobian, and an
explicit method is held to steps of about 3/|lambda_fast| over the whole period. Rodas4 is
L-stable: its steps follow the solution, not the fastest mode.

**The method** (Hairer & Wanner, *Solving ODEs II*, sec. IV.7, ``RODAS`` with the Rodas4
coefficients; 6 stages, order 4, embedded order 3, stiffly accurate). With :math:`J =
\partial f/\partial y` at the step's start and :math:`E = I/(\gamma h) - J`,

.. math::

    E\,k_i = f\Big(y + \sum_{j<i} a_{ij} k_j,\; t + c_i h\Big) + \sum_{j<i} \frac{C_{ij}}{h} k_j
        + d_i\, h\, \partial_t f, \qquad
    y_1 = y + \sum_{j<6} a_{6j} k_j + k_6,

and :math:`k_6` is the local error estimate. The systems are 2-4 states: ``J`` comes from
``jax.jvp`` along each state, and :math:`E` is factored per lane by Gaussian elimination
written out over the states (elementwise over lanes: a few fused kernels, no batched library
call; :func:`lu_factor` says why without pivoting).

**Error control** has the one meaning of :mod:`jaxsim.numerics.config`: a step is accepted when
the RMS over the states of :math:`|k_6| / (\mathrm{atol} + \mathrm{rtol}\max(|y|, |y_1|))` is
at most 1 (rtol floored at 8 ulps of the dtype, as the core's controller does); the next step is
:math:`h \cdot \mathrm{clip}(0.9\,\mathrm{err}^{-1/4}, 0.2, 6)`.

**Tangents** are those of the discrete solution on its mesh: each accepted step's map
:math:`(y, c) \mapsto y_1` is differentiated (``jax.linearize``, step sizes held fixed, as the
step-size choice is piecewise constant), and its linear map is applied to every direction. This
is the method applied to the variational equations with their exact Jacobian, so the tangents
and the state share the step's stability.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsim.numerics.config import MAX_STEPS, NON_FINITE, SUCCESS, SolverConfig
from jaxsim.physics.model import Model


class RosenbrockTableau(NamedTuple):
    r"""A stiffly accurate Rosenbrock method in Hairer's form (see the module docstring).

    ``a[i]``: weights of ``k_0 .. k_{i-1}`` in stage ``i``'s state (``a[0] = ()``); the last
    row is also the solution's (plus the last stage itself); ``C[i]``: weights of ``k_j / h``
    in stage ``i``'s right-hand side; ``c[i]`` its time fraction; ``d[i]`` the weight of
    :math:`h\,\partial_t f`; ``order`` the order of the error estimate's leading term."""

    gamma: float
    a: tuple[tuple[float, ...], ...]
    C: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    d: tuple[float, ...]
    order: int


#: Rodas4 (Hairer & Wanner's ``RODAS``, METH = 1): L-stable, stiffly accurate, order 4(3)
RODAS4 = RosenbrockTableau(
    gamma=0.25,
    a=((),
       (1.544,),
       (0.9466785280815826, 0.2557011698983284),
       (3.314825187068521, 2.896124015972201, 0.9986419139977817),
       (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895),
       (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0)),
    C=((),
       (-5.6688,),
       (-2.430093356833875, -0.2063599157091915),
       (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
       (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616),
       (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
        -6.058818238834054)),
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
    order=4,
)


# -- small dense systems, one per lane ------------------------------------------------------------

def lu_factor(E):
    r"""LU factors of the ``k x k`` matrices ``E[i][j]`` (lists of arrays over lanes): the unit
    lower factor below the diagonal, the upper on and above it.

    No pivoting: for rate equations :math:`E = I/(\gamma h) - J` is column diagonally
    dominant (each carrier that a term removes from one state it adds to at most one other, and
    a state's own loss rate sits on its diagonal; ``btd``: column sums of the off-diagonal
    magnitudes equal the diagonal minus :math:`1/(\gamma h)`), where Gaussian elimination is
    stable without it. (Pivoting by selects also ran ~1e4 times slower under XLA:CPU's newer
    fusion emitters once differentiated.)"""
    k = len(E)
    A = [list(row) for row in E]
    for j in range(k):
        for i in range(j + 1, k):
            el = A[i][j] / A[j][j]
            A[i][j] = el
            for m in range(j + 1, k):
                A[i][m] = A[i][m] - el * A[j][m]
    return A


def lu_solve(A, b):
    """Solve ``E x = b`` from :func:`lu_factor`'s result; ``b`` a list of ``k`` arrays (lanes,
    or anything that broadcasts against them)."""
    k = len(A)
    x = list(b)
    for i in range(k):
        for j in range(i):
            x[i] = x[i] - A[i][j] * x[j]
    for i in reversed(range(k)):
        for m in range(i + 1, k):
            x[i] = x[i] - A[i][m] * x[m]
        x[i] = x[i] / A[i][i]
    return x


# -- one step, and the loop over a fixed interval ---------------------------------------------------

def rosenbrock_step(field, t, y, h, tableau: RosenbrockTableau = RODAS4):
    """One step of size ``h`` from ``(t, y)`` (``y`` a list of ``k`` arrays over lanes; ``t``,
    ``h`` arrays over lanes; ``field(t, y)`` returns a list like ``y``). Returns the new state
    and the error estimate (lists)."""
    k = len(y)
    f0 = field(t, y)
    cols = []
    for j in range(k):
        e = [jnp.ones_like(y[i]) if i == j else jnp.zeros_like(y[i]) for i in range(k)]
        cols.append(jax.jvp(lambda yy: field(t, yy), (y,), (e,))[1])
    ft = jax.jvp(lambda tt: field(tt, y), (t,), (jnp.ones_like(t),))[1]
    inv = 1.0 / (tableau.gamma * h)
    E = [[(inv if i == j else 0.0) - cols[j][i] for j in range(k)] for i in range(k)]
    lu = lu_factor(E)
    ks = []
    for s in range(len(tableau.c)):
        if s == 0:
            fs = f0
        else:
            ys = [y[i] + sum(w * kk[i] for w, kk in zip(tableau.a[s], ks) if w != 0.0)
                  for i in range(k)]
            fs = field(t + tableau.c[s] * h, ys)
        rhs = []
        for i in range(k):
            r = fs[i]
            if tableau.d[s] != 0.0:
                r = r + (tableau.d[s] * h) * ft[i]
            mix = sum(w * kk[i] for w, kk in zip(tableau.C[s], ks) if w != 0.0)
            rhs.append(r + mix / h if ks else r)
        ks.append(lu_solve(lu, rhs))
    y1 = [y[i] + sum(w * kk[i] for w, kk in zip(tableau.a[-1], ks) if w != 0.0) + ks[-1][i]
          for i in range(k)]
    return y1, ks[-1]


class Flow(NamedTuple):
    """End of :func:`flow` (lanes last)."""

    y: jax.Array  # (k, lanes): the state at t_end
    dy: jax.Array  # (D, k, lanes): its tangents (D = 0: none)
    status: jax.Array  # (lanes,) int32: SUCCESS, MAX_STEPS or NON_FINITE
    steps: jax.Array  # (lanes,) int32: steps taken (accepted and rejected)


def flow(model: Model, c: dict, y0, t_end, config: SolverConfig, dc: dict | None = None,
         dy0=None, *, max_steps: int | None = None,
         tableau: RosenbrockTableau = RODAS4) -> Flow:
    """Integrate the model's scaled rate equations from ``y0`` (``(k, lanes)``) at 0 to
    ``t_end`` (scaled; a scalar) for every lane, each with its own steps, by ``tableau``, and
    carry ``D`` tangent directions: ``dy0`` (``(D, k, lanes)``) of the start and ``dc`` (each
    ``(D, lanes)``) of the coefficients ``c`` (each ``(lanes,)``). Pure JAX (one program; the
    loop runs while any lane has time left)."""
    dtype = jnp.asarray(y0).dtype
    y0 = jnp.asarray(y0)
    k, lanes = y0.shape
    cap = config.max_steps if max_steps is None else max_steps
    eps = float(jnp.finfo(dtype).eps)
    rtol, atol = max(config.rtol, 8 * eps), config.abs_tol
    t_end = jnp.asarray(t_end, dtype)
    D = 0 if dy0 is None else int(dy0.shape[0])
    dcs = {name: (jnp.zeros((D, lanes), dtype) if dc is None or name not in dc
                  else jnp.broadcast_to(jnp.asarray(dc[name], dtype), (D, lanes)))
           for name in c}
    expo = -1.0 / tableau.order

    def step(cc, t, y, h):
        def field(tt, yy):
            return list(model.vector_field(tt, tuple(yy), cc))
        y1, err = rosenbrock_step(field, t, [y[i] for i in range(k)], h, tableau)
        return jnp.stack(y1), jnp.stack(err)

    # first step 0.01 / (relative rate of change at the start), per lane
    f0 = jnp.stack(model.vector_field(jnp.zeros((lanes,), dtype), tuple(y0), c))
    rate = jnp.sum(jnp.abs(f0), axis=0) / jnp.maximum(jnp.max(jnp.abs(y0), axis=0), 1e-300)
    dt0 = jnp.where(rate > 0, 0.01 / jnp.where(rate > 0, rate, 1.0), t_end)
    dt0 = jnp.clip(dt0, 1e-6 * t_end, t_end)

    def cond(carry):
        return jnp.any(carry[-1])

    def body(carry):
        t, dt, y, dy, steps, status, live = carry
        last = t + dt >= t_end * (1 - 4 * eps)
        h = jnp.where(live, jnp.where(last, t_end - t, dt), 1.0)
        if D:
            (y1, err), lin = jax.linearize(lambda yy, cc: step(cc, t, yy, h), y, c)
            dy1 = jax.vmap(lambda s, d: lin(s, d)[0])(dy, dcs)
        else:
            y1, err = step(c, t, y, h)
            dy1 = dy
        r = err / (atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1)))
        e = jnp.sqrt(jnp.sum(r * r, axis=0) / k)
        finite = jnp.all(jnp.isfinite(y1), axis=0) & jnp.isfinite(e)
        accept = live & (e <= 1.0) & finite
        factor = jnp.where(finite, jnp.clip(0.9 * jnp.exp(expo * jnp.log(jnp.maximum(e, 1e-10))),
                                            0.2, 6.0), 0.2)
        t = jnp.where(accept, jnp.where(last, t_end, t + h), t)
        y = jnp.where(accept, y1, y)
        if D:
            dy = jnp.where(accept, dy1, dy)
        dt_new = jnp.where(live, h * factor, dt)
        steps = steps + live.astype(steps.dtype)
        status = jnp.where(live & (steps >= cap), MAX_STEPS, status)
        status = jnp.where(live & (dt_new < 1e-14 * jnp.maximum(t_end, 1.0)), NON_FINITE, status)
        live = (t < t_end) & (status == SUCCESS)
        return t, dt_new, y, dy, steps, status, live

    zeros = jnp.zeros((lanes,), jnp.int32)
    dy_init = (jnp.zeros((0, k, lanes), dtype) if dy0 is None
               else jnp.broadcast_to(jnp.asarray(dy0, dtype), (D, k, lanes)))
    carry = (jnp.zeros((lanes,), dtype), dt0, y0, dy_init, zeros, zeros + SUCCESS,
             jnp.ones((lanes,), bool))
    _, _, y, dy, steps, status, _ = jax.lax.while_loop(cond, body, carry)
    return Flow(y, dy, status, steps)


__all__ = ["RODAS4", "Flow", "RosenbrockTableau", "flow", "lu_factor", "lu_solve",
           "rosenbrock_step"]
