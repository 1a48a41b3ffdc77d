"""Parameter maps of a FLIM fit as an xarray dataset in ``maps.zarr``.

Variables on dims (y, x): each free parameter's value and ``<name>_stderr`` (``units``
attribute), ``amplitude``, ``background``, ``chi2`` (deviance or chi^2 per degree of freedom;
``statistic`` attribute), ``status`` (int8; ``flag_values`` / ``flag_meanings``, see
:data:`jaxsim.studies.many.STATUS`), ``counts`` (photons per pixel) and ``iterations``. Pixels
that were not fitted hold NaN values and status 4 (too few counts).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from jaxsim.io.images import DecayImage
from jaxsim.studies.many import STATUS, ManyFit


def _jsonable(v):
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def maps_dataset(res: ManyFit, image: DecayImage, *, attrs: dict | None = None):
    """The :class:`xarray.Dataset` of ``res`` laid out on ``image``'s pixels."""
    import xarray as xr

    ny, nx = image.shape
    grid = lambda a: np.asarray(a).reshape(ny, nx)  # noqa: E731
    v = {}
    for name in res.free:
        unit = res.units[name]
        v[name] = (("y", "x"), grid(res.values[name]), {"units": unit, "long_name": name})
        v[f"{name}_stderr"] = (("y", "x"), grid(res.stderr[name]),
                               {"units": unit, "long_name": f"standard error of {name}"})
    v["amplitude"] = (("y", "x"), grid(res.amplitude), {"units": "counts" if
                                                       image.ds.is_counts else "1"})
    v["background"] = (("y", "x"), grid(res.background), {"units": "counts per bin" if
                                                         image.ds.is_counts else "1"})
    v["chi2"] = (("y", "x"), grid(res.reduced), {"statistic": res.statistic, "units": "1"})
    v["status"] = (("y", "x"), grid(res.status).astype(np.int8),
                   {"flag_values": list(STATUS), "flag_meanings":
                    " ".join(m.replace(" ", "_") for m in STATUS.values())})
    v["counts"] = (("y", "x"), np.asarray(image.counts, float), {"units": "photons"})
    v["iterations"] = (("y", "x"), grid(res.iterations).astype(np.int32), {})
    meta = {k: _jsonable(val) for k, val in image.ds.meta.items()
            if k in ("bin_width_s", "sync_rate_hz", "channels", "frames", "instrument",
                     "pixel_bin", "format")}
    a = {"model": res.model, "loss": res.loss_kind, "source": image.ds.source,
         "note": image.note, "free": list(res.free), "status_counts": json.dumps(res.counts()),
         **meta, **(attrs or {})}
    return xr.Dataset(v, coords={"y": np.arange(ny), "x": np.arange(nx)},
                      attrs={k: _jsonable(val) for k, val in a.items() if val is not None})


def write_maps(path, res: ManyFit, image: DecayImage, *, attrs: dict | None = None):
    """Write ``maps.zarr`` (replaces an existing store); returns the dataset."""
    ds = maps_dataset(res, image, attrs=attrs)
    ds.to_zarr(pathlib.Path(path), mode="w", consolidated=False)
    return ds


__all__ = ["maps_dataset", "write_maps"]
