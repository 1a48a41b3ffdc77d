r"""The scaled problem: a model's rate equations plus the integrands its observables need.

Built once from a model; the reference diffrax solve, pulse trains and the ionic protocol all
integrate it (the chunk engine builds the same integrands in its own loop). In scaled units

.. math::

    u = n / n_\mathrm{ref}, \qquad \tau = t / t_\mathrm{ref},

the augmented state is the model's states followed by the running integrals

.. math::

    \int \mathrm{PL}\,d\tau,\quad \int \tau\,\mathrm{PL}\,d\tau,\quad \int u\,d\tau,\quad
    \int \tau\,u\,d\tau,\quad \int \phi_k\,d\tau

(:attr:`ScaledProblem.integrand_names`; :math:`\phi_k` each flux the model reports), so that
summaries need no saved curve. :meth:`ScaledProblem.integral_scales` turns them into physical
units; :func:`integrate` is the one call of ``diffrax.diffeqsolve`` they all go through.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from jaxsim.numerics import _diffrax as diffrax
from jaxsim.numerics.config import FAILED, MAX_STEPS, NON_FINITE, SUCCESS, SolverConfig
from jaxsim.physics.model import Model, pl_scale

#: integrals of every problem, before the model's fluxes
MOMENTS = ("pl", "t_pl", "n", "t_n")


@dataclass(frozen=True)
class ScaledProblem:
    """One model's scaled rate equations and integrands (hashable: a static ``jit`` argument).

    ``integrands``: which integrals to carry, in order (names of :data:`MOMENTS` and of the
    model's reported fluxes); ``None`` carries them all. The chunk engine carries only those its
    summaries need.
    """

    model: Model
    integrands: tuple[str, ...] | None = None

    @property
    def n_states(self) -> int:
        return len(self.model.state_names)

    @property
    def integrand_names(self) -> tuple[str, ...]:
        if self.integrands is not None:
            return self.integrands
        return MOMENTS + tuple(self.model.fluxes_reported)

    def state_field(self, c: dict):
        """The rate equations alone, ``f(t, y, args) -> tuple`` (diffrax's signature)."""
        model = self.model
        return lambda t, y, args: tuple(model.vector_field(t, y, c))

    def augmented_field(self, c: dict):
        """The rate equations followed by the integrands of :attr:`integrand_names` (calling
        only the model functions they need)."""
        model, k, names = self.model, self.n_states, self.integrand_names
        needs_pl = any(n in ("pl", "t_pl") for n in names)
        needs_fluxes = any(n not in MOMENTS for n in names)

        def field(t, y, args):
            state = y[:k]
            dstate = tuple(model.vector_field(t, state, c))
            if not names:
                return dstate
            pl = model.pl(state, c) if needs_pl else None
            fluxes = model.fluxes(state, c) if needs_fluxes else {}
            u = state[0]
            moments = {"pl": pl, "t_pl": t * pl if needs_pl else None, "n": u, "t_n": t * u}
            return dstate + tuple(moments[n] if n in MOMENTS else fluxes[n] for n in names)

        return field

    def augmented_state(self, y0, dtype) -> tuple:
        """``y0`` (the model's states) followed by zero integrals, all of ``dtype``."""
        zeros = tuple(jnp.zeros((), dtype) for _ in self.integrand_names)
        return tuple(jnp.asarray(v, dtype) for v in y0) + zeros

    def split(self, y) -> tuple[tuple, dict]:
        """An augmented state as (states, {integral name: value})."""
        k = self.n_states
        return tuple(y[:k]), dict(zip(self.integrand_names, y[k:]))

    def integral_scales(self, values: dict, n_ref, t_ref) -> dict:
        """Factors turning each scaled integral into physical units
        (:func:`integral_units`)."""
        pls = pl_scale(values, n_ref)
        scales = {"pl": pls * t_ref, "t_pl": pls * t_ref**2, "n": n_ref * t_ref,
                  "t_n": n_ref * t_ref**2}
        return {name: scales.get(name, n_ref) for name in self.integrand_names}

    def initial_step(self, c: dict, t1):
        r"""First step :math:`0.01 / r_0` with :math:`r_0 = \sum_i |f_i(y_0)| / \max_i |y_{0,i}|`.

        The relative rate of change of the state at t = 0 (scaled units), capped at t1.
        diffrax's automatic first step uses norms of f / atol, which overflow float32 when a
        fast transient (e.g. Auger at n0 = 1e20 cm^-3) meets the small atol of an integral that
        starts at 0, and then returns a zero step. The controller grows the step from here.
        """
        model = self.model
        y0 = model.initial_state(c)
        f0 = model.vector_field(jnp.zeros_like(t1), y0, c)
        num = sum(jnp.abs(f) for f in f0)
        den = jnp.maximum(jnp.max(jnp.stack([jnp.abs(y) for y in y0])),
                          jnp.finfo(t1.dtype).tiny)
        rate = num / den
        dt0 = jnp.where(rate > 0, 0.01 / jnp.where(rate > 0, rate, 1.0), t1)
        return jnp.clip(dt0, 1e-6 * t1, t1)


def integral_units(model: Model) -> dict[str, str]:
    """Units of ``Solution.integrals``: PL and n moments, and every flux of ``model`` (a flux
    integrates to the unit of the state it drains)."""
    units = {"pl": "cm^-3", "t_pl": "cm^-3 s", "n": "cm^-3 s", "t_n": "cm^-3 s^2"}
    units.update({f.name: model.state(f.source).unit for f in model.flux_table})
    return units


def integrate(field, y0, t1, saveat: diffrax.SaveAt, config: SolverConfig, solver: str, *,
              dt0, forward: bool | None = None):
    """``diffrax.diffeqsolve`` from scaled time 0 to ``t1`` with ``config``'s solver objects.

    Returns ``(solution, status)``: status 0 success, 1 max_steps, 2 failed (non-finite values
    are the caller's to flag, :func:`flag_non_finite`). ``forward`` overrides
    ``config.adjoint`` (``True``: forward mode for ``jax.jvp``/``jacfwd``).
    """
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), config.diffrax_solver(solver), t0=jnp.zeros_like(t1), t1=t1,
        dt0=dt0, y0=y0, saveat=saveat, stepsize_controller=config.controller(),
        max_steps=config.max_steps, throw=False, adjoint=config.diffrax_adjoint(forward))
    status = jnp.where(
        sol.result == diffrax.RESULTS.successful, SUCCESS,
        jnp.where(sol.result == diffrax.RESULTS.max_steps_reached, MAX_STEPS, FAILED))
    return sol, status.astype(jnp.int32)


def flag_non_finite(status, *arrays):
    """``status``, with a success turned into ``NON_FINITE`` when any value is not finite."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in arrays]))
    return jnp.where((status == SUCCESS) & ~finite, NON_FINITE, status).astype(jnp.int32)


__all__ = ["MOMENTS", "ScaledProblem", "integral_units", "integrate",
           "flag_non_finite"]
