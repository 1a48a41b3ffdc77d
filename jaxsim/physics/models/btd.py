from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from jaxsim.physics.model import FREE, HOLES, NS, TRAPPED, Flux, Model, State
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
    r"""PEARS bimolecular-trapping-detrapping (Péan et al., PCCP 2020):

    .. math::

        \dot n_e = G - B n_e (n_h + p_0) - k_T n_e (N_T - n_t), \quad
        \dot n_t = k_T n_e (N_T - n_t) - k_D n_t (n_h + p_0), \quad
        \dot n_h = G - B n_e (n_h + p_0) - k_D n_t (n_h + p_0),

    PL :math:`= B n_e (n_h + p_0)`; the states are named ``n``, ``n_d``, ``n_h``.
    """

    name: ClassVar[str] = "btd"
    description: ClassVar[str] = (
        "PEARS bimolecular-trapping-detrapping model (Péan et al., PCCP 2020); "
        "states n (electrons), n_d (trapped electrons), n_h (photo-holes)")
    parameters: ClassVar[tuple[Parameter, ...]] = (_kB, _kT, _kD, _NT, _p0, _N0, _G)
    states: ClassVar[tuple[State, ...]] = (
        State("n", FREE, "free electron density n_e"),
        State("n_d", TRAPPED, "trapped electron density n_t"),
        State("n_h", HOLES, "photo-generated hole density (p = n_h + p0)"),
    )
    flux_table: ClassVar[tuple[Flux, ...]] = (
        Flux("trapping", "free electrons captured by traps", "n", "n_d"),
        Flux("bimolecular", "radiative recombination of electrons with holes", "n",
             radiative=True),
        Flux("trap_relaxation", "trapped electrons recombining with holes (non-radiative)",
             "n_d"),
    )

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

    def max_rate(self, values):
        n0 = values["n0"]
        return (values["B"] * (2 * n0 + values["p0"]) + values["k_T"] * (values["N_T"] + n0)
                + values["k_D"] * (n0 + values["p0"]))

    def physical_rhs(self, values, y):
        ne, nt, nh = y
        v = values
        p = nh + v["p0"]
        return (v["G"] - v["B"] * ne * p - v["k_T"] * ne * (v["N_T"] - nt),
                v["k_T"] * ne * (v["N_T"] - nt) - v["k_D"] * nt * p,
                v["G"] - v["B"] * ne * p - v["k_D"] * nt * p)

    def physical_pl(self, values, y):
        return values["B"] * y[0] * (y[2] + values["p0"])


BTD_MODEL = register(BTD())
