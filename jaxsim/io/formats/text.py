"""Text and CSV decays: an "X / Y1 / Y2 ..." table, time first, one column per decay.

The fallback for any suffix no other format claims."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from jaxsim.io.readers import register_format
from jaxsim.physics.errors import ParameterError
from jaxsim.studies.decays import (TIME_UNITS, DataError, DecaySet, _where, from_arrays,
                                   time_scale)

COMMENT_PREFIXES = ("#", "%", ";", "//", "!")


_SPLIT = re.compile(r"[,\s;]+")

_KEY_VALUE = re.compile(r"^\s*([A-Za-z][\w.]*)\s*:\s*(.*?)\s*$")

_COLUMN_UNIT = re.compile(r"^\s*time\s*\[\s*(\w+)\s*\]", re.IGNORECASE)

#: a value with a unit in a PicoQuant EasyTau / FluoTime header, to SI
_HEADER_UNITS = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "hz": 1.0, "khz": 1e3, "mhz": 1e6}


def _header_value(text: str):
    """``"2000 ps"`` -> 2e-9 (SI), None when it is not a number with a known unit."""
    parts = text.split()
    if len(parts) != 2 or parts[1].lower() not in _HEADER_UNITS:
        return None
    try:
        return float(parts[0]) * _HEADER_UNITS[parts[1].lower()]
    except ValueError:
        return None


def _instrument_meta(path, header: dict, n_decays: int, n_bins: int) -> dict:
    """The TCSPC header of an EasyTau / FluoTime export (``key : value`` lines before the
    data) in the meta keys the binary readers use; {} for other text files."""
    width = _header_value(header.get("Meas_BinWidth", ""))
    sync = _header_value(header.get("Sync_Frequency", ""))
    if width is None and sync is None:
        return {}
    instrument = header.get("PhotonCounter") or "PicoQuant EasyTau/FluoTime"
    meta = {"format": "easytau", "bin_width_s": width, "sync_rate_hz": sync,
            "channels": n_decays, "frames": None, "instrument": instrument, "header": header}
    took = [f"bin width {width * 1e12:.6g} ps (Meas_BinWidth)" if width else
            "no Meas_BinWidth: bin width from the time column",
            f"sync {sync / 1e3:.6g} kHz (Sync_Frequency)" if sync else "no Sync_Frequency"]
    meta["note"] = (f"{pathlib.Path(path).name}: EasyTau/FluoTime text export from "
                    f"{instrument}; header: " + ", ".join(took)
                    + f"; {n_decays} decay column(s) of {n_bins} bins")
    return meta


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
    rows, lines, header, pairs = [], [], None, {}
    for no, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith(COMMENT_PREFIXES):
            continue
        nums = _parse_numbers(s)
        if nums is None:
            if rows:
                raise DataError(f"{_where(path, no)}: {s[:60]!r} is not a row of numbers")
            kv = _KEY_VALUE.match(s)
            if kv and kv.group(2):
                pairs.setdefault(kv.group(1), kv.group(2))
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
    inst = _instrument_meta(path, pairs, data.shape[1] - 1, data.shape[0])
    t = data[:, 0]
    unit = _COLUMN_UNIT.match(header or "")
    if inst and unit and unit.group(1) in TIME_UNITS:
        # the export names its time unit ("Time [ns]"): that, not the default, is the column's
        time_unit = unit.group(1)
        inst["note"] += f"; time column in {time_unit} (its header)"
    if inst and inst["bin_width_s"]:
        # the time column is rounded or jittered (EasyTau: 1.99998 ns steps for 2000 ps bins):
        # the header's bin width makes the grid, when the column agrees with it to 0.1 %
        w = inst["bin_width_s"] / time_scale(time_unit)
        step = (t[-1] - t[0]) / max(t.size - 1, 1)
        if abs(step / w - 1) > 1e-3:
            raise DataError(f"{_where(path)}: Meas_BinWidth = {inst['bin_width_s']:g} s but the "
                            f"time column steps by {step:g} {time_unit}: expected them to agree")
        t = t[0] + w * np.arange(t.size)
    meta = {**meta, **inst}
    return from_arrays(t, data[:, 1:].T, n0, time_unit=time_unit, is_counts=is_counts,
                       sampling=sampling, background=background, source=str(path),
                       labels=labels, meta=meta, line_numbers=lines)


def write_text(path, ds: DecaySet, *, time_unit: str = "ns") -> None:
    """Write ``ds`` as an "X / Y1 / Y2 ..." text file (time in ``time_unit``)."""
    scale = time_scale(time_unit)
    arr = np.column_stack([ds.t / scale, np.asarray(ds.y).T])
    np.savetxt(path, arr, header="time_" + time_unit + " " + " ".join(
        s.replace(" ", "_") for s in ds.labels), comments="")


register_format((".txt", ".csv", ".dat", ".tsv", ""), read_text, text=True)
