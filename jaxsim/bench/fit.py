"""Fitting benchmark rows for ``jaxsim bench``: jaxsim (autodiff, vmapped starts) against
``scipy.optimize.least_squares`` (finite differences, SciPy ``solve_ivp``) on the same problems.

- ``global_fit``: trap_detrap, free A, D, K1 (B, C fixed), 2 decays of Poisson counts with a
  Gaussian IRF, amplitude/background/shift per decay. SciPy minimises the Poisson deviance
  through deviance residuals (so both minimise the same loss); ``final_loss`` of both rows is
  evaluated by the same jaxsim forward model (half the deviance).
- ``batch_1000_fits``: many independent single-decay least-squares fits (trap_detrap, free A and
  D, normalised curves with 1 % noise). jaxsim runs all of them in one vmapped batch
  (:func:`jaxsim.studies.fit.fit_many`); SciPy fits a subset in a loop and its time is scaled to the
  batch size (``extrapolated_from`` says how many it ran).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from jaxsim import io as D
from jaxsim.physics.registry import get_model
from jaxsim.studies.instrument import make_layout, simulate_counts

TRUTH = {"A": 2e7, "D": 5e6, "K1": 1e6}


FIXED = {"B": 1e-10, "C": 1e-28, "G": 0.0}


N0 = np.array([1e16, 1e17])


def _scipy_bins(theta, n0, t_first, w, n_bins, irf, off, shift, rtol=1e-6):
    """SciPy forward model: LSODA solve, Simpson over each bin, NumPy convolution."""
    A, Dd, K1 = theta
    B, C = FIXED["B"], FIXED["C"]

    def rhs(t, y):
        n, nd = y
        return [-A * n - B * n * n - C * n**3 + Dd * nd, A * n - Dd * nd - K1 * nd]

    lo = -(off + irf.size - 1)
    idx = np.arange(lo, n_bins - off)
    a = t_first + idx * w - shift
    pts = np.concatenate([a, a + 0.5 * w, a + w])
    tt = np.unique(np.clip(pts, 0, None))
    sol = solve_ivp(rhs, (0, tt[-1]), [n0, 0.0], method="LSODA", t_eval=tt, rtol=rtol,
                    atol=rtol * 1e-6 * n0)
    pl = np.interp(np.clip(pts, 0, None), sol.t, (sol.y[0] / n0) ** 2)
    pl = np.where(pts >= 0, pl, 0.0).reshape(3, -1)
    b = (pl[0] + 4 * pl[1] + pl[2]) / 6  # Simpson (kinks inside a bin: approximate)
    return np.convolve(b, irf, mode="valid")


def _global_problem(seed=0, n_bins=200, w=2e-9, fwhm=3e-9, pulse=20.7e-9):
    model = get_model("trap_detrap")
    irf, off = D.gaussian_irf(fwhm, w)
    lay = make_layout(n_bins, w, 0.0, irf_len=irf.size, irf_offset=off, shift_min=0.0)
    vals = {k: jnp.full(N0.size, v) for k, v in {**TRUTH, **FIXED}.items()}
    vals["n0"] = jnp.asarray(N0)
    counts, _ = simulate_counts(jax.random.PRNGKey(seed), model, vals, [8000.0] * 2, [4.0] * 2,
                                [pulse] * 2, 0.0, jnp.asarray(irf), lay)
    ds = D.from_arrays(np.arange(n_bins) * w, counts, N0, time_unit="s", is_counts=True)
    return ds.with_irf(irf, off, record="gaussian"), irf, off


def _bench_global(quick: bool) -> list[dict]:
    import warnings

    from jaxsim.studies.fit import FitWarning, _Batched, build_problem, fit

    ds, irf, off = _global_problem()
    kw = dict(free=("A", "D", "K1"), fixed={"B": FIXED["B"], "C": FIXED["C"]},
              init={"A": 1e7, "D": 1e6, "K1": 1e5})
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        t0 = time.perf_counter()
        r = fit("trap_detrap", ds, n_starts=4, adam_steps=100, lbfgs_steps=30, **kw)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = fit("trap_detrap", ds, n_starts=4, adam_steps=100, lbfgs_steps=30, **kw)
        warm = time.perf_counter() - t0
    rows.append({"name": "jaxsim_fit", "output": "global_fit", "time_s": warm,
                 "first_call_s": first, "final_loss": r.loss, "converged": r.converged,
                 **{k: r.value(k) for k in TRUTH}})
    # SciPy: the same unknowns in the same natural coordinates and bounds
    pr = build_problem("trap_detrap", ds, **kw)
    lo, hi = np.asarray(pr.args["lo"]), np.asarray(pr.args["hi"])
    x0 = np.asarray(pr.x0)
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
            mu = amp * _scipy_bins(th, N0[k], 0.0, w, ds.n_bins, irf, off, sh) + bg
            mu = np.clip(mu, 1e-12, None)
            dev = 2 * (mu - y[k] + np.where(y[k] > 0, y[k] * np.log(np.where(y[k] > 0, y[k], 1) / mu), 0))
            out.append(np.sign(y[k] - mu) * np.sqrt(np.clip(dev, 0, None)))
        return np.concatenate(out)

    t0 = time.perf_counter()
    res = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac",
                        max_nfev=100 if quick else 400)
    t_sc = time.perf_counter() - t0
    x_sc = res.x * unit
    loss_sc = float(_Batched(pr.structure, pr.args, 4)(x_sc[None])[0][0])  # same compiled loss
    rows.append({"name": "scipy_least_squares", "output": "global_fit", "time_s": t_sc,
                 "final_loss": loss_sc, "converged": bool(res.success), "nfev": nfev[0],
                 **{k: float(10 ** res.x[i]) for i, k in enumerate(TRUTH)}})
    return rows


def _bench_batch(quick: bool) -> list[dict]:
    from jaxsim.numerics.reference import solve
    from jaxsim.studies.fit import fit_many

    n = 100 if quick else 1000
    n_scipy = 3 if quick else 10
    rng = np.random.default_rng(1)
    t = np.arange(100) * 4e-9
    A = 10 ** rng.uniform(6.7, 7.7, n)
    Dd = 10 ** rng.uniform(6.0, 7.0, n)
    sol = solve("trap_detrap", {"A": A, "D": Dd, "K1": 1e5, "B": 1e-10, "C": 0.0, "n0": 1e17}, t)
    pl = np.asarray(sol.pl)
    ys = pl / pl[:, :1] + rng.normal(0, 0.01, pl.shape)
    kw = dict(free=("A", "D"), fixed={"K1": 1e5, "B": 1e-10, "C": 0.0},
              init={"A": 1e7, "D": 3e6}, loss="lsq")
    t0 = time.perf_counter()
    vals, L = fit_many("trap_detrap", t, ys, 1e17, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    vals, L = fit_many("trap_detrap", t, ys, 1e17, **kw)
    warm = time.perf_counter() - t0
    rows = [{"name": "jaxsim_fit", "output": "batch_1000_fits", "n_fits": n, "time_s": warm,
             "first_call_s": first, "final_loss": float(np.mean(L)),
             "median_rel_error_A": float(np.median(np.abs(vals["A"] / A - 1)))}]

    def one(y):
        def resid(x):
            a, d_, amp = 10.0 ** x
            s = solve_ivp(lambda _t, v: [-a * v[0] - 1e-10 * 1e17 * v[0] ** 2 + d_ * v[1],
                                         a * v[0] - d_ * v[1] - 1e5 * v[1]],
                          (0, t[-1]), [1.0, 0.0], t_eval=t, method="LSODA", rtol=1e-6,
                          atol=1e-12)
            return amp * s.y[0] ** 2 - y

        return least_squares(resid, [7.0, np.log10(3e6), 0.0],
                             bounds=([4, 3, -3], [9, 9, 3]), method="trf")

    t0 = time.perf_counter()
    losses = [0.5 * float(np.sum(one(ys[i]).fun ** 2)) for i in range(n_scipy)]
    t_sc = time.perf_counter() - t0
    rows.append({"name": "scipy_least_squares", "output": "batch_1000_fits", "n_fits": n,
                 "time_s": t_sc * n / n_scipy, "extrapolated_from": n_scipy,
                 "final_loss": float(np.mean(losses)),
                 "jaxsim_final_loss_same_subset": float(np.mean(L[:n_scipy]))})
    return rows


def fit_benchmark_rows(quick: bool) -> list[dict]:
    """Rows {"name", "output", "time_s", "final_loss", ...} for ``jaxsim bench``."""
    return _bench_global(quick) + _bench_batch(quick)


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(fit_benchmark_rows("--full" not in sys.argv), indent=1, default=float))
