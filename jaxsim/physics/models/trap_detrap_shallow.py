from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from jaxsim.physics.model import NS, TRAPPED, Flux, State
from jaxsim.physics.models.trap_detrap import TrapDetrap
from jaxsim.physics.parameters import Parameter
from jaxsim.physics.registry import register

_cs = Parameter("c_s", "cm^3 s^-1", 1e-9, "capture coefficient of the shallow trap level",
                fit_lower=1e-13, fit_upper=1e-6)


_Ns = Parameter("N_s", "cm^-3", 1e16, "density of shallow traps (the level saturates at N_s)",
                fit_lower=1e12, fit_upper=1e19)


_es = Parameter("e_s", "s^-1", 1e7, "thermal release rate from the shallow traps",
                fit_lower=1e3, fit_upper=1e10)


@dataclass(frozen=True)
class TrapDetrapShallow(TrapDetrap):
    r"""``trap_detrap`` plus a saturable shallow trap level that captures free carriers and
    releases them thermally (multi-trap fitters):

    .. math::

        \dot n = G - A n - B n^2 - C n^3 + D n_d - c_s n (N_s - n_s) + e_s n_s, \\
        \dot n_d = A n - D n_d - K_1 n_d, \qquad
        \dot n_s = c_s n (N_s - n_s) - e_s n_s.

    With c_s = 0 (or N_s = 0) it is ``trap_detrap`` exactly; the shallow level loses no
    carriers, it only delays them (PL = B n^2).
    """

    name: ClassVar[str] = "trap_detrap_shallow"
    description: ClassVar[str] = ("trap_detrap plus a saturable shallow trap level: capture "
                                  "c_s n (N_s - n_s), thermal release e_s n_s")
    parameters: ClassVar[tuple[Parameter, ...]] = TrapDetrap.parameters + (_cs, _Ns, _es)
    states: ClassVar[tuple[State, ...]] = TrapDetrap.states + (
        State("n_s", TRAPPED, "density of carriers in shallow traps"),)
    flux_table: ClassVar[tuple[Flux, ...]] = TrapDetrap.flux_table + (
        Flux("shallow_trapping", "free carriers captured by shallow traps", "n", "n_s"),
        Flux("shallow_release", "shallow-trapped carriers released thermally to the band",
             "n_s", "n"),
    )

    def coefficients(self, values, n_ref, t_ref=NS):
        c = super().coefficients(values, n_ref, t_ref)
        c.update(cs=values["c_s"] * n_ref * t_ref, ns=values["N_s"] / n_ref,
                 es=values["e_s"] * t_ref)
        return c

    def initial_state(self, c):
        return super().initial_state(c) + (jnp.zeros_like(c["u0"]),)

    def _shallow(self, y, c):
        u, w = y[0], y[2]
        return c["cs"] * u * (c["ns"] - w), c["es"] * w

    def vector_field(self, t, y, c):
        du, dv = super().vector_field(t, y[:2], c)
        capture, release = self._shallow(y, c)
        return (du - capture + release, dv, capture - release)

    def fluxes(self, y, c):
        fl = super().fluxes(y[:2], c)
        fl["shallow_trapping"], fl["shallow_release"] = self._shallow(y, c)
        return fl

    def max_rate(self, values):
        # the shallow level adds the capture rate at most (empty level, n = n0) and the release
        return (super().max_rate(values) + values["c_s"] * (values["N_s"] + values["n0"])
                + values["e_s"])

    def physical_rhs(self, values, y):
        n, nd, ns = y
        v = values
        capture = v["c_s"] * n * (v["N_s"] - ns)
        return (v["G"] - v["A"] * n - v["B"] * n**2 - v["C"] * n**3 + v["D"] * nd - capture
                + v["e_s"] * ns,
                v["A"] * n - v["D"] * nd - v["K1"] * nd,
                capture - v["e_s"] * ns)


TRAP_DETRAP_SHALLOW = register(TrapDetrapShallow())
