"""Decay files by type: each format registers a reader for its suffixes; :func:`read_decays`
picks one by the file's suffix (text/CSV for any other)."""

from __future__ import annotations

import pathlib
from typing import Callable

import numpy as np

from jaxsim.physics.registry import import_all
from jaxsim.studies.decays import DataError, DecaySet

_READERS: dict[str, tuple[Callable, bool]] = {}
_LOADED = False


def register_format(suffixes, reader: Callable, *, text: bool = False) -> None:
    """``reader(path, n0, **options) -> DecaySet`` reads files with these (lower-case)
    suffixes. ``text`` readers also take ``time_unit``, ``layout``, ``is_counts`` and
    ``sampling``; binary formats carry their bin width in the file."""
    for s in suffixes:
        _READERS[s.lower()] = (reader, text)


def formats() -> dict[str, Callable]:
    """Every registered suffix and its reader."""
    _load_all()
    return {s: r for s, (r, _) in _READERS.items()}


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_all("jaxsim.io.formats")


def read_decays(path, n0=None, *, time_unit: str = "ns", layout: str = "auto",
                is_counts: bool | None = None, sampling: str | None = None) -> DecaySet:
    """Read a decay file by its suffix (:func:`formats`; text/CSV for any other).

    ``time_unit`` and ``layout`` apply to text files only (binary formats carry their bin
    width in seconds).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    _load_all()
    reader, text = _READERS.get(path.suffix.lower(), _READERS[""])
    if text:
        return reader(path, n0, time_unit=time_unit, layout=layout, is_counts=is_counts,
                      sampling=sampling)
    return reader(path, n0)


def read_irf(path, *, time_unit: str = "ns", bin_width_s: float | None = None):
    """An instrument response from a file (any format :func:`read_decays` reads; first decay).

    Returns ``(kernel, offset)``: the curve normalised to sum 1 and the lag of its first bin,
    ``round(t_first / bin_width)``, relative to the data's time origin (same clock).
    """
    d = read_decays(path, time_unit=time_unit, layout="columns")
    if bin_width_s is not None and abs(d.bin_width - bin_width_s) > 1e-6 * bin_width_s:
        raise DataError(f"{path}: IRF bin width {d.bin_width:g} s differs from the data's "
                        f"{bin_width_s:g} s")
    k = np.clip(d.y[0] - np.nan_to_num(d.background[0]), 0, None)
    if k.sum() <= 0:
        raise DataError(f"{path}: the instrument response has no positive values")
    return k / k.sum(), int(round(d.t[0] / d.bin_width))


__all__ = ["register_format", "formats", "read_decays", "read_irf"]
