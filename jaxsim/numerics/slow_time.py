from __future__ import annotations

from typing import Mapping

import numpy as np

from jaxsim.physics.ions import rates


def exact_step(y, a, b, h):
    r"""Exact solution of :math:`\dot y = a - b y` (a, b constant, b > 0) after time h."""
    y_inf = a / b
    return y_inf + (y - y_inf) * np.exp(-b * h)


def integrate_prescribed(P_of_t, t_grid, ions: Mapping[str, float], x0=None, m0=None):
    r"""Slow states on ``t_grid`` (s) for a prescribed phonon power ``P_of_t(t)`` (decoupled mode).

    Second-order exponential integrator: on each interval the coefficients :math:`a, b` are
    the averages of their values at the two ends (a predictor gives the right end), then the
    linear ODE is stepped exactly (x first, then m with x at both ends). Exact for x when P is
    constant on each interval.
    """
    t_grid = np.asarray(t_grid, float)
    x = ions["n_ion0"] if x0 is None else float(x0)
    m = ions["m0"] if m0 is None else float(m0)
    xs, ms = [x], [m]
    for t0, t1 in zip(t_grid[:-1], t_grid[1:]):
        h = t1 - t0
        p0, p1 = P_of_t(t0), P_of_t(t1)
        ax0, bx0, _, _ = rates(p0, x, ions)
        ax1, bx1, _, _ = rates(p1, x, ions)
        x_new = exact_step(x, 0.5 * (ax0 + ax1), 0.5 * (bx0 + bx1), h)
        _, _, am0, bm0 = rates(p0, x, ions)
        _, _, am1, bm1 = rates(p1, x_new, ions)
        m_new = exact_step(m, 0.5 * (am0 + am1), 0.5 * (bm0 + bm1), h)
        x, m = float(x_new), float(m_new)
        xs.append(x)
        ms.append(m)
    return np.asarray(xs), np.asarray(ms)
