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

Malformed input raises :class:`DataError` (a :class:`~jaxsim.physics.parameters.ParameterError`) naming the
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
from typing import Sequence

import equinox as eqx
import numpy as np

from jaxsim.physics.errors import ParameterError

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}


EV = 1.602176634e-19  # J per eV


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
        meta = {key: v for key, v in self.meta.items() if key != "irf_fwhm_s"}
        return self.replace(irf=k / k.sum(), irf_offset=int(offset), preprocessing=pre, meta=meta)

    def with_gaussian_irf(self, fwhm_s: float, *, record: str | None = None) -> "DecaySet":
        """A copy with a Gaussian instrument response of the given FWHM (s): the fit's forward
        model then convolves with the exact Gaussian and integrates over the bins
        (:mod:`jaxsim.studies.instrument`); ``irf`` holds its bin-integrated kernel for
        display and for code that wants a discrete kernel."""
        k, off = gaussian_irf(fwhm_s, self.bin_width)
        ds = self.with_irf(k, off, record=record or f"irf gaussian fwhm={float(fwhm_s)!r} s")
        return ds.replace(meta={**ds.meta, "irf_fwhm_s": float(fwhm_s)})

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
