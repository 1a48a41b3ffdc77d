from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from jaxsim.physics.model import FREE, NS, TRAPPED, Flux, Model, State
from jaxsim.physics.models._rows import (
    _A,
    _B,
    _C,
    _D,
    _G,
    _K1,
    _N0,
    _carrier_rate_terms,
)
from jaxsim.physics.registry import register
from jaxsim.physics.parameters import Parameter


@dataclass(frozen=True)
class TrapDetrap(Model):
    r"""Paper eqs. 4-5, the default model:

    .. math::

        \dot n = G - A n - B n^2 - C n^3 + D n_d, \qquad \dot n_d = A n - D n_d - K_1 n_d,

    PL :math:`= B n^2`.
    """

    name: ClassVar[str] = "trap_detrap"
    description: ClassVar[str] = "paper eqs. 4-5: deep-trap state with ion-assisted detrapping D"
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _D, _K1, _N0, _G)
    states: ClassVar[tuple[State, ...]] = (
        State("n", FREE, "free carrier density"),
        State("n_d", TRAPPED, "density of carriers in deep traps"),
    )
    flux_table: ClassVar[tuple[Flux, ...]] = (
        Flux("trapping", "free carriers captured by deep traps", "n", "n_d"),
        Flux("detrapping", "trapped carriers returned to the band (ion-assisted)", "n_d", "n"),
        Flux("bimolecular", "radiative band-to-band recombination", "n", radiative=True),
        Flux("auger", "Auger recombination", "n"),
        Flux("trap_relaxation", "trapped carriers lost to the valence band (non-radiative)",
             "n_d"),
    )

    def coefficients(self, values, n_ref, t_ref=NS):
        b, c = _carrier_rate_terms(values, n_ref)
        return dict(a=values["A"] * t_ref, b=b * t_ref, c=c * t_ref, d=values["D"] * t_ref,
                    k1=values["K1"] * t_ref, g=values["G"] * t_ref / n_ref,
                    u0=values["n0"] / n_ref)

    def initial_state(self, c):
        return (c["u0"], jnp.zeros_like(c["u0"]))

    def vector_field(self, t, y, c):
        u, v = y
        trap, detrap = c["a"] * u, c["d"] * v
        du = c["g"] - trap - c["b"] * u**2 - c["c"] * u**3 + detrap
        dv = trap - detrap - c["k1"] * v
        return (du, dv)

    def pl(self, y, c):
        return y[0] ** 2

    def fluxes(self, y, c):
        u, v = y
        return dict(trapping=c["a"] * u, detrapping=c["d"] * v, bimolecular=c["b"] * u**2,
                    auger=c["c"] * u**3, trap_relaxation=c["k1"] * v)

    def max_rate(self, values):
        n0 = values["n0"]
        return (values["A"] + values["D"] + values["K1"] + 2 * values["B"] * n0
                + 3 * values["C"] * n0**2)

    def physical_rhs(self, values, y):
        n, nd = y[0], y[1]
        v = values
        return (v["G"] - v["A"] * n - v["B"] * n**2 - v["C"] * n**3 + v["D"] * nd,
                v["A"] * n - v["D"] * nd - v["K1"] * nd)

    def physical_pl(self, values, y):
        return values["B"] * y[0] * y[0]


TRAP_DETRAP = register(TrapDetrap())
