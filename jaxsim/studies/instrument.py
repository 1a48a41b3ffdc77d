r"""Forward model of a measurement: a model decay as a TCSPC histogram (or sampled curve).

For one decay with physical parameters :math:`\theta` and excitation density :math:`n_0`, the
core's kernel gives the scaled PL :math:`p(\tau)` (``model.pl``, :math:`n_\mathrm{ref} = n_0`,
:math:`\tau = t / t_\mathrm{ref}`) on a uniform node grid :math:`\tau_j = j h`. We normalise
:math:`\hat p = p / p(0)` so the per-decay amplitude is a peak height. With
:math:`\hat p' = \nabla_y \hat p \cdot f(y)` from a JVP along the vector field, the cumulative
integral on the nodes is exact to :math:`O(h^4)` (cubic Hermite):

.. math::  F_{j+1} - F_j = \tfrac{h}{2}(\hat p_j + \hat p_{j+1}) + \tfrac{h^2}{12}(\hat p'_j - \hat p'_{j+1}),

and :math:`F(\tau)`, :math:`\hat p(\tau)` between nodes are cubic Hermite interpolants, so a
continuous time shift :math:`s` stays differentiable. Bin :math:`i` starting at :math:`t_i`
with width :math:`w`:

.. math::

    b_i = \frac{F((t_i + w - s)/t_\mathrm{ref}) - F((t_i - s)/t_\mathrm{ref})}{w / t_\mathrm{ref}}
    \quad(\text{``bins''}), \qquad b_i = \hat p((t_i - s)/t_\mathrm{ref})\quad(\text{``points''}),

with :math:`F = \hat p = 0` before the pulse. The instrument response :math:`k_l` (lag
:math:`o + l` bins, normalised to sum 1) is a discrete convolution, then

.. math::  \mu_i = a \sum_l k_l\, b_{i - o - l} + \beta,

amplitude :math:`a`, background :math:`\beta` (per bin) and shift :math:`s` per decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.reference import solve_scaled
from jaxsim.physics.model import Model


@dataclass(frozen=True)
class Layout:
    """Static geometry of a measurement (hashable: part of the compile key).

    ``n_bins`` bins of width ``bin_width`` (s); ``irf_len``/``irf_offset`` the response's
    length and lag of its first entry; ``n_nodes`` solve nodes spaced ``bin_width /
    oversample`` from the pulse, enough to cover the last bin for the earliest allowed shift.
    """

    n_bins: int
    bin_width: float
    sampling: str = "bins"
    irf_len: int = 1
    irf_offset: int = 0
    n_nodes: int = 0
    oversample: int = 1
    t_ref: float = 1e-9

    @property
    def ext_lo(self) -> int:
        """First bin index the convolution needs (may be negative)."""
        return -(self.irf_offset + self.irf_len - 1)

    @property
    def ext_len(self) -> int:
        return self.n_bins + self.irf_len - 1


def make_layout(n_bins: int, bin_width: float, t_first: float, *, sampling: str = "bins",
                irf_len: int = 1, irf_offset: int = 0, shift_min: float = 0.0,
                oversample: int = 1, t_ref: float = 1e-9) -> Layout:
    """The :class:`Layout` whose node grid covers bins up to the last needed by the IRF for
    any shift >= ``shift_min`` (s), given the first bin starts at ``t_first`` (s)."""
    lay = Layout(n_bins, float(bin_width), sampling, int(irf_len), int(irf_offset), 0,
                 int(oversample), float(t_ref))
    last_end = t_first + (lay.ext_lo + lay.ext_len) * bin_width  # end of the last needed bin
    span = max(last_end - shift_min, bin_width)
    h = bin_width / oversample
    n_nodes = int(math.ceil(span / h)) + 2
    return Layout(n_bins, float(bin_width), sampling, int(irf_len), int(irf_offset), n_nodes,
                  int(oversample), float(t_ref))


def node_curve(model: Model, values: dict, layout: Layout, config: SolverConfig,
               solver: str = "tsit5"):
    """Normalised PL :math:`\\hat p` and :math:`d\\hat p/d\\tau` on the node grid; and status.

    ``values``: physical parameter values of one decay (scalars, traced or not).
    """
    n_ref = values["n0"]
    c = model.coefficients(values, n_ref, layout.t_ref)
    h = layout.bin_width / layout.oversample / layout.t_ref
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    ts = jnp.arange(layout.n_nodes, dtype=dtype) * h
    sol = solve_scaled(model, c, ts, config, solver)

    def pl_dpl(y):
        f = model.vector_field(0.0, y, c)
        return jax.jvp(lambda yy: model.pl(yy, c), (y,), (tuple(f),))

    p, dp = jax.vmap(pl_dpl)(tuple(sol.ys))
    p_init = model.pl(tuple(model.initial_state(c)), c)
    return p / p_init, dp / p_init, sol.status


def _hermite(x, h, f, df):
    """Cubic Hermite interpolant of node values f, slopes df (per unit x) at x (clamped)."""
    n = f.shape[0]
    s = jnp.clip(x / h, 0.0, n - 1.000001)
    j = jnp.floor(s).astype(jnp.int32)
    u = s - j
    u2, u3 = u * u, u * u * u
    return ((2 * u3 - 3 * u2 + 1) * f[j] + (u3 - 2 * u2 + u) * h * df[j]
            + (-2 * u3 + 3 * u2) * f[j + 1] + (u3 - u2) * h * df[j + 1])


def binned_curve(p, dp, t_first, shift, layout: Layout):
    r"""The unit-amplitude decay :math:`b_i` on the extended bin range (before the IRF).

    ``t_first``: start of data bin 0 (s); ``shift``: pulse time (s).
    """
    h = layout.bin_width / layout.oversample / layout.t_ref
    w = layout.bin_width / layout.t_ref
    idx = jnp.arange(layout.ext_len) + layout.ext_lo
    x = (t_first - shift) / layout.t_ref + idx * w
    if layout.sampling == "points":
        return jnp.where(x >= 0, _hermite(x, h, p, dp), 0.0)
    steps = 0.5 * h * (p[:-1] + p[1:]) + h * h / 12.0 * (dp[:-1] - dp[1:])
    F = jnp.concatenate([jnp.zeros((1,), p.dtype), jnp.cumsum(steps)])
    Fa = jnp.where(x > 0, _hermite(x, h, F, p), 0.0)
    xb = x + w
    Fb = jnp.where(xb > 0, _hermite(xb, h, F, p), 0.0)
    return (Fb - Fa) / w


def convolve_irf(b_ext, irf, layout: Layout):
    """:math:`\\sum_l k_l b_{i-o-l}` for data bins i = 0..T-1 (``b_ext`` from
    :func:`binned_curve`; ``irf`` None means a delta response)."""
    if irf is None or layout.irf_len == 1:
        return b_ext * (1.0 if irf is None else irf[0])
    if layout.irf_len > 64:
        return jax.scipy.signal.fftconvolve(b_ext, irf, mode="valid")
    return jnp.convolve(b_ext, irf, mode="valid")


def predict(model: Model, values: dict, amplitude, background, shift, t_first, irf,
            layout: Layout, config: SolverConfig, solver: str = "tsit5"):
    r"""Expected value :math:`\mu_i` of each data bin of one decay, and the solve status."""
    p, dp, status = node_curve(model, values, layout, config, solver)
    b = binned_curve(p, dp, t_first, shift, layout)
    return amplitude * convolve_irf(b, irf, layout) + background, status


def simulate_counts(key, model, values_per_decay, amplitudes, backgrounds, shifts, t_first,
                    irf, layout, config=None):
    """Poisson draws of the forward model for K decays (synthetic data, tests, calibration).

    ``values_per_decay``: dict of (K,) physical values. Returns (counts (K, T), mu (K, T)).
    """
    config = config or SolverConfig()

    def one(v, a, bg, s):
        return predict(model, v, a, bg, s, t_first, irf, layout, config)[0]

    mu = jax.jit(jax.vmap(one))(values_per_decay, jnp.asarray(amplitudes, float),
                                jnp.asarray(backgrounds, float), jnp.asarray(shifts, float))
    counts = jax.random.poisson(key, jnp.clip(mu, 0, None)).astype(jnp.float64)
    return np.asarray(counts), np.asarray(mu)
