"""PicoQuant files: ``.ptu`` (TCSPC histograms of T3 records) and ``.phu`` (histograms).

The header gives the bin width, the sync (repetition) rate, the channels and the frames; they
go into ``DecaySet.meta`` (``bin_width_s``, ``sync_rate_hz``, ``channels``, ``frames``,
``instrument``) with ``meta["note"]``, a line saying what was taken. T2 files (time tags
without a sync) hold no decay and are refused.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from jaxsim.io.formats._histograms import _stack_histograms
from jaxsim.io.readers import register_format
from jaxsim.studies.decays import DataError, DecaySet


def _open_ptu(path):
    import ptufile

    try:
        return ptufile.PtuFile(path)
    except FileNotFoundError:
        raise
    except (ptufile.PqFileError, ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable PTU file ({err})") from None


def _refuse_t2(path, f) -> None:
    if not f.is_t3:
        raise DataError(f"{path}: T2 time-tag file (no sync): not a TCSPC decay; record it in "
                        "T3 mode (time tags against the laser sync), or histogram the "
                        "photon pairs against a reference channel yourself")


def ptu_header(path, f) -> dict:
    """The header values a decay needs (SI units), and ``note``: what was taken."""
    tags = f.tags
    sync = float(f.syncrate) if f.syncrate else float("nan")
    width = float(f.tcspc_resolution)
    sizes = dict(zip(f.dims, f.shape))
    hw = " ".join(str(tags[k]) for k in ("HW_Type", "HW_Version") if tags.get(k))
    instrument = hw or "PicoQuant"
    meta = {"format": "ptu", "sync_rate_hz": sync, "bin_width_s": width,
            "channels": int(sizes.get("C", 1)), "frames": int(sizes.get("T", 1)),
            "instrument": instrument, "bins_per_period": int(f.number_bins_in_period),
            "photons": int(f.number_photons)}
    meta["note"] = (f"{pathlib.Path(path).name}: PicoQuant PTU T3 from {instrument}; header: "
                    f"bin width {width * 1e12:.4g} ps (MeasDesc_Resolution), sync "
                    f"{sync / 1e6:.6g} MHz (TTResult_SyncRate), {meta['channels']} channel(s), "
                    f"{meta['frames']} frame(s), {meta['bins_per_period']} bins per sync period")
    return meta


def read_ptu(path, n0=None, *, channels: Sequence[int] | None = None) -> DecaySet:
    """A PicoQuant ``.ptu`` T3 file: the TCSPC histogram of every (or the chosen) channel,
    summed over frames and pixels (an image: :func:`jaxsim.io.images.read_image`)."""
    path = pathlib.Path(path)
    with _open_ptu(path) as f:
        _refuse_t2(path, f)
        meta = ptu_header(path, f)
        try:
            h = np.asarray(f.decode_histogram(dtype=np.uint64))
        except ValueError as err:
            raise DataError(f"{path}: not a readable PTU file ({err})") from None
    h = h.reshape(-1, h.shape[-1])
    chans = list(range(h.shape[0])) if channels is None else list(channels)
    for c in chans:
        if not 0 <= c < h.shape[0]:
            raise DataError(f"{path}: channel {c} is not in the file: expected 0 to "
                            f"{h.shape[0] - 1}")
    keep = [c for c in chans if channels is not None or h[c].sum() > 0]
    meta["note"] += f"; decays: channel(s) {', '.join(str(c) for c in keep)} with photons"
    return _stack_histograms(path, [h[c] for c in keep], meta["bin_width_s"], n0,
                             [f"channel {c}" for c in keep], meta)


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
