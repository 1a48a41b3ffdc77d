"""Inverse fitting: recovery from synthetic Poisson data (generated independently with SciPy
Radau in float64 and NumPy convolution), uncertainties, profile likelihood, the CLI, and global
fits of the shared PEARS and HZB data sets (slow)."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxsim import io as D
from jaxsim.physics.errors import ParameterError
from jaxsim.studies.fit import FitWarning, build_problem, fit, profile_likelihood

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"

TRUTH = {"A": 2e7, "D": 5e6, "K1": 1e6}
FIXED = {"B": 1e-10, "C": 1e-28}
N0 = np.array([1e16, 1e17])
W = 2e-9          # bin width, s
T = 200           # bins (a 400 ns window: K1 = 1e6 s^-1 must act within it)
FWHM = 3e-9       # Gaussian IRF
PULSE = 20.7e-9   # pulse arrival, s
AMP, BG = 8000.0, 4.0
STARTS = 4


def _need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (CI keeps ../shared beside the clone)")
    return path


def reference_counts(rng, truth=TRUTH, n0s=N0):
    """Expected counts from a float64 Radau solve of trap_detrap, integrated over each bin
    (Simpson, 32 panels per bin), convolved with the binned Gaussian IRF; Poisson draws."""
    A, Dd, K1 = truth["A"], truth["D"], truth["K1"]
    B, C = FIXED["B"], FIXED["C"]
    irf, off = D.gaussian_irf(FWHM, W)
    lags = np.arange(irf.size) + off
    lo = int(lags.min()) - 1
    mus = []
    for n0 in n0s:
        def rhs(t, y):
            n, nd = y
            return [-A * n - B * n * n - C * n**3 + Dd * nd, A * n - Dd * nd - K1 * nd]

        t_end = (T + 2 - lo) * W
        sol = solve_ivp(rhs, (0, t_end), [n0, 0.0], method="Radau", rtol=1e-10,
                        atol=1e-10 * n0, dense_output=True)
        # data bin i covers [iW, (i+1)W); mu_i = AMP * sum_l k_l b(bin i - lag_l) + BG
        mu = np.zeros(T)
        for i in range(T):
            acc = 0.0
            for l_, k in zip(lags, irf):
                acc += k * _bin_value(sol, n0, (i - l_) * W)
            mu[i] = AMP * acc + BG
        mus.append(mu)
    mu = np.asarray(mus)
    return rng.poisson(mu).astype(float), mu


def _bin_value(sol, n0, a):
    """(1/W) * integral of PL/PL(0) over [a, a + W) for a pulse at PULSE (Simpson)."""
    fine = a + np.linspace(0, 1, 33) * W
    x = fine - PULSE
    pl = np.where(x >= 0, (sol.sol(np.clip(x, 0, None))[0] / n0) ** 2, 0.0)
    if a < PULSE < a + W:  # the pulse falls inside this bin: integrate from the pulse on
        right = np.linspace(PULSE, a + W, 17)
        pr = (sol.sol(right - PULSE)[0] / n0) ** 2
        hr = (a + W - PULSE) / 16
        return hr / 3 * (pr[0] + pr[-1] + 4 * pr[1:-1:2].sum() + 2 * pr[2:-1:2].sum()) / W
    h = W / 32
    return h / 3 * (pl[0] + pl[-1] + 4 * pl[1:-1:2].sum() + 2 * pl[2:-1:2].sum()) / W


def make_dataset(counts):
    ds = D.from_arrays(np.arange(T) * W, counts, N0, time_unit="s", is_counts=True)
    k, off = D.gaussian_irf(FWHM, ds.bin_width)
    return ds.with_irf(k, off, record=f"irf gaussian fwhm={FWHM!r} s")


def run_fit(ds, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit("trap_detrap", ds, free=("A", "D", "K1"), fixed=FIXED,
                   init={"A": 1e7, "D": 1e6, "K1": 1e5}, n_starts=STARTS, adam_steps=100,
                   lbfgs_steps=30, **kw)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(2024)
    counts, mu = reference_counts(rng)
    ds = make_dataset(counts)
    return ds, mu, run_fit(ds)


def test_recovers_A_D_K1_with_irf(synthetic):
    ds, mu_ref, r = synthetic
    assert r.converged, r.table()
    for name, true in TRUTH.items():
        v, se = r.value(name), r.stderr(name)
        assert np.isfinite(se) and 0 < se < 0.1 * v, (name, v, se)
        assert abs(v - true) < 3.5 * se, f"{name}: fit {v:.4g} +- {se:.2g}, truth {true:.4g}"
    # per-decay nuisance parameters are recovered too
    for d in r.per_decay:
        assert abs(d["shift"] - PULSE) < 4 * d["shift_stderr"] + 0.02 * W
        assert d["amplitude"] == pytest.approx(AMP, rel=0.05)
    # the fitted model matches the independent reference expectation
    assert np.max(np.abs(r.mu - mu_ref) / np.sqrt(mu_ref)) < 1.0
    # a good Poisson fit has deviance/dof ~ 1
    assert 0.8 < r.reduced < 1.25


def test_covariance_is_consistent_with_profile(synthetic):
    _, _, r = synthetic
    prof = profile_likelihood(r, "D", n_points=STARTS * 2, span_sigmas=2.5)
    lo, hi = prof["interval95"]
    v, se = r.value("D"), r.stderr("D")
    assert lo is not None and hi is not None
    # Wald interval v +- 1.96 se in log space vs the profile crossing of delta = 1.92
    assert np.log(lo) == pytest.approx(np.log(v) - 1.96 * se / v, abs=0.3 * 1.96 * se / v)
    assert np.log(hi) == pytest.approx(np.log(v) + 1.96 * se / v, abs=0.3 * 1.96 * se / v)
    assert np.min(prof["delta"]) >= -1e-6  # the fit was the minimum
    corr = np.asarray(r.correlation)
    assert corr.shape == (3, 3) and np.allclose(np.diag(corr), 1.0)


def test_cli_writes_json_and_png(synthetic, tmp_path, capsys):
    from jaxsim.cli import main

    ds, _, r = synthetic
    path = tmp_path / "counts.txt"
    np.savetxt(path, np.column_stack([np.arange(T) * W, ds.y.T]))
    out = tmp_path / "out"
    rc = main(["fit", str(path), "--model", "trap_detrap", "--n0", "1e16,1e17",
               "--free", "A,D,K1", "--fix", "B=1e-10", "--fix", "C=1e-28",
               "--init", "A=1e7,D=1e6,K1=1e5",
               "--irf-fwhm", repr(FWHM), "--time-unit", "s", "--starts", str(STARTS),
               "--out", str(out)])
    assert rc == 0
    js = json.loads((out / "fit.json").read_text())
    assert js["model"] == "trap_detrap" and js["converged"] is True
    assert set(js["params"]) >= {"A", "D", "K1", "B"}
    assert js["params"]["A"]["value"] == pytest.approx(r.value("A"), rel=1e-3)
    assert js["params"]["B"]["stderr"] is None
    assert js["n_starts"] == STARTS and len(js["correlation"]["matrix"]) == 3
    assert (out / "fit.png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "A" in table and "stderr" in table


def test_bad_requests_raise_before_compiling(synthetic):
    ds = synthetic[0]
    with pytest.raises(ParameterError, match="no parameter 'X'"):
        build_problem("trap_detrap", ds, free=("X",))
    with pytest.raises(ParameterError, match="both free and fixed"):
        build_problem("trap_detrap", ds, free=("A",), fixed={"A": 1e7})
    with pytest.raises(ParameterError, match="loss"):
        build_problem("trap_detrap", ds, free=("A",), loss="l1")
    with pytest.raises(ParameterError, match="n0 is missing"):
        build_problem("trap_detrap", ds.replace(n0=np.full(2, np.nan)), free=("A",))
    norm = D.normalise(ds)
    with pytest.raises(ParameterError, match="poisson"):
        build_problem("trap_detrap", norm, free=("A",), loss="poisson")
    with pytest.raises(ParameterError, match="'D' = -1"):
        build_problem("trap_detrap", ds, free=("A",), fixed={"D": -1.0})


# -- slow: calibration and real data ------------------------------------------------------------

@pytest.mark.slow
def test_two_sigma_coverage_is_about_95_percent():
    """Over independent synthetic data sets, truth within +-2 sigma ~95 % of the time.
    With 3 parameters x 30 data sets, the binomial 95 % range for p = 0.954 is ~0.90-0.99."""
    rng = np.random.default_rng(7)
    hits, total = 0, 0
    for _ in range(30):
        counts, _ = reference_counts(rng)
        r = run_fit(make_dataset(counts))
        if not r.converged:
            continue
        for name, true in TRUTH.items():
            x, sx = r.params[name]["log10"], r.params[name]["log10_stderr"]
            hits += abs(x - np.log10(true)) < 2 * sx
            total += 1
    assert total >= 75
    assert 0.88 <= hits / total <= 1.0, (hits, total)


PEARS_UPSTREAM = {  # Emmanuelpean/pears core/tests.py (fit3, BTD model, I and y0 per decay),
    # converted from cm^3 ns^-1 to cm^3 s^-1
    "B": 2.594e-10, "k_T": 1.228e-7, "k_D": 8.357e-10, "p0": 5.978e13, "N_T": 5.986e13}


@pytest.mark.slow
def test_pears_btd_global_fit():
    path = _need(SHARED / "pears" / "BTD_TRPL_processed.txt")
    ds = D.read_decays(path, [55e12, 164e12, 511e12, 1720e12, 4750e12], time_unit="ns")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        # start a factor ~3 away from the published values
        r = fit("btd", ds, free=("B", "k_T", "k_D", "N_T", "p0"), loss="lsq", sigma=0.010,
                init={"B": 1e-9, "k_T": 4e-7, "k_D": 3e-10, "N_T": 2e14, "p0": 2e13},
                n_starts=4, adam_steps=100, lbfgs_steps=30)
    assert r.converged, r.table()
    assert 0.9 < r.reduced < 1.1  # stated noise 0.010
    for name, ref in PEARS_UPSTREAM.items():
        v, se = r.value(name), r.stderr(name)
        assert abs(v - ref) < max(3 * se, 0.03 * ref), (name, v, se, ref)


@pytest.mark.slow
def test_grossmann_poisson_global_fit():
    """Raw counts of a GaAs/AlGaAs reference at 5 powers. Decays slow down with power (trap
    filling), which the btd model captures; it is not the sample's true model (deviance/dof
    ~1e2 rather than 1), so this checks convergence, the Poisson MLE's count balance, bounded
    residuals and the identifiability warning for the doping p0, which these data cannot see."""
    path = _need(SHARED / "grossmann_trpl" / "sample1.csv")
    ds = D.read_decays(path)
    power = np.asarray(ds.meta["power_W"])
    # n0 proportional to the laser power (absolute scale unknown: 1e15 cm^-3 per uW)
    ds = D.rebin(ds.with_n0(power * 1e21), 8)
    with pytest.warns(FitWarning, match="p0"):
        r = fit("btd", ds, free=("B", "k_T", "k_D", "N_T", "p0"), loss="poisson",
                background="fixed", bounds={"B": (1e-15, 1e-7)},
                init={"B": 1e-10, "k_T": 1.6e-8, "k_D": 1e-10, "N_T": 1e16, "p0": 1e16},
                n_starts=8, adam_steps=200, lbfgs_steps=60, spread=1.5)
    assert r.converged, r.table()
    assert np.all(r.status == 0)
    assert r.reduced < 300
    # at the Poisson MLE the score of each free log-amplitude vanishes:
    # sum_i (mu_i - bg)(1 - y_i/mu_i) = 0, here within 0.1 of its standard deviation
    bg = np.array([d["background"] for d in r.per_decay])[:, None]
    sig = r.mu - bg
    score = np.sum(sig * (1 - ds.y / r.mu), axis=1)
    assert np.all(np.abs(score) < 0.1 * np.sqrt(np.sum(sig**2 / r.mu, axis=1)))
    res = (ds.y - r.mu) / np.sqrt(np.clip(r.mu, 1, None))
    assert np.all(np.sqrt(np.mean(res**2, axis=1)) < 20)
    # the trap density is well determined by where the decays slow down
    assert r.stderr("N_T") < 0.05 * r.value("N_T")


@pytest.mark.slow
def test_autodiff_hessian_matches_finite_difference(synthetic):
    from jaxsim.studies.fit import _Batched, _finish

    ds, _, r = synthetic
    vg = _Batched(r.problem.structure, r.problem.args, STARTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ra = _finish(r.problem, r.x, STARTS, [r.loss], None, vg, hessian="autodiff")
    for name in TRUTH:
        assert ra.stderr(name) == pytest.approx(r.stderr(name), rel=0.02)


@pytest.mark.slow
def test_warns_when_auger_share_is_negligible(synthetic):
    ds = synthetic[0]
    with pytest.warns(FitWarning, match="C "):
        r = fit("trap_detrap", ds, free=("A", "D", "K1", "C"), fixed={"B": 1e-10},
                init={"A": 1e7, "D": 1e6, "K1": 1e5, "C": 1e-29}, n_starts=STARTS,
                adam_steps=100, lbfgs_steps=30)
    assert any(w.startswith("C ") for w in r.warnings)
