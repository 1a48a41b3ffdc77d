"""Checks of what a caller asks of the engine (names, shapes, save times), before tracing."""

from __future__ import annotations

import jax.numpy as jnp

from jaxsim.numerics.reference import check_times
from jaxsim.observables.summaries import check_summary_names, curve_units, summary_table
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.parameters import table_lookup

def check_summaries(model, summaries):
    """``(names, needs_curve)``: the summary names as a tuple, each one ``model`` has, and
    whether one of them is computed from a curve."""
    names = check_summary_names(model, summaries)
    table = summary_table(model)
    return names, any(table[n].needs_curve for n in names)


def check_chunk_values(model, values: dict, extra: tuple = ()) -> int:
    """Names (the model's parameters, or ``extra``) and shapes (1-D, one length) of a chunk's
    inputs; returns the chunk length. Values themselves are checked by the caller."""
    for k in values:
        if k not in extra:
            table_lookup(model.parameters, k, model=model.name)
    if not values:
        raise ParameterError("values = {}: expected at least one parameter array (chunk,)")
    shapes = {k: jnp.shape(v) for k, v in values.items()}
    n = max((s[0] for s in shapes.values() if len(s) == 1), default=None)
    if n is None or any(len(s) != 1 or s[0] != n for s in shapes.values()):
        raise ParameterError(f"values have shapes {shapes}: expected 1-D arrays of one length")
    return n


def check_curve_request(model, t1: float, curve_ts, curve_vars):
    """Validated (curve_ts or None, curve_vars): times in [0, t1], known variables."""
    curve_vars = (curve_vars,) if isinstance(curve_vars, str) else tuple(curve_vars)
    if curve_ts is None:
        return None, curve_vars
    curve_ts = check_times(curve_ts, name="curve_ts")
    if curve_ts[-1] > t1 * (1 + 1e-12):
        raise ParameterError(f"curve_ts ends at {float(curve_ts[-1]):g} s, after t1 = {t1:g} s: "
                             "expected times <= t1")
    known = curve_units(model)  # the model's states, pl, pl_norm
    for var in curve_vars:
        if var not in known:
            raise ParameterError(f"curve variable {var!r} is not known for model "
                                 f"{model.name!r}: expected one of {', '.join(known)}")
    return curve_ts, curve_vars
