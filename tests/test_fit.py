"""Inverse fitting: recovery from synthetic Poisson data (the independent generator of
tests/tcspc_reference), uncertainties (Gauss-Newton, observed Hessian, profile likelihood), the
command line (strict JSON, progress), one compile per problem shape, and global fits of the
shared PEARS and HZB data sets."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest

from jaxsim import io as D
from jaxsim.physics.errors import ParameterError
from jaxsim.studies import fit as F
from jaxsim.studies.fit import FitWarning, build_problem, fit, profile_likelihood
from tcspc_reference import FIXED, regime_mu

# ../shared/data beside the clone (or beside a parent folder of it, for git worktrees)
SHARED = next((p / "shared" / "data" for p in pathlib.Path(__file__).resolve().parents[1:]
               if (p / "shared" / "data").is_dir()), pathlib.Path("../shared/data"))

TRUTH = {"A": 2e7, "D": 5e6, "K1": 1e6}
N0 = np.array([1e16, 1e17])
W = 2e-9          # bin width, s
T = 200           # bins (a 400 ns window: K1 = 1e6 s^-1 must act within it)
FWHM = 3e-9       # Gaussian IRF
PULSE = 20.7e-9   # pulse arrival, s
AMP, BG = 8000.0, 2.0  # a background of 2 counts per bin: close to its lower bound 0
STARTS = 4
INIT = {"A": 1e7, "D": 1e6, "K1": 1e5}


def _need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (CI keeps ../shared beside the clone)")
    return path


def make_dataset(counts):
    ds = D.from_arrays(np.arange(T) * W, counts, N0, time_unit="s", is_counts=True)
    return ds.with_gaussian_irf(FWHM)


def run_fit(ds, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit("trap_detrap", ds, free=("A", "D", "K1"), fixed=FIXED, init=INIT,
                   n_starts=STARTS, **kw)


@pytest.fixture(scope="module")
def expected():
    return regime_mu(TRUTH, N0, w=W, n_bins=T, pulse=PULSE, fwhm=FWHM, amp=AMP, bg=BG)


@pytest.fixture(scope="module")
def synthetic(expected):
    rng = np.random.default_rng(2024)
    counts = rng.poisson(expected).astype(float)
    ds = make_dataset(counts)
    return ds, expected, run_fit(ds)


def test_recovers_A_D_K1_with_irf(synthetic):
    ds, mu_ref, r = synthetic
    assert r.converged, r.table()
    for name, true in TRUTH.items():
        v, se = r.value(name), r.stderr(name)
        assert np.isfinite(se) and 0 < se < 0.1 * v, (name, v, se)
        assert abs(v - true) < 3 * se, f"{name}: fit {v:.4g} +- {se:.2g}, truth {true:.4g}"
    for d in r.per_decay:
        assert abs(d["shift"] - PULSE) < 4 * d["shift_stderr"]
        assert d["amplitude"] == pytest.approx(AMP, rel=0.05)
    # the fitted expectation differs from the true one by the noise projected on the model's
    # p = 9 unknowns: sum (mu_fit - mu)^2 / mu ~ chi2 with 9 dof (99.9 % quantile 27.9)
    assert np.sum((r.mu - mu_ref) ** 2 / mu_ref) < 28
    assert 0.8 < r.reduced < 1.25  # deviance/dof of a good Poisson fit
    assert r.gof["adequate"] is True and r.gof["statistic"] == "deviance/dof"


def test_small_background_is_not_at_its_bound(synthetic):
    """A background of 2 counts (range 0 .. peak) is inside its range: it keeps its standard
    error and its place in the covariance (it used to count as at the bound within 1e-4 of the
    range, which made K1's standard error ~24 % too small)."""
    _, _, r = synthetic
    for d in r.per_decay:
        assert not d.get("background_at_bound", False)
        assert np.isfinite(d["background_stderr"]) and d["background_stderr"] > 0
        assert abs(d["background"] - BG) < 4 * d["background_stderr"]
    at_lo, at_hi = F._at_bound(np.array([2.0, 0.0, 1e-12, 5.0]), np.zeros(4), np.full(4, 2e4))
    assert at_lo.tolist() == [False, True, False, False] and not at_hi.any()


def test_observed_hessian_agrees_with_fisher(synthetic):
    """hessian='fd' (central differences of the gradient, steps relative to each coordinate's
    own size) and the Fisher information give the same errors at a good Poisson fit."""
    ds, _, r = synthetic
    rf = run_fit(ds, hessian="fd")
    assert rf.params["A"]["stderr_source"] == "FD Hessian"
    for name in TRUTH:
        assert rf.stderr(name) == pytest.approx(r.stderr(name), rel=0.1), name
    for a, b in zip(rf.per_decay, r.per_decay):
        assert a["background_stderr"] == pytest.approx(b["background_stderr"], rel=0.1)


def test_covariance_is_consistent_with_profile(synthetic):
    _, _, r = synthetic
    prof = profile_likelihood(r, "D", n_points=8, span_sigmas=2.5)
    lo, hi = prof["interval95"]
    v, se = r.value("D"), r.stderr("D")
    assert lo is not None and hi is not None
    # Wald interval v +- 1.96 se in log space vs the profile crossing of delta = 1.92
    assert np.log(lo) == pytest.approx(np.log(v) - 1.96 * se / v, abs=0.3 * 1.96 * se / v)
    assert np.log(hi) == pytest.approx(np.log(v) + 1.96 * se / v, abs=0.3 * 1.96 * se / v)
    assert np.min(prof["delta"]) >= -1e-6  # the fit was the minimum
    corr = np.asarray(r.correlation)
    assert corr.shape == (3, 3) and np.allclose(np.diag(corr), 1.0)


def test_second_fit_of_same_shape_compiles_nothing(synthetic, expected):
    """One compiled program per problem shape: a new data set of the same shape (pulse a bin
    later, other counts) reuses it."""
    _, _, r = synthetic
    n_programs = len(F._PROGRAMS)
    rng = np.random.default_rng(5)
    later = np.concatenate([expected[:, :1], expected[:, :-1]], axis=1)  # pulse 1 bin later
    counts = rng.poisson(later).astype(float)
    msgs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        r2 = fit("trap_detrap", make_dataset(counts), free=("A", "D", "K1"), fixed=FIXED,
                 init=INIT, n_starts=STARTS, progress=msgs.append)
    assert len(F._PROGRAMS) == n_programs
    assert not any(m.startswith("program") for m in msgs)
    assert r2.timings["trace_s"] == r.timings["trace_s"]  # the stored program's own record
    assert any(m.startswith("optimising") for m in msgs) and msgs[-1].startswith("done")
    assert r2.converged
    for d in r2.per_decay:
        assert abs(d["shift"] - PULSE - W) < 4 * d["shift_stderr"]


def test_cli_writes_strict_json_png_and_progress(synthetic, tmp_path, capsys):
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
    captured = capsys.readouterr()

    def no_constants(c):
        raise AssertionError(f"fit.json holds {c}, which is not JSON")

    js = json.loads((out / "fit.json").read_text(), parse_constant=no_constants)
    assert js["model"] == "trap_detrap" and js["optimizer_converged"] is True
    assert js["converged"] is (rc == 0)
    assert set(js["params"]) >= {"A", "D", "K1", "B", "C"}
    assert js["params"]["A"]["value"] == pytest.approx(r.value("A"), rel=1e-4)
    assert js["params"]["B"]["stderr"] is None and js["params"]["B"]["stderr_source"] == "fixed"
    assert js["deviance_per_dof"] == pytest.approx(r.reduced, rel=1e-4)
    assert js["model_describes_data"] is True and js["noise_source"] == "Poisson"
    assert js["n_starts"] == STARTS and len(js["correlation"]["matrix"]) == 3
    assert (out / "fit.png").stat().st_size > 10_000
    table = captured.out
    assert "deviance/dof" in table and "stderr" in table and "Fisher" in table
    progress = captured.err
    for stage in ("reading", "fit trap_detrap", "optimising", "done", "wrote"):
        assert stage in progress, (stage, progress)


def test_parameter_at_its_bound_gets_null_not_nan(synthetic):
    """A = 2e7 in the data, searched in 1e5 .. 1e7: it ends at its upper bound, drops out of
    the covariance and its stderr is null in strict JSON (not NaN)."""
    ds = synthetic[0]
    with pytest.warns(FitWarning, match="A is at the bound"):
        r = fit("trap_detrap", ds, free=("A", "D", "K1"), fixed=FIXED, init=INIT,
                bounds={"A": (1e5, 1e7)}, n_starts=2)
    a = r.params["A"]
    assert a["stderr_source"].startswith("at its bound") and not np.isfinite(a["stderr"])
    assert a["value"] == pytest.approx(1e7)
    js = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert js["params"]["A"]["stderr"] is None
    assert np.isfinite(r.stderr("D")) and not r.converged  # and the fit misses the data


def test_fixed_background_without_one_in_the_file_is_the_tail_median_and_said(synthetic):
    ds = synthetic[0]
    pr = build_problem("trap_detrap", ds, free=("A", "D", "K1"), fixed=FIXED, init=INIT,
                       background="fixed")
    y = np.asarray(ds.y, float)
    tail = np.median(y[:, -max(3, y.shape[1] // 20):], axis=1)
    np.testing.assert_allclose(np.asarray(pr.args["data"]["bg"]), tail)
    note = [n for n in pr.notes if n.startswith("background fixed")]
    assert note and f"{tail[0]:.4g}" in note[0], pr.notes


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
    with pytest.raises(ParameterError, match="hessian"):
        fit("trap_detrap", ds, free=("A",), hessian="exact")
    with pytest.raises(ParameterError, match="sigma"):
        fit("trap_detrap", ds, free=("A",), sigma=-1.0)


# -- slow: the shared data sets ---------------------------------------------------------------

PEARS_UPSTREAM = {  # Emmanuelpean/pears core/tests.py (fit3, BTD model, I and y0 per decay),
    # converted from cm^3 ns^-1 to cm^3 s^-1; 4 significant digits
    "B": 2.594e-10, "k_T": 1.228e-7, "k_D": 8.357e-10, "p0": 5.978e13, "N_T": 5.986e13}


def test_pears_btd_global_fit():
    """The README's example: the table's defaults as the start, no --sigma. Values agree with
    PEARS to 0.1 % (plus half a unit of PEARS's last printed digit); the noise estimated from
    the residuals' scatter is the stated 0.010."""
    path = _need(SHARED / "pears" / "BTD_TRPL_processed.txt")
    ds = D.read_decays(path, [55e12, 164e12, 511e12, 1720e12, 4750e12], time_unit="ns")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        r = fit("btd", ds, free=("B", "k_T", "k_D", "N_T", "p0"), loss="lsq")
    assert r.converged, r.table()
    for name, ref in PEARS_UPSTREAM.items():
        half_digit = 0.5e-3 * 10 ** np.floor(np.log10(ref))
        assert abs(r.value(name) - ref) <= 1e-3 * ref + half_digit, (name, r.value(name), ref)
    assert r.gof["noise"] == pytest.approx(0.010, rel=0.05)
    assert 0.9 < r.reduced < 1.1
    # every start is reported; the best is the minimum over them
    assert len(r.start_losses) == 8 and r.loss == pytest.approx(min(r.start_losses))
    assert 1 <= r.n_at_best <= 8 and r.to_json()["starts_at_best"] == r.n_at_best


@pytest.mark.slow
def test_grossmann_poisson_global_fit():
    """Raw counts of a GaAs/AlGaAs reference at 5 powers. Decays slow down with power (trap
    filling), which the btd model captures; it is not the sample's true model (deviance/dof
    ~1e2 rather than 1), so the fit must say so: the optimiser converges, the Poisson MLE's
    count balance holds, but ``converged`` is False because the model misses the data."""
    path = _need(SHARED / "grossmann_trpl" / "sample1.csv")
    ds = D.read_decays(path)
    power = np.asarray(ds.meta["power_W"])
    ds = D.rebin(ds.with_n0(power * 1e21), 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        r = fit("btd", ds, free=("B", "k_T", "k_D", "N_T", "p0"), loss="poisson",
                background="fixed", bounds={"B": (1e-15, 1e-7)},
                init={"B": 1e-10, "k_T": 1.6e-8, "k_D": 1e-10, "N_T": 1e16, "p0": 1e16},
                n_starts=8, spread=1.5)
    assert r.optimizer_converged, r.table()
    assert np.all(r.status == 0)
    assert r.gof["adequate"] is False and not r.converged
    assert any("does not describe" in str(w.message) for w in caught)
    assert 2 < r.reduced < 300
    # at the Poisson MLE the score of each free log-amplitude vanishes:
    # sum_i (mu_i - bg)(1 - y_i/mu_i) = 0, here within 0.1 of its standard deviation
    bg = np.array([d["background"] for d in r.per_decay])[:, None]
    sig = r.mu - bg
    score = np.sum(sig * (1 - ds.y / r.mu), axis=1)
    assert np.all(np.abs(score) < 0.1 * np.sqrt(np.sum(sig**2 / r.mu, axis=1)))
