"""An independent generator of TCSPC histograms of a pulse train (SciPy only), for the fit's
periodic forward model (tests/test_fit_reprate.py).

trap_detrap is solved pulse by pulse by SciPy's Radau in float64 (rtol 1e-11) over as many
periods as it takes for the state just after a pulse to repeat (relative change below 1e-12
from one pulse to the next): the periodic steady state, found without Newton's method or any
jaxsim code. The measured signal is periodic: PL of the steady-state period at tau mod T, so the
bins before the pulse see the end of the previous period. The expected counts of bin i,
[t_i, t_i + w), with a Gaussian response of standard deviation sigma, are

    mu_i = a / w * int p(tau) [Phi((t_i + w - s - tau) / sigma) - Phi((t_i - s - tau) / sigma)] dtau + bg

(p = (n / n0)^2, tau relative to the pulse at s, over the whole window including tau < 0), by
16-point Gauss-Legendre on panels broken at the pulse and at every bin edge +- (0, 1.5, 3, 6, 10)
sigma, at most w / 4 wide. ``python tests/pulse_train_reference.py`` measures the single-pulse
fit's bias on such data (docs/fitting.md, "Pulse trains in the fit").
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ndtr

FIXED = {"B": 1e-10, "C": 1e-28}


def _rhs(A, D, K1, B, C):
    def rhs(t, y):
        n, nd = y
        return [-A * n - B * n * n - C * n**3 + D * nd, A * n - D * nd - K1 * nd]

    def jac(t, y):
        n = y[0]
        return [[-A - 2 * B * n - 3 * C * n * n, D], [A, -D - K1]]

    return rhs, jac


def periodic_state(A, D, K1, n0, period, B=FIXED["B"], C=FIXED["C"], max_pulses=20000,
                   tol=1e-12):
    """State (n, n_d) just after a pulse once the train is periodic, and the pulses it took."""
    rhs, jac = _rhs(A, D, K1, B, C)
    z = np.array([n0, 0.0])
    seen = [z]
    for i in range(1, max_pulses + 1):
        sol = solve_ivp(rhs, (0.0, period), z, method="Radau", rtol=1e-11, atol=1e-11 * n0,
                        jac=jac)
        assert sol.success, sol.message
        z_new = sol.y[:, -1] + np.array([n0, 0.0])
        if np.max(np.abs(z_new - z) / (n0 + np.abs(z))) < tol:
            return z_new, i
        z = z_new
        seen.append(z)
        if len(seen) == 8:
            # Aitken's extrapolation of the slowest mode (the fast ones have died out) only
            # shortens the walk: the test above is still one plain period from the state
            d1, d2 = seen[-1] - seen[-2], seen[-1] - 2 * seen[-2] + seen[-3]
            ok = np.abs(d2) > 1e-300
            z = np.where(ok, seen[-1] - d1 * d1 / np.where(ok, d2, 1.0), seen[-1])
            z = np.maximum(z, 0.0)
            seen = [z]
    raise AssertionError(f"no periodic state after {max_pulses} pulses")


def periodic_pl(A, D, K1, n0, period, B=FIXED["B"], C=FIXED["C"]):
    """p(tau) = (n / n0)^2 of the periodic pulse train, any tau (periodic in tau), and the
    steady state just after the pulse."""
    z, _ = periodic_state(A, D, K1, n0, period, B, C)
    rhs, jac = _rhs(A, D, K1, B, C)
    sol = solve_ivp(rhs, (0.0, period), z, method="Radau", rtol=1e-11, atol=1e-11 * n0,
                    jac=jac, dense_output=True)
    assert sol.success, sol.message

    def p(tau):
        tau = np.mod(np.asarray(tau, float), period)
        return (sol.sol(tau)[0] / n0) ** 2

    return p, z


def expected_counts(p, *, w, n_bins, pulse, fwhm, amp, bg, t_first=0.0):
    """mu (n_bins,) of a periodic signal ``p`` (defined for every tau, with its pulse at 0)."""
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    edges = t_first + np.arange(n_bins + 1) * w - pulse
    ks = np.array([-10, -6, -3, -1.5, 0, 1.5, 3, 6, 10])
    lo, top = edges[0] - 10 * sigma, edges[-1] + 10 * sigma
    brk = np.concatenate([[0.0, lo, top], (edges[:, None] + ks[None, :] * sigma).ravel(),
                          np.arange(lo, top, w / 4)])
    brk = np.unique(brk[(brk >= lo) & (brk <= top)])
    u, wq = np.polynomial.legendre.leggauss(16)
    a, b = brk[:-1], brk[1:]
    tau = (0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * u[None, :]).ravel()
    wt = (0.5 * (b - a)[:, None] * wq[None, :]).ravel()
    pw = p(tau) * wt
    mu = np.empty(n_bins)
    for i in range(n_bins):
        sl = slice(np.searchsorted(tau, edges[i] - 10 * sigma),
                   np.searchsorted(tau, edges[i + 1] + 10 * sigma))
        tt = tau[sl]
        k = ndtr((edges[i + 1] - tt) / sigma) - ndtr((edges[i] - tt) / sigma)
        mu[i] = amp * np.sum(pw[sl] * k) / w + bg
    return mu


# the accumulation case of the tests: slow trap relaxation K1 against a 1 us period
TRUTH = {"A": 2e7, "D": 2e6, "K1": 1e5}
N0 = [1e16, 1e17]
REP_RATE = 1e6
W, N_BINS, PULSE, FWHM, AMP, BG = 2e-9, 200, 10.3e-9, 1e-9, 2e4, 2.0


def case_mu(truth=TRUTH, n0s=N0, rep_rate=REP_RATE):
    """Expected counts (K, N_BINS) of the accumulation case."""
    out = []
    for n0 in n0s:
        p, _ = periodic_pl(truth["A"], truth["D"], truth["K1"], n0, 1.0 / rep_rate)
        out.append(expected_counts(p, w=W, n_bins=N_BINS, pulse=PULSE, fwhm=FWHM, amp=AMP,
                                   bg=BG))
    return np.asarray(out)


def case_fit(y, rep_rate, n_starts=2):
    """Fit A, D, K1 of the accumulation case (B, C fixed) with or without the pulse train."""
    import warnings

    from jaxsim import io as D
    from jaxsim.studies.fit import FitWarning, fit

    ds = D.from_arrays(np.arange(N_BINS) * W, y, N0, time_unit="s",
                       is_counts=True).with_gaussian_irf(FWHM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit("trap_detrap", ds, free=tuple(TRUTH), fixed=FIXED,
                   init={"A": 1e7, "D": 1e6, "K1": 3e4}, n_starts=n_starts, loss="poisson",
                   rep_rate=rep_rate, cache=False)


def bias_table(n_sets: int = 5, seed: int = 1):
    """Per parameter, over ``n_sets`` Poisson data sets of the accumulation case: the mean
    z-score (fitted - truth) / stderr in log10 and the mean relative error, for the rep-rate
    fit and the single-pulse fit."""
    mu = case_mu()
    rng = np.random.default_rng(seed)
    rows = {kind: {k: [] for k in TRUTH} for kind in ("rep_rate", "single")}
    for _ in range(n_sets):
        y = rng.poisson(mu).astype(float)
        for kind, rr in (("rep_rate", REP_RATE), ("single", None)):
            r = case_fit(y, rr)
            for k, v in TRUTH.items():
                pk = r.params[k]
                rows[kind][k].append(((pk["log10"] - math.log10(v)) / pk["log10_stderr"],
                                      pk["value"] / v - 1, r.reduced))
    return rows


def timing(seed: int = 3):
    """Compile and evaluation times of the rep-rate and single-pulse fits of one data set
    (8 starts), side by side in one process."""
    y = np.random.default_rng(seed).poisson(case_mu()).astype(float)
    for rr in (REP_RATE, None):
        r = case_fit(y, rr, n_starts=8)
        t = r.timings
        print(f"rep_rate {rr}: compile {t['compile_s']:.2f} s, optimise {t['optimise_s']:.3f} s "
              f"over {t['evaluations']} evaluations "
              f"({1e3 * t['optimise_s'] / t['evaluations']:.1f} ms each)")


if __name__ == "__main__":
    import sys

    if "--timing" in sys.argv:
        timing()
        raise SystemExit(0)
    rows = bias_table()
    print(f"trap_detrap, truth {TRUTH}, n0 {N0} cm^-3, {REP_RATE:g} Hz, "
          f"{N_BINS} bins of {W * 1e9:g} ns, IRF {FWHM * 1e9:g} ns FWHM, peak ~{AMP:g} counts")
    print(f"{'fit':<12}{'param':<6}{'mean z':>10}{'mean rel. error':>18}{'deviance/dof':>14}")
    for kind, per in rows.items():
        for k, vals in per.items():
            z, rel, red = (np.mean([v[i] for v in vals]) for i in range(3))
            print(f"{kind:<12}{k:<6}{z:10.2f}{rel:18.2%}{red:14.3f}")
