from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.observables.lifetimes import (
    FIT_FLAG_MEANING,
    WINDOW_BIAS,
    WINDOW_TAIL_LIMIT,
    _vmap_fit,
    diffusion_length,
    normalised,
    tau_1e,
    window_tail,
    window_weights,
)
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import CARRIER_KINDS
from jaxsim.physics.parameters import broadcast


class Summary(NamedTuple):
    """An observable of one decay: its unit and meaning, what it needs, how it reduces.

    ``integrands``: the integrals (names of :data:`jaxsim.numerics.problem.MOMENTS` or of the
    model's fluxes) it needs carried with the solve; ``curve``: the saved curve it is read from
    (``"n"``, the free carriers, or ``"pl"``), None for an integral summary; ``reduce(d)``: the
    value from a :class:`DecayData` (batch-shaped); ``flag``: the summary that says when the
    window [0, t1] makes this one untrustworthy (:data:`WINDOW_FLAGS`), stored beside it.
    The engine, the reference solve and pulse trains all go through these, so a new
    observable is one entry here.
    """

    unit: str
    meaning: str
    needs_curve: bool
    integrands: tuple = ()
    curve: str | None = None
    reduce: object = None
    flag: str | None = None


class DecayData:
    """What a summary reduces: a solution's integrals, final states and saved curves, with the
    two-exponential fits computed once per curve."""

    def __init__(self, solution, diffusion_coefficient, window, names=()):
        self.solution = solution
        self.integrals = solution.integrals
        self.diffusion_coefficient = diffusion_coefficient
        self.t = jnp.asarray(solution.t)
        self.weights = window_weights(self.t, window)
        self._fits = {}
        # fits whose flag is asked are run with the (costlier) flag checks
        self._flagged = {w for w in ("n", "pl") if f"biexp_flag_{w}" in names}

    def curve(self, which):
        return self.solution.n if which == "n" else self.solution.pl

    def _fit(self, which):
        if which not in self._fits:
            y = normalised(self.curve(which))
            if which in self._flagged:
                self._fits[which] = _vmap_fit(self.t, y, self.weights, with_flag=True)
            else:
                self._fits[which] = (_vmap_fit(self.t, y, self.weights), None)
        return self._fits[which]

    def tau_avg(self, which):
        return self._fit(which)[0]

    def fit_flag(self, which):
        return self._fit(which)[1]

    def window_end(self):
        sol = self.solution
        return sol.t[-1] if sol.window_end is None else sol.window_end

    def tail(self, which):
        """:func:`window_tail` of PL (``"pl"``) or of the free carriers (``"n"``), from the
        final state, the model's right-hand side there and the window's integral."""
        sol = self.solution
        model = sol.model
        values = broadcast(sol.params).values
        y = tuple(sol.final[s] for s in model.state_names)
        free = model.state_names.index(model.free_state.name)
        signal = ((lambda y: model.physical_pl(values, y)) if which == "pl"
                  else (lambda y: y[free]))
        level, slope = jax.jvp(signal, (y,), (tuple(model.physical_rhs(values, y)),))
        return window_tail(self.integrals[which], level, slope, self.window_end())

    def carriers_in(self):
        return carriers_in(self.solution)


def _moment(which):
    return lambda d: d.integrals[f"t_{which}"] / d.integrals[which]


_TAIL = ("estimated fraction of int_0^inf {0} dt still to come after t1 (one exponential at "
         "the final log-slope of {0}, from the final state); a first moment of {0} is "
         "window-limited above {1:.3g} (its bias then exceeds {2:.0%})")

#: the summaries every model has; each model adds its shares (:func:`share_summaries`)
SUMMARIES: dict[str, Summary] = {
    "tau_avg_n": Summary("s", "two-exponential fit of n(t)/n(0): sum(a tau^2)/sum(a tau)", True,
                         curve="n", reduce=lambda d: d.tau_avg("n"), flag="biexp_flag_n"),
    "tau_avg_pl": Summary("s", "two-exponential fit of PL(t)/PL(0): sum(a tau^2)/sum(a tau)",
                          True, curve="pl", reduce=lambda d: d.tau_avg("pl"),
                          flag="biexp_flag_pl"),
    "tau_mean_n": Summary("s", "first moment int t n dt / int n dt over [0, t1] (no fit)", False,
                          integrands=("n", "t_n"), reduce=_moment("n"), flag="window_tail_n"),
    "tau_mean_pl": Summary("s", "first moment int t PL dt / int PL dt over [0, t1] (no fit)",
                           False, integrands=("pl", "t_pl"), reduce=_moment("pl"),
                           flag="window_tail_pl"),
    "window_tail_n": Summary("1", _TAIL.format("n", WINDOW_TAIL_LIMIT, WINDOW_BIAS), False,
                             integrands=("n",), reduce=lambda d: d.tail("n")),
    "window_tail_pl": Summary("1", _TAIL.format("PL", WINDOW_TAIL_LIMIT, WINDOW_BIAS), False,
                              integrands=("pl",), reduce=lambda d: d.tail("pl")),
    "biexp_flag_n": Summary("1", FIT_FLAG_MEANING + " (fit of n(t)/n(0))", True, curve="n",
                            reduce=lambda d: d.fit_flag("n")),
    "biexp_flag_pl": Summary("1", FIT_FLAG_MEANING + " (fit of PL(t)/PL(0))", True,
                             curve="pl", reduce=lambda d: d.fit_flag("pl")),
    "tau_1e_n": Summary("s", "time at which n(t)/n(0) first falls to 1/e (inf: not in window)",
                        True, curve="n", reduce=lambda d: tau_1e(d.t, d.curve("n"))),
    "tau_1e_pl": Summary("s", "time at which PL(t)/PL(0) first falls to 1/e (inf: not in window)",
                         True, curve="pl", reduce=lambda d: tau_1e(d.t, d.curve("pl"))),
    "plqy": Summary("1", "photoluminescence quantum yield int B n p dt / (n0 + G t1)", False,
                    integrands=("pl",), reduce=lambda d: d.integrals["pl"] / d.carriers_in()),
    "pl_integrated": Summary("cm^-3", "time-integrated PL int B n p dt over [0, t1]", False,
                             integrands=("pl",), reduce=lambda d: d.integrals["pl"]),
    "diffusion_length": Summary(
        "cm", "sqrt(D_c tau_avg_n), D_c = diffusion_coefficient", True, curve="n",
        reduce=lambda d: diffusion_length(d.tau_avg("n"), d.diffusion_coefficient),
        flag="biexp_flag_n"),
}

#: flag summaries and when each marks its lifetimes window-limited (see :func:`window_limited`)
WINDOW_FLAGS = {
    "window_tail_n": f"window_tail_n > {WINDOW_TAIL_LIMIT:.3g}",
    "window_tail_pl": f"window_tail_pl > {WINDOW_TAIL_LIMIT:.3g}",
    "biexp_flag_n": "biexp_flag_n != 0",
    "biexp_flag_pl": "biexp_flag_pl != 0",
}


def window_flags(model, names) -> tuple[str, ...]:
    """The flags (:data:`WINDOW_FLAGS`) the summaries ``names`` need stored beside them and
    that ``names`` does not already hold, each once, in order."""
    table = summary_table(model)
    flags = (table[n].flag for n in names if n in table and table[n].flag)
    return tuple(f for f in dict.fromkeys(flags) if f not in names)


def window_limited(flag: str, values):
    """Boolean mask of the points a flag's values mark window-limited (numpy; a point not
    computed, NaN or a negative code, is not marked)."""
    values = np.asarray(values)
    if flag.startswith("window_tail"):
        return np.asarray(values > WINDOW_TAIL_LIMIT)  # NaN compares False
    if flag.startswith("biexp_flag"):
        return np.asarray(np.isfinite(values) & (values > 0))
    raise ParameterError(f"flag {flag!r} is not a window flag: expected one of "
                         f"{', '.join(WINDOW_FLAGS)}")


SHARE_REMAINING = "share_remaining"


def carrier_states(model) -> tuple[str, ...]:
    """States whose carriers the shares account for (free and trapped, not holes)."""
    return tuple(s.name for s in model.states if s.kind in CARRIER_KINDS)


@functools.lru_cache(maxsize=64)
def share_summaries(model) -> Mapping[str, Summary]:
    """``share_<flux>`` for every flux ``model`` declares, and ``share_remaining`` (read-only:
    cached per model)."""
    out = {}
    for f in model.flux_table:
        what = (f"lost to {f.name}" if f.loss
                else f"moved {f.source} -> {f.sink} by {f.name} (gross)")
        out[f.share] = Summary("1", f"fraction of carriers {what}: {f.meaning}", False,
                               integrands=(f.name,), reduce=_flux_share(f.name))
    held = " + ".join(carrier_states(model))
    out[SHARE_REMAINING] = Summary("1", f"fraction still in {held} at t1", False,
                                   reduce=_remaining_share(carrier_states(model)))
    return MappingProxyType(out)


def _flux_share(flux):
    return lambda d: d.integrals[flux] / d.carriers_in()


def _remaining_share(states):
    return lambda d: sum(d.solution.final[s] for s in states) / d.carriers_in()


def integrands_for(model, names) -> tuple[str, ...]:
    """The integrals ``names`` need carried with the solve, each once, in order."""
    table = summary_table(model)
    return tuple(dict.fromkeys(k for n in names for k in table[n].integrands))


def summary_table(model) -> dict[str, Summary]:
    """Every summary ``model`` has: :data:`SUMMARIES` and its shares."""
    return {**SUMMARIES, **share_summaries(model)}


def check_summary_names(model, names, *, extra=()) -> tuple[str, ...]:
    """``names`` as a tuple, each a summary of ``model`` (or in ``extra``); else a
    :class:`ParameterError` naming it, the model and the names expected."""
    names = (names,) if isinstance(names, str) else tuple(names)
    table = summary_table(model)
    for name in names:
        if name not in table and name not in extra:
            raise ParameterError(
                f"summary {name!r} is not known for model {model.name!r}: expected one of "
                f"{', '.join((*table, *extra))}")
    return names


def curve_units(model) -> dict[str, str]:
    """Curve variables of ``model`` and their units: its states, ``pl`` and ``pl_norm``."""
    out = {s.name: s.unit for s in model.states}
    out.update(pl="cm^-3 s^-1", pl_norm="1")
    return out


def _param(solution, name, shape):
    values = broadcast(solution.params).values
    if name not in values:
        return jnp.zeros(shape)
    return jnp.broadcast_to(values[name], shape)


PL_SHAPE_SUMMARIES = ("tau_avg_pl", "tau_mean_pl", "tau_1e_pl", "window_tail_pl",
                      "biexp_flag_pl")


def _check_pl_defined(solution, names) -> None:
    """PL = B n p is identically 0 at B = 0, so its lifetime has no meaning: say so instead of
    returning NaN. (The sweep engine reports the B -> 0 limit, PL per unit B, instead.)"""
    asked = [n for n in names if n in PL_SHAPE_SUMMARIES]
    b = solution.params.values.get("B") if asked else None
    if b is None or isinstance(b, jax.core.Tracer):
        return
    if np.any(np.asarray(b) == 0):
        raise ParameterError(
            f"summary {asked[0]!r} needs PL, but parameter 'B' = 0 (no radiative "
            "recombination, PL = 0): expected B > 0, or an n-based summary such as "
            f"{asked[0].replace('_pl', '_n')!r}")


def carriers_in(solution):
    r"""Carriers put in by :math:`t_1`: :math:`n_0 + G t_1` (cm^-3), batch-shaped."""
    shape = jnp.shape(solution.status)
    t1 = solution.t[-1] if solution.window_end is None else solution.window_end
    return _param(solution, "n0", shape) + _param(solution, "G", shape) * t1


def recombination_shares(solution, names=None) -> dict:
    r"""Fraction of the carriers put in (:math:`n_0 + G t_1`) that went through each flux.

    ``share_<flux>`` for every flux the model declares (or those of ``names``), and
    ``share_remaining`` = the carriers still in the free and trapped states at :math:`t_1`,
    over :math:`n_0 + G t_1`. Over the loss fluxes plus ``share_remaining`` the shares sum to
    1 (carrier conservation; for ``btd``: electrons, n + n_t). A share needs the integral of
    its flux (``solution.integrals``), ``share_remaining`` the final states.
    """
    model = solution.model
    wanted = tuple(share_summaries(model)) if names is None else tuple(names)
    total = carriers_in(solution)
    out = {}
    for f in model.flux_table:
        if f.share in wanted:
            out[f.share] = solution.integrals[f.name] / total
    if SHARE_REMAINING in wanted:
        out[SHARE_REMAINING] = sum(solution.final[s] for s in carrier_states(model)) / total
    return out


def summaries(solution, names, diffusion_coefficient=0.017, *, window=None) -> dict:
    """Named summaries (see :func:`summary_table`) of a :class:`Solution`, batch-shaped.

    Curve-based summaries (``tau_avg_*``, ``tau_1e_*``, ``diffusion_length``) use the saved
    times; ``tau_avg_*`` fit the decay normalised to its first saved sample over ``window``
    ``(t_min, t_max)`` in s (default: all saved times). ``diffusion_length`` is in cm.
    """
    names = check_summary_names(solution.model, names)
    if not (np.isfinite(diffusion_coefficient) and diffusion_coefficient > 0):
        raise ParameterError(
            f"diffusion_coefficient = {diffusion_coefficient!r}: expected a positive number "
            "in cm^2/s")
    _check_pl_defined(solution, names)
    table = summary_table(solution.model)
    data = DecayData(solution, diffusion_coefficient, window, names)
    return {name: table[name].reduce(data) for name in names}
