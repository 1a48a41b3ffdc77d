"""The exact measurement model, checked against an independent generator (tests/tcspc_reference:
SciPy Radau, each bin's expectation by quadrature of PL against the bin-integrated Gaussian
response) in three regimes: IRF << bin, IRF ~ bin, IRF >> bin. 1 ns bins, the pulse inside a
bin (20.37 ns), trap_detrap with A, D, K1 free (B, C fixed), two excitation densities,
amplitude 8000 counts, background 4 counts per bin.

- noise-free expectations are recovered to high precision (far inside the statistical error);
- over Poisson data sets, the +-2 sigma intervals cover the truth about 95 % of the time and the
  squared z-scores average about 1 (few sets by default, 30 per regime with -m slow).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jaxsim import io as D
from jaxsim.studies.fit import FitWarning, fit
from tcspc_reference import FIXED, regime_mu

TRUTH = {"A": 2e7, "D": 5e6, "K1": 1e6}
N0 = [1e16, 1e17]
W, T, PULSE, AMP, BG = 1e-9, 400, 20.37e-9, 8000.0, 4.0
INIT = {"A": 1e7, "D": 2e6, "K1": 3e5}  # a factor 2-3 from the truth
REGIMES = {"irf<<bin": 0.05e-9, "irf~bin": 0.8e-9, "irf>>bin": 8e-9}


@pytest.fixture(scope="module", params=list(REGIMES))
def regime(request):
    fwhm = REGIMES[request.param]
    mu = regime_mu(TRUTH, N0, w=W, n_bins=T, pulse=PULSE, fwhm=fwhm, amp=AMP, bg=BG)
    return request.param, fwhm, mu


def dataset(y, fwhm):
    return D.from_arrays(np.arange(T) * W, y, N0, time_unit="s", is_counts=True).with_gaussian_irf(fwhm)


def run_fit(ds, n_starts=2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return fit("trap_detrap", ds, free=tuple(TRUTH), fixed=FIXED, init=INIT,
                   n_starts=n_starts, loss="poisson")


def test_noise_free_data_recovered_exactly(regime):
    name, fwhm, mu = regime
    r = run_fit(dataset(mu, fwhm))
    assert r.optimizer_converged, r.table()
    for k, v in TRUTH.items():
        rel = r.value(k) / v - 1
        # far inside the error bar of the Poisson data of the same expectation (a few %)
        assert abs(rel) < 1e-3 and abs(r.value(k) - v) < 0.02 * r.stderr(k), (name, k, rel)
    for d in r.per_decay:
        assert abs(d["shift"] - PULSE) < 1e-3 * W, (name, d["shift"])
        assert d["amplitude"] == pytest.approx(AMP, rel=1e-3)
        assert d["background"] == pytest.approx(BG, rel=1e-2)
    assert r.reduced < 1e-5  # deviance/dof of noise-free expectations


def _coverage(mu, fwhm, n_sets, seed):
    rng = np.random.default_rng(seed)
    hits = total = failed = 0
    z2 = []
    for _ in range(n_sets):
        r = run_fit(dataset(rng.poisson(mu).astype(float), fwhm))
        if not r.optimizer_converged:
            failed += 1
            continue
        for k, v in TRUTH.items():
            z = (r.params[k]["log10"] - np.log10(v)) / r.params[k]["log10_stderr"]
            hits += abs(z) < 2
            total += 1
            z2.append(z * z)
    return hits, total, failed, float(np.mean(z2))


def test_two_sigma_coverage_few_sets(regime):
    """6 Poisson data sets: the truth within +-2 sigma for nearly all parameters (a biased
    model, as the old bin-centre IRF with 3.5-6.9 sigma errors, fails this)."""
    name, fwhm, mu = regime
    hits, total, failed, mz2 = _coverage(mu, fwhm, 6, seed=11)
    assert failed == 0
    assert hits / total >= 14 / 18, (name, hits, total)
    assert 0.2 < mz2 < 2.5, (name, mz2)


@pytest.mark.slow
def test_two_sigma_coverage_30_sets(regime):
    """30 Poisson data sets per regime (90 intervals): coverage ~95 % (binomial 95 % range for
    p = 0.954 and 90 trials ~0.90-0.99; 0.87 allows for the correlation of A, D, K1 within a set)
    and mean z^2 ~ 1."""
    name, fwhm, mu = regime
    hits, total, failed, mz2 = _coverage(mu, fwhm, 30, seed=2024)
    print(f"{name}: coverage {hits}/{total} = {hits / total:.3f}, mean z^2 {mz2:.2f}, "
          f"failed {failed}")
    assert failed <= 1
    assert total >= 87
    assert 0.87 <= hits / total <= 1.0, (name, hits, total)
    assert 0.5 < mz2 < 1.8, (name, mz2)
