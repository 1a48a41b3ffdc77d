"""Tsitouras' 5(4) Runge-Kutta pair, with the coefficients read from ``diffrax.Tsit5``.

The engine steps the same method as the reference solve (:mod:`jaxsim.numerics.reference`),
unrolled with Python floats so that zero entries drop out of the traced step.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax


class Tableau(NamedTuple):
    """An explicit Runge-Kutta pair with the FSAL property (the last stage is at the new state).

    ``a[s - 1]`` are the weights of stages ``0..s-1`` in stage ``s``'s input state, ``c[s]`` its
    time fraction (``c[0] = 0``), ``b_err`` the weights of the error estimate."""

    a: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    b_err: tuple[float, ...]

    @property
    def n_stages(self) -> int:
        return len(self.c)


def _from_diffrax(method) -> Tableau:
    tab = method.tableau
    a = tuple(tuple(float(x) for x in row) for row in tab.a_lower)
    c = (0.0,) + tuple(float(x) for x in tab.c)
    b_sol = tuple(float(x) for x in tab.b_sol)
    b_err = tuple(float(x) for x in tab.b_error)
    # the step takes its new state from the last stage's input (FSAL), which is exact only if
    # the last row of a is the solution's weights
    assert a[-1] == b_sol[:-1] and b_sol[-1] == 0.0, "the tableau is not FSAL"
    return Tableau(a=a, c=c, b_err=b_err)


#: the engine's method (what DESIGN §2.1 and docs/performance.md call Tsit5)
TSIT5 = _from_diffrax(diffrax.Tsit5)

#: :math:`\sum_k |b^{err}_k|`: the error estimate's rounding noise is about eps h |f| times this
ERR_ABS_SUM = sum(abs(x) for x in TSIT5.b_err)
