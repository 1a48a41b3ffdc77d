"""``jaxsim fit DATA --model M --n0 a,b,c --free NAME,... --out DIR``: fit measured decays."""

from __future__ import annotations

import argparse
import pathlib
import sys

EPILOG = """\
examples:
  # PEARS-style normalised decays (time in ns, one column per fluence), btd model:
  jaxsim fit BTD_TRPL_processed.txt --model btd --n0 55e12,164e12,511e12,1720e12,4750e12 \\
      --free B,k_T,k_D,N_T,p0 --loss lsq --out out/btd
  # raw TCSPC counts with a Gaussian instrument response of 50 ps FWHM:
  jaxsim fit decay.ptu --model trap_detrap --n0 1e16 --free A,D,K1 --fix B=1e-10 \\
      --irf-fwhm 50e-12 --out out/ptu
  # HZB layout (power, ND, background rows): n0 proportional to the laser power
  jaxsim fit sample1.csv --model abc --n0-per-watt 1e21 --free A,B --rebin 8 --out out/s1

Writes DIR/fit.json (values and standard errors in SI-cm units), DIR/fit.png (data, model and
residuals; log scale, time in ns) and prints a table. Exit status 0 when the fit converged, 1
when it did not (results are still written), 2 on bad input.
"""


def _pairs(items, what):
    from jaxsim.physics.errors import ParameterError

    out = {}
    for text in items:
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ParameterError(f"{what} {part!r}: expected NAME=VALUE, e.g. B=1e-10")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise ParameterError(f"{what} {part!r}: {value!r} is not a number") from None
    return out


def _floats(text, what):
    from jaxsim.physics.errors import ParameterError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{what} {text!r}: expected comma-separated numbers") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit model parameters to measured TRPL / TCSPC decays",
        description="Global fit of a rate-equation model to one or more decays (one file: text/CSV "
        "'X/Y1/Y2...', PicoQuant .ptu/.phu, Becker & Hickl .sdt). Physical parameters are shared; "
        "amplitude, background and time shift are per decay.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="decay file")
    p.add_argument("--model", default="trap_detrap", help="model name (default trap_detrap)")
    p.add_argument("--n0", default=None, help="excitation density per decay, cm^-3 (a,b,c)")
    p.add_argument("--n0-per-watt", type=float, default=None,
                   help="n0 = VALUE * laser power (W) from a power/ND/background file")
    p.add_argument("--free", required=True, help="parameters to fit, comma-separated")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter (repeatable; others keep their defaults)")
    p.add_argument("--init", action="append", default=[], metavar="NAME=VALUE",
                   help="starting value of a free parameter (repeatable)")
    p.add_argument("--bounds", action="append", default=[], metavar="NAME=LO:HI",
                   help="search range of a free parameter (repeatable)")
    p.add_argument("--loss", choices=("poisson", "lsq", "loglsq"), default=None,
                   help="default: poisson for counts, lsq for normalised data")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--irf", default=None, help="instrument response file (same bins)")
    g.add_argument("--irf-fwhm", type=float, default=None, help="Gaussian IRF FWHM in s")
    p.add_argument("--time-unit", default="ns", help="time unit of text files (ns|ps|us|s)")
    p.add_argument("--layout", default="auto", choices=("auto", "columns", "power_nd_background"))
    p.add_argument("--crop", default=None, metavar="TMIN:TMAX",
                   help="fit only TMIN <= t < TMAX (in --time-unit; either side may be empty)")
    p.add_argument("--shift-to-peak", action="store_true", help="move each peak to t = 0")
    p.add_argument("--normalise", action="store_true", help="divide each decay by its peak")
    p.add_argument("--rebin", type=int, default=1, help="sum N adjacent bins")
    p.add_argument("--sigma", type=float, default=None, help="known noise (least squares)")
    p.add_argument("--background", choices=("auto", "free", "fixed"), default="auto")
    p.add_argument("--shift", choices=("auto", "free", "fixed"), default="auto")
    p.add_argument("--starts", type=int, default=8, help="starting points (one batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=None, metavar="NAME", help="also profile this parameter")
    p.add_argument("--no-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache (default: on, in "
                   "$JAXSIM_CACHE_DIR or ~/.cache/jaxsim/jax; JAXSIM_NO_CACHE=1 also turns it off)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args) -> int:
    import time
    import warnings

    import numpy as np

    t0 = time.perf_counter()

    def say(msg):
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    say(f"reading {args.data}")

    import importlib
    import threading

    # the figure's libraries load in a thread while the fit compiles (XLA releases the GIL)
    plots = {}
    loader = threading.Thread(target=lambda: plots.setdefault(
        "mod", importlib.import_module("jaxsim.plots.fit")), daemon=True)
    loader.start()

    from jaxsim import io as D
    from jaxsim.physics.errors import ParameterError
    from jaxsim.studies.fit import (FitWarning, fit, profile_likelihood, save_json,
                                   save_profile_json)

    scale = D.time_scale(args.time_unit)
    ds = D.read_decays(args.data, time_unit=args.time_unit, layout=args.layout)
    if args.n0 is not None and args.n0_per_watt is not None:
        raise ParameterError("give either --n0 or --n0-per-watt, not both")
    if args.n0 is not None:
        ds = ds.with_n0(_floats(args.n0, "--n0"))
    elif args.n0_per_watt is not None:
        if "power_W" not in ds.meta:
            raise ParameterError(f"--n0-per-watt: {args.data} has no power row "
                                 "(expected the power_nd_background layout)")
        ds = ds.with_n0(np.asarray(ds.meta["power_W"]) * args.n0_per_watt)
    else:
        raise ParameterError(f"--n0 is missing: expected {ds.n_decays} excitation densities "
                             "(cm^-3), one per decay")
    if args.rebin > 1:
        ds = D.rebin(ds, args.rebin)
    if args.shift_to_peak:
        ds = D.shift_to_peak(ds)
    if args.crop:
        lo, _, hi = args.crop.partition(":")
        ds = D.crop(ds, float(lo) * scale if lo else None, float(hi) * scale if hi else None)
    if args.normalise:
        ds = D.normalise(ds)
    if args.irf:
        k, off = D.read_irf(args.irf, time_unit=args.time_unit, bin_width_s=ds.bin_width)
        ds = ds.with_irf(k, off, record=f"irf file {args.irf}")
    elif args.irf_fwhm:
        ds = ds.with_gaussian_irf(args.irf_fwhm)
    bounds = {}
    for text in args.bounds:
        name, _, rng = text.partition("=")
        lo, _, hi = rng.partition(":")
        try:
            bounds[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ParameterError(f"--bounds {text!r}: expected NAME=LO:HI") from None
    free = tuple(n.strip() for n in args.free.split(",") if n.strip())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # printed in the table instead
        result = fit(args.model, ds, free=free, fixed=_pairs(args.fix, "--fix"),
                     init=_pairs(args.init, "--init"), bounds=bounds, loss=args.loss,
                     sigma=args.sigma, background=args.background, shift=args.shift,
                     n_starts=args.starts, seed=args.seed, progress=say,
                     cache=False if args.no_cache else None)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_json(result, out / "fit.json")
    if args.profile:
        save_profile_json(profile_likelihood(result, args.profile), out / "profile.json")
    if args.profile:
        say(f"profiled {args.profile}")
    loader.join()
    plot_fit = plots.get("mod") or importlib.import_module("jaxsim.plots.fit")
    plot_fit.plot_fit(result, out / "fit.png")
    print(result.table())
    say(f"wrote {out / 'fit.json'} and {out / 'fit.png'}")
    return 0 if result.converged else 1
