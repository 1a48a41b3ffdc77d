"""``jaxsim fit DATA --model M --n0 a,b,c --free NAME,... --out DIR``: fit measured decays."""

from __future__ import annotations

import pathlib
import sys

EPILOG = """\
examples:
  # PEARS-style normalised decays (time in ns, one column per fluence), btd model:
  jaxsim fit BTD_TRPL_processed.txt --model btd --n0 55e12,164e12,511e12,1720e12,4750e12 \\
      --free B,k_T,k_D,N_T,p0 --loss lsq --out out/btd
  # raw TCSPC counts with a Gaussian instrument response of 50 ps FWHM:
  jaxsim fit decay.ptu --model trap_detrap --n0 1e16 --free A,D,K1 --fix B=1e-10 \\
      --irf-fwhm 50ps --crop :40ns --out out/ptu
  # HZB layout (power, ND, background rows): n0 proportional to the laser power
  jaxsim fit sample1.csv --model abc --n0-per-watt 1e21 --free A,B --rebin 8 --out out/s1

Writes DIR/fit.json (values and standard errors in SI-cm units), DIR/fit.png (data, model and
residuals; log scale, time in ns) and prints a table; with --posterior also DIR/posterior.nc
and DIR/corner.png. Exit status 0 when the fit converged, 1
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
    from jaxsim.cli._help import Formatter, model_help, models_and_parameters
    from jaxsim.cli._times import TIME_HELP

    p = subparsers.add_parser(
        "fit", help="fit model parameters to measured TRPL / TCSPC decays",
        description="Global fit of a rate-equation model to one or more decays (one file: "
        "text/CSV 'X/Y1/Y2...', PicoQuant .ptu/.phu, Becker & Hickl .sdt). Physical parameters "
        "are shared; amplitude, background and time shift are per decay. Times on the command "
        f"line (--crop, --irf-fwhm) are in {TIME_HELP}; --time-unit is only the unit of a "
        "text file's time column.",
        epilog=EPILOG + "\n" + models_and_parameters(
            "parameters (--free, --fix, --init, --bounds; SI-cm units)", fit_ranges=True),
        formatter_class=Formatter)
    p.add_argument("data", nargs="?", default=None,
                   help="decay file: text/CSV (time column, then one column per decay), "
                   ".ptu, .phu or .sdt (or --pixels instead)")
    p.add_argument("--pixels", default=None, metavar="IMAGE_OR_FOLDER",
                   help="fit every pixel of a FLIM image on its own (a T3 .ptu image, a .sdt "
                   "image, or a folder of decay files: one pixel per decay) and write "
                   "DIR/maps.zarr and DIR/maps.png; --n0 is one density for all pixels "
                   "(default: off)")
    p.add_argument("--bin", type=int, default=1, metavar="N",
                   help="with --pixels: sum N x N pixels into one (default 1)")
    p.add_argument("--min-counts", type=float, default=100.0, metavar="PHOTONS",
                   help="with --pixels: pixels with fewer photons are not fitted (status 'too "
                   "few counts'; default 100)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="with --pixels: pixels fitted at once (default 64 on CPU, 1024 on an "
                   "accelerator)")
    p.add_argument("--model", default="trap_detrap", metavar="NAME",
                   help=model_help("trap_detrap"))
    p.add_argument("--n0", default=None, metavar="N1,N2,...",
                   help="excitation density of each decay in cm^-3, comma-separated, in the "
                   "order of the file's decays (this or --n0-per-watt is required)")
    p.add_argument("--n0-per-watt", type=float, default=None, metavar="CM3_PER_W",
                   help="n0 = VALUE x laser power in W, in cm^-3 W^-1, with the power read from "
                   "a power/ND/background file (layout power_nd_background); default: none, --n0 "
                   "gives n0")
    p.add_argument("--free", required=True, metavar="NAME,...",
                   help="parameters to fit, comma-separated (required), e.g. A,D,K1; their "
                   "search ranges come from the parameter tables (see --bounds)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter at VALUE in its unit (repeatable; parameters neither "
                   "free nor fixed keep their defaults, listed below)")
    p.add_argument("--init", action="append", default=[], metavar="NAME=VALUE",
                   help="starting value of a free parameter in its unit (repeatable; default: "
                   "its default below)")
    p.add_argument("--bounds", action="append", default=[], metavar="NAME=LO:HI",
                   help="search range of a free parameter in its unit (repeatable; default: the "
                   "range of its parameter table)")
    p.add_argument("--loss", choices=("poisson", "lsq", "loglsq"), default=None,
                   help="what is minimised: poisson (Poisson deviance, raw counts), lsq (least "
                   "squares, normalised data), loglsq (least squares of the logarithms: every "
                   "decade weighs the same); default: poisson for counts, lsq otherwise")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--irf", default=None, metavar="FILE",
                   help="instrument response from a file with the data's bins (default: none)")
    g.add_argument("--irf-fwhm", default=None, metavar="TIME",
                   help=f"Gaussian instrument response of this full width at half maximum, in "
                   f"{TIME_HELP} (default: none)")
    p.add_argument("--time-unit", default="ns", metavar="UNIT",
                   help="unit of the time column of a text/CSV data or --irf file: s, ms, us, "
                   "ns, ps or fs (default ns); .ptu/.phu/.sdt files carry their own")
    p.add_argument("--layout", default="auto", choices=("auto", "columns", "power_nd_background"),
                   help="text file layout: columns (a time column and one column per decay), "
                   "power_nd_background (after the header, three rows at time 0 give each "
                   "decay's laser power in W, ND filter as log10 attenuation and mean background "
                   "counts: the HZB layout), or auto (the latter when the first rows have time "
                   "0; the default)")
    p.add_argument("--crop", default=None, metavar="TMIN:TMAX",
                   help=f"fit only bins with TMIN <= t < TMAX, times in {TIME_HELP}; either side "
                   "may be empty, e.g. --crop :600ns (default: every bin)")
    p.add_argument("--shift-to-peak", action="store_true",
                   help="move each decay's peak to t = 0 (off by default; with an IRF the fit's "
                   "time shift does this properly)")
    p.add_argument("--normalise", action="store_true",
                   help="divide each decay by its peak (off by default; counts become "
                   "normalised data, fitted by least squares)")
    p.add_argument("--rebin", type=int, default=1, metavar="N",
                   help="sum N adjacent bins into one (default 1: no rebinning)")
    p.add_argument("--sigma", type=float, default=None,
                   help="known noise of least-squares data, one standard deviation in the data's "
                   "unit (default: estimated from the residuals)")
    p.add_argument("--background", choices=("auto", "free", "fixed"), default="auto",
                   help="constant background per decay: free (fitted), fixed (the file's; without "
                   "one, the median of the last 5%% of bins for counts, 0 for normalised data), "
                   "or auto (free unless the file gives it; the default)")
    p.add_argument("--shift", choices=("auto", "free", "fixed"), default="auto",
                   help="time shift of each decay against the model: free (fitted within 10 "
                   "bins), fixed (none), or auto (free only with an instrument response; the "
                   "default)")
    p.add_argument("--starts", type=int, default=8, metavar="N",
                   help="starting points run together in one batch: the initial values plus a "
                   "Latin hypercube within a decade of them (default 8)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the starting points (default 0)")
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="also profile the loss over this free parameter, with a 95 %% interval, "
                   "into DIR/profile.json (default: no profile)")
    p.add_argument("--rep-rate", default=None, metavar="RATE",
                   help="repetition rate of the laser: each decay is then the periodic steady "
                   "state of the pulse train (carriers left from earlier pulses included), in Hz "
                   "or with a unit: 53.78kHz, 1MHz, 1e6 (default: the file's sync rate where its "
                   "header has one, else a single pulse from the dark)")
    p.add_argument("--single-pulse", action="store_true",
                   help="fit a single pulse from the dark even where the file gives a sync rate "
                   "(default: off)")
    p.add_argument("--posterior", action="store_true",
                   help="also sample the posterior of every unknown by NUTS from the fit's "
                   "optimum (priors log-uniform / uniform over the search ranges; see --prior): "
                   "DIR/posterior.nc (ArviZ), DIR/corner.png, a 'posterior' block in fit.json, "
                   "95 %% bands on fit.png (default: off; needs pip install 'jaxsim[posterior]')")
    p.add_argument("--draws", type=int, default=1000, metavar="N",
                   help="posterior draws kept per chain (default 1000)")
    p.add_argument("--chains", type=int, default=4, metavar="C",
                   help="posterior chains, run together in one batch (default 4)")
    p.add_argument("--warmup", type=int, default=150, metavar="N",
                   help="adaptation iterations before the draws (default 150; the chains start "
                   "whitened by the fit's covariance and adapt one step size and mass matrix "
                   "together)")
    p.add_argument("--posterior-seed", type=int, default=0, metavar="S",
                   help="random seed of the posterior sampler (default 0)")
    p.add_argument("--prior", action="append", default=[], metavar="NAME=LO:HI",
                   help="prior range of a free parameter in its unit (repeatable; log-uniform "
                   "for log-scaled parameters, uniform otherwise; default: its search range)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache (default: on, in "
                   "$JAXSIM_CACHE_DIR or ~/.cache/jaxsim/jax; JAXSIM_NO_CACHE=1 also turns it off)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (default: progress on)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder, created if missing (required): DIR/fit.json, "
                   "DIR/fit.png")
    p.set_defaults(func=run)


def _crop(text: str, ds, time_unit: str = "s"):
    """``--crop TMIN:TMAX`` in s (or with units); a side outside the data is refused, since a
    bare number is seconds (a number meant in --time-unit would otherwise crop silently)."""
    from jaxsim.cli._times import TIME_HELP, parse_time
    from jaxsim.physics.errors import ParameterError

    lo, sep, hi = text.partition(":")
    if not sep:
        raise ParameterError(f"--crop = {text!r}: expected TMIN:TMAX (either side may be empty), "
                             "e.g. --crop 2ns:600ns")
    t_lo = parse_time(lo, "--crop TMIN") if lo.strip() else None
    t_hi = parse_time(hi, "--crop TMAX") if hi.strip() else None
    from jaxsim.io import TIME_UNITS

    first, last = float(ds.t[0]), float(ds.t[-1] + ds.bin_width)
    for name, side, v in (("TMIN", lo.strip(), t_lo), ("TMAX", hi.strip(), t_hi)):
        if v is None or first <= v <= last:
            continue
        hint = ""
        try:  # a bare number meant in the file's unit: say how to write it
            alt = float(side) * TIME_UNITS.get(time_unit, 1.0)
            if time_unit != "s" and first <= alt <= last:
                hint = f"; for {side} {time_unit} write {side}{time_unit}"
        except ValueError:
            pass
        raise ParameterError(
            f"--crop {name} = {side!r} = {v:g} s is outside the data ({first:g} to {last:g} s): "
            f"expected a time within it, in {TIME_HELP} (--time-unit is the unit of the file "
            f"only){hint}")
    if t_lo is not None and t_hi is not None and not t_hi > t_lo:
        raise ParameterError(f"--crop = {text!r}: TMAX is not after TMIN: expected TMIN < TMAX")
    return t_lo, t_hi


_RATE_UNITS = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}


def parse_rate(text: str, field: str = "--rep-rate") -> float:
    """Hz from ``"1e6"``, ``"53.78kHz"``, ``"1 MHz"``; a positive finite rate, else a
    :class:`ParameterError` naming ``field``."""
    import math
    import re

    from jaxsim.physics.errors import ParameterError

    m = re.match(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$", str(text))
    unit = m.group(2) if m else None
    if not m or (unit and unit not in _RATE_UNITS):
        raise ParameterError(f"{field} = {text!r} is not a rate: expected a number in Hz or with "
                             f"a unit ({', '.join(_RATE_UNITS)}), e.g. 1e6 or 53.78kHz")
    value = float(m.group(1)) * _RATE_UNITS[unit or "Hz"]
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{field} = {text!r}: expected a repetition rate > 0")
    return value


def rep_rate_of(args, ds) -> float | None:
    """The fit's repetition rate: --rep-rate, else the file's sync rate, else None (a single
    pulse); --single-pulse forces None."""
    from jaxsim.physics.errors import ParameterError

    if getattr(args, "single_pulse", False):
        if getattr(args, "rep_rate", None) is not None:
            raise ParameterError("give either --rep-rate or --single-pulse, not both")
        return None
    if getattr(args, "rep_rate", None) is not None:
        return parse_rate(args.rep_rate)
    import math

    sync = ds.meta.get("sync_rate_hz")
    if sync is None or not (math.isfinite(float(sync)) and float(sync) > 0):
        return None  # no (usable) sync rate in the header: a single pulse
    return float(sync)
def posterior_table(post) -> str:
    """The posterior's summary: median, central 95 % interval, R-hat, bulk ESS per unknown."""
    lines = [(f"posterior: {post.chains} chains x {post.draws} draws (+{post.warmup} warmup), "
              f"{post.divergences} divergent, {post.seconds.get('total_s', 0):.1f} s")]
    lines.append(f"{'unknown':<16} {'median':>12} {'2.5 %':>12} {'97.5 %':>12} {'R-hat':>7} "
                 f"{'ESS':>7} {'(med-fit)/se':>12}")
    for name, d in post.summary.items():
        lines.append(f"{name:<16} {d['median']:12.4e} {d['q2.5']:12.4e} {d['q97.5']:12.4e} "
                     f"{d['rhat']:7.4f} {d['ess_bulk']:7.0f} {d['median_offset_sigma']:12.2f}")
    return "\n".join(lines)


def parse_ranges(texts, option: str) -> dict:
    """``["k_D=1e-11:1e-8", ...]`` -> ``{"k_D": (1e-11, 1e-8)}``; a clear error naming ``option``."""
    from jaxsim.physics.errors import ParameterError

    out = {}
    for text in texts:
        name, _, rng = text.partition("=")
        lo, _, hi = rng.partition(":")
        try:
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ParameterError(f"{option} {text!r}: expected NAME=LO:HI") from None
    return out


def run(args) -> int:
    import time
    import warnings

    import numpy as np

    t0 = time.perf_counter()

    def say(msg):
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    if args.pixels is not None or args.data is None:
        from jaxsim.cli.fit_pixels import run_pixels

        return run_pixels(args, say)
    say(f"reading {args.data}")

    import importlib
    import threading

    # the figure's libraries load in a thread while XLA compiles the fit (it holds no Python
    # lock then); started earlier, the import would slow down the reading and tracing
    plots = {}
    loader = threading.Thread(target=lambda: plots.setdefault(
        "mod", importlib.import_module("jaxsim.plots.fit")), daemon=True)

    def start_loader():
        if loader.ident is None:
            loader.start()

    from jaxsim import io as D
    from jaxsim.physics.errors import ParameterError
    from jaxsim.studies.fit import (FitWarning, fit, profile_likelihood, save_json,
                                   save_profile_json)

    D.time_scale(args.time_unit)  # an unknown unit is refused before reading
    ds = D.read_decays(args.data, time_unit=args.time_unit, layout=args.layout)
    if ds.meta.get("note"):
        say(f"note: {ds.meta['note']}")
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
        ds = D.crop(ds, *_crop(args.crop, ds, args.time_unit))
    if args.normalise:
        ds = D.normalise(ds)
    if args.irf:
        k, off = D.read_irf(args.irf, time_unit=args.time_unit, bin_width_s=ds.bin_width)
        ds = ds.with_irf(k, off, record=f"irf file {args.irf}")
    elif args.irf_fwhm:
        from jaxsim.cli._times import parse_time

        fwhm = parse_time(args.irf_fwhm, "--irf-fwhm")
        if not fwhm > 0:
            raise ParameterError(f"--irf-fwhm = {args.irf_fwhm!r}: expected a width > 0")
        ds = ds.with_gaussian_irf(fwhm)
    bounds = parse_ranges(args.bounds, "--bounds")
    free = tuple(n.strip() for n in args.free.split(",") if n.strip())
    rep_rate = rep_rate_of(args, ds)
    if rep_rate is not None and args.rep_rate is None:
        say(f"forward model: periodic steady state at the file's sync rate, {rep_rate:g} Hz "
            "(--single-pulse: a single pulse from the dark)")
    priors = {}
    for text in args.prior:
        name, _, rng = text.partition("=")
        lo, _, hi = rng.partition(":")
        try:
            priors[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ParameterError(f"--prior {text!r}: expected NAME=LO:HI in the parameter's "
                                 "unit, e.g. k_D=1e-11:1e-8") from None
    if priors and not args.posterior:
        raise ParameterError("--prior is given without --posterior: expected both")
    if args.posterior:
        for what, v, least in (("--draws", args.draws, 1), ("--chains", args.chains, 1),
                               ("--warmup", args.warmup, 0)):
            if v < least:
                raise ParameterError(f"{what} = {v}: expected an integer >= {least}")
        try:  # only with --posterior: a plain fit does not pay for these imports
            from jaxsim.studies.posterior import sample_posterior
        except ImportError as e:
            raise ParameterError(f"--posterior needs blackjax and arviz ({e}): "
                                 "pip install 'jaxsim[posterior]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # printed in the table instead
        result = fit(args.model, ds, free=free, fixed=_pairs(args.fix, "--fix"),
                     init=_pairs(args.init, "--init"), bounds=bounds, loss=args.loss,
                     sigma=args.sigma, background=args.background, shift=args.shift,
                     n_starts=args.starts, seed=args.seed, progress=say,
                     cache=False if args.no_cache else None, rep_rate=rep_rate,
                     quick_compile=True, while_compiling=start_loader)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    post = None
    if args.posterior:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)  # printed below instead
            post = sample_posterior(result, chains=args.chains, draws=args.draws,
                                    warmup=args.warmup, seed=args.posterior_seed,
                                    priors=priors, progress=say)
        post.save_netcdf(out / "posterior.nc")
        from jaxsim.plots import corner

        corner.plot_corner(post, out / "corner.png")
        for msg in post.warnings:
            print(f"warning: {msg}", file=sys.stderr, flush=True)
    save_json(result, out / "fit.json", extra={"posterior": post.to_json()} if post else None)
    if args.profile:
        save_profile_json(profile_likelihood(result, args.profile), out / "profile.json")
    if args.profile:
        say(f"profiled {args.profile}")
    if loader.ident is not None:
        loader.join()
    plot_fit = plots.get("mod") or importlib.import_module("jaxsim.plots.fit")
    plot_fit.plot_fit(result, out / "fit.png",
                      band=None if post is None or post.band is None else post.band[[0, 2]])
    print(result.table())
    if post is not None:
        print(posterior_table(post))
        say(f"wrote {out / 'posterior.nc'} and {out / 'corner.png'}")
    say(f"wrote {out / 'fit.json'} and {out / 'fit.png'}")
    return 0 if result.converged else 1
