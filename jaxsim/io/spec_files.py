"""Spec files (TOML) of every kind through one loader: sweeps, sensitivity studies, protocols.

Each kind maps the parsed table to its validated spec object (``from_dict``); the loader
reports a missing file, bad TOML (with line and column) or an invalid field with the file's
path in front, in one format.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Callable, Mapping

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.protocol import protocol_from_dict
from jaxsim.studies.sensitivity import spec_from_dict
from jaxsim.studies.spec import SpecError
from jaxsim.studies.spec import from_dict as sweep_from_dict


def parse_toml(text: str, from_dict: Callable[[Mapping], object], *, source: str,
               error: type[ParameterError] = ParameterError):
    """The spec object that ``from_dict`` builds from TOML ``text``; errors name ``source``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{source}: not valid TOML: {err}") from None
    try:
        return from_dict(raw)
    except ParameterError as err:
        raise type(err)(f"{source}: {err}") from None


def load_toml(path, from_dict: Callable[[Mapping], object], *, kind: str,
              error: type[ParameterError] = ParameterError):
    """Read the ``kind`` spec file ``path`` (see :func:`parse_toml`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{kind} spec {str(p)!r} does not exist")
    try:
        text = p.read_text()
    except UnicodeDecodeError as err:
        raise error(f"{p}: not a UTF-8 text file ({err})") from None
    return parse_toml(text, from_dict, source=str(p), error=error)


def resolve_sweep_spec_path(path) -> Path:
    """``path`` itself, or a spec of that name in ``sweeps/`` (``"default"`` ->
    ``sweeps/default.toml``, here or beside the installed package)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (Path("sweeps") / f"{path}.toml",
                 Path(__file__).resolve().parents[2] / "sweeps" / f"{path}.toml"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"sweep spec {str(path)!r} not found (a TOML file, or a name in "
                            "sweeps/ such as 'default')")


def parse_sweep_spec(text: str, *, source: str = "<spec>"):
    """A :class:`~jaxsim.studies.spec.SweepSpec` from TOML text (docs/sweep.md)."""
    from_dict, error = _sweep()
    return parse_toml(text, from_dict, source=source, error=error)


def load_sweep_spec(path):
    """A :class:`~jaxsim.studies.spec.SweepSpec` from a TOML file or a name in ``sweeps/``."""
    from_dict, error = _sweep()
    return load_toml(resolve_sweep_spec_path(path), from_dict, kind="sweep", error=error)


def load_sensitivity_spec(path):
    """A :class:`~jaxsim.studies.sensitivity.SensitivitySpec` from a TOML file
    (docs/sensitivity.md)."""
    return load_toml(path, spec_from_dict, kind="sensitivity")


def load_protocol(path):
    """A :class:`~jaxsim.studies.protocol.Protocol` from a TOML file (docs/ionic.md), named
    after the file."""
    path = Path(path)
    return load_toml(path, lambda raw: protocol_from_dict(raw, name=path.stem), kind="protocol")


def _sweep():
    return sweep_from_dict, SpecError


__all__ = ["parse_toml", "load_toml", "resolve_sweep_spec_path", "parse_sweep_spec",
           "load_sweep_spec", "load_sensitivity_spec", "load_protocol"]
