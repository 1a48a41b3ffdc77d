r"""Rate-equation models of carrier recombination with trapping and ion-assisted detrapping.

Each model is a small immutable object (hashable, so it can be a static argument of ``jit``)
that declares its parameter table, states and fluxes, and maps physical parameters to
dimensionless coefficients. The solver only ever sees scaled variables

.. math::

    u = n / n_\mathrm{ref}, \qquad \tau = t / t_\mathrm{ref},

with :math:`n_\mathrm{ref} = n_0` and :math:`t_\mathrm{ref} = 1` ns by default, so every
coefficient is O(1e-4 .. 1e4) and float32 is safe up to :math:`n_0 = 10^{20}` cm^-3 (where
:math:`C n^3` in cm^-3 s^-1 would overflow float32 unscaled).

Each model lives in its own file in :mod:`jaxsim.physics.models` and declares its states
(:class:`State`: name, unit, kind) and fluxes (:class:`Flux`: which state they drain, which
they fill or whether they are a loss); everything else in jaxsim (shares, curves, integrals,
the docs' model table) is derived from those declarations. ``jaxsim models`` lists them
(docs/models.md).

PL is :math:`B\,n\,p` in cm^-3 s^-1; in scaled units ``pl`` returns
:math:`PL / (B n_\mathrm{ref}^2)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxsim.physics.parameters import Parameter, Params, make_params

NS = 1e-9  # default time unit of the scaled problem, in seconds


#: kinds of state. ``free``: carriers in the band (the pulse and G put carriers here, PL and
#: the ``_n`` summaries read it); ``trapped``: carriers held in a trap level; ``holes``: a
#: second species (photo-holes), which recombination consumes but which is not counted in the
#: carrier balance (shares count electrons: free + trapped).
FREE, TRAPPED, HOLES = "free", "trapped", "holes"
KINDS = (FREE, TRAPPED, HOLES)

#: kinds whose carriers the recombination shares account for (``share_remaining``)
CARRIER_KINDS = (FREE, TRAPPED)


@dataclass(frozen=True)
class State:
    """One component of a model's state vector, in physical units."""

    name: str
    kind: str  # one of KINDS
    meaning: str
    unit: str = "cm^-3"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"state {self.name!r}: kind = {self.kind!r} is not known: "
                             f"expected one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Flux:
    """One carrier flux of a model (cm^-3 s^-1 in physical units).

    It moves carriers out of the state ``source`` into the state ``sink``; ``sink=None``
    means they recombine: a loss. The flux feeds the recombination share ``share_<name>``;
    over the losses plus ``share_remaining`` the shares sum to 1. ``radiative`` marks the
    loss that emits the PL.
    """

    name: str
    meaning: str
    source: str
    sink: str | None = None
    radiative: bool = False

    @property
    def loss(self) -> bool:
        return self.sink is None

    @property
    def share(self) -> str:
        """Name of the summary this flux feeds."""
        return f"share_{self.name}"


@dataclass(frozen=True)
class Model:
    """Base class: a model declares its facts as class attributes and implements the maps.

    Declared: ``name``, ``description``, ``parameters`` (a :class:`Parameter` table, with
    ``n0``, the pulse's density and the density scale, and ``B``, which scales PL), ``states``
    (:class:`State` records, the free carriers first) and ``flux_table`` (:class:`Flux`
    records). Implemented: ``coefficients``, ``initial_state``, ``vector_field``, ``pl``,
    ``fluxes`` (scaled), ``max_rate`` (stiffness) and the physical-units references
    ``physical_rhs`` and ``physical_pl``, written out independently of the scaled maps so
    tests can check one against the other.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    states: ClassVar[tuple[State, ...]]
    flux_table: ClassVar[tuple[Flux, ...]]

    def __post_init__(self):
        _check_declarations(self)

    # -- declared facts, derived views ---------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def free_state(self) -> State:
        """The free-carrier state (always ``states[0]``)."""
        return self.states[0]

    @property
    def fluxes_reported(self) -> tuple[str, ...]:
        """Every flux, by name: what ``fluxes`` returns and the solves integrate."""
        return tuple(f.name for f in self.flux_table)

    @property
    def loss_fluxes(self) -> tuple[str, ...]:
        """Fluxes whose time integrals, plus the carriers left in the free and trapped
        states, account for every excited carrier (carrier conservation)."""
        return tuple(f.name for f in self.flux_table if f.loss)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(f"model {self.name!r} has no state {name!r}: expected one of "
                       f"{', '.join(self.state_names)}")

    # -- physical <-> scaled -------------------------------------------------------------
    def coefficients(self, values: dict, n_ref, t_ref=NS) -> dict:
        """Dimensionless coefficients of the scaled system."""
        raise NotImplementedError

    def initial_state(self, c: dict) -> tuple:
        raise NotImplementedError

    def vector_field(self, t, y: tuple, c: dict) -> tuple:
        """Scaled right-hand side: d(y / n_ref) / d(t / t_ref)."""
        raise NotImplementedError

    def pl(self, y: tuple, c: dict):
        """Scaled PL, :math:`B n p / (B n_\\mathrm{ref}^2)`."""
        raise NotImplementedError

    def fluxes(self, y: tuple, c: dict) -> dict:
        """Scaled carrier fluxes (per t_ref, per n_ref), one per ``flux_table`` entry."""
        raise NotImplementedError

    def max_rate(self, values: dict) -> float:
        """Stiffness measure: an upper estimate of the Jacobian's spectral radius at t = 0,
        in s^-1 (orders sweep points, picks the solver)."""
        raise NotImplementedError

    # -- physical-units references -------------------------------------------------------
    def physical_rhs(self, values: dict, y: tuple) -> tuple:
        """dy/dt in cm^-3 s^-1 for states ``y`` in cm^-3 (a reference for tests and SciPy)."""
        raise NotImplementedError

    def physical_pl(self, values: dict, y: tuple):
        """PL in cm^-3 s^-1 for states ``y`` in cm^-3."""
        raise NotImplementedError

    def check(self, params: Params) -> None:
        """Cross-field checks beyond each parameter's own range."""

    # -- conveniences --------------------------------------------------------------------
    def params(self, **values) -> Params:
        """Validated parameters of this model (defaults for names not given)."""
        return make_params(self, **values)


def _check_declarations(model: Model) -> None:
    """The declarations the machinery relies on; a model that breaks one fails when built."""
    where = f"model {getattr(model, 'name', type(model).__name__)!r}"
    for attr in ("name", "description", "parameters", "states", "flux_table"):
        if not hasattr(model, attr):
            raise TypeError(f"{where} does not declare {attr!r}: expected a class attribute")
    names = [s.name for s in model.states]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{where}: states = {names}: expected distinct names, at least one")
    kinds = [s.kind for s in model.states]
    if kinds[0] != FREE or kinds.count(FREE) != 1:
        raise ValueError(f"{where}: state kinds = {kinds}: expected exactly one {FREE!r} "
                         "state, first (the integrals of n and the pulse use states[0])")
    pnames = [p.name for p in model.parameters]
    if len(set(pnames)) != len(pnames):
        raise ValueError(f"{where}: parameters = {pnames}: expected distinct names")
    for needed, why in (("n0", "the pulse's density, also the density scale"),
                        ("B", "the PL scale B n_ref^2")):
        if needed not in pnames:
            raise ValueError(f"{where}: parameters = {pnames} lack {needed!r}: expected it "
                             f"({why})")
    fnames = [f.name for f in model.flux_table]
    if len(set(fnames)) != len(fnames):
        raise ValueError(f"{where}: flux_table names = {fnames}: expected distinct names")
    carriers = {s.name for s in model.states if s.kind in CARRIER_KINDS}
    for f in model.flux_table:
        ends = (f.source,) if f.loss else (f.source, f.sink)
        if any(e not in carriers for e in ends) or f.source == f.sink:
            raise ValueError(
                f"{where}: flux {f.name!r} runs {f.source!r} -> {f.sink!r}: expected a source "
                f"among the carrier states {sorted(carriers)} and a different one of them, or "
                "None (a loss), as sink")
        if f.radiative and not f.loss:
            raise ValueError(f"{where}: flux {f.name!r} is radiative but not a loss: "
                             "expected sink = None")


def pl_scale(values: dict, n_ref) -> object:
    """Factor turning scaled PL into cm^-3 s^-1: :math:`B n_\\mathrm{ref}^2`."""
    return values["B"] * n_ref * n_ref
