from __future__ import annotations


class ParameterError(ValueError):
    """A parameter value or name that the model cannot accept."""
