from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from jaxsim.physics.model import NS, Model
from jaxsim.physics.models._rows import _G, _N0
from jaxsim.physics.registry import register
from jaxsim.physics.parameters import Parameter

_kB = Parameter("B", "cm^3 s^-1", 5e-10, "bimolecular recombination coefficient k_B",
                fit_lower=1e-12, fit_upper=1e-7)


_kT = Parameter("k_T", "cm^3 s^-1", 1.2e-7, "trapping coefficient", fit_lower=1e-12,
                fit_upper=1e-5)


_kD = Parameter("k_D", "cm^3 s^-1", 8e-10, "trap depopulation (trapped electron + hole) coefficient",
                fit_lower=1e-13, fit_upper=1e-6)


_NT = Parameter("N_T", "cm^-3", 6e13, "trap density", fit_lower=1e10, fit_upper=1e18)


_p0 = Parameter("p0", "cm^-3", 6.5e13, "dark hole (doping) density", fit_lower=1e8,
                fit_upper=1e18)


@dataclass(frozen=True)
class BTD(Model):
    name: ClassVar[str] = "btd"
    description: ClassVar[str] = (
        "PEARS bimolecular-trapping-detrapping model (Péan et al., PCCP 2020); "
        "states n (electrons), n_d (trapped electrons), n_h (photo-holes)")
    parameters: ClassVar[tuple[Parameter, ...]] = (_kB, _kT, _kD, _NT, _p0, _N0, _G)
    state_names: ClassVar[tuple[str, ...]] = ("n", "n_d", "n_h")
    loss_fluxes: ClassVar[tuple[str, ...]] = ("bimolecular", "trap_relaxation")
    fluxes_reported: ClassVar[tuple[str, ...]] = ("trapping", "bimolecular", "trap_relaxation")

    def coefficients(self, values, n_ref, t_ref=NS):
        s = n_ref * t_ref
        return dict(b=values["B"] * s, kt=values["k_T"] * s, kd=values["k_D"] * s,
                    nt=values["N_T"] / n_ref, p0=values["p0"] / n_ref,
                    g=values["G"] * t_ref / n_ref, u0=values["n0"] / n_ref)

    def initial_state(self, c):
        return (c["u0"], jnp.zeros_like(c["u0"]), c["u0"])

    def vector_field(self, t, y, c):
        ne, nt, nh = y
        holes = nh + c["p0"]
        rad = c["b"] * ne * holes
        trap = c["kt"] * ne * (c["nt"] - nt)
        depop = c["kd"] * nt * holes
        return (c["g"] - rad - trap, trap - depop, c["g"] - rad - depop)

    def pl(self, y, c):
        return y[0] * (y[2] + c["p0"])

    def fluxes(self, y, c):
        ne, nt, nh = y
        holes = nh + c["p0"]
        return dict(trapping=c["kt"] * ne * (c["nt"] - nt), bimolecular=c["b"] * ne * holes,
                    trap_relaxation=c["kd"] * nt * holes)

    def check(self, params):
        pass

    def max_rate(self, values):
        n0 = values["n0"]
        return (values["B"] * (2 * n0 + values["p0"]) + values["k_T"] * (values["N_T"] + n0)
                + values["k_D"] * (n0 + values["p0"]))


BTD_MODEL = register(BTD())
