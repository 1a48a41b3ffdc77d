from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxsim.physics.model import FREE, NS, Flux, Model, State
from jaxsim.physics.models._rows import _A, _B, _C, _G, _N0, _carrier_rate_terms
from jaxsim.physics.registry import register
from jaxsim.physics.parameters import Parameter


#: the free-carrier state of the single-state models
_N_FREE = State("n", FREE, "free carrier density (electrons = holes, intrinsic)")


@dataclass(frozen=True)
class ABC(Model):
    r"""Paper eq. 3: :math:`\dot n = G - A n - B n^2 - C n^3`, PL :math:`= B n^2`."""

    name: ClassVar[str] = "abc"
    description: ClassVar[str] = (
        "paper eq. 3: SRH, bimolecular and Auger recombination, no trap state")
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _N0, _G)
    states: ClassVar[tuple[State, ...]] = (_N_FREE,)
    flux_table: ClassVar[tuple[Flux, ...]] = (
        Flux("trapping", "free carriers captured by traps and lost (SRH, non-radiative)", "n"),
        Flux("bimolecular", "radiative band-to-band recombination", "n", radiative=True),
        Flux("auger", "Auger recombination", "n"),
    )

    def _a(self, values):
        return values["A"]

    def coefficients(self, values, n_ref, t_ref=NS):
        b, c = _carrier_rate_terms(values, n_ref)
        return dict(a=self._a(values) * t_ref, b=b * t_ref, c=c * t_ref,
                    g=values["G"] * t_ref / n_ref, u0=values["n0"] / n_ref)

    def initial_state(self, c):
        return (c["u0"],)

    def vector_field(self, t, y, c):
        (u,) = y
        return (c["g"] - c["a"] * u - c["b"] * u**2 - c["c"] * u**3,)

    def pl(self, y, c):
        return y[0] ** 2

    def fluxes(self, y, c):
        u = y[0]
        return dict(trapping=c["a"] * u, bimolecular=c["b"] * u**2, auger=c["c"] * u**3)

    def max_rate(self, values):
        n0 = values["n0"]
        return self._a(values) + 2 * values["B"] * n0 + 3 * values["C"] * n0**2

    def physical_rhs(self, values, y):
        (n,) = y
        v = values
        return (v["G"] - v["A"] * n - v["B"] * n**2 - v["C"] * n**3,)

    def physical_pl(self, values, y):
        return values["B"] * y[0] * y[0]


ABC_MODEL = register(ABC())
