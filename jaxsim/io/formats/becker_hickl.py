"""Becker & Hickl ``.sdt`` files."""

from __future__ import annotations

import pathlib

import numpy as np

from jaxsim.io.formats._histograms import _stack_histograms
from jaxsim.io.readers import register_format
from jaxsim.studies.decays import DataError, DecaySet


def read_sdt(path, n0=None) -> DecaySet:
    """A Becker & Hickl ``.sdt`` file: each data block is a decay (pixel curves are summed)."""
    import sdtfile

    path = pathlib.Path(path)
    try:
        f = sdtfile.SdtFile(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # sdtfile raises ValueError/AssertionError/struct errors
        raise DataError(f"{path}: not a readable SDT file ({type(err).__name__}: {err})") from None
    hists, widths = [], []
    for data, times in zip(f.data, f.times):
        d = np.asarray(data, dtype=float)
        hists.append(d.reshape(-1, d.shape[-1]).sum(axis=0))
        tt = np.asarray(times, dtype=float)
        widths.append(float(tt[1] - tt[0]) if tt.size > 1 else float("nan"))
    if len({round(w, 18) for w in widths}) > 1:
        raise DataError(f"{path}: blocks have different bin widths {widths}")
    return _stack_histograms(path, hists, widths[0] if widths else float("nan"), n0,
                             [f"block {i}" for i in range(len(hists))], {"format": "sdt"})


register_format((".sdt",), read_sdt)
