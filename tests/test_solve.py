"""The solver against independent references: closed forms, float64 SciPy Radau, invariants.

Every solve here uses a batch of BATCH points on the same TS grid so that each (model, config)
compiles once.
"""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from jaxsim.numerics.config import STATUS_MESSAGES, SolverConfig, choose_solver
from jaxsim.numerics.reference import check_times, solve
from jaxsim.physics.registry import get_model

BATCH = 8
TS = np.concatenate([[0.0], np.logspace(-10, np.log10(2e-6), 60)])
TIGHT = SolverConfig(rtol=1e-10)
DEFAULT = SolverConfig()
F32 = SolverConfig(dtype="float32")
B, C = 1e-10, 1e-28


def random_trap_detrap(seed, n=BATCH):
    """Random points over the issue's ranges: A 1e5-1e8, D 0-1e8, K1 1e2-1e7, n0 1e14-1e19."""
    rng = np.random.default_rng(seed)
    d = 10 ** rng.uniform(3, 8, n)
    d[: n // 4] = 0.0
    return dict(A=10 ** rng.uniform(5, 8, n), D=d, K1=10 ** rng.uniform(2, 7, n),
                n0=10 ** rng.uniform(14, 19, n), B=np.full(n, B), C=np.full(n, C))


def radau_trap_detrap(v, i, ts):
    """Float64 SciPy Radau of eqs. 4-5, written out here (scaled by n0 and 1 ns)."""
    n0 = v["n0"][i]
    a, d, k = v["A"][i] * 1e-9, v["D"][i] * 1e-9, v["K1"][i] * 1e-9
    b, c = v["B"][i] * n0 * 1e-9, v["C"][i] * n0**2 * 1e-9

    def f(t, y):
        return [-a * y[0] - b * y[0] ** 2 - c * y[0] ** 3 + d * y[1], a * y[0] - d * y[1] - k * y[1]]

    def jac(t, y):
        return [[-a - 2 * b * y[0] - 3 * c * y[0] ** 2, d], [a, -d - k]]

    s = solve_ivp(f, (0, ts[-1] * 1e9), [1.0, 0.0], method="Radau", t_eval=ts * 1e9,
                  rtol=1e-11, atol=1e-20, jac=jac)
    assert s.success
    return s.y.T * n0  # (T, 2)


def rel_error(got, ref, n0, floor=1e-8):
    """Worst pointwise relative error where |ref| >= floor * n0, and worst |error|/n0 below it."""
    n0 = np.asarray(n0)[:, None, None]
    big = np.abs(ref) >= floor * n0
    err = np.abs(got - ref)
    rel = (err / np.where(big, np.abs(ref), 1.0))[big].max()
    small = (err / n0)[~big].max() if (~big).any() else 0.0
    return rel, small


def stacked(sol, names=("n", "n_d")):
    return np.stack([np.asarray(sol.states[k]) for k in names], axis=-1)


@pytest.fixture(scope="module")
def reference():
    v = random_trap_detrap(1)
    ref = np.stack([radau_trap_detrap(v, i, TS) for i in range(BATCH)])
    return v, ref


def test_against_scipy_radau_tight(reference):
    v, ref = reference
    sol = solve("trap_detrap", v, TS, config=TIGHT)
    assert sol.ok and sol.solver == "tsit5"
    rel, small = rel_error(stacked(sol), ref, v["n0"])
    assert rel <= 1e-7, rel
    assert small <= 1e-15, small


def test_against_scipy_radau_default_tolerance(reference):
    v, ref = reference
    sol = solve("trap_detrap", v, TS, config=DEFAULT)
    assert sol.ok
    rel, small = rel_error(stacked(sol), ref, v["n0"])
    assert rel <= 1e-5, rel  # rtol 1e-6: measured ~2e-6 worst case
    assert small <= 1e-11, small


def test_float32_matches_float64(reference):
    v, ref = reference
    sol = solve("trap_detrap", v, TS, config=F32)
    assert sol.ok
    rel, small = rel_error(stacked(sol), ref, v["n0"], floor=1e-4)
    assert rel <= 2e-4, rel
    assert small <= 1e-6, small


def test_float32_extreme_densities():
    """n0 = 1e13 and 1e20: C n0^3 = 1e32 cm^-3 s^-1 overflows float32 unscaled, not scaled."""
    v = random_trap_detrap(2)
    v["n0"] = np.array([1e13, 1e20] * (BATCH // 2))
    s32 = solve("trap_detrap", v, TS, config=F32)
    assert s32.ok, s32.status_messages()
    ref = np.stack([radau_trap_detrap(v, i, TS) for i in (0, 1)])
    got = stacked(s32)[:2]
    assert np.all(np.isfinite(got))
    rel, _ = rel_error(got, ref, v["n0"][:2], floor=1e-4)
    assert rel <= 2e-4, rel


def test_linear_closed_form():
    """B = C = 0: (n, n_d) = expm(M t) (n0, 0) with M = [[-A, D], [A, -D-K1]]."""
    v = random_trap_detrap(3)
    v["B"] = np.zeros(BATCH)
    v["C"] = np.zeros(BATCH)
    sol = solve("trap_detrap", v, TS, config=TIGHT)
    assert sol.ok
    ref = np.empty((BATCH, len(TS), 2))
    for i in range(BATCH):
        a, d, k = v["A"][i], v["D"][i], v["K1"][i]
        m = np.array([[-a, d], [a, -d - k]])
        for j, t in enumerate(TS):
            ref[i, j] = scipy.linalg.expm(m * t) @ np.array([v["n0"][i], 0.0])
    rel, small = rel_error(stacked(sol), ref, v["n0"])
    assert rel <= 1e-7, rel
    assert small <= 1e-14, small


def test_abc_closed_form():
    """C = 0: n = A n0 / ((A + B n0) e^{At} - B n0)."""
    rng = np.random.default_rng(4)
    a = 10 ** rng.uniform(5, 8, BATCH)
    b = 10 ** rng.uniform(-11, -9, BATCH)
    n0 = 10 ** rng.uniform(14, 19, BATCH)
    sol = solve("abc", dict(A=a, B=b, C=0.0, n0=n0), TS, config=TIGHT)
    assert sol.ok
    t = TS[None, :]
    ref = (a * n0)[:, None] / ((a + b * n0)[:, None] * np.exp(a[:, None] * t) - (b * n0)[:, None])
    rel, small = rel_error(np.asarray(sol.n)[..., None], ref[..., None], n0)
    assert rel <= 1e-7, rel
    # integrals carried with the ODE: int_0^t1 n dt = ln((A + B n0 - B n0 e^{-A t1}) / A) / B
    t1 = TS[-1]
    int_n = np.log((a + b * n0 - b * n0 * np.exp(-a * t1)) / a) / b
    assert np.allclose(np.asarray(sol.integrals["n"]), int_n, rtol=1e-7)
    assert np.allclose(np.asarray(sol.integrals["trapping"]), a * int_n, rtol=1e-7)


def test_btd_against_scipy():
    rng = np.random.default_rng(5)
    v = dict(B=10 ** rng.uniform(-11, -9, BATCH), k_T=10 ** rng.uniform(-9, -6, BATCH),
             k_D=10 ** rng.uniform(-11, -8, BATCH), N_T=10 ** rng.uniform(12, 16, BATCH),
             p0=10 ** rng.uniform(10, 15, BATCH), n0=10 ** rng.uniform(14, 18, BATCH))
    sol = solve("btd", v, TS, config=TIGHT)
    assert sol.ok
    ref = np.empty((BATCH, len(TS), 3))
    for i in range(BATCH):
        s = 1e-9
        bb, kt, kd = v["B"][i] * s, v["k_T"][i] * s, v["k_D"][i] * s
        nt_, p0 = v["N_T"][i], v["p0"][i]

        def f(t, y):
            ne, nt, nh = y
            holes = nh + p0
            return [-bb * ne * holes - kt * ne * (nt_ - nt), kt * ne * (nt_ - nt) - kd * nt * holes,
                    -bb * ne * holes - kd * nt * holes]

        # LSODA (stiffness-switching, float64): Radau without a Jacobian takes ~10 s here
        r = solve_ivp(f, (0, TS[-1] * 1e9), [v["n0"][i], 0.0, v["n0"][i]], method="LSODA",
                      t_eval=TS * 1e9, rtol=1e-11, atol=1e-20 * v["n0"][i])
        assert r.success
        ref[i] = r.y.T
    rel, small = rel_error(stacked(sol, ("n", "n_d", "n_h")), ref, v["n0"])
    assert rel <= 1e-7, rel
    pl = np.asarray(sol.pl)
    pl_ref = v["B"][:, None] * ref[..., 0] * (ref[..., 2] + v["p0"][:, None])
    assert np.all(np.abs(pl - pl_ref) <= 1e-6 * np.abs(pl_ref) + 1e-12 * pl_ref[:, :1])


exponent = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(st.lists(st.tuples(exponent, exponent, exponent, exponent, st.booleans()),
                min_size=BATCH, max_size=BATCH))
def test_invariants(points):
    """n, n_d >= 0 and n + n_d never increases without generation (one batch per example)."""
    x = np.array([p[:4] for p in points])
    v = dict(A=10 ** (5 + 3 * x[:, 0]), D=np.where([p[4] for p in points], 0.0, 10 ** (3 + 5 * x[:, 1])),
             K1=10 ** (2 + 5 * x[:, 2]), n0=10 ** (14 + 5 * x[:, 3]), B=np.full(BATCH, B),
             C=np.full(BATCH, C))
    sol = solve("trap_detrap", v, TS, config=TIGHT)
    assert sol.ok
    n, nd = np.asarray(sol.states["n"]), np.asarray(sol.states["n_d"])
    n0 = v["n0"][:, None]
    # allowed round-off: far below the solver tolerance on the scaled state
    assert np.all(n >= -1e-15 * n0) and np.all(nd >= -1e-15 * n0)
    total = n + nd
    assert np.all(np.diff(total, axis=-1) <= 1e-12 * n0)


def test_failure_is_a_status_not_nan():
    cfg = SolverConfig(max_steps=4)
    sol = solve("abc", dict(A=np.full(BATCH, 1e7), n0=1e17), TS, config=cfg)
    st_ = np.asarray(sol.status)
    assert np.all(st_ == STATUS_MESSAGES.index("max_steps_reached"))
    assert not sol.ok
    with pytest.raises(RuntimeError, match="max_steps_reached"):
        sol.raise_on_failure()


def test_auto_solver_rule():
    model = get_model("trap_detrap")
    base = {k: np.asarray(x) for k, x in random_trap_detrap(7, 2).items()}
    assert choose_solver(model, base, 2e-6) == "tsit5"
    stiff = dict(base, D=np.array([1e8, 1e8]), A=np.array([1e8, 1e8]))
    # stiffness index (A + D + ...) t1 = 2e8 * 1e-3 > 1e5
    assert choose_solver(model, stiff, 1e-3) == "kvaerno5"
    assert check_times([0.0, 1e-3])[-1] == 1e-3


@pytest.mark.slow
def test_stiff_case_against_scipy():
    """Where the rule picks Kvaerno5 (rates 1e8 s^-1 over 1 ms), it still matches Radau."""
    v = random_trap_detrap(8)
    v["A"][:] = 1e8
    v["D"][:] = 1e8
    ts = np.concatenate([[0.0], np.logspace(-10, -3, 60)])
    sol = solve("trap_detrap", v, ts, rtol=1e-9)
    assert sol.solver == "kvaerno5" and sol.ok
    ref = np.stack([radau_trap_detrap(v, i, ts) for i in range(BATCH)])
    rel, _ = rel_error(stacked(sol), ref, v["n0"], floor=1e-6)
    assert rel <= 1e-5, rel


@pytest.mark.slow
def test_many_random_points_against_radau():
    v = random_trap_detrap(9, 64)
    sol = solve("trap_detrap", v, TS, rtol=1e-10)
    ref = np.stack([radau_trap_detrap(v, i, TS) for i in range(64)])
    rel, small = rel_error(stacked(sol), ref, v["n0"])
    assert rel <= 1e-7 and small <= 1e-15
