"""Pulse trains inside the fit (``fit(..., rep_rate=F)``, ``jaxsim fit --rep-rate``).

- the periodic start (Newton in the fit's own integrator) agrees with numerics.pulses'
  periodic state, state and decay, on every registered model;
- the forward model agrees with an independent SciPy generator of a pulse train
  (tests/pulse_train_reference.py: Radau pulse by pulse until periodic), bins before the pulse
  included;
- its gradient (implicit function theorem through the steady state) agrees with central
  differences;
- a steady state that does not converge is a status, never a NaN; a window longer than the
  period and bad rates are refused;
- fits of accumulation data recover the truth; the single-pulse fit is biased (slow: Poisson).
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import pulse_train_reference as R
import pytest

from jaxsim import io as D
from jaxsim.numerics import pulses
from jaxsim.numerics.config import FAILED, SolverConfig
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import models
from jaxsim.studies.fit import _batch_eval, _broadcast_data, build_problem
from jaxsim.studies.instrument import solve_nodes
from jaxsim.studies.periodic import periodic_start

CFG = SolverConfig(rtol=1e-9, dtype="float64")


@pytest.mark.parametrize("name", list(models()))
def test_periodic_start_matches_numerics_pulses(name):
    """State just after the pulse and the steady-state decay, against pulses.periodic_state
    (diffrax Tsit5, its own Newton) and pulses.flow, at 1 MHz with the default values."""
    m = models()[name]
    vals = {p.name: p.default for p in m.parameters}
    c = m.coefficients(vals, vals["n0"], CFG.t_ref)
    period = 1.0 / (1e6 * CFG.t_ref)
    start = periodic_start(m, c, period, CFG)
    assert int(start.status[0]) == 0 and float(start.residual[0]) <= pulses.default_tol(CFG)
    ref = pulses.periodic_state(m, c, period, CFG, "tsit5")
    assert bool(ref.converged)
    z, z_ref = np.asarray(start.z[:, 0]), np.asarray(ref.z)
    np.testing.assert_allclose(z, z_ref, rtol=1e-6, atol=1e-9)
    # the decay from it over 200 ns: normalised PL on the nodes against diffrax's solve
    h, n = 2.0, 101
    _, p, _, st, _ = solve_nodes(m, c, n, h, CFG, y0=tuple(start.z))
    ts = np.arange(n) * h
    sol = pulses.flow(m, c, tuple(jnp.asarray(v) for v in z_ref), ts, ts[-1], CFG, "tsit5")
    pl_ref = np.asarray(m.pl(sol.ys, c)) / float(m.pl(tuple(m.initial_state(c)), c))
    assert int(st[0]) == 0
    np.testing.assert_allclose(np.asarray(p[0, 0]), pl_ref, rtol=1e-6, atol=1e-12)
    # accumulation is real in this case for the trap models (the test is not of a trivial state)
    if name.startswith("trap_detrap"):
        assert z[1] > 1.0


def test_no_convergence_is_a_status_not_nan():
    m = models()["trap_detrap"]
    vals = {p.name: p.default for p in m.parameters}
    c = m.coefficients(vals, vals["n0"], CFG.t_ref)
    start = periodic_start(m, c, 1e3, CFG, max_newton=1)
    assert int(start.status[0]) == FAILED
    assert np.all(np.isfinite(np.asarray(start.z)))


def _ds(mu, n0s=R.N0):
    return D.from_arrays(np.arange(R.N_BINS) * R.W, mu, n0s, time_unit="s",
                         is_counts=True).with_gaussian_irf(R.FWHM)


def _x_truth(k):
    x = [math.log10(v) for v in R.TRUTH.values()]
    for _ in range(k):
        x += [math.log10(R.AMP), R.BG, R.PULSE]
    return np.asarray(x)


@pytest.fixture(scope="module")
def reference_one():
    """Expected counts of the accumulation case at n0 = 1e17 (SciPy reference)."""
    return R.case_mu(n0s=[1e17])


def test_forward_model_matches_scipy_pulse_train(reference_one):
    mu_ref = reference_one
    pr = build_problem("trap_detrap", _ds(mu_ref, [1e17]), free=tuple(R.TRUTH), fixed=R.FIXED,
                       rep_rate=R.REP_RATE, loss="poisson")
    s = pr.structure
    _, mu, st, _ = jax.jit(lambda X: _batch_eval(s, X, _broadcast_data(pr.args["data"], 1),
                                                 pr.args["fixed"], need_jac=False))(
        jnp.asarray(_x_truth(1)[None]))
    assert int(st[0, 0]) == 0
    dev = (np.asarray(mu[0]) - mu_ref) / np.sqrt(mu_ref)
    # within 1 % of a standard deviation of Poisson counts everywhere, before the pulse too
    assert np.max(np.abs(dev)) < 1e-2, np.abs(dev).max()
    # the pulse train matters here: the level before the pulse is far above the background
    assert mu_ref[0, 0] > 100 * R.BG
    # and a single pulse from the dark is far off the same data
    pr1 = build_problem("trap_detrap", _ds(mu_ref, [1e17]), free=tuple(R.TRUTH),
                        fixed=R.FIXED, loss="poisson")
    _, mu1, _, _ = jax.jit(lambda X: _batch_eval(pr1.structure, X,
                                                 _broadcast_data(pr1.args["data"], 1),
                                                 pr1.args["fixed"], need_jac=False))(
        jnp.asarray(_x_truth(1)[None]))
    assert np.max(np.abs(np.asarray(mu1[0]) - mu_ref) / np.sqrt(mu_ref)) > 10


def test_gradient_matches_central_differences(reference_one):
    """Gradient of the Poisson loss (J^T w, J through the steady state by the implicit
    function theorem) against central differences of the loss, at a point off the optimum."""
    pr = build_problem("trap_detrap", _ds(reference_one, [1e17]), free=tuple(R.TRUTH),
                       fixed=R.FIXED, rep_rate=R.REP_RATE, loss="poisson",
                       config=SolverConfig(rtol=1e-11, max_steps=4096))
    s = pr.structure
    data = _broadcast_data(pr.args["data"], 1)
    x0 = _x_truth(1) + np.array([0.05, -0.08, 0.1, 0.01, 0.5, 0.2e-9])
    grad = jax.jit(lambda X: _batch_eval(s, X, data, pr.args["fixed"])[1])
    loss = jax.jit(lambda X: _batch_eval(s, X, _broadcast_data(pr.args["data"], X.shape[0]),
                                         pr.args["fixed"], need_jac=False)[0])
    g = np.asarray(grad(jnp.asarray(x0[None])))[0]
    steps = np.array([1e-4, 1e-4, 1e-4, 1e-5, 1e-3, 1e-13])
    X = []
    for i, hstep in enumerate(steps):
        for sgn in (1, -1):
            x = x0.copy()
            x[i] += sgn * hstep
            X.append(x)
    Ls = np.asarray(loss(jnp.asarray(np.asarray(X))))
    fd = (Ls[0::2] - Ls[1::2]) / (2 * steps)
    assert np.all(np.isfinite(g)) and np.all(np.abs(g[:3]) > 1.0)
    np.testing.assert_allclose(g, fd, rtol=2e-4, atol=1e-6 * np.max(np.abs(g)))


def test_bad_rate_and_window_refused(reference_one):
    ds = _ds(reference_one, [1e17])
    with pytest.raises(ParameterError, match="rep_rate"):
        build_problem("trap_detrap", ds, free=("A",), rep_rate=-1.0)
    with pytest.raises(ParameterError, match="shorter than the data window"):
        build_problem("trap_detrap", ds, free=("A",), rep_rate=1e8)  # 10 ns < 400 ns window


def test_cli_rate_parsing_and_sync_rate(reference_one):
    from jaxsim.cli.fit import parse_rate, rep_rate_of

    assert parse_rate("53.78kHz") == pytest.approx(53780.0)
    assert parse_rate("1e6") == 1e6 and parse_rate("80 MHz") == 8e7
    for bad in ("fast", "10 THz", "0", "-5kHz"):
        with pytest.raises(ParameterError, match="--rep-rate"):
            parse_rate(bad)
    ds = _ds(reference_one, [1e17])
    ns = argparse.Namespace
    assert rep_rate_of(ns(rep_rate=None, single_pulse=False), ds) is None
    synced = D.from_arrays(ds.t, ds.y, [1e17], time_unit="s", is_counts=True,
                           meta={"sync_rate_hz": 53780.0})
    assert rep_rate_of(ns(rep_rate=None, single_pulse=False), synced) == 53780.0
    assert rep_rate_of(ns(rep_rate="1MHz", single_pulse=False), synced) == 1e6
    assert rep_rate_of(ns(rep_rate=None, single_pulse=True), synced) is None
    with pytest.raises(ParameterError, match="not both"):
        rep_rate_of(ns(rep_rate="1MHz", single_pulse=True), synced)


@pytest.mark.slow
def test_noise_free_recovery_and_single_pulse_bias():
    """Noise-free expectations of the accumulation case (both fluences): the rep-rate fit
    recovers the truth far inside its error bars; the single-pulse fit misses by many."""
    mu = R.case_mu()
    r = R.case_fit(mu, R.REP_RATE)
    assert r.optimizer_converged and r.to_json()["forward_model"]["rep_rate_hz"] == R.REP_RATE
    assert "periodic steady state at 1 MHz" in r.table()
    for k, v in R.TRUTH.items():
        assert abs(r.params[k]["log10"] - math.log10(v)) < 0.1 * r.params[k]["log10_stderr"], k
    r1 = R.case_fit(mu, None)
    assert r1.to_json()["forward_model"]["kind"] == "single_pulse"
    z = max(abs(r1.params[k]["log10"] - math.log10(v)) / r.params[k]["log10_stderr"]
            for k, v in R.TRUTH.items())
    assert z > 10, z
    assert r1.reduced > 2.0  # and its misfit shows


@pytest.mark.slow
def test_poisson_recovery_within_two_sigma():
    rows = R.bias_table(n_sets=3, seed=2)
    for k in R.TRUTH:
        zs = [v[0] for v in rows["rep_rate"][k]]
        assert np.all(np.abs(zs) < 3.0), (k, zs)
        assert abs(np.mean(zs)) < 2.0, (k, zs)
    worst = max(abs(np.mean([v[0] for v in rows["single"][k]])) for k in R.TRUTH)
    assert worst > 5.0, worst
