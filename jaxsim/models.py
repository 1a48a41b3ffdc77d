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

import jax.numpy as jnp

from jaxsim.params import Parameter, ParameterError, Params, make_params

NS = 1e-9  # default time unit of the scaled problem, in seconds

_A = Parameter("A", "s^-1", 1e7, "SRH trapping rate into deep traps", fit_lower=1e4, fit_upper=1e9)
_B = Parameter("B", "cm^3 s^-1", 1e-10, "bimolecular (radiative) recombination coefficient",
               fit_lower=1e-12, fit_upper=1e-8)
_C = Parameter("C", "cm^6 s^-1", 1e-28, "Auger recombination coefficient",
               fit_lower=1e-32, fit_upper=1e-26)
_D = Parameter("D", "s^-1", 1e6, "ion-assisted detrapping rate D = K sigma' n_ion",
               fit_lower=1e3, fit_upper=1e9)
_K1 = Parameter("K1", "s^-1", 1e4, "trap to valence-band relaxation rate",
                fit_lower=1e1, fit_upper=1e8)
_N0 = Parameter("n0", "cm^-3", 1e16, "carrier density excited by the pulse at t = 0",
                lower_inclusive=False, fit_lower=1e13, fit_upper=1e20)
_G = Parameter("G", "cm^-3 s^-1", 0.0, "constant (CW) generation rate", log=False,
               fit_lower=0.0, fit_upper=1e24)

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


def _carrier_rate_terms(values: dict, n_ref):
    # (C n_ref) n_ref: n_ref**2 alone overflows float32 at n_ref = 1e20
    return values["B"] * n_ref, values["C"] * n_ref * n_ref


@dataclass(frozen=True)
class ABC(Model):
    name: ClassVar[str] = "abc"
    description: ClassVar[str] = "paper eq. 3: SRH, bimolecular and Auger recombination, no trap state"
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _N0, _G)
    state_names: ClassVar[tuple[str, ...]] = ("n",)
    loss_fluxes: ClassVar[tuple[str, ...]] = ("trapping", "bimolecular", "auger")
    fluxes_reported: ClassVar[tuple[str, ...]] = ("trapping", "bimolecular", "auger")

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


@dataclass(frozen=True)
class Effective(ABC):
    name: ClassVar[str] = "effective"
    description: ClassVar[str] = "paper eq. 6: detrapping folded into an effective rate A' = A - D"
    parameters: ClassVar[tuple[Parameter, ...]] = (_A, _B, _C, _D, _N0, _G)

    def _a(self, values):
        return values["A"] - values["D"]

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


MODELS: dict[str, Model] = {m.name: m for m in (TrapDetrap(), ABC(), Effective(), BTD())}
DEFAULT_MODEL = "trap_detrap"


#: models defined in other modules that import this one: name -> (module, attribute). They are
#: imported on first use by :func:`get_model` (a top-level import would be circular) and are not
#: in :data:`MODELS`, which lists the core models.
LAZY_MODELS: dict[str, tuple[str, str]] = {
    "trap_detrap_quench": ("jaxsim.ions", "FAST_MODEL"),  # trap_detrap + mobile-ion quenchers
}


def model_names() -> tuple[str, ...]:
    """Every name :func:`get_model` accepts: the core models, then the lazily imported ones."""
    return tuple(MODELS) + tuple(n for n in LAZY_MODELS if n not in MODELS)


def get_model(model) -> Model:
    """The model object for a name (or the object itself).

    Core models are in :data:`MODELS`; ``"trap_detrap_quench"``
    (:class:`jaxsim.ions.TrapDetrapQuench`) is imported from :mod:`jaxsim.ions` on first use.
    """
    if isinstance(model, Model):
        return model
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        pass
    if isinstance(model, str) and model in LAZY_MODELS:
        import importlib

        module, attr = LAZY_MODELS[model]
        obj = getattr(importlib.import_module(module), attr)
        if not isinstance(obj, Model) or obj.name != model:
            raise RuntimeError(f"{module}.{attr} is not the model {model!r}")
        return obj
    raise ParameterError(
        f"model = {model!r} is not known: expected one of {', '.join(model_names())}")


def pl_scale(values: dict, n_ref) -> object:
    """Factor turning scaled PL into cm^-3 s^-1: :math:`B n_\\mathrm{ref}^2`."""
    return values["B"] * n_ref * n_ref


__all__ = ["Model", "ABC", "Effective", "TrapDetrap", "BTD", "MODELS", "DEFAULT_MODEL",
           "get_model", "model_names", "LAZY_MODELS", "pl_scale", "NS", "FLUX_MEANINGS"]
