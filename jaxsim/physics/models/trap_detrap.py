from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from jaxsim.physics.model import NS, Model
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
    name: ClassVar[str] = "trap_detrap"
    description: ClassVar[str] = "paper eqs. 4-5: deep-trap state with ion-assisted detrapping D"
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _D, _K1, _N0, _G)
    state_names: ClassVar[tuple[str, ...]] = ("n", "n_d")
    loss_fluxes: ClassVar[tuple[str, ...]] = ("bimolecular", "auger", "trap_relaxation")
    fluxes_reported: ClassVar[tuple[str, ...]] = (
        "trapping", "detrapping", "bimolecular", "auger", "trap_relaxation")

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


TRAP_DETRAP = register(TrapDetrap())
