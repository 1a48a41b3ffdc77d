"""The slow ionic reservoir: limits with known answers, an independent ODE reference, validation."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jaxsim  # noqa: F401  (float64)
from jaxsim.numerics.slow_time import integrate_prescribed
from jaxsim.physics import ions
from jaxsim.physics.models.trap_detrap_quench import FAST_MODEL
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model

ION = ions.ion_params()


def test_dark_relaxation_is_exponential_with_tau_ion():
    p = ions.ion_params(n_ion0=6e17, m0=5e16)
    t = np.linspace(0.0, 400.0, 9)
    x, m = integrate_prescribed(lambda s: 0.0, t, p)
    np.testing.assert_allclose(x, 6e17 * np.exp(-t / p["tau_ion"]), rtol=1e-12)
    np.testing.assert_allclose(m, 5e16 * np.exp(-t / p["tau_mob"]), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("P", [1e21, 1e23, 3e23, 1e24])
def test_constant_drive_reaches_analytic_steady_state(P):
    x_star, m_star = ions.steady_state(P, ION)
    dx, dm = ions.rhs(P, x_star, m_star, ION)
    assert abs(float(dx)) < 1e-12 * x_star / ION["tau_ion"]
    assert abs(float(dm)) <= 1e-12 * max(m_star, 1.0) / ION["tau_mob"]
    t = np.linspace(0.0, 20 * ION["tau_ion"], 41)
    x, m = integrate_prescribed(lambda s: P, t, ION)
    np.testing.assert_allclose([x[-1], m[-1]], [x_star, m_star], rtol=1e-6)
    # the reservoir saturates at N_ion, and half-fills at P_half = N_ion / (Y tau_ion)
    assert x_star < ION["N_ion"]
    p_half = ION["N_ion"] / (ION["yield_ion"] * ION["tau_ion"])
    np.testing.assert_allclose(ions.steady_state(p_half, ION)[0], 0.5 * ION["N_ion"], rtol=1e-12)


def test_time_varying_drive_matches_scipy_radau():
    """The exponential integrator against SciPy's Radau on the same ODE (float64)."""
    def P(t):  # smooth on/off modulation: charging, partial relaxation, quenchers come and go
        return 2e23 * (1.0 + np.sin(t / 7.0)) * np.exp(-((t - 80.0) / 60.0) ** 2)

    def f(t, y):
        return [float(v) for v in ions.rhs(P(t), y[0], y[1], ION)]

    t = np.linspace(0.0, 240.0, 2401)
    x, m = integrate_prescribed(P, t, ION)
    ref = solve_ivp(f, (0.0, 240.0), [0.0, 0.0], method="Radau", t_eval=t[::100], rtol=1e-10,
                    atol=[1e3, 1e2], max_step=1.0)
    assert ref.success
    np.testing.assert_allclose(x[::100], ref.y[0], rtol=2e-4, atol=1e-6 * ION["N_ion"])
    np.testing.assert_allclose(m[::100], ref.y[1], rtol=2e-3, atol=1e-4 * ION["M_mob"])
    # low power brightens without quenching; quenchers need an energised reservoir AND power
    assert ref.y[1].max() > 0.1 * ION["M_mob"]


def test_quenchers_are_superlinear_in_power():
    # same reservoir filling, 3x the power: s grows by 3^p_mob
    x = 0.5 * ION["N_ion"]
    s1 = ions.rates(5e22, x, ION)[2]
    s3 = ions.rates(1.5e23, x, ION)[2]
    np.testing.assert_allclose(s3 / s1, 3.0 ** ION["p_mob"], rtol=1e-12)
    # and need energetic ions: none at x = 0
    assert float(ions.rates(1e24, 0.0, ION)[2]) == 0.0


def test_ion_params_validation_names_field_value_expected():
    with pytest.raises(ParameterError, match="'tau_ion' = -1.0.*expected"):
        ions.ion_params(tau_ion=-1.0)
    with pytest.raises(ParameterError, match="'p_mob' = 0.5"):
        ions.ion_params(p_mob=0.5)
    with pytest.raises(ParameterError, match="'n_ion0'.*exceeds 'N_ion'"):
        ions.ion_params(n_ion0=2e18)
    with pytest.raises(ParameterError, match="'kappa' is not known"):
        ions.ion_params(kappa=1.0)
    with pytest.raises(ParameterError, match="not a number"):
        ions.ion_params(E_g="wide")


def test_every_ion_parameter_has_unit_default_and_meaning():
    for p in ions.ION_PARAMETERS:
        assert p.unit and p.meaning and np.isfinite(p.default)
        p.check(p.default)


def test_quench_model_reduces_to_trap_detrap_and_conserves_carriers():
    td, tq = get_model("trap_detrap"), FAST_MODEL
    rng = np.random.default_rng(0)
    vals = dict(A=1e7, B=1e-10, C=1e-28, D=3e6, K1=1e5, n0=1e16, G=1e21)
    c0 = tq.coefficients({**vals, "Q": 0.0}, 1e16)
    cq = tq.coefficients({**vals, "Q": 4e6}, 1e16)
    ct = td.coefficients(vals, 1e16)
    for _ in range(5):
        y = tuple(rng.uniform(0.0, 2.0, 2))
        np.testing.assert_allclose(tq.vector_field(0.0, y, c0), td.vector_field(0.0, y, ct))
        du, dv = tq.vector_field(0.0, y, cq)
        fl = tq.fluxes(y, cq)
        # d(n + n_d)/dt = G - (losses): bimolecular + Auger + trap relaxation + quenching
        losses = sum(fl[k] for k in tq.loss_fluxes)
        np.testing.assert_allclose(du + dv, cq["g"] - losses, rtol=1e-12)
        np.testing.assert_allclose(fl["quenching"], 4e6 * 1e-9 * y[0])


def test_quench_model_solve_matches_scipy_radau():
    from jaxsim.numerics.reference import solve

    vals = dict(A=1e7, B=1e-10, C=1e-28, D=3e6, K1=1e5, n0=1e16, G=0.0, Q=2e6)
    ts = np.linspace(0.0, 2e-6, 41)
    sol = solve(FAST_MODEL, vals, ts, rtol=1e-10)

    def f(t, y):
        n, nd = y
        return [-(vals["A"] + vals["Q"]) * n - vals["B"] * n**2 - vals["C"] * n**3
                + vals["D"] * nd, vals["A"] * n - (vals["D"] + vals["K1"]) * nd]

    ref = solve_ivp(f, (0, ts[-1]), [1e16, 0.0], method="Radau", t_eval=ts, rtol=1e-11,
                    atol=1e3)
    np.testing.assert_allclose(np.asarray(sol.n), ref.y[0], rtol=1e-6, atol=1e6)
