r"""Forward model of a measurement: a model decay as a TCSPC histogram (or sampled curve).

**The decay on a node grid.** For one decay with physical parameters :math:`\theta` and
excitation density :math:`n_0` the model is solved in scaled units (:math:`n_\mathrm{ref} =
n_0`, :math:`\tau = t / t_\mathrm{ref}`) from the pulse on, with the normalised PL
:math:`\hat p = \mathrm{PL}/\mathrm{PL}(0)` and its integral :math:`F(\tau) = \int_0^\tau \hat
p` as extra state, by an adaptive Tsitouras 5(4) loop of its own (:func:`solve_nodes`: pure
JAX, so forward-mode autodiff goes through it; no host callbacks, so the persistent
compilation cache can store the programs built on it). Steps are chosen by the error control
(not by the data), and the states are written on a uniform node grid :math:`\tau_j = j h`,
:math:`h = w / (\text{oversample}\;t_\mathrm{ref})`, by quintic Hermite interpolation inside
each step (:math:`y, y', y''` at both ends; :math:`O(\Delta t^6)`). At every node we then
have :math:`F_j`, :math:`\hat p_j` and :math:`\hat p'_j`, which define a piecewise quintic
:math:`F(\tau)` (and cubic :math:`\hat p(\tau)`) between nodes; :math:`F = \hat p = 0` before
the pulse.

**Bins, response, shift.** Bin :math:`i` starts at :math:`t_i` and is :math:`w` wide; the
pulse arrives at :math:`s` (any real time: sub-bin positions are continuous and
differentiable); :math:`x_i = (t_i - s)/t_\mathrm{ref}`. With a Gaussian instrument response
:math:`g` of standard deviation :math:`\sigma` (``Layout.irf_sigma``) the expected counts are
the exact bin integral of the response-convolved decay:

.. math::

    \mu_i = \frac{a}{w}\int_{t_i}^{t_i+w} (\hat p * g)(t - s)\,dt + \beta
          = \frac{a}{w}\Big[E(x_i + w) - E(x_i)\Big] + \beta, \qquad
    E(x) = \int_0^\infty F(\tau)\, g(x - \tau)\, d\tau,

evaluated interval by interval of the node grid: exactly, through the truncated moments of
the normal distribution, when :math:`\sigma < h` (:func:`_moment_weights`), and by 8-point
Gauss–Legendre quadrature of the quintic times the Gaussian when :math:`\sigma \ge h`, where
the Gaussian varies slowly over one interval (:func:`_quadrature_weights`; relative error
below 1e-12). Without a response :math:`E = F`. A *measured* response is used as given: its
values :math:`k_l` (lag :math:`o + l` bins, sum 1) weight whole-bin shifts of the binned decay,
:math:`\mu_i = a \sum_l k_l b_{i-o-l} + \beta` with :math:`b_i = [F(x_i + w) - F(x_i)]/w`.
For ``"points"`` data (each value samples the decay at :math:`t_i`) :math:`\mu_i = a\,(\hat p
* g)(x_i) + \beta` (:math:`\hat p(x_i)` without a response).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics.config import MAX_STEPS, NON_FINITE, SUCCESS, SolverConfig
from jaxsim.numerics.engine.tableau import TSIT5
from jaxsim.physics.model import Model

#: nodes written per step at most (a step is cut short so that it covers no more)
WINDOW = 16


#: node counts are rounded up to a multiple of this (one compiled program for similar data)
NODE_QUANTUM = 64


#: Gaussian half-width (in standard deviations) beyond which the response is taken as zero
#: (the mass outside 8 sigma is 1.2e-15)
GAUSS_WIDTH = 8.0


@dataclass(frozen=True)
class Layout:
    """Static geometry of a measurement (hashable: part of the compile key).

    ``n_bins`` bins of width ``bin_width`` (s); ``irf_len``/``irf_offset`` the length and lag
    of a measured (discrete) response; ``irf_sigma`` (s) the standard deviation of a Gaussian
    response (0: none); ``n_nodes`` solve nodes spaced ``bin_width / oversample`` from the
    pulse, enough to cover the last bin (and the response's reach) for the earliest allowed
    shift.
    """

    n_bins: int
    bin_width: float
    sampling: str = "bins"
    irf_len: int = 1
    irf_offset: int = 0
    n_nodes: int = 0
    oversample: int = 1
    t_ref: float = 1e-9
    irf_sigma: float = 0.0

    @property
    def ext_lo(self) -> int:
        """First bin index the discrete convolution needs (may be negative)."""
        return -(self.irf_offset + self.irf_len - 1)

    @property
    def ext_len(self) -> int:
        return self.n_bins + self.irf_len - 1

    @property
    def h(self) -> float:
        """Node spacing in scaled time."""
        return self.bin_width / self.oversample / self.t_ref

    @property
    def gauss_reach(self) -> int:
        """Node intervals on either side that a Gaussian response reaches."""
        if self.irf_sigma <= 0:
            return 0
        return int(math.ceil(GAUSS_WIDTH * self.irf_sigma / self.t_ref / self.h)) + 1


def make_layout(n_bins: int, bin_width: float, t_first: float, *, sampling: str = "bins",
                irf_len: int = 1, irf_offset: int = 0, shift_min: float = 0.0,
                oversample: int = 1, t_ref: float = 1e-9, irf_sigma: float = 0.0) -> Layout:
    """The :class:`Layout` whose node grid covers every bin (and the response's reach) for
    any shift >= ``shift_min`` (s), given that the first bin starts at ``t_first`` (s)."""
    lay = Layout(int(n_bins), float(bin_width), sampling, int(irf_len), int(irf_offset), 0,
                 int(oversample), float(t_ref), float(irf_sigma))
    last_end = t_first + (lay.ext_lo + lay.ext_len) * bin_width  # end of the last needed bin
    span = max(last_end - shift_min, bin_width) + GAUSS_WIDTH * lay.irf_sigma
    h = bin_width / oversample
    n_nodes = int(math.ceil(span / h)) + 3 + lay.gauss_reach
    # rounded up, so that data whose pulse sits a few bins elsewhere share the compiled program
    n_nodes = NODE_QUANTUM * -(-n_nodes // NODE_QUANTUM)
    return Layout(lay.n_bins, lay.bin_width, sampling, lay.irf_len, lay.irf_offset, n_nodes,
                  lay.oversample, lay.t_ref, lay.irf_sigma)


# -- the node solver ----------------------------------------------------------------------------

# the engine's Tsit5 (FSAL: the solution's weights are the last row of a, then 0)
_A, _C, _B_ERR = TSIT5.a, TSIT5.c, TSIT5.b_err
_B_SOL = TSIT5.a[-1] + (0.0,)


def _tsit5_dense() -> np.ndarray:
    """M (7, 4): Tsit5's continuous extension (diffrax's ``_Tsit5Interpolation``)
    y(t0 + theta dt) = y0 + dt sum_i b_i(theta) k_i with b_i(theta) = sum_p M[i, p-1]
    theta^p, expanded from the factored quartics there."""
    P = np.polynomial.polynomial
    t = [0.0, 1.0]
    q = lambda *roots_or_quads: None  # noqa: E731  (documentation only)
    del q
    b = [
        -1.0530884977290216 * P.polymul(P.polymul(t, [-1.3299890189751412, 1.0]),
                                         [0.7139816917074209, -1.4364028541716351, 1.0]),
        0.1017 * P.polymul([0.0, 0.0, 1.0], [1.2949852507374631, -2.1966568338249754, 1.0]),
        2.490627285651252793 * P.polymul([0.0, 0.0, 1.0],
                                         [1.57803468208092486, -2.38535645472061657, 1.0]),
        -16.54810288924490272 * P.polymul(P.polymul([-1.21712927295533244, 1.0],
                                                    [-0.61620406037800089, 1.0]), [0.0, 0.0, 1.0]),
        47.37952196281928122 * P.polymul(P.polymul([-1.203071208372362603, 1.0],
                                                   [-0.658047292653547382, 1.0]), [0.0, 0.0, 1.0]),
        -34.87065786149660974 * P.polymul(P.polymul([-1.2, 1.0], [-0.666666666666666667, 1.0]),
                                          [0.0, 0.0, 1.0]),
        2.5 * P.polymul(P.polymul([-1.0, 1.0], [-0.6, 1.0]), [0.0, 0.0, 1.0]),
    ]
    M = np.zeros((7, 4))
    for i, coef in enumerate(b):
        coef = np.pad(coef, (0, 5 - len(coef)))
        M[i] = coef[1:5]
    # consistency with the step itself: b_i(1) are the 5th-order weights
    assert np.allclose(M.sum(axis=1), np.asarray(_B_SOL), atol=1e-12), "Tsit5 interpolant"
    return M


_M = _tsit5_dense()


def _stack_tangents(c: dict, dc: dict | None, P: int, lanes: int, dtype) -> dict:
    """Coefficient tangents as (P, lanes) arrays (zeros where ``dc`` has none)."""
    out = {}
    for k, v in c.items():
        t = None if dc is None else dc.get(k)
        if t is None:
            out[k] = jnp.zeros((P, lanes), dtype)
            continue
        t = jnp.asarray(t, dtype)
        t = jnp.reshape(t, (P, 1)) if t.ndim == 1 else t  # a coefficient shared by all lanes
        out[k] = jnp.broadcast_to(t, (P, lanes))
    return out


def solve_nodes(model: Model, c: dict, n_nodes: int, h: float, config: SolverConfig,
                dc: dict | None = None, window: int = WINDOW, max_steps=None, y0=None,
                dy0=None, states: bool = False):
    r"""Solve scaled decays from the pulse, with forward sensitivities, on the nodes
    :math:`\tau_j = j h`.

    Batch-native: every coefficient in ``c`` is a scalar or an array of shape ``(lanes,)``;
    each lane is one decay with its own time and step, the loop runs while any lane has nodes
    left and finished lanes idle. ``dc`` holds tangents of the coefficients, each ``(P,
    lanes)`` (P directions, e.g. one per fitted parameter); the loop integrates the
    variational equations alongside the states (the same Runge-Kutta steps applied to the
    system augmented by :math:`\dot s = J s + \partial_c f\, dc`): the derivatives of the
    discrete solution on its mesh, without differentiating through the loop.

    The state of the loop is one array (variables x [value, P tangents] x lanes), so that
    each stage is a few fused kernels (XLA:CPU runs a kernel per fused output; tuples of
    separate arrays, and autodiff through the loop, made several times more). Dense output at
    the nodes from Tsit5's own quartic interpolant.

    Returns ``(F, p, dp, status, steps)``: ``F``, ``p``, ``dp`` of shape ``(1 + P, lanes,
    n_nodes)`` (row 0 the values, then the tangents) hold :math:`F_j = \int_0^{\tau_j}\hat
    p`, :math:`\hat p_j = \mathrm{PL}/\mathrm{PL}(0)` and :math:`d\hat p/d\tau`; ``status``
    (lanes,) is 0 for success, 1 max_steps reached, 3 non-finite; ``steps`` (lanes,).
    Error control as the core's solves: the I-controller on the RMS of the states' local
    error over ``config.rtol``/``config.abs_tol`` (scaled units; :mod:`jaxsim.numerics.config`), the PL integral excluded.
    ``max_steps`` (may be traced: a run-time argument) overrides ``config.max_steps``.

    ``y0`` (n_states, lanes) starts the decays from another state than the pulse from the dark
    (the periodic steady state of a pulse train), with tangents ``dy0`` (P, n_states, lanes)
    (default: those of ``model.initial_state``); :math:`\hat p` stays normalised by the PL
    just after a single pulse from the dark. ``states=True`` also returns the states on the
    nodes, (1 + P, n_states, lanes, n_nodes), as a sixth result.
    """
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    cap = config.max_steps if max_steps is None else max_steps
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    shapes = [jnp.shape(v) for v in c.values()]
    if dc is not None:
        shapes += [jnp.shape(v)[1:] for v in dc.values()]
    lanes = int(np.broadcast_shapes(*shapes, (1,))[0])
    c = {k: jnp.broadcast_to(v, (lanes,)) for k, v in c.items()}
    P = 0 if not dc else int(jnp.shape(next(iter(dc.values())))[0])
    dcs = _stack_tangents(c, dc, P, lanes, dtype) if P else None
    y_init = tuple(jnp.broadcast_to(jnp.asarray(v, dtype), (lanes,))
                   for v in (model.initial_state(c) if y0 is None else y0))
    ns = len(y_init)
    nv = ns + 1
    R = 1 + P
    rtol, atol = config.rtol, config.abs_tol  # the one meaning (jaxsim.numerics.config)
    t_end = (n_nodes - 1) * h

    def f_plain(t, y, cc):
        st = y[:ns]
        pl0 = model.pl(tuple(model.initial_state(cc)), cc)
        return tuple(model.vector_field(t, st, cc)) + (model.pl(st, cc) / pl0,)

    def aug(t, Y):
        """Field of the augmented system at Y (nv, R, lanes)."""
        y = tuple(Y[j, 0] for j in range(nv))
        f0 = jnp.stack(f_plain(t, y, c))[:, None, :]
        if not P:
            return f0

        def tang(sv, dcc):
            return jnp.stack(jax.jvp(lambda yy, cc: f_plain(t, yy, cc), (y, c),
                                     (tuple(sv[j] for j in range(nv)), dcc))[1])

        ft = jax.vmap(tang, in_axes=(1, 0), out_axes=1)(Y[:, 1:], dcs)
        return jnp.concatenate([f0, ft], axis=1)

    y0 = jnp.stack(y_init + (jnp.zeros((lanes,), dtype),))[:, None, :]
    if P and dy0 is None:
        s0 = jax.vmap(lambda dcc: jnp.stack(
            jax.jvp(lambda cc: tuple(model.initial_state(cc)), (c,), (dcc,))[1]
            + (jnp.zeros((lanes,), dtype),)), out_axes=1)(dcs)
        Y0 = jnp.concatenate([y0, s0], axis=1)
    elif P:
        s0 = jnp.broadcast_to(jnp.asarray(dy0, dtype), (P, ns, lanes))
        s0 = jnp.concatenate([jnp.transpose(s0, (1, 0, 2)), jnp.zeros((1, P, lanes), dtype)])
        Y0 = jnp.concatenate([y0, s0], axis=1)
    else:
        Y0 = y0
    t0 = jnp.zeros((lanes,), dtype)
    F0 = aug(t0, Y0)
    # first step 0.01 / (relative rate of change at t = 0), per lane
    rate = jnp.sum(jnp.abs(F0[:ns, 0]), axis=0) / jnp.maximum(
        jnp.max(jnp.abs(Y0[:ns, 0]), axis=0), 1e-300)
    dt0 = jnp.where(rate > 0, 0.01 / jnp.where(rate > 0, rate, 1.0), t_end)
    dt0 = jnp.clip(dt0, 1e-6 * t_end, t_end)
    out = jnp.zeros((lanes, n_nodes, nv * R), dtype).at[:, 0].set(
        jnp.reshape(jnp.transpose(Y0, (2, 0, 1)), (lanes, nv * R)))
    err_abs = sum(abs(x) for x in _B_ERR)
    eps = float(jnp.finfo(dtype).eps)
    lane = jnp.arange(lanes)[:, None]
    offs = jnp.arange(window)[None, :]

    def cond(carry):
        return jnp.any(carry[-1])

    def body(carry):
        t, dt, Y, FY, nxt, out, steps, status, live = carry
        t_cap = (nxt + window - 1).astype(dtype) * h
        dt_eff = jnp.minimum(dt, jnp.maximum(t_cap - t, 1e-3 * h))
        ks = [FY]
        for s in range(1, 7):
            Ys = Y + dt_eff * _lin1(_A[s - 1], ks)
            ks.append(aug(t + _C[s] * dt_eff, Ys))
        Y1, F1 = Ys, ks[-1]  # FSAL: the last stage is at the new point
        e = jnp.abs(dt_eff * _lin1(_B_ERR, [k[:ns, 0] for k in ks]))
        e = jnp.maximum(e - 4 * eps * dt_eff * jnp.abs(FY[:ns, 0]) * err_abs, 0.0)
        r = e / (atol + rtol * jnp.maximum(jnp.abs(Y[:ns, 0]), jnp.abs(Y1[:ns, 0])))
        err = jnp.sqrt(jnp.sum(r * r, axis=0) / ns)
        finite = jnp.all(jnp.isfinite(Y1[:, 0]), axis=0)
        accept = live & (err <= 1.0) & finite
        t1 = t + dt_eff
        idx = nxt[:, None] + offs  # (lanes, window): nodes nxt .. nxt + window - 1
        tn = idx.astype(dtype) * h
        inside = accept[:, None] & (tn <= (t1 * (1 + 1e-12))[:, None]) & (idx < n_nodes)
        theta = jnp.clip((tn - t[:, None]) / dt_eff[:, None], 0.0, 1.0)  # (lanes, W)
        # y(theta) = y0 + dt sum_i b_i(theta) k_i, b_i quartic (elementwise: no dot, which
        # XLA:CPU would hand to a library kernel that is slower to compile than to run)
        acc = 0.0
        for i in range(7):
            m = _M[i]
            b_i = theta * (m[0] + theta * (m[1] + theta * (m[2] + theta * m[3])))
            acc = acc + ks[i][..., None] * b_i[None, None]
        vals = Y[..., None] + dt_eff[None, None, :, None] * acc  # (nv, R, lanes, W)
        upd = jnp.reshape(jnp.transpose(vals, (2, 3, 0, 1)), (lanes, window, nv * R))
        # distinct out-of-range slots for the nodes not written: unique, sorted indices
        where = jnp.where(inside, idx, n_nodes + offs)
        out = out.at[lane, where].set(upd, mode="drop", unique_indices=True,
                                      indices_are_sorted=True)
        nxt = nxt + jnp.sum(inside, axis=1).astype(nxt.dtype)
        factor = jnp.where(finite, jnp.clip(0.9 * jnp.exp(-0.2 * jnp.log(jnp.maximum(err, 1e-10))),
                                            0.2, 10.0), 0.2)
        dt_new = jnp.where(live, dt_eff * factor, dt)
        t = jnp.where(accept, t1, t)
        Y = jnp.where(accept, Y1, Y)
        FY = jnp.where(accept, F1, FY)
        steps = steps + live.astype(steps.dtype)
        status = jnp.where(live & (steps >= cap), MAX_STEPS, status)
        status = jnp.where(live & (dt_new < 1e-14 * max(t_end, 1.0)), NON_FINITE, status)
        live = (nxt < n_nodes) & (status == SUCCESS)
        return t, dt_new, Y, FY, nxt, out, steps, status, live

    ones = jnp.ones((lanes,), jnp.int32)
    carry = (t0, dt0, Y0, F0, ones, out, 0 * ones, SUCCESS * ones, ones > 0)
    carry = jax.lax.while_loop(cond, body, carry)
    out, steps, status = carry[5], carry[6], carry[7]
    nodes = jnp.reshape(out, (lanes, n_nodes, nv, R))
    ys = tuple(nodes[:, :, j, 0] for j in range(ns))
    F = jnp.transpose(nodes[:, :, ns, :], (2, 0, 1))  # (R, lanes, n)
    cc = {k: v[:, None] for k, v in c.items()}

    def p_dp(yy, ccc):
        pl0 = model.pl(tuple(model.initial_state(ccc)), ccc)
        fl = model.vector_field(0.0, yy, ccc)
        pv, dpv = jax.jvp(lambda *q: model.pl(q, ccc), tuple(yy), tuple(fl))
        return pv / pl0, dpv / pl0

    p, dp = p_dp(ys, cc)
    if P:
        dcn = {k: v[:, :, None] for k, v in dcs.items()}
        pt, dpt = jax.vmap(lambda sv, dcc: jax.jvp(p_dp, (ys, cc), (sv, dcc))[1])(
            tuple(jnp.transpose(nodes[:, :, j, 1:], (2, 0, 1)) for j in range(ns)), dcn)
        p = jnp.concatenate([p[None], pt], axis=0)
        dp = jnp.concatenate([dp[None], dpt], axis=0)
    else:
        p, dp = p[None], dp[None]
    if states:
        return F, p, dp, status, steps, jnp.transpose(nodes[:, :, :ns, :], (3, 2, 0, 1))
    return F, p, dp, status, steps


def _lin1(coefs, ks):
    """sum_i coefs[i] * ks[i], skipping zero coefficients (the tableau is sparse)."""
    acc = None
    for w, k in zip(coefs, ks):
        if w != 0.0:
            term = w * k
            acc = term if acc is None else acc + term
    return acc


def node_curve(model: Model, values: dict, layout: Layout, config: SolverConfig):
    """``(F, p, dp, status)`` on the layout's node grid for a batch of decays: ``values`` are
    physical parameter values, each a scalar or an array of shape ``(lanes,)``; the results
    have shape ``(lanes, n_nodes)`` and ``(lanes,)``."""
    c = model.coefficients(values, values["n0"], layout.t_ref)
    F, p, dp, status, _ = solve_nodes(model, c, layout.n_nodes, layout.h, config)
    return F[0], p[0], dp[0], status


# -- exact measurement model --------------------------------------------------------------------

def _quintic(theta, y0, y1, d0, d1, s0, s1):
    """Quintic Hermite on [0, 1]: values y, first derivatives d, second derivatives s (all in
    units of the interval)."""
    t2 = theta * theta
    t3 = t2 * theta
    t4 = t3 * theta
    t5 = t4 * theta
    h0 = 1 - 10 * t3 + 15 * t4 - 6 * t5
    h1 = theta - 6 * t3 + 8 * t4 - 3 * t5
    h2 = 0.5 * (t2 - 3 * t3 + 3 * t4 - t5)
    h3 = 10 * t3 - 15 * t4 + 6 * t5
    h4 = -4 * t3 + 7 * t4 - 3 * t5
    h5 = 0.5 * (t3 - 2 * t4 + t5)
    return h0 * y0 + h1 * d0 + h2 * s0 + h3 * y1 + h4 * d1 + h5 * s1


def _hermite_at(x, h, v, d1, d2=None):
    """Piecewise Hermite interpolant of node values ``v`` (first derivatives ``d1``, second
    ``d2`` or None for cubic) at scaled times ``x`` (0 before the first node)."""
    n = v.shape[0]
    s = jnp.clip(x / h, 0.0, n - 1.000001)
    j = jnp.floor(s).astype(jnp.int32)
    u = s - j
    if d2 is None:
        u2, u3 = u * u, u * u * u
        val = ((2 * u3 - 3 * u2 + 1) * v[j] + (u3 - 2 * u2 + u) * h * d1[j]
               + (-2 * u3 + 3 * u2) * v[j + 1] + (u3 - u2) * h * d1[j + 1])
    else:
        val = _quintic(u, v[j], v[j + 1], h * d1[j], h * d1[j + 1], h * h * d2[j],
                       h * h * d2[j + 1])
    return jnp.where(x >= 0, val, 0.0)


def _basis_poly(order: int) -> np.ndarray:
    """Monomial coefficients (rows: basis function, columns: u^k) of the Hermite basis on
    [0, 1]: cubic (v0, d0, v1, d1) or quintic (v0, d0, s0, v1, d1, s1)."""
    if order == 3:
        return np.array([[1, 0, -3, 2], [0, 1, -2, 1], [0, 0, 3, -2], [0, 0, -1, 1]], float)
    return np.array([[1, 0, 0, -10, 15, -6], [0, 1, 0, -6, 8, -3], [0, 0, 0.5, -1.5, 1.5, -0.5],
                     [0, 0, 0, 10, -15, 6], [0, 0, 0, -4, 7, -3], [0, 0, 0, 0.5, -1, 0.5]])


_GL_U, _GL_W = np.polynomial.legendre.leggauss(8)
_GL_U = 0.5 * (_GL_U + 1.0)
_GL_W = 0.5 * _GL_W


def _phi(z):
    return jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z):
    return 0.5 * jax.scipy.special.erfc(-z / math.sqrt(2.0))


def _moment_weights(r, f, kappa, order):
    r"""``W[b, r]`` = :math:`\int_0^1 B_b(u)\,\varphi_\sigma((r + f - u) h)\,h\,du` exactly,
    through truncated normal moments (:math:`\kappa = \sigma / h < 1`)."""
    alpha = r + f  # (R,)
    za = -alpha / kappa
    zb = (1.0 - alpha) / kappa
    pa, pb = _phi(za), _phi(zb)
    M = [_Phi(zb) - _Phi(za), pa - pb]
    for m in range(2, order + 1):
        # z^(m-1) phi(z) at +-inf is 0; clip z before the power to keep it finite
        za_c, zb_c = jnp.clip(za, -40, 40), jnp.clip(zb, -40, 40)
        M.append((m - 1) * M[m - 2] + za_c ** (m - 1) * pa - zb_c ** (m - 1) * pb)
    # I_k = int (alpha + kappa z)^k phi(z) dz = sum_m C(k,m) alpha^(k-m) kappa^m M_m
    I = []
    for k in range(order + 1):
        acc = 0.0
        for m in range(k + 1):
            acc = acc + math.comb(k, m) * alpha ** (k - m) * kappa ** m * M[m]
        I.append(acc)
    I = jnp.stack(I)  # (order+1, R)
    return jnp.asarray(_basis_poly(order)) @ I


def _quadrature_weights(r, f, kappa, order):
    """As :func:`_moment_weights` by Gauss-Legendre quadrature (kappa >= 1)."""
    B = _basis_poly(order) @ (_GL_U[None, :] ** np.arange(order + 1)[:, None])  # (nb, q)
    z = (r[:, None] + f - _GL_U[None, :]) / kappa  # (R, q)
    g = _phi(z) / kappa
    return (jnp.asarray(B * _GL_W[None, :]) @ g.T)  # (nb, R)


def gauss_smooth(values, order: int, d, sigma_h: float, n_out: int, stride: int):
    r""":math:`E_e = \int_0^\infty H(\tau)\,g(x_e - \tau)\,d\tau` at :math:`x_e = d + e\,
    \text{stride}\,h`, e = 0 .. n_out-1, for the piecewise Hermite :math:`H` of node data
    ``values`` (``(v, d1)`` cubic or ``(v, d1, d2)`` quintic, derivatives per unit scaled
    time) and a Gaussian :math:`g` of standard deviation ``sigma_h`` node spacings.

    ``d`` is in node spacings (traced; its integer part picks the offset, its fraction the
    weights, so the result is continuous and differentiable in ``d``).
    """
    kappa = float(sigma_h)
    reach = int(math.ceil(GAUSS_WIDTH * kappa)) + 1
    n = values[0].shape[0]
    # per-interval Hermite data (left node j, right node j + 1), in units of the interval
    if order == 3:
        v, d1 = values
        data = [v[:-1], d1[:-1], v[1:], d1[1:]]
    else:
        v, d1, d2 = values
        data = [v[:-1], d1[:-1], d2[:-1], v[1:], d1[1:], d2[1:]]
    nd = jnp.floor(d)
    f = d - nd
    nd = nd.astype(jnp.int32)
    r = jnp.arange(-reach, reach + 1, dtype=d.dtype)
    W = (_moment_weights(r, f, kappa, order) if kappa < 1.0
         else _quadrature_weights(r, f, kappa, order))  # (nb, 2R+1)
    C = jnp.stack(data)  # (nb, n-1), interval j
    # E_e = sum_r sum_b W[b, r] C[b, e*stride + nd - r]: a gather of the intervals each edge
    # sees, then one contraction (XLA:CPU's convolution of these shapes was ~10x slower)
    j = (jnp.arange(n_out) * stride + nd)[:, None] - jnp.arange(-reach, reach + 1)[None, :]
    inside = (j >= 0) & (j < n - 1)  # intervals before the pulse (or past the grid) hold nothing
    Cg = jnp.where(inside[None], C[:, jnp.clip(j, 0, n - 2)], 0.0)  # (nb, n_out, 2R+1)
    return jnp.einsum("bor,br->o", Cg, W)


def _gauss_data(F, p, dp, h, order):
    """Node data scaled to one interval: (F, h p, h^2 dp) or (p, h dp)."""
    if order == 5:
        return (F, h * p, h * h * dp)
    return (p, h * dp)


def unit_curve(F, p, dp, t_first, shift, layout: Layout, config: SolverConfig | None = None):
    r"""The unit-amplitude, zero-background expectation of every data bin (``(n_bins,)``):
    :math:`(\mu_i - \beta)/a` for a Gaussian or no response; for a measured response the
    binned decay on the extended range (before :func:`convolve_irf`).

    ``t_first``: start of data bin 0 (s); ``shift``: pulse time (s).
    """
    h = layout.h
    w = layout.bin_width / layout.t_ref
    x0 = (t_first - shift) / layout.t_ref
    if layout.irf_sigma > 0:
        sig_h = layout.irf_sigma / layout.t_ref / h
        if layout.sampling == "points":
            return gauss_smooth(_gauss_data(F, p, dp, h, 3), 3, x0 / h, sig_h, layout.n_bins,
                                layout.oversample)
        E = gauss_smooth(_gauss_data(F, p, dp, h, 5), 5, x0 / h, sig_h, layout.n_bins + 1,
                         layout.oversample)
        return (E[1:] - E[:-1]) / w
    if layout.sampling == "points":
        idx = jnp.arange(layout.ext_len) + layout.ext_lo
        return _hermite_at(x0 + idx * w, h, p, dp)
    idx = jnp.arange(layout.ext_len + 1) + layout.ext_lo
    Fe = _hermite_at(x0 + idx * w, h, F, p, dp)
    return (Fe[1:] - Fe[:-1]) / w


def unit_times(t_first, shift, layout: Layout):
    """Scaled time after the pulse of each value :func:`unit_curve` returns: the bin's centre
    (bins) or the sample's time (points). A linear function of time convolved with a
    symmetric (Gaussian) response and averaged over a bin takes its value there, so a linear
    background in time adds ``a + b * unit_times(...)`` to the unit curve exactly."""
    x0 = (t_first - shift) / layout.t_ref
    w = layout.bin_width / layout.t_ref
    if layout.irf_sigma > 0:
        idx = jnp.arange(layout.n_bins)
    else:
        idx = jnp.arange(layout.ext_len) + layout.ext_lo
    return x0 + (idx + (0.5 if layout.sampling == "bins" else 0.0)) * w


def convolve_irf(b_ext, irf, layout: Layout):
    """:math:`\\sum_l k_l b_{i-o-l}` for data bins i = 0..T-1 (``b_ext`` from
    :func:`unit_curve`; ``irf`` None, or a Gaussian response, means nothing to do)."""
    if irf is None or layout.irf_len == 1 or layout.irf_sigma > 0:
        return b_ext * (1.0 if irf is None or layout.irf_sigma > 0 else irf[0])
    if layout.irf_len > 64:
        return jax.scipy.signal.fftconvolve(b_ext, irf, mode="valid")
    return jnp.convolve(b_ext, irf, mode="valid")


def predict(model: Model, values: dict, amplitude, background, shift, t_first, irf,
            layout: Layout, config: SolverConfig):
    r"""Expected value :math:`\mu_i` of each data bin, and the solve status, for a batch of
    decays: ``values`` (physical, each a scalar or ``(lanes,)``), ``amplitude``,
    ``background``, ``shift`` (s) scalars or ``(lanes,)``. Returns ``(lanes, n_bins)`` and
    ``(lanes,)`` (one lane for scalar inputs)."""
    F, p, dp, status = node_curve(model, values, layout, config)
    lanes = F.shape[0]
    shift = jnp.broadcast_to(jnp.asarray(shift, F.dtype), (lanes,))
    b = jax.vmap(lambda F_, p_, dp_, s_: convolve_irf(unit_curve(F_, p_, dp_, t_first, s_, layout),
                                                      irf, layout))(F, p, dp, shift)
    amp = jnp.reshape(jnp.broadcast_to(jnp.asarray(amplitude, F.dtype), (lanes,)), (lanes, 1))
    bg = jnp.reshape(jnp.broadcast_to(jnp.asarray(background, F.dtype), (lanes,)), (lanes, 1))
    return amp * b + bg, status


def simulate_counts(key, model, values_per_decay, amplitudes, backgrounds, shifts, t_first,
                    irf, layout, config=None):
    """Poisson draws of the forward model for K decays (synthetic data, benchmarks).

    ``values_per_decay``: dict of (K,) physical values. Returns (counts (K, T), mu (K, T)).
    """
    config = config or SolverConfig(rtol=1e-7)
    mu, _ = jax.jit(lambda v, a, b, s: predict(model, v, a, b, s, t_first, irf, layout, config))(
        values_per_decay, jnp.asarray(amplitudes, float), jnp.asarray(backgrounds, float),
        jnp.asarray(shifts, float))
    counts = jax.random.poisson(key, jnp.clip(mu, 0, None)).astype(jnp.float64)
    return np.asarray(counts), np.asarray(mu)
