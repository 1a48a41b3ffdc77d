"""``jaxsim fit --pixels IMAGE_OR_FOLDER``: every pixel of a FLIM image fitted on its own
(:func:`jaxsim.studies.many.fit_decays`), starting from and timed by a fit of the summed decay;
writes DIR/maps.zarr, DIR/maps.png and DIR/maps.json."""

from __future__ import annotations

import json
import pathlib
import sys
import warnings


def run_pixels(args, say) -> int:
    import numpy as np

    from jaxsim import io as D
    from jaxsim.cli.fit import _crop, _floats, _pairs, parse_ranges
    from jaxsim.io.images import read_image
    from jaxsim.io.maps import write_maps
    from jaxsim.physics.errors import ParameterError
    from jaxsim.studies.fit import FitWarning, fit
    from jaxsim.studies.many import fit_decays

    if args.pixels is None:
        raise ParameterError("no data: expected a decay file, or --pixels IMAGE_OR_FOLDER")
    if args.data is not None:
        raise ParameterError(f"give either a decay file ({args.data}) or --pixels, not both")
    if args.bin < 1:
        raise ParameterError(f"--bin = {args.bin}: expected an integer >= 1")
    if not (np.isfinite(args.min_counts) and args.min_counts >= 0):
        raise ParameterError(f"--min-counts = {args.min_counts!r}: expected photons >= 0")
    if args.n0 is None:
        raise ParameterError("--n0 is missing: expected one excitation density (cm^-3) for "
                             "every pixel")
    n0 = _floats(args.n0, "--n0")
    if len(n0) != 1:
        raise ParameterError(f"--n0 = {args.n0!r}: expected one density (cm^-3) for all pixels")
    for opt in ("irf", "n0_per_watt", "profile", "shift_to_peak", "normalise"):
        if getattr(args, opt):
            raise ParameterError(f"--{opt.replace('_', '-')} is not available with --pixels")
    say(f"reading {args.pixels}")
    image = read_image(args.pixels, bin=args.bin, time_unit=args.time_unit).with_n0(n0[0])
    say(f"note: {image.note}")
    ds = image.ds
    if args.rebin > 1:
        ds = D.rebin(ds, args.rebin)
    if args.crop:
        ds = D.crop(ds, *_crop(args.crop, ds, args.time_unit))
    if args.irf_fwhm:
        from jaxsim.cli._times import parse_time

        fwhm = parse_time(args.irf_fwhm, "--irf-fwhm")
        if not fwhm > 0:
            raise ParameterError(f"--irf-fwhm = {args.irf_fwhm!r}: expected a width > 0")
        ds = ds.with_gaussian_irf(fwhm)
    skip = image.too_few(args.min_counts)
    if skip.all():
        raise ParameterError(f"--min-counts = {args.min_counts:g}: no pixel has that many photons "
                             f"(most: {float(image.counts.max()):g})")
    bounds = parse_ranges(args.bounds, "--bounds")
    free = tuple(n.strip() for n in args.free.split(",") if n.strip())
    fixed, init = _pairs(args.fix, "--fix"), _pairs(args.init, "--init")
    cache = False if args.no_cache else None
    # the summed decay of the fitted pixels gives the pulse time (shared by all pixels) and
    # the pixels' starting values
    summed = ds.replace(y=np.asarray(ds.y)[~skip].sum(axis=0, keepdims=True),
                        n0=np.asarray(ds.n0)[:1], mask=np.asarray(ds.mask)[:1],
                        background=np.asarray(ds.background)[:1], labels=("summed",))
    say(f"fitting the summed decay of {int((~skip).sum())} pixel(s) first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        total = fit(args.model, summed, free=free, fixed=fixed, init=init, bounds=bounds,
                    loss=args.loss, sigma=args.sigma, background=args.background,
                    shift=args.shift, n_starts=args.starts, seed=args.seed, cache=cache)
    shift = max(float(total.per_decay[0]["shift"]), 0.0)
    start = {n: total.value(n) for n in free}
    say("summed decay: " + ", ".join(f"{n} = {v:.4g}" for n, v in start.items())
        + f", pulse at {shift / 1e-9:.4g} ns (starting values and pulse time of the pixels; a sum of "
        f"different decays need not fit the model: converged = {total.converged})")
    res = fit_decays(args.model, ds, free=free, fixed=fixed, init=start, bounds=bounds,
                     loss=args.loss, sigma=args.sigma, shift=shift, background=args.background,
                     skip=skip, batch=args.batch, progress=say, cache=cache)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    maps = write_maps(out / "maps.zarr", res, image,
                      attrs={"shift_s": shift, "n0_cm3": n0[0], "min_counts": args.min_counts})
    from jaxsim.plots.maps import plot_maps

    plot_maps(maps, out / "maps.png")
    summary = {"model": res.model, "free": list(free), "n_pixels": res.n,
               "image_shape": list(image.shape), "status_counts": res.counts(),
               "note": image.note, "shift_s": shift, "timings_s": res.timings,
               "summed_fit": total.to_json(),
               "median": {n: float(np.nanmedian(np.where(res.status == 0, res.values[n], np.nan)))
                          for n in free}}
    (out / "maps.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"{res.n} pixel(s) ({image.ny} x {image.nx}): "
          + ", ".join(f"{v} {k}" for k, v in res.counts().items()), file=sys.stdout)
    for n in free:
        ok = res.status == 0
        if ok.any():
            v = res.values[n][ok]
            print(f"{n:<10} median {np.median(v):.4e} {res.units[n]}  (16-84 %: "
                  f"{np.percentile(v, 16):.3e} to {np.percentile(v, 84):.3e})")
    say(f"wrote {out / 'maps.zarr'}, {out / 'maps.png'} and {out / 'maps.json'}")
    return 0 if np.any(res.status == 0) else 1
