"""Summaries of a single solve (the model page, the sweep page's click, `jaxsim simulate`) are
computed eagerly; the two-exponential fit behind ``tau_avg_*`` must be compiled once per
shape, not at every call (it took ~4 s per call when it was not)."""

from __future__ import annotations

import numpy as np

from jaxsim.observables import lifetimes


def test_tau_avg_fit_compiles_once_per_shape_and_fits_a_known_biexponential():
    ts = np.linspace(0.0, 2e-6, 256)
    w = np.ones_like(ts)
    expected = []
    for a1, t1, t2 in ((0.7, 50e-9, 400e-9), (0.4, 20e-9, 300e-9), (0.9, 80e-9, 600e-9)):
        y = a1 * np.exp(-ts / t1) + (1 - a1) * np.exp(-ts / t2)
        tau = float(lifetimes._vmap_fit(ts, y / y[0], w))
        # an exact two-exponential: tau_avg = sum(a tau^2) / sum(a tau)
        expected.append((a1 * t1**2 + (1 - a1) * t2**2) / (a1 * t1 + (1 - a1) * t2))
        np.testing.assert_allclose(tau, expected[-1], rtol=1e-3)
        if len(expected) == 1:
            size = lifetimes._vmap_fit._cache_size()
    assert lifetimes._vmap_fit._cache_size() == size  # new values: no new compile
    both = np.stack([np.exp(-ts / 1e-7), np.exp(-ts / 3e-7)])
    np.testing.assert_allclose(lifetimes._vmap_fit(ts, both, w), [1e-7, 3e-7], rtol=1e-3)
    assert lifetimes._vmap_fit._cache_size() == size + 1  # a new shape: one more compile
