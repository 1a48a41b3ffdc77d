"""Cross-module consistency: what one module reports must agree with what another assumes."""

import numpy as np
import pytest

import jaxsim
from jaxsim.numerics.pulses import steady_state_decay
from jaxsim.observables.summaries import summaries
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model

TS = np.linspace(0.0, 1e-6, 11)


def test_unconverged_periodic_state_is_a_failure_status():
    res = steady_state_decay("trap_detrap", dict(D=5e6, K1=1e5), TS, 1e6, max_newton=1,
                             max_fixed=1)
    assert not bool(np.all(res.converged))
    assert int(np.asarray(res.solution.status)) != 0


def test_steady_state_plqy_covers_the_period_whatever_the_save_times():
    """The integrals of a steady-state pulse cover one period, so PLQY is normalised by
    n0 + G T and does not depend on where the save times end (and stays <= 1)."""
    p = dict(D=5e6, K1=1e5, G=1e22)
    a = steady_state_decay("trap_detrap", p, TS, 1e6)
    b = steady_state_decay("trap_detrap", p, TS / 2, 1e6)
    qa = float(np.asarray(summaries(a.solution, ["plqy"])["plqy"]))
    qb = float(np.asarray(summaries(b.solution, ["plqy"])["plqy"]))
    assert 0 < qa <= 1
    np.testing.assert_allclose(qa, qb, rtol=1e-6)


def test_pl_lifetime_at_b_zero_is_an_error_not_nan():
    sol = jaxsim.solve("abc", dict(A=1e7, B=0.0, C=0.0), TS)
    with pytest.raises(ParameterError, match="'B' = 0"):
        summaries(sol, ["tau_mean_pl"])
    tau = float(np.asarray(summaries(sol, ["tau_mean_n"])["tau_mean_n"]))
    x = 1e7 * TS[-1]
    np.testing.assert_allclose(tau, (1 - np.exp(-x) * (1 + x)) / (1e7 * (1 - np.exp(-x))),
                               rtol=1e-6)


def test_quencher_model_shares_conserve_carriers():
    model = get_model("trap_detrap_quench")
    sol = jaxsim.solve(model, dict(Q=1e7), TS, rtol=1e-9)
    names = [f"share_{ch}" for ch in model.loss_fluxes] + ["share_remaining"]
    s = summaries(sol, names)
    assert float(np.asarray(s["share_quenching"])) > 0.05
    np.testing.assert_allclose(sum(float(np.asarray(s[k])) for k in names), 1.0, rtol=1e-6)
