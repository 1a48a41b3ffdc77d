"""Observables against closed forms, SciPy's curve_fit and carrier conservation."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import curve_fit

from jaxsim.numerics.reference import solve
from jaxsim.observables.lifetimes import (
    biexp_fit_batch,
    diffusion_length,
    first_moment,
    tau_1e,
    window_weights,
)
from jaxsim.observables.summaries import (
    recombination_shares,
    share_summaries,
    summaries,
    summary_table,
)
from jaxsim.physics.errors import ParameterError

# the shapes of tests/test_solve.py (8 curves x 61 points), so compiled functions are shared
T = np.linspace(0.0, 500e-9, 61)
BATCH = 8
TIGHT = dict(rtol=1e-10)


def fit_batch(t, ys):
    ys = np.asarray(ys, dtype=float)
    pad = np.repeat(ys[:1], BATCH - len(ys), axis=0)
    fit = biexp_fit_batch(t, np.concatenate([ys, pad]), np.ones_like(t))
    return type(fit)(*(np.asarray(x)[: len(ys)] for x in fit))


def biexp(t, a1, t1, a2, t2):
    return a1 * np.exp(-t / t1) + a2 * np.exp(-t / t2)


def test_biexp_recovers_exact_two_exponentials():
    rng = np.random.default_rng(0)
    a1 = rng.uniform(0.1, 0.9, BATCH)
    tau1 = 10 ** rng.uniform(-8.5, -7.5, BATCH)
    tau2 = tau1 * 10 ** rng.uniform(0.5, 1.5, BATCH)
    y = np.stack([biexp(T, a, t1, 1 - a, t2) for a, t1, t2 in zip(a1, tau1, tau2)])
    fit = fit_batch(T, y)
    np.testing.assert_allclose(np.asarray(fit.tau1), tau1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fit.tau2), tau2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fit.a1), a1, rtol=1e-6)
    expect = (a1 * tau1**2 + (1 - a1) * tau2**2) / (a1 * tau1 + (1 - a1) * tau2)
    np.testing.assert_allclose(np.asarray(fit.tau_avg), expect, rtol=1e-6)


def test_biexp_degenerate_and_edge_cases_never_nan():
    single = np.exp(-T / 80e-9)
    flat = np.ones_like(T)  # no decay inside the window
    zeros = np.zeros_like(T)
    noisy = single + 1e-3 * np.random.default_rng(1).standard_normal(T.size)
    ys = np.stack([single, flat, zeros, noisy, 2.5 * single, single])
    fit = fit_batch(T, ys)
    for k in fit:
        assert np.all(np.isfinite(np.asarray(k)))
    tau = np.asarray(fit.tau_avg)
    assert tau[0] == pytest.approx(80e-9, rel=1e-6)
    assert tau[4] == pytest.approx(80e-9, rel=1e-6)  # amplitude does not matter
    assert tau[3] == pytest.approx(80e-9, rel=2e-2)
    assert tau[1] > 10 * T[-1]  # longer than the window, finite


def test_biexp_at_least_as_good_as_scipy_curve_fit():
    """On a non-exponential decay (abc closed form), our RSS <= SciPy's from a good start."""
    a, b, n0 = 2e6, 1e-10, 1e17
    y = a / ((a + b * n0) * np.exp(a * T) - b * n0)
    y = y / y[0]
    fit = fit_batch(T, y[None])
    popt, _ = curve_fit(biexp, T, y, p0=[0.5, 20e-9, 0.5, 300e-9], maxfev=20000)
    rss_scipy = np.sum((biexp(T, *popt) - y) ** 2)
    assert float(fit.rss[0]) <= rss_scipy * (1 + 1e-6) + 1e-30
    tau_scipy = (popt[0] * popt[1] ** 2 + popt[2] * popt[3] ** 2) / (popt[0] * popt[1] + popt[2] * popt[3])
    assert float(fit.tau_avg[0]) == pytest.approx(tau_scipy, rel=1e-4)


def test_biexp_float32_and_window():
    y = biexp(T, 0.3, 20e-9, 0.7, 200e-9)
    t32 = T.astype(np.float32)
    f32 = biexp_fit_batch(t32, np.tile(y.astype(np.float32), (BATCH, 1)), np.ones_like(t32))
    assert np.asarray(f32.tau_avg).dtype == np.float32
    f32 = type(f32)(*(x[0] for x in f32))
    expect = (0.3 * 20e-9**2 + 0.7 * 200e-9**2) / (0.3 * 20e-9 + 0.7 * 200e-9)
    assert float(f32.tau_avg) == pytest.approx(expect, rel=1e-3)
    # a window through weights: garbage outside the window must not matter
    y2 = np.where(T > 300e-9, 5.0, y)
    w = window_weights(T, (0.0, 300e-9))
    fw = biexp_fit_batch(T, np.tile(y2, (BATCH, 1)), w)
    assert float(fw.tau_avg[0]) == pytest.approx(expect, rel=1e-6)
    assert float(fit_batch(T, y2[None]).tau_avg[0]) != pytest.approx(expect, rel=1e-2)  # unweighted


def test_tau_1e_and_first_moment():
    t = np.linspace(0, 1e-6, 1001)
    y = 3.0 * np.exp(-t / 123e-9)
    assert float(tau_1e(t, y)) == pytest.approx(123e-9, rel=1e-9)  # exact for exponentials
    assert float(tau_1e(t, np.ones_like(t))) == np.inf
    # first moment over [0, T] of exp(-t/tau): tau - T e^{-T/tau} / (1 - e^{-T/tau})
    tau, tt = 300e-9, t[-1]
    expect = tau - tt * np.exp(-tt / tau) / (1 - np.exp(-tt / tau))
    assert float(first_moment(t, y / 3.0 * np.exp(-t / tau) * np.exp(t / 123e-9))) == pytest.approx(
        expect, rel=1e-5)


def test_diffusion_length_published_numbers():
    # paper: 93 ns -> 398 nm (D = 0.017), 2500 ns -> 22.64 um (D = 2.05)
    assert float(diffusion_length(93e-9, 0.017)) * 1e7 == pytest.approx(398, rel=2e-3)
    assert float(diffusion_length(2500e-9, 2.05)) * 1e4 == pytest.approx(22.64, rel=2e-3)


@pytest.fixture(scope="module")
def abc_solution():
    """abc with C = 0 over 20 us (to ~1e-7 of n0): closed forms for the integrals."""
    a = np.array([1e6, 3e6, 1e7, 2e7, 1e6, 3e6, 1e7, 2e7])
    b, n0 = 1e-10, 1e17
    t = np.linspace(0, 20e-6, 61)
    return a, b, n0, solve("abc", dict(A=a, B=b, C=0.0, n0=n0), t, **TIGHT)


def test_plqy_and_shares_closed_form(abc_solution):
    """int n dt = ln(1 + B n0 / A) / B (t -> inf); PLQY = 1 - A int n dt / n0."""
    a, b, n0, sol = abc_solution
    s = summaries(sol, ["plqy", "share_trapping", "share_bimolecular", "share_auger",
                        "share_remaining", "tau_mean_n", "tau_mean_pl", "pl_integrated"])
    int_n = np.log1p(b * n0 / a) / b
    np.testing.assert_allclose(np.asarray(s["share_trapping"]), a * int_n / n0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["plqy"]), 1 - a * int_n / n0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(s["share_bimolecular"]), np.asarray(s["plqy"]), rtol=1e-12)
    assert np.all(np.asarray(s["share_auger"]) == 0)
    total = s["share_trapping"] + s["share_bimolecular"] + s["share_auger"] + s["share_remaining"]
    np.testing.assert_allclose(np.asarray(total), 1.0, rtol=1e-7)
    # first moment of n from the ODE integrals vs. quadrature of the closed form
    t1 = float(sol.t[-1])
    for i in range(4):
        def n(t):
            return a[i] * n0 / ((a[i] + b * n0) * np.exp(a[i] * t) - b * n0)
        num = quad(lambda t: t * n(t), 0, t1, limit=200, points=[1 / a[i]])[0]
        den = quad(n, 0, t1, limit=200, points=[1 / a[i]])[0]
        assert float(s["tau_mean_n"][i]) == pytest.approx(num / den, rel=1e-7)


def test_shares_conserve_carriers_trap_detrap():
    rng = np.random.default_rng(3)
    v = dict(A=10 ** rng.uniform(5, 8, BATCH), D=10 ** rng.uniform(3, 8, BATCH),
             K1=10 ** rng.uniform(2, 7, BATCH), n0=10 ** rng.uniform(15, 18, BATCH),
             B=np.full(BATCH, 1e-10), C=np.full(BATCH, 1e-28))
    sol = solve("trap_detrap", v, np.linspace(0, 1e-6, 61), **TIGHT)
    names = list(share_summaries(sol.model))
    assert names == ["share_trapping", "share_detrapping", "share_bimolecular", "share_auger",
                     "share_trap_relaxation", "share_remaining"]
    s = summaries(sol, names)
    total = s["share_bimolecular"] + s["share_auger"] + s["share_trap_relaxation"] + s["share_remaining"]
    np.testing.assert_allclose(np.asarray(total), 1.0, rtol=1e-6)
    # net trapping = trapped - released = what is in the traps + what relaxed from them
    n_d = np.asarray(sol.final["n_d"]) / v["n0"]
    np.testing.assert_allclose(np.asarray(s["share_trapping"] - s["share_detrapping"]),
                               n_d + np.asarray(s["share_trap_relaxation"]), rtol=1e-5, atol=1e-9)
    shares = recombination_shares(sol)
    assert set(shares) == set(names)
    # all summaries at once have the batch shape and are finite
    every = summaries(sol, list(summary_table(sol.model)), diffusion_coefficient=0.017)
    for name, val in every.items():
        assert np.shape(val) == (BATCH,), name
        assert np.all(np.isfinite(np.asarray(val)) | (np.asarray(val) == np.inf)), name


def test_unknown_summary_and_bad_diffusion_coefficient(abc_solution):
    sol = abc_solution[3]
    with pytest.raises(ParameterError, match="summary 'tau' is not known for model 'abc': "
                       "expected one of tau_avg_n, .*share_auger, share_remaining$"):
        summaries(sol, ["tau"])
    # shares are the model's own: abc has no trap state, so no trap_relaxation share
    with pytest.raises(ParameterError, match="'share_trap_relaxation' is not known for model"):
        summaries(sol, ["share_trap_relaxation"])
    with pytest.raises(ParameterError, match="diffusion_coefficient = -1"):
        summaries(sol, ["diffusion_length"], diffusion_coefficient=-1)
