from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import Flux
from jaxsim.physics.models._rows import _A, _B, _C, _D, _G, _N0
from jaxsim.physics.models.abc import ABC
from jaxsim.physics.registry import register
from jaxsim.physics.parameters import Parameter


@dataclass(frozen=True)
class Effective(ABC):
    r"""Paper eq. 6: :math:`\dot n = G - (A - D) n - B n^2 - C n^3` (needs D <= A)."""

    name: ClassVar[str] = "effective"
    description: ClassVar[str] = "paper eq. 6: detrapping folded into an effective rate A' = A - D"
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _D, _N0, _G)

    flux_table: ClassVar[tuple[Flux, ...]] = (
        Flux("trapping", "net capture by traps at the effective rate A' = A - D (lost)", "n"),
        Flux("bimolecular", "radiative band-to-band recombination", "n", radiative=True),
        Flux("auger", "Auger recombination", "n"),
    )

    def _a(self, values):
        return values["A"] - values["D"]

    def physical_rhs(self, values, y):
        (n,) = y
        v = values
        return (v["G"] - (v["A"] - v["D"]) * n - v["B"] * n**2 - v["C"] * n**3,)

    def check(self, params):
        import numpy as np

        a, d = np.asarray(params["A"]), np.asarray(params["D"])
        bad = d > a
        if np.any(bad):
            d0 = float(np.broadcast_to(d, bad.shape)[bad].flat[0])
            a0 = float(np.broadcast_to(a, bad.shape)[bad].flat[0])
            raise ParameterError(
                f"parameter 'D' = {d0:g} exceeds 'A' = {a0:g}: expected D <= A, since the "
                "effective model needs A' = A - D >= 0 (use trap_detrap for D > A)"
            )


EFFECTIVE = register(Effective())
