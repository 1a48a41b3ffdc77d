"""Repeated pulses: periodic steady state against PEARS, a matrix exponential and brute force.

Compile budget: every default test that calls ``steady_state_decay`` uses the trap_detrap
model, the config ``CFG``, ``len(TS)`` save times and 4 lanes, so one compiled function
serves them all.
"""

import numpy as np
import pytest
import scipy.linalg

import jaxsim  # noqa: F401  (float64)
from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.pulses import brute_force, pears_times, steady_state_decay
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model

CFG = SolverConfig(rtol=1e-9)
TS = np.array([0, 1, 2, 5, 10, 15, 20, 30, 40, 45, 50]) * 1e-9  # within the shortest period
N0 = np.array([1e17, 1e18])[:, None]
RATE = np.array([1e7, 2e7])[None, :]  # 100 ns and 50 ns periods

# PEARS (Emmanuelpean/pears, tests/test_models.py, TestBTModelTRPL / TestBTDModelTRPL
# test_get_carrier_accumulation): carrier accumulation in %, rows n0 = 1e17, 1e18 cm^-3,
# columns period 100 ns, 50 ns. BT_KWARGS = k_T 1e-2 ns^-1, k_B 5e-19 cm^3/ns, k_A 1e-40 cm^6/ns;
# BTD_KWARGS = k_B 50e-20, k_T 12000e-20, k_D 80e-20 cm^3/ns, N_T 60e12, p_0 65e12 cm^-3.
PEARS_BT = np.array([[2.1474605461112906, 4.931657664085842],
                     [0.3260927825203319, 0.8414419278757801]])
PEARS_BTD = np.array([[4.624820971652416, 7.852802160625521],
                      [0.5713873355827237, 1.1155396319428357]])
BT_SI = dict(A=1e7, B=5e-10, C=1e-31)  # the same constants in s^-1, cm^3 s^-1, cm^6 s^-1


@pytest.fixture(scope="module")
def pears_bt():
    # trap_detrap with D = 0 is PEARS's BT model for n (the traps never give carriers back)
    return steady_state_decay("trap_detrap", dict(**BT_SI, D=0.0, K1=1e4, n0=N0), TS, RATE, CFG)


def test_carrier_accumulation_matches_pears_bt(pears_bt):
    ca = np.asarray(pears_bt.carrier_accumulation_percent)
    np.testing.assert_allclose(ca, PEARS_BT, rtol=1e-4)
    assert np.all(pears_bt.converged) and np.all(pears_bt.newton)
    assert np.all(np.asarray(pears_bt.iterations) <= 10)


def test_d_zero_traps_do_not_feed_back(pears_bt):
    # with D = 0 the steady-state n(t) is the first pulse's plus the carry-over of n only:
    # n at the start of the steady pulse exceeds n0 by the free carriers left after one period
    n_start = np.asarray(pears_bt.start["n"])
    left = np.asarray(pears_bt.solution.final["n"])
    np.testing.assert_allclose(n_start, left + np.broadcast_to(N0, n_start.shape), rtol=1e-7)


def test_steady_pulse_matches_pears_1000_pulses(pears_bt):
    # PEARS TestBTModel.test_calculate_concentrations: n of pulse 1000 (converged) at t = 0, 1,
    # 2 ns for n0 = 1e17 cm^-3, period 100 ns
    np.testing.assert_allclose(np.asarray(pears_bt.solution.n[0, 0, :3]),
                               [1.09021346e17, 1.02383279e17, 9.64515430e16], rtol=2e-8)


def test_fast_k1_nothing_accumulates_in_traps():
    # K1 = 1e10 s^-1 empties the traps in 0.1 ns: n_d stays ~ A n / K1, and the train is the
    # trap-free BT model again (D n_d ~ D A / K1 n = 1e3 n is a 1e-4 correction to A)
    r = steady_state_decay("trap_detrap", dict(**BT_SI, D=1e6, K1=1e10, n0=N0), TS, RATE, CFG)
    n_d = np.asarray(r.start["n_d"])
    assert np.all(n_d < 1e-3 * np.asarray(r.start["n"]))
    np.testing.assert_allclose(np.asarray(r.carrier_accumulation_percent), PEARS_BT, rtol=2e-3)


def test_linear_case_matches_matrix_exponential():
    # B = C = 0: one period is the matrix exponential, z* = (I - e^{MT})^{-1} (n0, 0)
    A, K1, n0 = 1e7, 1e5, 1e16
    D = np.array([1e5, 1e6, 1e7, 1e8])
    rate = np.array([1e7, 1e7, 2e7, 2e7])
    r = steady_state_decay("trap_detrap", dict(A=A, B=0.0, C=0.0, D=D, K1=K1, n0=n0), TS, rate,
                           CFG)
    for i in range(4):
        M = np.array([[-A, D[i]], [A, -D[i] - K1]])
        T = 1.0 / rate[i]
        z = np.linalg.solve(np.eye(2) - scipy.linalg.expm(M * T), [n0, 0.0])
        np.testing.assert_allclose([r.start["n"][i], r.start["n_d"][i]], z, rtol=1e-6)
        n_t = np.array([(scipy.linalg.expm(M * t) @ z)[0] for t in TS])
        np.testing.assert_allclose(np.asarray(r.solution.n[i]), n_t, rtol=1e-6)


def _cw_steady_state(A, B, C, D, K1, G):
    """Algebraic CW steady state: n_d = A n/(D + K1), G = A K1/(D + K1) n + B n^2 + C n^3."""
    if G == 0:
        return 0.0, 0.0
    roots = np.roots([C, B, A * K1 / (D + K1), -G])
    n = float(max(r.real for r in roots if abs(r.imag) < 1e-6 * abs(r) and r.real > 0))
    return n, A * n / (D + K1)


def test_cw_bias_with_pulses_newton_equals_brute_force():
    model = get_model("trap_detrap")
    vals = dict(A=1e7, B=1e-10, C=1e-28, D=2e6, K1=1e6, n0=1e16,
                G=np.array([0.0, 1e22, 1e23, 3e23]))
    r = steady_state_decay(model, vals, TS, RATE.ravel()[[0, 0, 1, 1]], CFG)
    assert np.all(r.converged)
    rates = [1e7, 1e7, 2e7, 2e7]
    for i, G in enumerate(vals["G"]):
        # the first pulse starts from the CW steady state (closed form) plus n0
        n_cw, nd_cw = _cw_steady_state(1e7, 1e-10, 1e-28, 2e6, 1e6, G)
        np.testing.assert_allclose(r.first.n[i, 0], n_cw + 1e16, rtol=1e-7)
        np.testing.assert_allclose(r.first.states["n_d"][i, 0], nd_cw, rtol=1e-6, atol=1e6)
        # brute force: 400 pulses from the CW state (contraction ~ e^{-K1 T} <= 0.905 per pulse)
        c = {k: np.asarray(v) for k, v in model.coefficients(
            {**{k: np.float64(v if np.ndim(v) == 0 else v[i]) for k, v in vals.items()}},
            1e16, CFG.t_ref).items()}
        zs = np.asarray(_brute(model, c, 1.0 / (rates[i] * CFG.t_ref),
                               np.array([n_cw / 1e16 + 1.0, nd_cw / 1e16])))
        np.testing.assert_allclose(zs[-1] * 1e16, [r.start["n"][i], r.start["n_d"][i]],
                                   rtol=1e-6)
        # and the brute-force sequence was still moving early on (the test is not trivial)
        assert abs(zs[1][1] - zs[-1][1]) > 1e-3 * abs(zs[-1][1])


_BRUTE = {}


def _brute(model, c, t_period, z0):
    import jax

    if "f" not in _BRUTE:
        _BRUTE["f"] = jax.jit(lambda c, t, z: brute_force(model, c, t, 400, CFG, z0=z))
    return _BRUTE["f"](c, t_period, z0)


def test_bad_inputs_raise_parameter_error():
    with pytest.raises(ParameterError, match="rep_rate"):
        steady_state_decay("trap_detrap", None, TS, 0.0)
    with pytest.raises(ParameterError, match="beyond one period"):
        steady_state_decay("trap_detrap", None, np.linspace(0, 2e-6, 5), 1e6)
    with pytest.raises(ParameterError, match="'n0'"):
        steady_state_decay("trap_detrap", dict(n0=-1.0), TS, 1e6)


def test_pears_grid():
    t = pears_times(100e-9, 10001)
    assert t[0] == 0 and t.size == 10002
    np.testing.assert_allclose([t[1], t[-1]], [1e-13, 100e-9])


@pytest.mark.slow
def test_carrier_accumulation_matches_pears_btd():
    # three-state model with a conserved charge n_e + n_t - n_h: Newton needs the deflation
    r = steady_state_decay("btd", dict(n0=N0), TS, RATE, CFG)
    np.testing.assert_allclose(np.asarray(r.carrier_accumulation_percent), PEARS_BTD, rtol=1e-4)
    # PEARS's 1000-pulse state at 100 ns, n0 = 1e17 (TestBTDModel.test_calculate_concentrations)
    np.testing.assert_allclose([r.start["n"][0, 0], r.start["n_d"][0, 0], r.start["n_h"][0, 0]],
                               [1.16972060e17, 5.95997634e13, 1.17031660e17], rtol=1e-7)
    charge = r.start["n"] + r.start["n_d"] - r.start["n_h"]
    np.testing.assert_allclose(np.asarray(charge), 0.0, atol=1e-6 * 1e17)


@pytest.mark.slow
def test_abc_model_matches_pears_bt():
    r = steady_state_decay("abc", dict(**BT_SI, n0=N0), TS, RATE, CFG)
    np.testing.assert_allclose(np.asarray(r.carrier_accumulation_percent), PEARS_BT, rtol=1e-4)


def test_save_time_at_exactly_one_period():
    # the last save time equals the shortest period: scaling must not push it past t1
    rate = np.array([3e7, 7e6, 1.1e7, 3e6])
    ts = TS * (1.0 / 3e7) / TS[-1]
    r = steady_state_decay("trap_detrap", dict(**BT_SI, D=1e6, K1=1e6, n0=1e16), ts, rate, CFG)
    assert np.all(r.converged) and np.all(np.asarray(r.solution.status) == 0)
    assert np.all(np.isfinite(np.asarray(r.solution.pl)))


@pytest.mark.slow
def test_fixed_point_fallback_agrees_with_newton():
    vals = dict(A=1e7, B=1e-10, C=1e-28, D=3e6, K1=1e6, n0=1e16, G=1e22)
    newton = steady_state_decay("trap_detrap", vals, TS, 1e7, CFG)
    plain = steady_state_decay("trap_detrap", vals, TS, 1e7, CFG, max_newton=0)
    assert newton.newton and not plain.newton and plain.converged
    assert plain.iterations > newton.iterations
    np.testing.assert_allclose([plain.start["n"], plain.start["n_d"]],
                               [newton.start["n"], newton.start["n_d"]], rtol=1e-7)


def test_float32_high_density_does_not_stall_on_the_first_step():
    # diffrax's automatic first step (dt0=None) overflows float32 when Auger at n0 = 1e20
    # (3 C n0^2 = 3e12 s^-1) meets the small atol of the integrals: it used to return a zero
    # step and stall for max_steps (20000 steps, n unchanged). pulses now starts from
    # jaxsim.numerics.initial_step.
    import jax
    import jax.numpy as jnp

    from jaxsim.numerics.pulses import advance, flow

    model = get_model("trap_detrap")
    vals = dict(A=1e7, B=1e-10, C=1e-28, D=1e6, K1=1e4, n0=1e20, G=0.0)
    cfg = SolverConfig(dtype="float32", rtol=1e-5)
    c = {k: jnp.asarray(v, jnp.float32) for k, v in model.coefficients(vals, 1e20, cfg.t_ref).items()}
    y0 = model.initial_state(c)
    period = jnp.asarray(1000.0, jnp.float32)  # 1 us

    def run(c):
        sol = flow(model, c, y0, jnp.linspace(0.0, period, 5), period, cfg)
        y1, st = advance(model, c, y0, period, cfg)
        return sol.final, sol.status, sol.num_steps, y1, st

    final, status, steps, y1, st = jax.jit(run)(c)
    assert int(status) == 0 and int(st) == 0
    assert int(steps) < 1000, int(steps)
    np.testing.assert_allclose(np.asarray(y1, float), np.asarray(final, float), rtol=1e-4)
    # the same solve in float64 at rtol 1e-9: (n, n_d) / n0 after 1 us
    np.testing.assert_allclose(np.asarray(final, float), [1.7490080e-4, 2.0371650e-3], rtol=1e-4)


def test_float32_period_jacobian_and_newton():
    # jacfwd through an adaptive float32 solve at the core's local tolerances (a few ulps) let
    # the tangent's stiff mode grow (entries ~1e9 for a true Jacobian ~1e-4) and Newton never
    # converged; the variational equations under the same error control give the Jacobian
    import jax
    import jax.numpy as jnp
    import scipy.linalg

    from jaxsim.numerics.pulses import advance_with_jacobian, periodic_state

    model = get_model("trap_detrap")
    A, D, K1 = 1e7, 5e6, 1e5
    vals = dict(A=A, B=0.0, C=0.0, D=D, K1=K1, n0=1e16, G=0.0)
    cfg = SolverConfig(dtype="float32", rtol=1e-5)
    c = {k: jnp.asarray(v, jnp.float32) for k, v in model.coefficients(vals, 1e16, cfg.t_ref).items()}
    period = jnp.asarray(1e5, jnp.float32)  # 100 us, scaled

    def run(c):
        y, phi, st = advance_with_jacobian(model, c, jnp.array([1.0, 0.0], jnp.float32), period,
                                           cfg)
        ps = periodic_state(model, c, period, cfg, tol=3e-5)
        return y, phi, st, ps.z, ps.converged, ps.iterations

    y, phi, st, z, converged, iterations = jax.jit(run)(c)
    expm = scipy.linalg.expm(np.array([[-A, D], [A, -D - K1]]) * 1e-4)  # linear: exact map
    assert int(st) == 0
    np.testing.assert_allclose(np.asarray(phi, float), expm, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(y, float), expm[:, 0], rtol=1e-3)
    z_exact = np.linalg.solve(np.eye(2) - expm, [1.0, 0.0])
    assert bool(converged) and int(iterations) <= 3
    np.testing.assert_allclose(np.asarray(z, float), z_exact, rtol=1e-4)
