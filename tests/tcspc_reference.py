"""An independent generator of TCSPC histograms for the fitting tests (SciPy only).

The trap_detrap model is solved by SciPy's Radau (rtol 1e-11) with dense output; the expected
counts of bin i, [t_i, t_i + w), for a pulse at s and a Gaussian instrument response of standard
deviation sigma are

    mu_i = a / w * int_0^inf p(tau) [Phi((t_i + w - s - tau) / sigma) - Phi((t_i - s - tau) / sigma)] dtau + bg

(p = PL / PL(0), PL = n^2: the probability that a photon emitted at s + tau and delayed by the
Gaussian jitter lands in the bin), integrated per bin by adaptive quadrature (scipy.integrate.quad)
with break points at the bin's edges (:func:`expected_counts_quad`), or, vectorised, by
16-point Gauss-Legendre on panels broken at the pulse and at every bin edge +- (0, 1.5, 3, 6, 10)
sigma, at most w / 4 wide (:func:`expected_counts`; the two agree to ~1e-10). Without a response
(sigma = 0) the kernel is the bin's indicator. Nothing here is shared with jaxsim's forward
model, which instead smooths the cumulative integral of PL with the Gaussian, node interval by
node interval, through the moments of the normal distribution.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad, solve_ivp
from scipy.special import ndtr

FIXED = {"B": 1e-10, "C": 1e-28}


def trap_detrap_pl(A, D, K1, n0, t_end, B=FIXED["B"], C=FIXED["C"]):
    """p(tau) = (n(tau) / n0)^2 of trap_detrap after one pulse (0 for tau < 0), a vectorised
    callable (tau in s)."""

    def rhs(t, y):
        n, nd = y
        return [-A * n - B * n * n - C * n**3 + D * nd, A * n - D * nd - K1 * nd]

    sol = solve_ivp(rhs, (0.0, t_end), [n0, 0.0], method="Radau", rtol=1e-11,
                    atol=1e-11 * n0, dense_output=True)
    assert sol.success, sol.message

    def p(tau):
        tau = np.asarray(tau, float)
        v = (sol.sol(np.clip(tau, 0.0, t_end))[0] / n0) ** 2
        return np.where(tau >= 0, v, 0.0)

    return p


def expected_counts(p, *, w, n_bins, pulse, fwhm, amp, bg, t_first=0.0, t_end=None):
    """mu (n_bins,) of one decay with normalised PL ``p`` (see the module docstring)."""
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) if fwhm else 0.0
    edges = t_first + np.arange(n_bins + 1) * w - pulse  # relative to the pulse
    ks = np.array([-10, -6, -3, -1.5, 0, 1.5, 3, 6, 10]) if sigma > 0 else np.array([0.0])
    brk = (edges[:, None] + ks[None, :] * sigma).ravel()
    top = edges[-1] + 10 * sigma
    if t_end is not None:
        top = min(top, t_end)
    brk = np.concatenate([[0.0], brk, np.arange(0.0, top, w / 4), [top]])
    brk = np.unique(brk[(brk >= 0) & (brk <= top)])
    u, wq = np.polynomial.legendre.leggauss(16)
    a, b = brk[:-1], brk[1:]
    tau = (0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * u[None, :]).ravel()
    wt = (0.5 * (b - a)[:, None] * wq[None, :]).ravel()
    pw = p(tau) * wt
    mu = np.empty(n_bins)
    for i in range(n_bins):
        lo, hi = edges[i] - 10 * sigma, edges[i + 1] + 10 * sigma
        sl = slice(np.searchsorted(tau, lo), np.searchsorted(tau, hi))
        tt = tau[sl]
        if sigma > 0:
            k = ndtr((edges[i + 1] - tt) / sigma) - ndtr((edges[i] - tt) / sigma)
        else:
            k = ((tt >= edges[i]) & (tt < edges[i + 1])).astype(float)
        mu[i] = amp * np.sum(pw[sl] * k) / w + bg
    return mu


def expected_counts_quad(p, *, w, n_bins, pulse, fwhm, amp, bg, t_first=0.0, t_end=None):
    """As :func:`expected_counts`, bin by bin with adaptive quadrature (slow: cross-checks)."""
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) if fwhm else 0.0
    mu = np.empty(n_bins)
    reach = 10 * sigma
    for i in range(n_bins):
        a = t_first + i * w - pulse  # bin start relative to the pulse
        b = a + w
        lo, hi = max(0.0, a - reach), b + reach
        if t_end is not None:
            hi = min(hi, t_end)
        if hi <= lo:
            mu[i] = bg
            continue
        if sigma > 0:
            def f(tau, a=a, b=b):
                return p(tau) * (ndtr((b - tau) / sigma) - ndtr((a - tau) / sigma))
        else:
            def f(tau):
                return p(tau)
            lo, hi = max(0.0, a), b
            if hi <= lo:
                mu[i] = bg
                continue
        pts = [x for x in (a, b) if lo < x < hi]
        val, _ = quad(f, lo, hi, points=pts or None, epsabs=0.0, epsrel=1e-11, limit=400)
        mu[i] = amp * val / w + bg
    return mu


def regime_mu(truth, n0s, *, w, n_bins, pulse, fwhm, amp, bg):
    """Expected counts (K, n_bins) of trap_detrap decays at the excitation densities ``n0s``."""
    t_end = n_bins * w + 2 * w + 12 * (fwhm or 0.0)
    out = []
    for n0 in n0s:
        p = trap_detrap_pl(truth["A"], truth["D"], truth["K1"], n0, t_end)
        out.append(expected_counts(p, w=w, n_bins=n_bins, pulse=pulse, fwhm=fwhm, amp=amp,
                                   bg=bg, t_end=t_end))
    return np.asarray(out)
