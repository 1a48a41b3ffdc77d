"""Checks of user-given fields (spec files, options): one message format for every input.

Every failure names the field, the value and what was expected, and is a
:class:`~jaxsim.physics.errors.ParameterError` (or the subclass a caller passes as ``error``).
"""

from __future__ import annotations

import math

from jaxsim.physics.errors import ParameterError


def number(value, field: str, *, integer: bool = False, positive: bool = False,
           nonnegative: bool = False, error: type[ParameterError] = ParameterError):
    """``value`` as a finite float (or int with ``integer``), else ``error`` naming ``field``.

    Strings and booleans are refused (TOML's ``"1e6"`` and ``true`` are not numbers).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{field} = {value!r}: expected a number")
    if not math.isfinite(value):
        raise error(f"{field} = {value!r}: expected a finite number")
    if integer:
        if value != int(value):
            raise error(f"{field} = {value!r}: expected an integer")
        value = int(value)
    else:
        value = float(value)
    if positive and not value > 0:
        raise error(f"{field} = {value!r} is not allowed: expected a finite number > 0")
    if nonnegative and not value >= 0:
        raise error(f"{field} = {value!r} is not allowed: expected a finite number >= 0")
    return value


__all__ = ["number"]
