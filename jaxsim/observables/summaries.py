from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.observables.lifetimes import (
    _vmap_fit,
    diffusion_length,
    normalised,
    tau_1e,
    window_weights,
)
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.parameters import broadcast


class Summary(NamedTuple):
    """A registered summary: its unit, meaning and whether it needs the saved curve."""

    unit: str
    meaning: str
    needs_curve: bool


SUMMARIES: dict[str, Summary] = {
    "tau_avg_n": Summary("s", "two-exponential fit of n(t)/n(0): sum(a tau^2)/sum(a tau)", True),
    "tau_avg_pl": Summary("s", "two-exponential fit of PL(t)/PL(0): sum(a tau^2)/sum(a tau)", True),
    "tau_mean_n": Summary("s", "first moment int t n dt / int n dt over [0, t1] (no fit)", False),
    "tau_mean_pl": Summary("s", "first moment int t PL dt / int PL dt over [0, t1] (no fit)", False),
    "tau_1e_n": Summary("s", "time at which n(t)/n(0) first falls to 1/e (inf: not in window)", True),
    "tau_1e_pl": Summary("s", "time at which PL(t)/PL(0) first falls to 1/e (inf: not in window)", True),
    "plqy": Summary("1", "photoluminescence quantum yield int B n p dt / (n0 + G t1)", False),
    "pl_integrated": Summary("cm^-3", "time-integrated PL int B n p dt over [0, t1]", False),
    "diffusion_length": Summary("cm", "sqrt(D_c tau_avg_n), D_c = diffusion_coefficient", True),
    "share_trapping": Summary("1", "fraction of carriers captured by deep traps (gross)", False),
    "share_detrapping": Summary("1", "fraction of carriers released from traps (gross)", False),
    "share_bimolecular": Summary("1", "fraction of carriers lost radiatively", False),
    "share_auger": Summary("1", "fraction of carriers lost by Auger recombination", False),
    "share_trap_relaxation": Summary("1", "fraction lost from traps to the valence band", False),
    "share_quenching": Summary("1", "fraction lost to mobile-ion quenchers (trap_detrap_quench)",
                               False),
    "share_remaining": Summary("1", "fraction still in n + n_d at t1", False),
}


SHARE_CHANNELS = ("trapping", "detrapping", "bimolecular", "auger", "trap_relaxation",
                  "quenching")


def _param(solution, name, shape):
    values = broadcast(solution.params).values
    if name not in values:
        return jnp.zeros(shape)
    return jnp.broadcast_to(values[name], shape)


PL_SHAPE_SUMMARIES = ("tau_avg_pl", "tau_mean_pl", "tau_1e_pl")


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


def recombination_shares(solution) -> dict:
    r"""Fraction of the carriers put in (:math:`n_0 + G t_1`) that went through each channel.

    ``share_<channel>`` for every flux the model reports (the others are 0), and
    ``share_remaining`` = (n + n_d)(t_1) / (n_0 + G t_1). Over ``Model.loss_fluxes`` plus
    ``share_remaining`` the shares sum to 1 (for ``btd``: electrons, n + n_t).
    """
    model = solution.model
    total = carriers_in(solution)
    out = {}
    for ch in SHARE_CHANNELS:
        if ch in solution.integrals:
            out[f"share_{ch}"] = solution.integrals[ch] / total
        else:
            out[f"share_{ch}"] = jnp.zeros_like(total)
    held = sum(solution.final[s] for s in model.state_names if s != "n_h")
    out["share_remaining"] = held / total
    return out


def summaries(solution, names, diffusion_coefficient=0.017, *, window=None) -> dict:
    """Named summaries (see :data:`SUMMARIES`) of a :class:`jaxsim.numerics.Solution`, batch-shaped.

    Curve-based summaries (``tau_avg_*``, ``tau_1e_*``, ``diffusion_length``) use the saved
    times; ``tau_avg_*`` fit the decay normalised to its first saved sample over ``window``
    ``(t_min, t_max)`` in s (default: all saved times). ``diffusion_length`` is in cm.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        if name not in SUMMARIES:
            raise ParameterError(
                f"summary {name!r} is not known: expected one of {', '.join(SUMMARIES)}")
    if not (np.isfinite(diffusion_coefficient) and diffusion_coefficient > 0):
        raise ParameterError(
            f"diffusion_coefficient = {diffusion_coefficient!r}: expected a positive number "
            "in cm^2/s")
    t = jnp.asarray(solution.t)
    w = window_weights(t, window)
    integ = solution.integrals
    out = {}
    cache = {}

    def tau_avg(which):
        if which not in cache:
            y = solution.n if which == "n" else solution.pl
            cache[which] = _vmap_fit(t, normalised(y), w)
        return cache[which]

    _check_pl_defined(solution, names)
    shares = None
    for name in names:
        if name == "tau_avg_n":
            out[name] = tau_avg("n")
        elif name == "tau_avg_pl":
            out[name] = tau_avg("pl")
        elif name == "tau_mean_n":
            out[name] = integ["t_n"] / integ["n"]
        elif name == "tau_mean_pl":
            out[name] = integ["t_pl"] / integ["pl"]
        elif name == "tau_1e_n":
            out[name] = tau_1e(t, solution.n)
        elif name == "tau_1e_pl":
            out[name] = tau_1e(t, solution.pl)
        elif name == "plqy":
            out[name] = integ["pl"] / carriers_in(solution)
        elif name == "pl_integrated":
            out[name] = integ["pl"]
        elif name == "diffusion_length":
            out[name] = diffusion_length(tau_avg("n"), diffusion_coefficient)
        else:
            if shares is None:
                shares = recombination_shares(solution)
            out[name] = shares[name]
    return out
