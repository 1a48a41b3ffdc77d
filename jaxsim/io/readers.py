from __future__ import annotations

import pathlib
import re
from typing import Sequence

import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.decays import DataError, DecaySet, _where, from_arrays, time_scale

COMMENT_PREFIXES = ("#", "%", ";", "//", "!")


_SPLIT = re.compile(r"[,\s;]+")


def _parse_numbers(line: str):
    parts = [p for p in _SPLIT.split(line.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def read_text(path, n0=None, *, time_unit: str = "ns", layout: str = "auto",
              is_counts: bool | None = None, sampling: str | None = None) -> DecaySet:
    """Read an "X / Y1 / Y2 ..." text or CSV file (time column first, one column per decay).

    ``layout``: ``"columns"`` (plain), ``"power_nd_background"`` (three rows with time 0 after
    the header give laser power in W, ND filter as log10 attenuation and mean background
    counts per decay: the HZB/Grossmann layout), or ``"auto"`` (that layout when the first
    three data rows all have time 0 and so does the fourth, the first bin).
    """
    path = pathlib.Path(path)
    if layout not in ("auto", "columns", "power_nd_background"):
        raise ParameterError(f"layout = {layout!r}: expected 'auto', 'columns' or "
                             "'power_nd_background'")
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such data file") from None
    rows, lines, header = [], [], None
    for no, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith(COMMENT_PREFIXES):
            continue
        nums = _parse_numbers(s)
        if nums is None:
            if rows:
                raise DataError(f"{_where(path, no)}: {s[:60]!r} is not a row of numbers")
            header = s
            continue
        if rows and len(nums) != len(rows[0]):
            raise DataError(f"{_where(path, no)}: {len(nums)} columns, but line {lines[0]} has "
                            f"{len(rows[0])}: expected the same number of columns on every row")
        rows.append(nums)
        lines.append(no)
    if not rows:
        raise DataError(f"{_where(path)}: no rows of numbers found")
    data = np.asarray(rows)
    if data.shape[1] < 2:
        raise DataError(f"{_where(path, lines[0])}: only one column: expected a time column and "
                        "at least one decay column")
    meta = {}
    if layout == "auto":
        layout = ("power_nd_background" if data.shape[0] > 4 and np.all(data[:4, 0] == 0)
                  else "columns")
    background = None
    if layout == "power_nd_background":
        if data.shape[0] < 5 or not np.all(data[:3, 0] == 0):
            raise DataError(f"{_where(path, lines[0])}: layout 'power_nd_background' needs three "
                            "rows with time 0 (power W, ND log10, background) before the data")
        meta = {"power_W": data[0, 1:].tolist(), "nd_log10": data[1, 1:].tolist(),
                "background": data[2, 1:].tolist(), "layout": layout}
        background = data[2, 1:]
        data, lines = data[3:], lines[3:]
    labels = None
    if header:
        names = [p for p in _SPLIT.split(header) if p]
        if len(names) == data.shape[1]:
            labels = names[1:]
    return from_arrays(data[:, 0], data[:, 1:].T, n0, time_unit=time_unit, is_counts=is_counts,
                       sampling=sampling, background=background, source=str(path),
                       labels=labels, meta=meta, line_numbers=lines)


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


def read_decays(path, n0=None, *, time_unit: str = "ns", layout: str = "auto",
                is_counts: bool | None = None, sampling: str | None = None) -> DecaySet:
    """Read a decay file by its suffix: ``.ptu``, ``.phu``, ``.sdt``, else text/CSV.

    ``time_unit`` and ``layout`` apply to text files only (binary formats carry their bin
    width in seconds).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    suffix = path.suffix.lower()
    if suffix == ".ptu":
        return read_ptu(path, n0)
    if suffix == ".phu":
        return read_phu(path, n0)
    if suffix == ".sdt":
        return read_sdt(path, n0)
    return read_text(path, n0, time_unit=time_unit, layout=layout, is_counts=is_counts,
                     sampling=sampling)


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


def write_text(path, ds: DecaySet, *, time_unit: str = "ns") -> None:
    """Write ``ds`` as an "X / Y1 / Y2 ..." text file (time in ``time_unit``)."""
    scale = time_scale(time_unit)
    arr = np.column_stack([ds.t / scale, np.asarray(ds.y).T])
    np.savetxt(path, arr, header="time_" + time_unit + " " + " ".join(
        s.replace(" ", "_") for s in ds.labels), comments="")
