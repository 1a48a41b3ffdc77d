"""Histograms of a binary TCSPC file as a DecaySet (shared by the binary formats)."""

from __future__ import annotations

import numpy as np

from jaxsim.studies.decays import DataError, DecaySet, from_arrays


def _stack_histograms(path, hists, bin_width_s, n0, labels, meta) -> DecaySet:
    lengths = {len(h) for h in hists}
    if not hists or 0 in lengths:
        raise DataError(f"{path}: no histogram found")
    if len(lengths) != 1:
        raise DataError(f"{path}: histograms of different lengths {sorted(lengths)}")
    y = np.stack([np.asarray(h, dtype=float) for h in hists])
    if not bin_width_s or not np.isfinite(bin_width_s) or bin_width_s <= 0:
        raise DataError(f"{path}: bin width {bin_width_s!r} s is not a positive number")
    t = np.arange(y.shape[1]) * bin_width_s
    return from_arrays(t, y, n0, time_unit="s", is_counts=True, sampling="bins",
                       source=str(path), labels=labels, meta=meta)
