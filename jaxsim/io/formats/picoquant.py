"""PicoQuant files: ``.ptu`` (TCSPC histograms of T3 records) and ``.phu`` (histograms)."""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from jaxsim.io.formats._histograms import _stack_histograms
from jaxsim.io.readers import register_format
from jaxsim.studies.decays import DataError, DecaySet


def read_ptu(path, n0=None, *, channels: Sequence[int] | None = None) -> DecaySet:
    """A PicoQuant ``.ptu`` file: the TCSPC histogram of every (or the chosen) channel."""
    import ptufile

    path = pathlib.Path(path)
    try:
        with ptufile.PtuFile(path) as f:
            h = np.asarray(f.decode_histogram(dtype=np.uint64))
            width = float(f.tcspc_resolution)
    except (ptufile.PqFileError, ValueError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable PTU file ({err})") from None
    h = h.reshape(-1, h.shape[-1])
    chans = list(range(h.shape[0])) if channels is None else list(channels)
    keep = [c for c in chans if channels is not None or h[c].sum() > 0]
    return _stack_histograms(path, [h[c] for c in keep], width, n0,
                             [f"channel {c}" for c in keep], {"format": "ptu"})


def read_phu(path, n0=None) -> DecaySet:
    """A PicoQuant ``.phu`` file: every stored histogram curve is a decay."""
    import ptufile

    path = pathlib.Path(path)
    try:
        with ptufile.PhuFile(path) as f:
            hists = [np.asarray(h) for h in f.histograms()]
            width = float(np.atleast_1d(f.tcspc_resolution)[0])
    except (ptufile.PqFileError, ValueError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable PHU file ({err})") from None
    return _stack_histograms(path, hists, width, n0,
                             [f"curve {i}" for i in range(len(hists))], {"format": "phu"})


register_format((".ptu",), read_ptu)
register_format((".phu",), read_phu)
