r"""Measured decays: readers, the :class:`DecaySet` pytree and optional pre-processing.

A :class:`DecaySet` holds K decays on one common, uniform time grid of T bins (the layout of
every TCSPC histogram and of the "X / Y1 / Y2 ..." text files): ``t[i]`` is the start of bin
``i`` in seconds, ``y[k, i]`` the counts (or normalised intensity) of decay ``k`` in that bin,
``n0[k]`` its excitation density in cm^-3. Raw counts stay counts (Poisson statistics need them);
``is_counts`` says which kind ``y`` holds.

Readers (all return a :class:`DecaySet`; :func:`read_decays` dispatches on the suffix):

- text / CSV (:func:`read_text`): a time column and one column per decay; comment lines
  (``#``, ``%``, ``;``, ``//``) and non-numeric header lines before the data are skipped.
  The Grossmann/HZB layout (after the header, three rows whose time is 0 hold the laser power
  in W, the ND filter as log10 of the attenuation, and the mean background counts) is detected
  automatically (``layout="auto"``) or forced with ``layout="power_nd_background"``.
- PicoQuant ``.ptu`` (T2/T3 records, histogrammed with ``ptufile``) and ``.phu`` histograms.
- Becker & Hickl ``.sdt`` (``sdtfile``): each decay block (or pixel curve summed) is a decay.

Malformed input raises :class:`DataError` (a :class:`~jaxsim.params.ParameterError`) naming the
file and, for text, the line.

Pre-processing (:func:`crop`, :func:`shift_to_peak`, :func:`normalise`, :func:`rebin`) is
optional, never applied silently, and recorded in ``DecaySet.preprocessing``.

Excitation density from fluence:

.. math::  n_0 = \frac{F\,a}{h\nu\, d},

with fluence :math:`F` (J cm^-2), absorptance :math:`a` (fraction absorbed in the film),
photon energy :math:`h\nu` (J) and thickness :math:`d` (cm): :func:`n0_from_fluence`.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import Sequence

import equinox as eqx
import numpy as np

from jaxsim.params import ParameterError

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}
EV = 1.602176634e-19  # J per eV
COMMENT_PREFIXES = ("#", "%", ";", "//", "!")


class DataError(ParameterError):
    """A data file or data array that cannot be used (names the file and line when it can)."""


def _where(path, line=None) -> str:
    if path is None:
        return "data"
    return f"{path}" + (f", line {line}" if line is not None else "")


class DecaySet(eqx.Module):
    """K decays on one uniform grid of T bins (an immutable pytree).

    Array leaves (``t``, ``y``, ``n0``, ``mask``, ``background``, ``irf``) can pass through
    ``jit``/``vmap``; the rest is static metadata.

    Attributes:
        t: (T,) start time of each bin, s (0 = the time origin of the file or of the shift).
        y: (K, T) counts (``is_counts``) or normalised intensity.
        n0: (K,) excitation density of each decay, cm^-3.
        mask: (K, T) 1.0 for bins that enter the loss, 0.0 for cropped / padded bins.
        background: (K,) known background per bin (same unit as ``y``); NaN when unknown.
        irf: (L,) instrument response on the bin grid, normalised to sum 1, or None.
        irf_offset: lag (in bins) of ``irf[0]``: the response at bin ``irf_offset + l`` after
            the pulse is ``irf[l]``; negative for a response centred on the pulse.
        bin_width: s.
        sampling: ``"bins"`` (each value is a count over its bin: the model is integrated
            over the bin) or ``"points"`` (each value samples the decay at ``t``).
    """

    t: np.ndarray
    y: np.ndarray
    n0: np.ndarray
    mask: np.ndarray
    background: np.ndarray
    irf: np.ndarray | None
    irf_offset: int = eqx.field(static=True)
    bin_width: float = eqx.field(static=True)
    is_counts: bool = eqx.field(static=True)
    sampling: str = eqx.field(static=True)
    time_unit: str = eqx.field(static=True)
    source: str = eqx.field(static=True)
    labels: tuple = eqx.field(static=True)
    preprocessing: tuple = eqx.field(static=True)
    meta: dict = eqx.field(static=True)

    @property
    def n_decays(self) -> int:
        return int(np.shape(self.y)[0])

    @property
    def n_bins(self) -> int:
        return int(np.shape(self.y)[1])

    def replace(self, **kw) -> "DecaySet":
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        fields.update(kw)
        return DecaySet(**fields)

    def with_irf(self, irf, offset: int = 0, *, record: str | None = None) -> "DecaySet":
        """A copy with an instrument response (normalised here to sum 1)."""
        k = np.asarray(irf, dtype=float)
        if k.ndim != 1 or k.size == 0 or not np.all(np.isfinite(k)) or np.any(k < 0) or k.sum() <= 0:
            raise DataError(f"irf: expected a 1-D non-negative curve with a positive sum, got "
                            f"shape {k.shape}")
        pre = self.preprocessing + ((record,) if record else ())
        return self.replace(irf=k / k.sum(), irf_offset=int(offset), preprocessing=pre)

    def with_n0(self, n0) -> "DecaySet":
        return self.replace(n0=_check_n0(n0, self.n_decays, self.source))


def _check_n0(n0, k: int, source=None) -> np.ndarray:
    if n0 is None:
        return np.full(k, np.nan)
    arr = np.atleast_1d(np.asarray(n0, dtype=float))
    if arr.ndim != 1 or arr.size != k:
        raise DataError(f"{_where(source)}: n0 has {arr.size} value(s) but the data hold {k} "
                        f"decay(s): expected one excitation density (cm^-3) per decay")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        bad = arr[~(np.isfinite(arr) & (arr > 0))][0]
        raise DataError(f"{_where(source)}: n0 = {float(bad):g}: expected densities > 0 cm^-3")
    return arr


def n0_from_fluence(fluence, photon_energy_ev, absorptance, thickness_cm) -> np.ndarray:
    r"""Excitation density :math:`n_0 = F a / (h\nu\, d)` in cm^-3.

    Args: fluence in J cm^-2 per pulse, photon energy in eV, absorptance (0..1] (fraction of
    the incident photons absorbed in the film), film thickness in cm.
    """
    f = np.asarray(fluence, dtype=float)
    checks = (("fluence", f, "J cm^-2 > 0"), ("photon_energy_ev", photon_energy_ev, "eV > 0"),
              ("absorptance", absorptance, "a fraction in (0, 1]"),
              ("thickness_cm", thickness_cm, "cm > 0"))
    for name, v, what in checks:
        a = np.asarray(v, dtype=float)
        ok = np.isfinite(a) & (a > 0)
        if name == "absorptance":
            ok &= a <= 1
        if not np.all(ok):
            raise ParameterError(f"{name} = {v!r}: expected {what}")
    return f * absorptance / (photon_energy_ev * EV * thickness_cm)


def time_scale(unit: str) -> float:
    try:
        return TIME_UNITS[unit]
    except KeyError:
        raise ParameterError(f"time unit = {unit!r}: expected one of {', '.join(TIME_UNITS)}") from None


def from_arrays(t, y, n0=None, *, time_unit: str = "s", is_counts: bool | None = None,
                sampling: str | None = None, background=None, source: str = "arrays",
                labels: Sequence[str] | None = None, meta: dict | None = None,
                line_numbers: Sequence[int] | None = None) -> DecaySet:
    """Build a validated :class:`DecaySet` from a time column ``t`` (in ``time_unit``) and
    ``y`` of shape (K, T) or (T,). ``is_counts=None`` detects integer-valued data as counts.
    """
    scale = time_scale(time_unit)
    t = np.asarray(t, dtype=float)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    lines = list(line_numbers) if line_numbers is not None else None

    def where(i):
        return _where(source, lines[i] if lines is not None and i < len(lines) else None)

    if t.ndim != 1 or t.size < 2:
        raise DataError(f"{_where(source)}: expected at least 2 time points, got {t.size}")
    if y.shape[1] != t.size:
        raise DataError(f"{_where(source)}: {y.shape[1]} values per decay but {t.size} times")
    for arr, what in ((t, "time"), (y, "value")):
        if not np.all(np.isfinite(arr)):
            idx = np.argwhere(~np.isfinite(arr))[0]
            i = int(idx[-1])
            raise DataError(f"{where(i)}: {what} {arr[tuple(idx)]!r} is not a finite number")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.argmax(dt <= 0))
        raise DataError(f"{where(i + 1)}: time {t[i + 1]!r} does not increase after {t[i]!r}: "
                        "expected strictly increasing times")
    width = float(np.median(dt))
    uniform = bool(np.all(np.abs(dt - width) <= 1e-3 * width))
    if is_counts is None:
        is_counts = bool(np.all(y == np.round(y)) and y.max() > 1)
    if is_counts and np.any(y < 0):
        k, i = (int(v) for v in np.argwhere(y < 0)[0])
        raise DataError(f"{where(i)}: negative count {y[k, i]!r} in decay {k + 1}: "
                        "expected counts >= 0 (use normalised data with a least-squares loss)")
    if sampling is None:
        sampling = "bins" if is_counts else "points"
    if sampling not in ("bins", "points"):
        raise ParameterError(f"sampling = {sampling!r}: expected 'bins' or 'points'")
    if not uniform:
        raise DataError(f"{_where(source)}: time steps vary from {dt.min():g} to {dt.max():g} "
                        f"{time_unit}: expected a uniform grid (TCSPC bins); resample first")
    k = y.shape[0]
    bg = np.full(k, np.nan) if background is None else np.broadcast_to(
        np.asarray(background, dtype=float), (k,)).copy()
    return DecaySet(
        t=t * scale, y=y, n0=_check_n0(n0, k, source), mask=np.ones_like(y), background=bg,
        irf=None, irf_offset=0, bin_width=width * scale, is_counts=bool(is_counts),
        sampling=sampling, time_unit=time_unit, source=str(source),
        labels=tuple(labels) if labels is not None else tuple(f"decay {i + 1}" for i in range(k)),
        preprocessing=(), meta=dict(meta or {}))


# -- text / CSV -------------------------------------------------------------------------------

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


# -- PicoQuant / Becker & Hickl ---------------------------------------------------------------

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


# -- instrument response ------------------------------------------------------------------------

def gaussian_irf(fwhm_s: float, bin_width_s: float, *, width_sigmas: float = 5.0):
    """A Gaussian response of the given FWHM, integrated over each bin, centred on the pulse.

    Returns ``(kernel, offset)`` with the kernel normalised to sum 1 and ``offset`` the (negative)
    lag of ``kernel[0]`` in bins.
    """
    if not (np.isfinite(fwhm_s) and fwhm_s > 0):
        raise ParameterError(f"irf_fwhm = {fwhm_s!r}: expected a positive time in s")
    from scipy.special import erf

    sigma = fwhm_s / (2 * math.sqrt(2 * math.log(2)))
    half = max(1, int(math.ceil(width_sigmas * sigma / bin_width_s)))
    lags = np.arange(-half, half + 1)
    # bin l covers [l w, (l+1) w) relative to the pulse; mass of the Gaussian in it
    edges = np.append(lags, lags[-1] + 1) * bin_width_s - 0.5 * bin_width_s
    cdf = 0.5 * (1 + erf(edges / (sigma * math.sqrt(2))))
    k = np.diff(cdf)
    return k / k.sum(), int(lags[0])


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


# -- pre-processing (optional, recorded) --------------------------------------------------------

def crop(ds: DecaySet, t_min: float | None = None, t_max: float | None = None) -> DecaySet:
    """Keep bins with ``t_min <= t < t_max`` (s) in the loss (others are masked, not dropped)."""
    keep = np.ones(ds.n_bins, bool)
    if t_min is not None:
        keep &= ds.t >= t_min
    if t_max is not None:
        keep &= ds.t < t_max
    if not keep.any():
        raise ParameterError(f"crop({t_min!r}, {t_max!r}) leaves no bins of {ds.source}")
    return ds.replace(mask=np.asarray(ds.mask) * keep[None, :],
                      preprocessing=ds.preprocessing + (f"crop t_min={t_min!r} t_max={t_max!r} s",))


def shift_to_peak(ds: DecaySet) -> DecaySet:
    """Shift each decay so its maximum is the first bin (t = 0); bins emptied at the end are
    masked. Not meaningful with an IRF (the fit's shift parameter does this properly)."""
    y = np.zeros_like(ds.y)
    mask = np.zeros_like(ds.mask)
    peaks = np.argmax(ds.y, axis=1)
    for k, p in enumerate(peaks):
        n = ds.n_bins - p
        y[k, :n] = ds.y[k, p:]
        mask[k, :n] = np.asarray(ds.mask)[k, p:]
    t = np.arange(ds.n_bins) * ds.bin_width
    return ds.replace(t=t, y=y, mask=mask, preprocessing=ds.preprocessing + (
        f"shift_to_peak bins={peaks.tolist()}",))


def normalise(ds: DecaySet) -> DecaySet:
    """Divide each decay by its maximum (counts become normalised intensities)."""
    peak = np.max(ds.y, axis=1, keepdims=True)
    return ds.replace(y=ds.y / peak, background=ds.background / peak[:, 0], is_counts=False,
                      preprocessing=ds.preprocessing + (f"normalise peaks={peak[:, 0].tolist()}",))


def rebin(ds: DecaySet, factor: int) -> DecaySet:
    """Sum ``factor`` adjacent bins (counts stay counts); a trailing partial bin is dropped."""
    factor = int(factor)
    if factor < 1:
        raise ParameterError(f"rebin factor = {factor!r}: expected an integer >= 1")
    if factor == 1:
        return ds
    n = ds.n_bins // factor
    if n < 2:
        raise ParameterError(f"rebin factor = {factor} leaves fewer than 2 bins")
    y = ds.y[:, : n * factor].reshape(ds.n_decays, n, factor)
    m = np.asarray(ds.mask)[:, : n * factor].reshape(ds.n_decays, n, factor)
    agg = np.sum if ds.sampling == "bins" else np.mean
    irf = ds.irf
    if irf is not None:
        raise ParameterError("rebin before attaching an instrument response")
    # bins keep their left edge; averaged samples sit at the mean of their times
    t = (ds.t[: n * factor : factor] if ds.sampling == "bins"
         else np.asarray(ds.t[: n * factor]).reshape(n, factor).mean(axis=1))
    return ds.replace(t=t, y=agg(y, axis=2), mask=m.min(axis=2),
                      background=ds.background * (factor if ds.sampling == "bins" else 1),
                      bin_width=ds.bin_width * factor,
                      preprocessing=ds.preprocessing + (f"rebin factor={factor}",))


def write_text(path, ds: DecaySet, *, time_unit: str = "ns") -> None:
    """Write ``ds`` as an "X / Y1 / Y2 ..." text file (time in ``time_unit``)."""
    scale = time_scale(time_unit)
    arr = np.column_stack([ds.t / scale, np.asarray(ds.y).T])
    np.savetxt(path, arr, header="time_" + time_unit + " " + " ".join(
        s.replace(" ", "_") for s in ds.labels), comments="")


__all__ = ["DataError", "DecaySet", "from_arrays", "read_text", "read_ptu", "read_phu",
           "read_sdt", "read_decays", "read_irf", "gaussian_irf", "n0_from_fluence", "crop",
           "shift_to_peak", "normalise", "rebin", "write_text", "TIME_UNITS"]
