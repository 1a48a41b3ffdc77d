"""Times on the command line: one convention for every subcommand.

A time is a number of seconds (``2e-6``) or a number with a unit suffix (``2us``, ``2µs``,
``500ns``, ``50ps``); the units are those of :data:`jaxsim.io.TIME_UNITS`. A decay file's own
time column is a different thing: its unit is ``jaxsim fit --time-unit``.
"""

from __future__ import annotations

import re

_TIME = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s\d.+-]*)\s*$")

#: how help texts describe a time on the command line
TIME_HELP = "s, or a number with a unit: 2e-6, 2us, 500ns, 50ps"


def units() -> dict[str, float]:
    from jaxsim.studies.decays import TIME_UNITS

    return TIME_UNITS


def parse_time(text: str, field: str) -> float:
    """Seconds from ``"2e-6"`` or ``"2us"``; a :class:`ParameterError` naming ``field``, the
    text and what was expected otherwise (finite numbers only; the sign is the caller's)."""
    from jaxsim.physics.errors import ParameterError

    table = units()
    m = _TIME.match(str(text))
    if not m:
        raise ParameterError(f"{field} = {text!r} is not a time: expected a number of seconds "
                             f"or a number with a unit ({', '.join(table)}), e.g. 2e-6 or 2us")
    unit = (m.group(2) or "s").replace("\u03bc", "\u00b5")  # Greek mu -> micro sign
    if unit not in table:
        raise ParameterError(f"{field} = {text!r}: unit {m.group(2)!r} is not known: expected "
                             f"one of {', '.join(table)} (no unit: seconds)")
    return float(m.group(1)) * table[unit]
