"""Parameter tables and validated, immutable parameter pytrees.

Every model declares its parameters once, as a tuple of :class:`Parameter` rows (name, unit,
default, allowed range, meaning). The command line, the fitter (bounds, log scaling), the sweep
store's attributes and the docs all read that table.

Units at this surface are SI-cm: densities in cm^-3, first-order rates in s^-1, B and trapping
coefficients in cm^3 s^-1, C in cm^6 s^-1, times in s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model


@dataclass(frozen=True)
class Parameter:
    """One row of a model's parameter table.

    ``lower``/``upper`` are the physically allowed values (validation). ``fit_lower`` and
    ``fit_upper`` are the default search range of the fitter and the default sweep range.
    ``log`` says the parameter spans decades, so fits and sweeps work with its logarithm.
    """

    name: str
    unit: str
    default: float
    meaning: str
    lower: float = 0.0
    upper: float = math.inf
    lower_inclusive: bool = True
    fit_lower: float | None = None
    fit_upper: float | None = None
    log: bool = True

    def expected(self) -> str:
        lo = "[" if self.lower_inclusive else "("
        return f"a finite number in {lo}{self.lower:g}, {self.upper:g}] {self.unit}".rstrip()

    def check(self, value, *, where: str = "") -> None:
        """Raise :class:`ParameterError` unless every element of ``value`` is allowed."""
        arr = np.asarray(value, dtype=float)
        prefix = f"{where}: " if where else ""
        bad = ~np.isfinite(arr)
        if self.lower_inclusive:
            bad |= arr < self.lower
        else:
            bad |= arr <= self.lower
        bad |= arr > self.upper
        if np.any(bad):
            first = float(arr[bad].flat[0]) if arr.ndim else float(arr)
            count = int(np.sum(bad))
            more = f" ({count} of {arr.size} values)" if arr.size > 1 else ""
            raise ParameterError(
                f"{prefix}parameter {self.name!r} = {first!r}{more} is not allowed: "
                f"expected {self.expected()} ({self.meaning})"
            )


def table_lookup(table: tuple[Parameter, ...], name: str, *, model: str) -> Parameter:
    for row in table:
        if row.name == name:
            return row
    names = ", ".join(r.name for r in table)
    raise ParameterError(f"model {model!r} has no parameter {name!r}: expected one of {names}")


class Params(eqx.Module):
    """Immutable pytree of a model's physical parameter values (SI-cm units).

    Values may be scalars or arrays of one common batch shape; the model object is static, so a
    ``Params`` can pass through ``jit`` and ``vmap`` like any pytree. Construct it with
    :func:`make_params`, which validates; the bare constructor does not.
    """

    model: object = eqx.field(static=True)
    values: dict[str, jax.Array]

    def __getitem__(self, name: str) -> jax.Array:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return jnp.broadcast_shapes(*(jnp.shape(v) for v in self.values.values()))

    def replace(self, **updates) -> "Params":
        """A copy with some values replaced (validated)."""
        return make_params(self.model, **{**self.values, **updates})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.values.items()}


def make_params(model, values: Mapping[str, object] | None = None, /, **kwargs) -> Params:
    """Validated parameters for ``model`` (a model object or its name).

    Missing names take the table's default; unknown names and disallowed values raise a
    :class:`ParameterError` that names the field, the value and what was expected. Arrays
    broadcast to one batch shape.
    """
    model = get_model(model)
    given = dict(values or {})
    given.update(kwargs)
    for name in given:
        table_lookup(model.parameters, name, model=model.name)
    out = {}
    for row in model.parameters:
        v = given.get(row.name, row.default)
        if isinstance(v, jax.core.Tracer):
            out[row.name] = v
            continue
        try:
            arr = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise ParameterError(
                f"parameter {row.name!r} = {v!r} is not a number: expected {row.expected()}"
            ) from None
        row.check(arr)
        out[row.name] = jnp.asarray(arr)
    try:
        shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in out.values()))
    except ValueError:
        shapes = {k: tuple(jnp.shape(v)) for k, v in out.items() if jnp.ndim(v)}
        raise ParameterError(f"parameter arrays do not broadcast to one batch shape: {shapes}")
    del shape
    params = Params(model=model, values=out)
    if not any(isinstance(v, jax.core.Tracer) for v in out.values()):
        model.check(params)
    return params


def as_params(model, params) -> Params:
    """``params`` for ``model``: ``None`` (defaults), a dict (validated) or a matching Params."""
    model = get_model(model)
    if params is None:
        return make_params(model)
    if not isinstance(params, Params):
        return make_params(model, params)
    if params.model != model:
        raise ParameterError(
            f"params are for model {params.model.name!r}, not {model.name!r}")
    return params


def broadcast(params: Params) -> Params:
    """The same parameters with every value broadcast to the common batch shape."""
    shape = params.batch_shape
    return Params(
        model=params.model,
        values={k: jnp.broadcast_to(v, shape) for k, v in params.values.items()},
    )
