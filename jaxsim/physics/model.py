r"""Rate-equation models of carrier recombination with trapping and ion-assisted detrapping.

Each model is a small immutable object (hashable, so it can be a static argument of ``jit``)
that declares its parameter table and state, and maps physical parameters to dimensionless
coefficients. The solver only ever sees scaled variables

.. math::

    u = n / n_\mathrm{ref}, \qquad \tau = t / t_\mathrm{ref},

with :math:`n_\mathrm{ref} = n_0` and :math:`t_\mathrm{ref} = 1` ns by default, so every
coefficient is O(1e-4 .. 1e4) and float32 is safe up to :math:`n_0 = 10^{20}` cm^-3 (where
:math:`C n^3` in cm^-3 s^-1 would overflow float32 unscaled).

Models (paper: Wen & Jia, eqs. 3-6; PEARS: Péan et al., PCCP 2020):

- ``abc`` (eq. 3): :math:`\dot n = G - A n - B n^2 - C n^3`.
- ``trap_detrap`` (eqs. 4-5, the default):
  :math:`\dot n = G - A n - B n^2 - C n^3 + D n_d`, :math:`\dot n_d = A n - D n_d - K_1 n_d`.
- ``effective`` (eq. 6): :math:`\dot n = G - (A - D) n - B n^2 - C n^3`.
- ``btd`` (PEARS bimolecular-trapping-detrapping):
  :math:`\dot n_e = G - B n_e (n_h + p_0) - k_T n_e (N_T - n_t)`,
  :math:`\dot n_t = k_T n_e (N_T - n_t) - k_D n_t (n_h + p_0)`,
  :math:`\dot n_h = G - B n_e (n_h + p_0) - k_D n_t (n_h + p_0)`,
  PL :math:`\propto n_e (n_h + p_0)`.

PL is :math:`B\,n\,p` in cm^-3 s^-1; in scaled units ``pl`` returns :math:`PL / (B n_\mathrm{ref}^2)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxsim.physics.parameters import Parameter, Params, make_params

NS = 1e-9  # default time unit of the scaled problem, in seconds


FLUX_MEANINGS = {
    "trapping": "free carriers captured by deep traps",
    "detrapping": "trapped carriers returned to the conduction band",
    "bimolecular": "radiative band-to-band recombination",
    "auger": "Auger recombination",
    "trap_relaxation": "trapped carriers lost to the valence band (non-radiative)",
}


@dataclass(frozen=True)
class Model:
    """Base class: subclasses set the class attributes and implement the four maps."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    state_names: ClassVar[tuple[str, ...]]
    #: fluxes whose time integrals, plus what is left in ``state_names``, account for every
    #: excited carrier (carrier conservation; see :func:`jaxsim.observables.recombination_shares`)
    loss_fluxes: ClassVar[tuple[str, ...]]
    fluxes_reported: ClassVar[tuple[str, ...]]

    # -- physical <-> scaled -------------------------------------------------------------
    def coefficients(self, values: dict, n_ref, t_ref=NS) -> dict:
        """Dimensionless coefficients of the scaled system."""
        raise NotImplementedError

    def initial_state(self, c: dict) -> tuple:
        raise NotImplementedError

    def vector_field(self, t, y: tuple, c: dict) -> tuple:
        raise NotImplementedError

    def pl(self, y: tuple, c: dict):
        """Scaled PL, :math:`B n p / (B n_\\mathrm{ref}^2)`."""
        raise NotImplementedError

    def fluxes(self, y: tuple, c: dict) -> dict:
        """Scaled carrier fluxes (per t_ref, per n_ref) by channel."""
        raise NotImplementedError

    def check(self, params: Params) -> None:
        """Cross-field checks beyond each parameter's own range."""

    # -- conveniences --------------------------------------------------------------------
    def params(self, **values) -> Params:
        """Validated parameters of this model (defaults for names not given)."""
        return make_params(self, **values)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def max_rate(self, values: dict) -> float:
        """Upper estimate of the Jacobian's spectral radius at t = 0, in s^-1 (stiffness)."""
        raise NotImplementedError


def pl_scale(values: dict, n_ref) -> object:
    """Factor turning scaled PL into cm^-3 s^-1: :math:`B n_\\mathrm{ref}^2`."""
    return values["B"] * n_ref * n_ref
