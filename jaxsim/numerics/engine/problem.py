"""What the engine integrates: the model's states (scaled) plus the integrals the requested
summaries need, carried as extra state, and how a lane starts."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from jaxsim.numerics.problem import ScaledProblem
from jaxsim.observables.summaries import integrands_for


def needed_integrals(model, summaries) -> tuple[str, ...]:
    """Integrands (scaled) the summaries need, each once, as each summary declares them
    (:func:`jaxsim.observables.summaries.integrands_for`)."""
    return integrands_for(model, summaries)


@dataclass(frozen=True)
class LaneProblem:
    """The scaled problem of one lane: ``y = (model states..., integrals...)``.

    ``c`` is a lane's coefficients (:meth:`model.coefficients`, one array per name)."""

    model: object
    integrands: tuple[str, ...]
    dtype: object
    rtol: float
    atol: float
    t_end: float  #: end of the window, scaled

    @property
    def n_state(self) -> int:
        return len(self.model.state_names)

    def field(self, t, y, c):
        """The core's scaled problem (:class:`jaxsim.numerics.problem.ScaledProblem`) with
        these integrands."""
        return ScaledProblem(self.model, self.integrands).augmented_field(c)(t, y, None)

    def start(self, c):
        """A lane's start ``(t, h, y, f)``: t = 0, the initial state (integrals 0), its field,
        and the first step (Hairer & Wanner II.4: 0.01 |y0| / |f0| in the error norm)."""
        n_state, dtype, atol, rtol = self.n_state, self.dtype, self.atol, self.rtol
        shape = jnp.shape(c["u0"])
        zeros = jnp.zeros(shape, dtype)
        y0 = tuple(jnp.broadcast_to(jnp.asarray(v, dtype), shape)
                   for v in self.model.initial_state(c)) + tuple(zeros for _ in self.integrands)
        f0 = self.field(zeros, y0, c)
        sc = [atol + rtol * jnp.abs(y0[j]) for j in range(n_state)]
        d0 = jnp.sqrt(sum((y0[j] / sc[j]) ** 2 for j in range(n_state)) / n_state)
        d1 = jnp.sqrt(sum((f0[j] / sc[j]) ** 2 for j in range(n_state)) / n_state)
        h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.maximum(d1, 1e-30), 1e-6)
        h0 = jnp.minimum(h0, jnp.asarray(self.t_end, dtype))
        return jnp.zeros_like(h0), h0, y0, f0
