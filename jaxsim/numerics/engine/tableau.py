"""Tsitouras' 5(4) Runge-Kutta pair, with diffrax's coefficients (``diffrax.Tsit5``).

The engine steps the same method as the reference solve (:mod:`jaxsim.numerics.reference`),
unrolled with Python floats so that zero entries drop out of the traced step.
"""

from __future__ import annotations

from typing import NamedTuple


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


#: the engine's method (what DESIGN §2.1 and docs/performance.md call Tsit5): diffrax's
#: ``Tsit5.tableau``, written out so that the fit and the engine need not import diffrax to
#: step it (tests/test_engine.py checks it against diffrax bit for bit, and that it is FSAL:
#: the last row of ``a`` is the solution's weights, and the last stage is at the new state)
TSIT5 = Tableau(
    a=((0.161,),
       (-0.008480655492356989, 0.335480655492357),
       (2.8971530571054935, -6.359448489975075, 4.3622954328695815),
       (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
       (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
        -0.028269050394068383),
       (0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
        2.324710524099774)),
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    b_err=(0.0017800110522257773, 0.0008164344596567463, -0.007880878010261994,
           0.1447110071732629, -0.5823571654525552, 0.45808210592918686,
           -0.015151515151515152),
)

#: :math:`\sum_k |b^{err}_k|`: the error estimate's rounding noise is about eps h |f| times this
ERR_ABS_SUM = sum(abs(x) for x in TSIT5.b_err)
