from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxsim.physics.model import NS, Flux
from jaxsim.physics.models.trap_detrap import TrapDetrap
from jaxsim.physics.registry import register
from jaxsim.physics.parameters import Parameter

_Q = Parameter("Q", "s^-1", 0.0, "capture rate by mobile-ion quenchers (lost, not detrapped)",
               log=False, fit_lower=0.0, fit_upper=1e9)


@dataclass(frozen=True)
class TrapDetrapQuench(TrapDetrap):
    r"""``trap_detrap`` plus a direct non-radiative loss :math:`-Q n` through mobile-ion quenchers.

    .. math::

        \dot n = G - (A + Q) n - B n^2 - C n^3 + D n_d, \qquad
        \dot n_d = A n - D n_d - K_1 n_d.

    With Q = 0 it is ``trap_detrap`` exactly.
    """

    name: ClassVar[str] = "trap_detrap_quench"
    description: ClassVar[str] = "trap_detrap plus direct capture -Q n by mobile-ion quenchers"
    parameters: ClassVar[tuple[Parameter, ...]] = TrapDetrap.parameters + (_Q,)
    flux_table: ClassVar[tuple[Flux, ...]] = TrapDetrap.flux_table + (
        Flux("quenching", "free carriers captured by mobile-ion quenchers (lost)", "n"),
    )

    def coefficients(self, values, n_ref, t_ref=NS):
        c = super().coefficients(values, n_ref, t_ref)
        c["q"] = values["Q"] * t_ref
        return c

    def vector_field(self, t, y, c):
        du, dv = super().vector_field(t, y, c)
        return (du - c["q"] * y[0], dv)

    def fluxes(self, y, c):
        fl = super().fluxes(y, c)
        fl["quenching"] = c["q"] * y[0]
        return fl

    def max_rate(self, values):
        return super().max_rate(values) + values["Q"]

    def physical_rhs(self, values, y):
        n, nd = y
        v = values
        return (v["G"] - (v["A"] + v["Q"]) * n - v["B"] * n**2 - v["C"] * n**3 + v["D"] * nd,
                v["A"] * n - v["D"] * nd - v["K1"] * nd)


FAST_MODEL = register(TrapDetrapQuench())
