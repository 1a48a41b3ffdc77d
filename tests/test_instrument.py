"""Forward model of a measurement against closed forms and quadrature (abc model, C = 0:
n(t) = A n0 / ((A + B n0) e^{At} - B n0)), and the node solver's sensitivities against finite
differences."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import ndtr

from jaxsim.numerics.config import SolverConfig
from jaxsim.physics.registry import get_model
from jaxsim.studies.decays import gaussian_irf
from jaxsim.studies.instrument import make_layout, predict, solve_nodes

A, B, N0 = 2e7, 1e-10, 3e17
W = 1e-9  # bin width, s
T = 60
MODEL = get_model("abc")
VALUES = {"A": A, "B": B, "C": 0.0, "G": 0.0, "n0": N0}
CFG = SolverConfig(rtol=1e-9)


def pl_norm(t):
    """PL(t)/PL(0) = (n/n0)^2, zero before the pulse."""
    if t < 0:
        return 0.0
    n = A * N0 / ((A + B * N0) * np.exp(A * t) - B * N0)
    return (n / N0) ** 2


def bin_reference(shift, sigma=0.0, n=T):
    """(1/W) int over each bin of the decay convolved with a Gaussian (quadrature)."""
    out = []
    for i in range(n):
        a, b = i * W - shift, (i + 1) * W - shift
        if sigma == 0:
            lo, hi = max(a, 0.0), max(b, 0.0)
            out.append(quad(pl_norm, lo, hi, epsabs=0, epsrel=1e-12)[0] / W if hi > lo else 0.0)
            continue
        lo, hi = max(0.0, a - 10 * sigma), b + 10 * sigma
        if hi <= 0:
            out.append(0.0)
            continue
        k = lambda tau, a=a, b=b: ndtr((b - tau) / sigma) - ndtr((a - tau) / sigma)  # noqa: E731
        pts = [x for x in (a, b) if lo < x < hi]
        out.append(quad(lambda tau: pl_norm(tau) * k(tau), lo, hi, points=pts or None,
                        epsabs=0, epsrel=1e-12, limit=400)[0] / W)
    return np.array(out)


def run(layout, shift, irf=None, amp=1.0, bg=0.0):
    vals = {k: jnp.asarray(v) for k, v in VALUES.items()}
    mu, status = jax.jit(lambda s: predict(MODEL, vals, amp, bg, s, 0.0, irf, layout, CFG))(shift)
    assert int(status[0]) == 0
    return np.asarray(mu[0])


def test_bins_integrate_closed_form():
    lay = make_layout(T, W, 0.0, shift_min=0.0)
    for shift in (0.0, 7.3e-9):  # on a bin edge, and inside a bin
        np.testing.assert_allclose(run(lay, shift), bin_reference(shift), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("fwhm", [0.05e-9, 0.8e-9, 8e-9])  # IRF << bin, ~ bin, >> bin
def test_gaussian_irf_is_exact(fwhm):
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    lay = make_layout(T, W, 0.0, shift_min=0.0, irf_sigma=sigma)
    shift = 12.37e-9
    mu = run(lay, shift, amp=250.0, bg=3.0)
    ref = 250.0 * bin_reference(shift, sigma) + 3.0
    np.testing.assert_allclose(mu, ref, rtol=1e-6)
    # the old approximation (binned decay convolved with the binned Gaussian) is off by far more
    k, off = gaussian_irf(fwhm, W)
    lay_k = make_layout(T, W, 0.0, shift_min=0.0, irf_len=k.size, irf_offset=off)
    approx = run(lay_k, shift, irf=jnp.asarray(k), amp=250.0, bg=3.0)
    assert np.max(np.abs(approx - ref) / ref) > 100 * np.max(np.abs(mu - ref) / ref)


def test_measured_irf_is_used_as_given():
    k, off = gaussian_irf(2.5e-9, W)
    rng = np.random.default_rng(0)
    k = k * rng.uniform(0.5, 1.5, k.size)  # any shape: a measured response
    k /= k.sum()
    lay = make_layout(T, W, 0.0, irf_len=k.size, irf_offset=off, shift_min=0.0)
    shift = 15.4e-9
    mu = run(lay, shift, irf=jnp.asarray(k), amp=250.0, bg=3.0)
    ext = {i: v for i, v in zip(range(-20, T + 20), bin_reference(shift - (-20) * W, n=T + 40))}
    # mu_i = sum_l k_l b_{i - off - l} + bg, b the binned decay (independent convolution)
    ref = np.array([sum(k[l] * ext[i - off - l] for l in range(k.size)) for i in range(T)])
    np.testing.assert_allclose(mu, 250.0 * ref + 3.0, rtol=1e-6)


def test_points_sample_the_decay():
    lay = make_layout(60, 2e-9, 1e-9, sampling="points", shift_min=0.0)
    vals = {k: jnp.asarray(v) for k, v in VALUES.items()}
    mu, status = jax.jit(lambda s: predict(MODEL, vals, 2.0, 0.1, s, 1e-9, None, lay, CFG))(0.5e-9)
    t = 1e-9 + 2e-9 * np.arange(60)
    ref = 2.0 * np.array([pl_norm(x - 0.5e-9) for x in t]) + 0.1
    np.testing.assert_allclose(np.asarray(mu[0]), ref, rtol=1e-5)


def test_lanes_are_independent_and_sensitivities_match_finite_differences():
    """A batch of lanes with different parameters gives each lane's own solution, and the
    forward sensitivities integrated in the loop match central differences of the values."""
    model = get_model("trap_detrap")
    h, n = 0.5, 256  # node spacing 0.5 ns
    cfg = SolverConfig(rtol=1e-10)
    theta = np.log10(np.array([[2e7, 5e6, 1e6], [5e6, 2e7, 3e5], [8e7, 1e6, 2e6]]))
    n0 = np.array([1e16, 1e17, 3e16])

    def coeffs(th):
        vals = {"A": 10 ** th[:, 0], "D": 10 ** th[:, 1], "K1": 10 ** th[:, 2], "B": 1e-10,
                "C": 1e-28, "G": 0.0, "n0": n0}
        return model.coefficients(vals, n0, 1e-9)

    dc = jax.vmap(lambda e: jax.jvp(coeffs, (jnp.asarray(theta),),
                                    (jnp.broadcast_to(e, theta.shape),))[1])(jnp.eye(3))
    F, p, dp, status, _ = jax.jit(lambda c, d: solve_nodes(model, c, n, h, cfg, d))(
        coeffs(jnp.asarray(theta)), dc)
    assert np.all(np.asarray(status) == 0)
    one = jax.jit(lambda c: solve_nodes(model, c, n, h, cfg)[:3])
    for lane in range(3):  # one lane alone gives the same curve
        c1 = {k: v[lane:lane + 1] for k, v in coeffs(jnp.asarray(theta)).items()}
        np.testing.assert_allclose(np.asarray(one(c1)[1])[0, 0], np.asarray(p)[0, lane],
                                   rtol=1e-9, atol=1e-14)
    eps = 1e-5
    for j in range(3):
        tp, tm = theta.copy(), theta.copy()
        tp[:, j] += eps
        tm[:, j] -= eps
        Fp, pp_, _ = one(coeffs(jnp.asarray(tp)))
        Fm, pm_, _ = one(coeffs(jnp.asarray(tm)))
        fd_p = (np.asarray(pp_)[0] - np.asarray(pm_)[0]) / (2 * eps)
        fd_F = (np.asarray(Fp)[0] - np.asarray(Fm)[0]) / (2 * eps)
        scale_p = np.max(np.abs(fd_p)) + 1e-30
        np.testing.assert_allclose(np.asarray(p)[1 + j], fd_p, atol=2e-5 * scale_p)
        np.testing.assert_allclose(np.asarray(F)[1 + j], fd_F,
                                   atol=2e-5 * (np.max(np.abs(fd_F)) + 1e-30))
