"""Decay images (FLIM): one TCSPC decay per pixel, from a PicoQuant T3 ``.ptu`` image, a
Becker & Hickl ``.sdt`` image block, or a folder of decay files (one row of pixels, one per
decay in file-name order).

:func:`read_image` returns a :class:`DecayImage`: a :class:`~jaxsim.studies.decays.DecaySet`
of the ``ny * nx`` pixels (row-major) and the image's shape, with optional spatial binning
(``bin`` x ``bin`` pixels summed) and the photon count of each pixel, which
:meth:`DecayImage.too_few` compares with a threshold (pixels below it are not fitted).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np

from jaxsim.io.readers import formats, read_decays
from jaxsim.studies.decays import DataError, DecaySet, from_arrays


@dataclass(frozen=True)
class DecayImage:
    """``ds.y[k]`` is the decay of pixel ``(k // nx, k % nx)``; ``counts`` (ny, nx) its photons."""

    ds: DecaySet
    shape: tuple
    counts: np.ndarray
    note: str

    @property
    def ny(self) -> int:
        return int(self.shape[0])

    @property
    def nx(self) -> int:
        return int(self.shape[1])

    def too_few(self, min_counts: float) -> np.ndarray:
        """(ny * nx,) True for pixels with fewer than ``min_counts`` photons."""
        return self.counts.reshape(-1) < float(min_counts)

    def with_n0(self, n0) -> "DecayImage":
        """Every pixel at the excitation density ``n0`` (cm^-3)."""
        return DecayImage(self.ds.with_n0(np.full(self.ds.n_decays, float(n0))), self.shape,
                          self.counts, self.note)


def bin_pixels(cube: np.ndarray, factor: int) -> np.ndarray:
    """Sum ``factor`` x ``factor`` blocks of a (ny, nx, T) cube (partial edge blocks dropped)."""
    factor = int(factor)
    if factor < 1:
        raise DataError(f"bin = {factor!r}: expected an integer >= 1 (pixels summed per side)")
    ny, nx, t = cube.shape
    if factor > min(ny, nx):
        raise DataError(f"bin = {factor}: larger than the image ({ny} x {nx} pixels)")
    if factor == 1:
        return cube
    my, mx = ny // factor, nx // factor
    c = cube[: my * factor, : mx * factor].reshape(my, factor, mx, factor, t)
    return c.sum(axis=(1, 3))


def _ptu_cube(path, channel):
    from jaxsim.io.formats.picoquant import _open_ptu, _refuse_t2, ptu_header

    with _open_ptu(path) as f:
        _refuse_t2(path, f)
        meta = ptu_header(path, f)
        if not f.is_image:
            raise DataError(f"{path}: a point measurement, not an image (dims "
                            f"{''.join(f.dims)}): fit it with jaxsim fit {path} (no --pixels)")
        img = np.asarray(f.decode_image(frame=-1, channel=-1 if channel is None else channel,
                                        dtype=np.uint32, dtime=0, keepdims=True))
    # (T, Y, X, C, H) over the whole sync period: frames and channels summed (or the chosen)
    cube = img.sum(axis=(0, 3)).astype(float)
    meta["note"] += (f"; image {cube.shape[0]} x {cube.shape[1]} pixels, "
                     + ("channels summed" if channel is None else f"channel {channel}"))
    return cube, meta["bin_width_s"], meta


def _sdt_cube(path):
    import sdtfile

    try:
        f = sdtfile.SdtFile(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # sdtfile raises ValueError/AssertionError/struct errors
        raise DataError(f"{path}: not a readable SDT file ({type(err).__name__}: {err})") from None
    for i, (data, times) in enumerate(zip(f.data, f.times)):
        d = np.asarray(data)
        if d.ndim == 3:
            tt = np.asarray(times, dtype=float)
            width = float(tt[1] - tt[0])
            meta = {"format": "sdt", "bin_width_s": width, "sync_rate_hz": None, "channels": 1,
                    "frames": None, "instrument": "Becker & Hickl SPC"}
            meta["note"] = (f"{pathlib.Path(path).name}: Becker & Hickl SDT image block {i}, "
                            f"{d.shape[0]} x {d.shape[1]} pixels, {d.shape[2]} bins of "
                            f"{width * 1e12:.4g} ps (TAC range / gain / ADC from the "
                            "measurement description)")
            return d.astype(float), width, meta
    raise DataError(f"{path}: no image block (y, x, time) in the file: expected a FLIM "
                    "measurement; a decay file is fitted with jaxsim fit FILE (no --pixels)")


def _folder_cube(folder, time_unit):
    suffixes = {s for s in formats() if s}
    files = sorted(p for p in pathlib.Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no decay files (expected files ending in "
                        f"{', '.join(sorted(suffixes))})")
    sets = [read_decays(p, time_unit=time_unit, layout="columns") for p in files]
    first = sets[0]
    for p, d in zip(files, sets):
        if d.n_bins != first.n_bins or abs(d.bin_width - first.bin_width) > 1e-6 * first.bin_width:
            raise DataError(f"{p}: {d.n_bins} bins of {d.bin_width:g} s, but {files[0].name} has "
                            f"{first.n_bins} of {first.bin_width:g} s: expected one grid for the "
                            "folder")
        if d.is_counts != first.is_counts:
            raise DataError(f"{p}: counts and normalised decays mixed in one folder")
    y = np.concatenate([np.asarray(d.y) for d in sets])
    labels = [f"{p.name}:{lab}" for p, d in zip(files, sets) for lab in d.labels]
    meta = {k: first.meta.get(k) for k in ("bin_width_s", "sync_rate_hz", "channels", "frames",
                                           "instrument")}
    meta.update(format="folder", labels=labels)
    meta["note"] = (f"{folder}: {len(files)} file(s), {y.shape[0]} decay(s) of {first.n_bins} "
                    f"bins of {first.bin_width * 1e12:.4g} ps, as one row of pixels")
    return y[None], first, meta


def read_image(path, *, bin: int = 1, channel: int | None = None,
               time_unit: str = "ns") -> DecayImage:
    """Read a decay image: a T3 ``.ptu`` image (frames summed; channels summed unless
    ``channel``), an ``.sdt`` image block, or a folder of decay files (``time_unit``: of
    their text time columns). ``bin``: sum ``bin`` x ``bin`` pixels."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image file or folder")
    if path.is_dir():
        cube, first, meta = _folder_cube(path, time_unit)
        t, is_counts, sampling = np.asarray(first.t), first.is_counts, first.sampling
        t_unit = "s"
    else:
        suffix = path.suffix.lower()
        if suffix == ".ptu":
            cube, width, meta = _ptu_cube(path, channel)
        elif suffix == ".sdt":
            cube, width, meta = _sdt_cube(path)
        else:
            raise DataError(f"{path}: suffix {suffix!r} is not an image format: expected a .ptu "
                            "or .sdt image, or a folder of decay files")
        t, is_counts, sampling, t_unit = np.arange(cube.shape[-1]) * width, True, "bins", "s"
    cube = bin_pixels(cube, bin)
    if bin > 1:
        meta["note"] += f"; {bin} x {bin} pixels summed ({cube.shape[0]} x {cube.shape[1]})"
    ny, nx, nt = cube.shape
    meta.update(image_shape=(ny, nx), pixel_bin=int(bin))
    ds = from_arrays(t, cube.reshape(ny * nx, nt), None, time_unit=t_unit, is_counts=is_counts,
                     sampling=sampling, source=str(path),
                     labels=[f"pixel {i},{j}" for i in range(ny) for j in range(nx)], meta=meta)
    return DecayImage(ds, (ny, nx), cube.sum(axis=-1), meta["note"])


__all__ = ["DecayImage", "read_image", "bin_pixels"]
