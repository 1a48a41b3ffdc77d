"""Fitting benchmark rows for ``jaxsim bench``, each against a SciPy reference run in the same
benchmark (compare ratios, not times: the machine is shared).

- ``pears_btd``: the README's example, PEARS's BTD data set (5 normalised decays x 1001 points,
  btd, 5 shared + 10 per-decay unknowns). The reference re-implements PEARS's procedure
  (Péan et al.; ``scipy.optimize.least_squares``, 3-point finite-difference Jacobian, ``odeint``,
  parameters scaled to O(1), bounds [0, inf), intensity factor and offset per decay, PEARS's own
  starting values) and runs, like ``jaxsim fit``, in a fresh Python process (its source is
  handed to ``python -c``, so that it imports NumPy and SciPy only). Rows: ``scipy_pears``,
  ``jaxsim_cli_cold`` (``jaxsim fit`` in a new process, empty compilation cache),
  ``jaxsim_cli_warm_cache`` (a new process, the cache filled by the cold run),
  ``jaxsim_second_fit`` (a second fit of same-shaped data in one process); each with its wall
  time, fitted values and ``ratio_vs_scipy``. The runs alternate (``reps`` rounds).
- ``global_fit``: trap_detrap, free A, D, K1 (B, C fixed), 2 decays of Poisson counts with a
  Gaussian IRF, amplitude/background/shift per decay, against ``least_squares`` on Poisson
  deviance residuals with an LSODA forward model (``final_loss`` of both evaluated by jaxsim's
  exact model: half the deviance).
- ``many_fits``: independent single-decay least-squares fits (:func:`fit_many`, all decays
  in one batched optimiser) against a SciPy ``least_squares`` loop (LSODA) over a subset:
  decays per second of each and their ratio, with the parameter agreement on the shared
  decays. ``python -m jaxsim.bench.fit --many N`` runs it alone (N decays, 200 by SciPy).
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

PEARS_N0 = (55e12, 164e12, 511e12, 1720e12, 4750e12)

PEARS_FREE = ("B", "k_T", "k_D", "N_T", "p0")

#: PEARS upstream (core/tests.py, fit3), cm^3 s^-1 and cm^-3
PEARS_UPSTREAM = {"B": 2.594e-10, "k_T": 1.228e-7, "k_D": 8.357e-10, "N_T": 5.986e13,
                  "p0": 5.978e13}


def find_pears_data() -> pathlib.Path | None:
    """``$JAXSIM_PEARS_DATA``, else ``shared/data/pears/BTD_TRPL_processed.txt`` beside the
    working directory or the package (or a parent of either)."""
    env = os.environ.get("JAXSIM_PEARS_DATA")
    if env:
        return pathlib.Path(env) if pathlib.Path(env).exists() else None
    rel = pathlib.Path("shared") / "data" / "pears" / "BTD_TRPL_processed.txt"
    for base in (pathlib.Path.cwd(), pathlib.Path(__file__).resolve()):
        for p in [base, *base.parents]:
            if (p / rel).exists():
                return p / rel
    return None


def pears_scipy_fit(path: str, n0s=PEARS_N0) -> dict:
    """PEARS's BTD global fit, re-implemented with SciPy (self-contained: run from its source).

    k in cm^3 ns^-1 and time in ns as PEARS; PL = n_e (n_h + p0) / N0 normalised at t = 0;
    model of decay k: I_k (PL / PL(0) + y0_k) / (1 + y0_k); 5 shared + 2 x 5 per-decay
    unknowns, each scaled by its starting value's power of ten; least_squares with jac='3-point',
    bounds [0, inf), PEARS's starting values (k_B 1e-19, k_T 1e-17, k_D 1e-18 cm^3/ns,
    p0 = N_T = 1e12 cm^-3, y0 = 0, I = 1).
    """
    import time as _time

    import numpy as _np
    from scipy.integrate import odeint
    from scipy.optimize import least_squares as _lsq

    t0 = _time.perf_counter()
    d = _np.loadtxt(path)
    t, ys = d[:, 0], d[:, 1:].T
    scales = _np.array([1e-19, 1e-17, 1e-18, 1e12, 1e12])  # k_B, k_T, k_D, p0, N_T
    nfev = [0]

    def trpl(n0, kb, kt, kd, p0, nt):
        def rhs(y, _t):
            ne, ntr, nh = y
            b, tr, dd = kb * ne * (nh + p0), kt * ne * (nt - ntr), kd * ntr * (nh + p0)
            return [-b - tr, tr - dd, -b - dd]

        y = odeint(rhs, [n0, 0.0, n0], t)
        pl = y[:, 0] * (y[:, 2] + p0) / n0
        return pl / pl[0]

    def resid(x):
        nfev[0] += 1
        ph = x[:5] * scales
        out = []
        for k, n0 in enumerate(n0s):
            y0, amp = x[5 + 2 * k], x[6 + 2 * k]
            out.append(amp * (trpl(n0, *ph) + y0) / (1 + y0) - ys[k])
        return _np.concatenate(out)

    x0 = _np.concatenate([_np.ones(5), _np.tile([0.0, 1.0], len(n0s))])
    res = _lsq(resid, x0, bounds=(0, _np.inf), jac="3-point")
    kb, kt, kd, p0, nt = res.x[:5] * scales
    return {"fit_s": _time.perf_counter() - t0, "nfev": nfev[0], "loss": float(res.cost),
            "success": bool(res.success),
            "values": {"B": kb * 1e9, "k_T": kt * 1e9, "k_D": kd * 1e9, "N_T": nt, "p0": p0}}


def _scipy_subprocess(path) -> tuple[float, dict]:
    src = inspect.getsource(pears_scipy_fit)
    code = (f"import json, sys\nPEARS_N0 = {PEARS_N0!r}\n{src}\n"
            f"print('RESULT ' + json.dumps(pears_scipy_fit({str(path)!r})))")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=1800)
    wall = time.perf_counter() - t0
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return wall, json.loads(line[len("RESULT "):])


def _jaxsim_cli(path, out_dir, cache_dir) -> tuple[float, dict]:
    env = dict(os.environ, JAXSIM_CACHE_DIR=str(cache_dir), JAXSIM_NO_CACHE="")
    cmd = [sys.executable, "-m", "jaxsim", "fit", str(path), "--model", "btd",
           "--n0", ",".join(repr(v) for v in PEARS_N0), "--free", ",".join(PEARS_FREE),
           "--loss", "lsq", "--time-unit", "ns", "--quiet", "--out", str(out_dir)]
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    wall = time.perf_counter() - t0
    return wall, json.loads((pathlib.Path(out_dir) / "fit.json").read_text())


def _rel(values: dict) -> float:
    return float(max(abs(values[k] / v - 1) for k, v in PEARS_UPSTREAM.items()))


def pears_rows(reps: int = 1, log=lambda *a: None) -> list[dict]:
    """The ``pears_btd`` rows (see the module docstring); [] without the data file."""
    path = find_pears_data()
    if path is None:
        log("  pears_btd: data not found (set JAXSIM_PEARS_DATA); rows skipped")
        return []
    runs = {"scipy_pears": [], "jaxsim_cli_cold": [], "jaxsim_cli_warm_cache": []}
    info = {}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="jaxsim_bench_fit_"))
    try:
        for r in range(reps):
            wall, res = _scipy_subprocess(path)
            runs["scipy_pears"].append(wall)
            info["scipy_pears"] = {"values": res["values"], "final_loss": res["loss"],
                                   "nfev": res["nfev"], "fit_only_s": res["fit_s"]}
            cache = tmp / f"cache{r}"
            for name in ("jaxsim_cli_cold", "jaxsim_cli_warm_cache"):
                wall, js = _jaxsim_cli(path, tmp / f"out_{name}{r}", cache)
                runs[name].append(wall)
                info[name] = {"values": {k: js["params"][k]["value"] for k in PEARS_FREE},
                              "final_loss": js["loss"], "converged": js["converged"],
                              "timings_s": js["timings_s"]}
            log(f"  pears_btd round {r + 1}: scipy {runs['scipy_pears'][-1]:.1f} s, jaxsim cold "
                f"{runs['jaxsim_cli_cold'][-1]:.1f} s, warm cache "
                f"{runs['jaxsim_cli_warm_cache'][-1]:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    sc = float(np.median(runs["scipy_pears"]))
    for name, walls in runs.items():
        row = {"name": name, "output": "pears_btd", "time_s": float(np.median(walls)),
               "times_s": [float(w) for w in walls], "fresh_process": True,
               "ratio_vs_scipy": float(np.median(walls)) / sc, **info[name],
               "max_rel_diff_vs_pears_upstream": _rel(info[name]["values"])}
        rows.append(row)
    # a second fit of same-shaped data in this process (the first compiles or loads)
    import warnings

    from jaxsim import io as D
    from jaxsim.studies.fit import FitWarning, fit

    ds = D.read_decays(path, list(PEARS_N0), time_unit="ns")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fit("btd", ds, free=PEARS_FREE, loss="lsq")
        rng = np.random.default_rng(0)  # other data of the same shape: new noise
        ds2 = ds.replace(y=np.asarray(ds.y) + rng.normal(0, 0.003, np.shape(ds.y)))
        t0 = time.perf_counter()
        r2 = fit("btd", ds2, free=PEARS_FREE, loss="lsq")
        second = time.perf_counter() - t0
    rows.append({"name": "jaxsim_second_fit", "output": "pears_btd", "time_s": second,
                 "fresh_process": False, "ratio_vs_scipy": second / sc,
                 "values": {k: r2.value(k) for k in PEARS_FREE}, "final_loss": r2.loss,
                 "converged": r2.converged, "timings_s": r2.timings})
    log(f"  pears_btd: second fit in the same process {second:.2f} s")
    return rows


# -- global_fit: synthetic TCSPC -----------------------------------------------------------------

TRUTH = {"A": 2e7, "D": 5e6, "K1": 1e6}


FIXED = {"B": 1e-10, "C": 1e-28, "G": 0.0}


N0 = np.array([1e16, 1e17])


def _scipy_bins(theta, n0, w, n_bins, sigma, shift, rtol=1e-6):
    """SciPy forward model: LSODA on a fine grid (8 points per bin), the Gaussian response by
    NumPy convolution on that grid, Simpson over each bin."""
    A, Dd, K1 = theta
    B, C = FIXED["B"], FIXED["C"]

    def rhs(t, y):
        n, nd = y
        return [-A * n - B * n * n - C * n**3 + Dd * nd, A * n - Dd * nd - K1 * nd]

    sub = 8
    h = w / sub
    tt = np.arange(n_bins * sub + 1) * h
    tau = tt - shift
    sol = solve_ivp(rhs, (0, tau[-1]), [n0, 0.0], method="LSODA", t_eval=tau[tau >= 0],
                    rtol=rtol, atol=rtol * 1e-6 * n0)
    pl = np.zeros_like(tt)
    pl[tau >= 0] = (sol.y[0] / n0) ** 2
    half = int(np.ceil(6 * sigma / h))
    g = np.exp(-0.5 * (np.arange(-half, half + 1) * h / sigma) ** 2)
    pl = np.convolve(pl, g / g.sum(), mode="same")
    f = pl.reshape(-1)[: n_bins * sub + 1]
    wts = np.ones(sub + 1)
    wts[1:-1:2], wts[2:-1:2] = 4, 2
    return np.array([np.dot(wts, f[i * sub:(i + 1) * sub + 1]) * h / 3 / w for i in range(n_bins)])


def _global_problem(seed=0, n_bins=200, w=2e-9, fwhm=3e-9, pulse=20.7e-9):
    import jax
    import jax.numpy as jnp

    from jaxsim import io as D
    from jaxsim.physics.registry import get_model
    from jaxsim.studies.instrument import make_layout, simulate_counts

    model = get_model("trap_detrap")
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    lay = make_layout(n_bins, w, 0.0, shift_min=0.0, irf_sigma=sigma)
    vals = {k: jnp.full(N0.size, v) for k, v in {**TRUTH, **FIXED}.items()}
    vals["n0"] = jnp.asarray(N0)
    counts, _ = simulate_counts(jax.random.PRNGKey(seed), model, vals, [8000.0] * 2, [4.0] * 2,
                                [pulse] * 2, 0.0, None, lay)
    ds = D.from_arrays(np.arange(n_bins) * w, counts, N0, time_unit="s", is_counts=True)
    return ds.with_gaussian_irf(fwhm), sigma


def _bench_global(quick: bool) -> list[dict]:
    import warnings

    from jaxsim.studies.fit import FitWarning, _Evaluator, build_problem, fit

    ds, sigma = _global_problem()
    kw = dict(free=("A", "D", "K1"), fixed={"B": FIXED["B"], "C": FIXED["C"]},
              init={"A": 1e7, "D": 1e6, "K1": 1e5})
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        t0 = time.perf_counter()
        r = fit("trap_detrap", ds, n_starts=4, **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = fit("trap_detrap", ds, n_starts=4, **kw)
        warm = time.perf_counter() - t0
    rows.append({"name": "jaxsim_fit", "output": "global_fit", "time_s": warm,
                 "first_call_s": first, "final_loss": r.loss, "converged": r.converged,
                 **{k: r.value(k) for k in TRUTH}})
    pr = build_problem("trap_detrap", ds, **kw)
    lo, hi, x0 = pr.lo.copy(), pr.hi.copy(), pr.x0.copy()
    y = np.asarray(ds.y)
    w = ds.bin_width
    # SciPy's finite-difference step is relative to max(1, |x|): give the shift in bins, not s
    unit = np.ones_like(x0)
    unit[3 + 2::3] = w
    lo, hi, x0 = lo / unit, hi / unit, x0 / unit
    nfev = [0]

    def resid(x):
        nfev[0] += 1
        th = 10.0 ** x[:3]
        out = []
        for k in range(2):
            base = 3 + 3 * k
            amp, bg, sh = 10.0 ** x[base], x[base + 1], x[base + 2] * w
            mu = np.clip(amp * _scipy_bins(th, N0[k], w, ds.n_bins, sigma, sh) + bg, 1e-12, None)
            dev = 2 * (mu - y[k] + np.where(y[k] > 0, y[k] * np.log(np.where(y[k] > 0, y[k], 1) / mu), 0))
            out.append(np.sign(y[k] - mu) * np.sqrt(np.clip(dev, 0, None)))
        return np.concatenate(out)

    t0 = time.perf_counter()
    res = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac",
                        max_nfev=100 if quick else 400)
    t_sc = time.perf_counter() - t0
    x_sc = res.x * unit
    loss_sc = float(_Evaluator(pr.structure, pr.args, 4)(x_sc[None])[0][0])  # jaxsim's loss
    rows.append({"name": "scipy_least_squares", "output": "global_fit", "time_s": t_sc,
                 "final_loss": loss_sc, "converged": bool(res.success), "nfev": nfev[0],
                 **{k: float(10 ** res.x[i]) for i, k in enumerate(TRUTH)}})
    return rows


def _many_problem(n: int, seed: int = 1):
    """``n`` synthetic trap_detrap decays (normalised, 100 points 4 ns apart, Gaussian noise
    0.01): A and D log-uniform per decay, K1, B, C fixed."""
    from jaxsim.numerics.reference import solve

    rng = np.random.default_rng(seed)
    t = np.arange(100) * 4e-9
    A = 10 ** rng.uniform(6.7, 7.7, n)
    Dd = 10 ** rng.uniform(6.0, 7.0, n)
    sol = solve("trap_detrap", {"A": A, "D": Dd, "K1": 1e5, "B": 1e-10, "C": 0.0, "n0": 1e17}, t)
    pl = np.asarray(sol.pl)
    ys = pl / pl[:, :1] + rng.normal(0, 0.01, pl.shape)
    return t, ys, A, Dd


MANY_KW = dict(free=("A", "D"), fixed={"K1": 1e5, "B": 1e-10, "C": 0.0},
               init={"A": 1e7, "D": 3e6}, loss="lsq", sigma=0.01)


def _scipy_one(t, y):
    """The same model and loss by SciPy: LSODA (rtol 1e-6) inside ``least_squares`` (TRF,
    2-point Jacobian), unknowns log10 A, log10 D, log10 amplitude."""
    def resid(x):
        a, d_, amp = 10.0 ** x
        s = solve_ivp(lambda _t, v: [-a * v[0] - 1e-10 * 1e17 * v[0] ** 2 + d_ * v[1],
                                     a * v[0] - d_ * v[1] - 1e5 * v[1]],
                      (0, t[-1]), [1.0, 0.0], t_eval=t, method="LSODA", rtol=1e-6,
                      atol=1e-12)
        return amp * s.y[0] ** 2 - y

    return least_squares(resid, [7.0, np.log10(3e6), 0.0], bounds=([4, 3, -3], [9, 9, 3]),
                         method="trf")


def many_rows(n: int = 10_000, n_scipy: int = 200, batch: int | None = None,
              log=lambda *a: None) -> list[dict]:
    """``fit_many`` on ``n`` decays against a SciPy ``least_squares`` loop on the first
    ``n_scipy`` of them (per-decay rates compared: the loop's time grows linearly), with the
    parameter agreement on that subset (|log10 ratio| and in units of jaxsim's stderr)."""
    from jaxsim.studies.many import fit_many

    t, ys, A, Dd = _many_problem(n)
    kw = dict(MANY_KW, batch=batch)
    t0 = time.perf_counter()
    fit_many("trap_detrap", t, ys[: min(n, 64)], 1e17, **kw)  # compiles (or loads) the program
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = fit_many("trap_detrap", t, ys, 1e17, progress=lambda m: log("  " + m), **kw)
    wall = time.perf_counter() - t0
    rate = n / wall
    log(f"  fit_many: {n} decays in {wall:.2f} s ({rate:.0f} decays/s), {r.counts()}")
    m = min(n_scipy, n)
    t0 = time.perf_counter()
    sc = [_scipy_one(t, ys[i]) for i in range(m)]
    t_sc = time.perf_counter() - t0
    rate_sc = m / t_sc
    log(f"  scipy least_squares loop: {m} decays in {t_sc:.1f} s ({rate_sc:.2f} decays/s)")
    xs = np.array([s_.x for s_ in sc])
    loss_sc = np.array([float(s_.cost) for s_ in sc])  # 0.5 sum r^2, as jaxsim's lsq loss
    dA = np.abs(xs[:, 0] - np.log10(r.values["A"][:m]))
    dD = np.abs(xs[:, 1] - np.log10(r.values["D"][:m]))
    zA = dA * np.log(10) * r.values["A"][:m] / r.stderr["A"][:m]
    zD = dD * np.log(10) * r.values["D"][:m] / r.stderr["D"][:m]
    same = dict(n_compared=m, median_abs_log10_diff_A=float(np.median(dA)),
                max_abs_log10_diff_A=float(np.max(dA)), median_abs_log10_diff_D=float(np.median(dD)),
                max_abs_log10_diff_D=float(np.max(dD)),
                max_diff_in_stderr_A=float(np.nanmax(zA)), max_diff_in_stderr_D=float(np.nanmax(zD)),
                jaxsim_loss_le_scipy=float(np.mean(r.loss[:m] <= loss_sc * (1 + 1e-6) + 1e-12)))
    rows = [{"name": "jaxsim_fit_many", "output": "many_fits", "n_fits": n, "time_s": wall,
             "decays_per_s": rate, "first_call_s": first, "batch": r.timings.get("batch"),
             "status": r.counts(),
             "median_rel_error_A_vs_truth": float(np.median(np.abs(r.values["A"] / A - 1))),
             "median_rel_error_D_vs_truth": float(np.median(np.abs(r.values["D"] / Dd - 1)))},
            {"name": "scipy_least_squares_loop", "output": "many_fits", "n_fits": m,
             "time_s": t_sc, "decays_per_s": rate_sc, "success": int(sum(s_.success for s_ in sc)),
             "ratio_jaxsim_over_scipy": rate / rate_sc, **same}]
    log(f"  ratio (decays/s, jaxsim / scipy): {rate / rate_sc:.0f}x; parameters on the "
        f"{m} shared decays: median |dlog10 A| {same['median_abs_log10_diff_A']:.2g}, max "
        f"{same['max_abs_log10_diff_A']:.2g} ({same['max_diff_in_stderr_A']:.2g} stderr); D "
        f"median {same['median_abs_log10_diff_D']:.2g}, max {same['max_abs_log10_diff_D']:.2g} "
        f"({same['max_diff_in_stderr_D']:.2g} stderr)")
    return rows


def _bench_batch(quick: bool) -> list[dict]:
    return many_rows(n=100 if quick else 1000, n_scipy=3 if quick else 10)


def fit_benchmark_rows(quick: bool, log=lambda *a: None) -> list[dict]:
    """Rows {"name", "output", "time_s", ...} for ``jaxsim bench`` (see the module docstring)."""
    rows = pears_rows(reps=1 if quick else 3, log=log)
    rows += _bench_global(quick)
    rows += _bench_batch(quick)
    return rows


if __name__ == "__main__":  # pragma: no cover
    if "--many" in sys.argv:
        n_many = int(sys.argv[sys.argv.index("--many") + 1])
        n_sc = int(os.environ.get("N_SCIPY", "200"))
        print(json.dumps(many_rows(n_many, n_sc, log=lambda m: print(m, file=sys.stderr)),
                         indent=1, default=float))
    elif "--pears" in sys.argv:
        print(json.dumps(pears_rows(reps=int(os.environ.get("REPS", "1")), log=print),
                         indent=1, default=float))
    else:
        print(json.dumps(fit_benchmark_rows("--full" not in sys.argv, log=print), indent=1,
                         default=float))
