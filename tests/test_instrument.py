"""Forward model of a measurement against closed forms and quadrature (abc model, C = 0:
n(t) = A n0 / ((A + B n0) e^{At} - B n0))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxsim.numerics.config import SolverConfig
from jaxsim.physics.registry import get_model
from jaxsim.studies.decays import gaussian_irf
from jaxsim.studies.instrument import make_layout, predict

A, B, N0 = 2e7, 1e-10, 3e17
W = 1e-9  # bin width, s
T = 120
MODEL = get_model("abc")
VALUES = {"A": A, "B": B, "C": 0.0, "G": 0.0, "n0": N0}


def pl_norm(t):
    """PL(t)/PL(0) = (n/n0)^2, zero before the pulse."""
    if t < 0:
        return 0.0
    n = A * N0 / ((A + B * N0) * np.exp(A * t) - B * N0)
    return (n / N0) ** 2


def bin_reference(t_first, shift):
    return np.array([quad(lambda s: pl_norm(s - shift), t_first + i * W, t_first + (i + 1) * W,
                          epsabs=0, epsrel=1e-11, points=[shift])[0] / W for i in range(-20, T + 20)])


@pytest.fixture(scope="module")
def binned():
    irf, off = gaussian_irf(2.5e-9, W)
    lay = make_layout(T, W, 0.0, irf_len=irf.size, irf_offset=off, shift_min=0.0)
    cfg = SolverConfig(rtol=1e-9)
    vals = {k: jnp.asarray(v) for k, v in VALUES.items()}
    f = jax.jit(lambda k, amp, bg, s: predict(MODEL, vals, amp, bg, s, 0.0, k, lay, cfg))
    return f, irf, off


def test_bins_integrate_closed_form(binned):
    f, irf, off = binned
    delta = np.zeros_like(irf)
    delta[-off] = 1.0  # lag 0: no instrument broadening
    for shift in (0.0, 7.3e-9):
        mu, status = f(jnp.asarray(delta), 1.0, 0.0, shift)
        ref = bin_reference(0.0, shift)[20:20 + T]
        assert int(status) == 0
        np.testing.assert_allclose(np.asarray(mu), ref, rtol=2e-5, atol=1e-12)


def test_irf_convolution_and_amplitude_background(binned):
    f, irf, off = binned
    shift = 15.4e-9
    mu, _ = f(jnp.asarray(irf), 250.0, 3.0, shift)
    ext = bin_reference(0.0, shift)  # bins -20 .. T+19
    # independent discrete convolution: mu_i = sum_l k_l b_{i - off - l}
    ref = np.array([sum(irf[l] * ext[20 + i - off - l] for l in range(irf.size)) for i in range(T)])
    np.testing.assert_allclose(np.asarray(mu), 250.0 * ref + 3.0, rtol=2e-5)
    # the response only redistributes counts: totals agree away from the window edges
    mu0, _ = f(jnp.asarray(np.roll(np.eye(irf.size)[-off], 0)), 250.0, 0.0, shift)
    inner = slice(0, 60)
    assert np.sum(np.asarray(mu)[inner] - 3.0) == pytest.approx(np.sum(np.asarray(mu0)[inner]),
                                                                rel=2e-3)


@pytest.mark.slow  # compiles a reverse-mode gradient through the solver (~20 s)
def test_shift_gradient_matches_finite_difference(binned):
    f, irf, off = binned
    g = jax.grad(lambda s: jnp.sum(f(jnp.asarray(irf), 100.0, 0.0, s)[0] ** 2))(12.1e-9)
    h = 1e-12
    fd = (np.sum(np.asarray(f(jnp.asarray(irf), 100.0, 0.0, 12.1e-9 + h)[0]) ** 2)
          - np.sum(np.asarray(f(jnp.asarray(irf), 100.0, 0.0, 12.1e-9 - h)[0]) ** 2)) / (2 * h)
    assert float(g) == pytest.approx(fd, rel=1e-4)


def test_points_sample_the_decay():
    lay = make_layout(60, 2e-9, 1e-9, sampling="points", shift_min=0.0)
    vals = {k: jnp.asarray(v) for k, v in VALUES.items()}
    mu, status = jax.jit(lambda s: predict(MODEL, vals, 2.0, 0.1, s, 1e-9, None, lay,
                                           SolverConfig(rtol=1e-9)))(0.5e-9)
    t = 1e-9 + 2e-9 * np.arange(60)
    ref = 2.0 * np.array([pl_norm(x - 0.5e-9) for x in t]) + 0.1
    np.testing.assert_allclose(np.asarray(mu), ref, rtol=1e-5)
