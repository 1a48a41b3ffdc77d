"""Pulse-train sweeps: the repetition rate as a sweep axis.

Default: a 2 x 3 sweep (rep_rate x A) of a linear trap_detrap (C = 0, B = 1e-20 so that B n0 is
1e-10 of A: PL = B n^2 with linear n), whose periodic steady state, window integrals and carrier
accumulation have closed forms (eigen-decomposition of the 2x2 rate matrix); at the low
repetition rate they equal the single pulse's.
Slow (each compiles another solver): the same sweep with real B and C against direct
``steady_state_decay`` calls, SciPy Radau from that steady state, and at the low repetition rate
the single-pulse engine; and a per-point failure status. The chunk function is
compiled once for both sweeps (the fixed values are inputs, not constants).
"""

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

import jaxsim  # noqa: F401  (float64)
from jaxsim.numerics.pulses import pears_times
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model
from jaxsim.studies.spec import SpecError
from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.studies.sweep import run_sweep

LINEAR = dict(B=1e-20, C=0.0, D=1e6, K1=1e6, n0=1e16)
FIXED = dict(B=1e-10, C=1e-28, D=1e6, K1=1e6, n0=1e16)
RATES = np.array([1e4, 1e6])  # Hz: traps empty between pulses (K1 T = 100) / they do not
A_VALUES = np.array([1e6, 1e7, 3e7])
T1 = 1e-6  # s: the window, one period at 1 MHz
CURVE_TS = np.linspace(0.0, T1, 11)
SUMMARIES = ["tau_mean_pl", "plqy", "share_trapping", "share_remaining", "tau_1e_pl"]


def spec_text(fixed: dict) -> str:
    lines = "\n".join(f"{k} = {v!r}" for k, v in fixed.items())
    names = ", ".join(f'"{n}"' for n in SUMMARIES)
    return f"""
name = "reprate"
model = "trap_detrap"
t1 = {T1}
rtol = 1e-7
chunk_size = 4
[fixed]
{lines}
[axes]
rep_rate = [1e4, 1e6]
A = [1e6, 1e7, 3e7]
[observables]
summaries = [{names}]
curves = {{ vars = ["pl", "n_d"], ts = {{ linspace = [0.0, {T1}, 11] }} }}
"""


SPEC = spec_text(LINEAR)


def _run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("reprate") / "rr.zarr"
    res = run_sweep(parse_sweep_spec(text), out, progress=False)
    # 6 points in chunks of 4: the last chunk is padded, and the stiffness order permutes
    assert res.complete and res.points_run == 6 and res.chunks_run == 2
    return res, xr.open_zarr(out)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    res, ds = _run(tmp_path_factory, SPEC)
    assert res.failed_points == 0
    return ds


# -- closed form of the linear model ----------------------------------------------------------


class Linear:
    """n, n_d after a pulse for dn/dt = -A n + D n_d, dn_d/dt = A n - (D + K1) n_d: each a
    sum of exp(lambda_i t) with the rate matrix's (real, distinct) eigenvalues."""

    def __init__(self, A, rate, p=LINEAR):
        self.p = dict(p, A=A)
        m = np.array([[-A, p["D"]], [A, -(p["D"] + p["K1"])]])
        lam, v = np.linalg.eig(m)
        self.lam, self.v, self.vinv = lam.real, v.real, np.linalg.inv(v.real)
        period = 1.0 / rate
        self.period = period
        expm = self.v @ np.diag(np.exp(self.lam * period)) @ self.vinv
        self.z = np.linalg.solve(np.eye(2) - expm, [p["n0"], 0.0])  # steady start state
        self.z1 = np.array([p["n0"], 0.0])  # first pulse from the dark

    def coef(self, z):
        return self.v * (self.vinv @ z)[None, :]  # states(t) = coef @ exp(lam t)

    def states(self, z, t):
        return self.coef(z) @ np.exp(np.outer(self.lam, t))

    def summaries(self, z, t1=T1):
        a = self.coef(z)[0]  # n(t) = sum_i a_i exp(lam_i t)
        s = self.lam[:, None] + self.lam[None, :]
        aa = a[:, None] * a[None, :]
        i_n2 = np.sum(aa * np.expm1(s * t1) / s)
        i_tn2 = np.sum(aa * (np.exp(s * t1) * (s * t1 - 1) + 1) / s**2)
        i_n = np.sum(a * np.expm1(self.lam * t1) / self.lam)
        n0 = self.p["n0"]
        return dict(tau_mean_pl=i_tn2 / i_n2, plqy=self.p["B"] * i_n2 / n0,
                    share_trapping=self.p["A"] * i_n / n0,
                    share_remaining=np.sum(self.states(z, [t1])) / n0)

    def accumulation(self):
        t = pears_times(self.period)
        first = self.states(self.z1, t)[0] ** 2
        steady = self.states(self.z, t)[0] ** 2
        return 100 * np.max(np.abs(first / first[0] - steady / steady[0]))


def test_store_layout_and_status(store):
    assert store.rep_rate.attrs["units"] == "Hz"
    assert store.A.attrs["units"] == "s^-1"
    np.testing.assert_array_equal(store.rep_rate.values, RATES)
    assert store.carrier_accumulation_percent.dims == ("rep_rate", "A")
    assert store.curve_pl.dims == ("rep_rate", "A", "t")
    assert store.status.dtype == np.int8 and np.all(store.status.values == 0)
    assert np.all(store.num_steps.values > 0)
    assert "rep_rate = [10000.0, 1e+06]" in store.attrs["jaxsim_spec"]


def test_sweep_matches_closed_form(store):
    from jaxsim.observables.lifetimes import tau_1e

    pls = []
    for i, rr in enumerate(RATES):
        for j, a in enumerate(A_VALUES):
            ref = Linear(a, rr)
            pt = store.isel(rep_rate=i, A=j)
            where = f"rep_rate {rr:g}, A {a:g}"
            states = ref.states(ref.z, CURVE_TS)
            pl = LINEAR["B"] * states[0] ** 2
            np.testing.assert_allclose(pt.curve_pl.values, pl, rtol=1e-6, err_msg=where)
            np.testing.assert_allclose(pt.curve_n_d.values, states[1], rtol=1e-6,
                                       atol=1e-9 * LINEAR["n0"], err_msg=where)
            for name, value in ref.summaries(ref.z).items():
                np.testing.assert_allclose(float(pt[name]), value, rtol=1e-6,
                                           err_msg=f"{name}, {where}")
            pls.append(pl)
            np.testing.assert_allclose(float(pt.carrier_accumulation_percent),
                                       ref.accumulation(), rtol=1e-5, atol=1e-8, err_msg=where)
    # tau_1e from the exact curve on the same grid (inf at A = 1e6, 1 MHz: PL stays above 1/e)
    ref_1e = np.asarray(tau_1e(CURVE_TS, np.reshape(pls, (2, 3, -1))))
    assert np.isinf(ref_1e[1, 0])
    np.testing.assert_allclose(store.tau_1e_pl.values, ref_1e, rtol=1e-6)
    # the traps hold carriers from pulse to pulse at 1 MHz, not at 10 kHz
    ca = store.carrier_accumulation_percent.values
    assert np.all(ca[1] > 0.5) and np.all(ca[0] < 1e-8)


def test_low_rep_rate_equals_single_pulse(store):
    low = store.sel(rep_rate=1e4)
    for j, a in enumerate(A_VALUES):
        ref = Linear(a, 1e4)
        single = ref.summaries(ref.z1)  # one pulse from the dark
        for name, value in single.items():
            np.testing.assert_allclose(float(low[name][j]), value, rtol=1e-6, err_msg=name)
    high = store.sel(rep_rate=1e6)
    assert np.all(np.abs(high.plqy.values / low.plqy.values - 1) > 0.01)


# -- nonlinear: direct steady_state_decay, Radau and the engine (slow) --------------------------


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory):
    res, ds = _run(tmp_path_factory, spec_text(FIXED))
    assert res.failed_points == 0
    return ds


@pytest.fixture(scope="module")
def direct():
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.numerics.pulses import steady_state_decay

    vals = dict(FIXED, A=A_VALUES[None, :])
    return steady_state_decay("trap_detrap", vals, CURVE_TS, RATES[:, None],
                              SolverConfig(rtol=1e-7))


@pytest.mark.slow
def test_matches_direct_steady_state_decay(nonlinear, direct):
    assert np.all(direct.converged)
    np.testing.assert_allclose(nonlinear.carrier_accumulation_percent.values,
                               np.asarray(direct.carrier_accumulation_percent), rtol=1e-6,
                               atol=1e-9)
    assert np.all(nonlinear.carrier_accumulation_percent.values[1] > 0.5)
    np.testing.assert_allclose(nonlinear.curve_pl.values, np.asarray(direct.solution.pl),
                               rtol=1e-7)
    np.testing.assert_allclose(nonlinear.curve_n_d.values,
                               np.asarray(direct.solution.states["n_d"]), rtol=1e-7)
def _radau_window(A, start):
    """Integrals over [0, T1] of the steady-state pulse from its start state (cm^-3), Radau."""
    p = dict(FIXED, A=A)

    def rhs(t, y):
        n, nd = y[:2]
        pl = p["B"] * n * n
        trap = p["A"] * n
        return [-trap - pl - p["C"] * n**3 + p["D"] * nd, trap - (p["D"] + p["K1"]) * nd,
                pl, t * pl, trap]

    sol = solve_ivp(rhs, (0.0, T1), [start[0], start[1], 0.0, 0.0, 0.0], method="Radau",
                    rtol=1e-11, atol=1e-3)
    n, nd, i_pl, i_tpl, i_trap = sol.y[:, -1]
    n0 = p["n0"]
    return dict(tau_mean_pl=i_tpl / i_pl, plqy=i_pl / n0, share_trapping=i_trap / n0,
                share_remaining=(n + nd) / n0)


@pytest.mark.slow
def test_window_summaries_match_radau_from_the_steady_state(nonlinear, direct):
    for i, rr in enumerate(RATES):
        for j, a in enumerate(A_VALUES):
            start = (float(direct.start["n"][i, j]), float(direct.start["n_d"][i, j]))
            ref = _radau_window(a, start)
            for name, value in ref.items():
                got = float(nonlinear[name].sel(rep_rate=rr, A=a).values)
                np.testing.assert_allclose(got, value, rtol=2e-6, err_msg=f"{name} {rr} {a}")


@pytest.mark.slow
def test_nonlinear_low_rep_rate_equals_single_pulse_engine(nonlinear):
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.numerics.engine import chunk_solver

    f = chunk_solver("trap_detrap", t1=T1, summaries=SUMMARIES, curve_ts=CURVE_TS,
                     curve_vars=("pl", "n_d"), config=SolverConfig(rtol=1e-7), fixed=FIXED)
    single = {k: np.asarray(v) for k, v in f(dict(A=A_VALUES)).items()}
    assert np.all(single["status"] == 0)
    low = nonlinear.sel(rep_rate=1e4)
    np.testing.assert_allclose(low.carrier_accumulation_percent.values, 0.0, atol=1e-6)
    for name in SUMMARIES:
        np.testing.assert_allclose(low[name].values, single[name], rtol=2e-6, err_msg=name)
    np.testing.assert_allclose(low.curve_pl.values, single["curve_pl"], rtol=2e-6)


@pytest.mark.slow
def test_failed_points_have_a_status_and_nan(tmp_path_factory):
    # 300 steps are too few for the 100 us period at A = 3e7 (about 1000), enough at 1 MHz
    res, ds = _run(tmp_path_factory, SPEC.replace("rtol = 1e-7", "rtol = 1e-7\nmax_steps = 300"))
    status = ds.status.values
    assert res.failed_points == int(np.sum(status != 0)) > 0
    assert np.all(status[1] == 0)
    assert set(np.unique(status[status != 0])) <= {1, 2}
    bad = status != 0
    assert np.all(np.isnan(ds.plqy.values[bad])) and np.all(np.isnan(ds.curve_pl.values[bad]))
    assert np.all(np.isfinite(ds.plqy.values[~bad]))


# -- validation (no compile) ---------------------------------------------------------------------


def _spec(**changes):
    text = SPEC
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("old,new,match", [
    ("rep_rate = [1e4, 1e6]", "rep_rate = [0.0, 1e6]", r"axes.rep_rate.*'rep_rate' = 0.0.*Hz"),
    ("rep_rate = [1e4, 1e6]", "rep_rate = [-1e4, 1e6]", r"'rep_rate' = -10000.0.*expected"),
    ("rep_rate = [1e4, 1e6]", "rep_rate = [1e4, inf]", r"axes.rep_rate\[1\] = inf.*finite"),
    ("rep_rate = [1e4, 1e6]", "rep_rate = { logspace = [0.0, 1e6, 3] }", r"logspace.*> 0"),
    ("rep_rate = [1e4, 1e6]", "rep_rate = [1e4, 2e6]", r"t1 = 1e-06 s is longer than one period"),
])
def test_bad_rep_rate_is_refused(old, new, match):
    with pytest.raises(SpecError, match=match):
        parse_sweep_spec(_spec(**{old: new}))


def test_rep_rate_fixed_and_other_rules():
    fixed = _spec(**{"rep_rate = [1e4, 1e6]\n": "", "n0 = 1e+16": "n0 = 1e+16\nrep_rate = 1e6"})
    spec = parse_sweep_spec(fixed)
    assert spec.has_rep_rate and spec.axis_names == ("A",)
    np.testing.assert_array_equal(spec.rep_rates(), [1e6])
    assert "carrier_accumulation_percent" in spec.output_names()
    assert parse_sweep_spec(spec.to_toml()) == spec
    with pytest.raises(SpecError, match=r"fixed.rep_rate.*'rep_rate' = 0.0"):
        parse_sweep_spec(fixed.replace("rep_rate = 1e6", "rep_rate = 0.0"))
    with pytest.raises(SpecError, match="longer than one period"):
        parse_sweep_spec(fixed.replace("rep_rate = 1e6", "rep_rate = 2e6"))
    with pytest.raises(SpecError, match="sensitivities are not available"):
        parse_sweep_spec(_spec(**{"chunk_size = 4": 'chunk_size = 4\nsensitivities = ["A"]'}))
    # the accumulation may be asked for explicitly, but only with a pulse train
    spec = parse_sweep_spec(_spec(**{'"tau_1e_pl"]': '"tau_1e_pl", "carrier_accumulation_percent"]'}))
    assert spec.output_names().count("carrier_accumulation_percent") == 1
    plain = _spec(**{"rep_rate = [1e4, 1e6]\n": "",
                     '"tau_1e_pl"]': '"tau_1e_pl", "carrier_accumulation_percent"]'})
    with pytest.raises(SpecError, match="needs a pulse train"):
        parse_sweep_spec(plain)


def test_chunk_function_errors():
    from jaxsim.numerics.pulses import steady_state_chunk_solver

    f = steady_state_chunk_solver("trap_detrap", t1=T1, summaries=["plqy"], fixed=FIXED)
    with pytest.raises(ParameterError, match="rep_rate is missing"):
        f(dict(A=A_VALUES))
    with pytest.raises(ParameterError, match=r"'rep_rate' = 0.0 .*Hz"):
        f(dict(A=A_VALUES, rep_rate=np.array([1e4, 0.0, 1e4])))
    with pytest.raises(ParameterError, match=r"rep_rate = 2000000.0 Hz.*shorter than t1"):
        f(dict(A=A_VALUES, rep_rate=np.array([1e4, 2e6, 1e4])))
    with pytest.raises(ParameterError, match="'rep_rate' = nan"):
        steady_state_chunk_solver("trap_detrap", t1=T1, fixed=dict(rep_rate=np.nan))
    with pytest.raises(ParameterError, match="summary 'nope'"):
        steady_state_chunk_solver("trap_detrap", t1=T1, summaries=["nope"])


def test_quencher_model_is_registered():
    from jaxsim.physics.models.trap_detrap_quench import TrapDetrapQuench

    m = get_model("trap_detrap_quench")
    assert isinstance(m, TrapDetrapQuench) and m.name == "trap_detrap_quench"
    assert get_model("trap_detrap_quench") is m
    spec = parse_sweep_spec(SPEC.replace('model = "trap_detrap"', 'model = "trap_detrap_quench"')
                      .replace("n0 = 1e+16", "n0 = 1e+16\nQ = 1e6"))
    assert spec.model is m and spec.fixed_dict["Q"] == 1e6
    with pytest.raises(ParameterError, match="trap_detrap_quench"):
        get_model("no_such_model")


@pytest.mark.slow
def test_chunk_function_with_cw_bias_matches_steady_state_decay():
    # G as an input: the first pulse starts from the CW steady state (the chunk function's
    # second periodic state), which carrier accumulation compares against
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.numerics.pulses import steady_state_chunk_solver, steady_state_decay

    cfg = SolverConfig(rtol=1e-7)
    g = np.array([0.0, 1e22, 3e23])
    rates = np.array([1e6, 1e6, 2e6])
    fixed = dict(FIXED, A=1e7, D=2e6)
    f = steady_state_chunk_solver("trap_detrap", t1=5e-7, summaries=["plqy"],
                                  curve_ts=np.linspace(0, 5e-7, 6), curve_vars=("pl",),
                                  config=cfg, fixed=fixed)
    out = {k: np.asarray(v) for k, v in f(dict(G=g, rep_rate=rates)).items()}
    ref = steady_state_decay("trap_detrap", dict(fixed, G=g), np.linspace(0, 5e-7, 6), rates, cfg)
    assert np.all(out["status"] == 0) and np.all(ref.converged)
    np.testing.assert_allclose(out["carrier_accumulation_percent"],
                               ref.carrier_accumulation_percent, rtol=1e-6)
    np.testing.assert_allclose(out["curve_pl"], np.asarray(ref.solution.pl), rtol=1e-7)
    assert out["carrier_accumulation_percent"][2] != out["carrier_accumulation_percent"][0]
