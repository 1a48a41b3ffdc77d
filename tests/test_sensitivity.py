"""Sensitivity analysis: forward-mode elasticities (through the engine) vs central finite
differences, closed forms and (slow) an independent diffrax stand-in;
Saltelli/Sobol estimators vs SALib (same samples) and the Ishigami function's analytic indices;
the CLI end to end."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.reference import solve_scaled
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.registry import get_model
from jaxsim.studies.sensitivity import (
    Range,
    SensitivitySpec,
    dominant_parameter,
    elasticity_name,
    run,
    saltelli_design,
    sobol_indices,
    spec_from_dict,
    with_elasticities,
)

T1 = 2e-6
SUMMARIES = ("tau_mean_pl", "tau_mean_n", "plqy")
WRT = ("A", "D", "K1", "n0", "B")
TIGHT = SolverConfig(rtol=1e-10, atol=1e-14, adjoint="forward")


def standin_chunk_fn(model_name="trap_detrap", config=TIGHT, t1=T1):
    """Independent stand-in for the engine's chunk function: ``solve_scaled`` under vmap, with
    the fit-free summaries from the integrals solved alongside the ODE."""
    model = get_model(model_name)
    ts = jnp.array([t1 / config.t_ref])

    def one(v):
        c = model.coefficients(v, v["n0"], config.t_ref)
        s = solve_scaled(model, c, ts, config, "tsit5")
        it = s.integrals
        return {"tau_mean_pl": it["t_pl"] / it["pl"] * config.t_ref,
                "tau_mean_n": it["t_n"] / it["n"] * config.t_ref,
                "plqy": c["b"] * it["pl"],  # int B n^2 dt / n0 with n_ref = n0
                "status": s.status, "num_steps": s.num_steps}

    run_ = jax.jit(jax.vmap(one))
    defaults = {p.name: p.default for p in model.parameters}

    def f(values):
        n = len(next(iter(values.values())))
        full = {k: jnp.broadcast_to(jnp.asarray(values.get(k, d), float), (n,))
                for k, d in defaults.items()}
        return run_(full)

    return f


# Four generic points over the paper's ranges, plus one linear point (C = D = K1 = 0 and a
# negligible B: n = n0 exp(-A t)) with closed-form lifetimes.
POINTS = dict(A=np.array([1e7, 1e6, 3e5, 1e8, 2e6]), D=np.array([1e6, 1e7, 1e4, 1e5, 0.0]),
              K1=np.array([1e4, 1e3, 1e6, 1e2, 0.0]), n0=np.array([1e16, 3e16, 1e15, 1e18, 1e16]),
              B=np.array([1e-10, 1e-10, 1e-10, 2e-10, 1e-30]), C=np.array([1e-28] * 4 + [0.0]))


@pytest.fixture(scope="module")
def local():
    """The sweep's path: with_elasticities around the engine's chunk function (float64)."""
    from jaxsim.numerics.engine import chunk_solver

    fn = chunk_solver("trap_detrap", t1=T1, summaries=SUMMARIES, config=TIGHT)
    g = with_elasticities(fn, WRT, SUMMARIES)
    return fn, g, g(POINTS)


def test_elasticities_match_central_differences(local):
    fn, _, out = local
    h = 1e-4  # step in ln p; truncation ~h^2, solver noise ~rtol/h: both << tolerance
    assert np.all(np.asarray(out["status"]) == 0)
    for p in WRT:
        plus = fn({**POINTS, p: POINTS[p] * math.exp(h)})
        minus = fn({**POINTS, p: POINTS[p] * math.exp(-h)})
        for s in SUMMARIES:
            fd = (np.asarray(plus[s]) - np.asarray(minus[s])) / (2 * h)
            ad = np.asarray(out[elasticity_name(s, p)])
            scale = np.abs(np.asarray(out[s])) + 1e-300
            np.testing.assert_allclose(ad / scale, fd / scale, rtol=0, atol=1e-6,
                                       err_msg=f"d {s} / d ln {p}")
    # not trivially zero: the lifetime does depend on A, D and n0 at the generic points
    for p in ("A", "D", "n0"):
        assert np.all(np.abs(np.asarray(out[elasticity_name("tau_mean_pl", p)])[:4]) > 1e-12)


@pytest.mark.slow
def test_engine_elasticities_match_diffrax_standin(local):
    """Two independent integrators (the engine's and diffrax via solve_scaled), both at rtol
    1e-10, give the same elasticities."""
    fn, g, out = local
    assert g.model is fn.model and "d_plqy_d_log_K1" in g.elasticities  # engine metadata kept
    ref = with_elasticities(standin_chunk_fn(), WRT, SUMMARIES)(POINTS)
    assert np.all(np.asarray(ref["status"]) == 0)
    for s in SUMMARIES:
        scale = np.abs(np.asarray(ref[s]))
        for p in WRT:
            name = elasticity_name(s, p)
            np.testing.assert_allclose(np.asarray(out[name]) / scale, np.asarray(ref[name]) / scale,
                                       rtol=0, atol=1e-6, err_msg=name)


def _tau_mean_exp(k, t):
    """First moment of exp(-k t) over [0, t]: 1/k - t / (e^{k t} - 1)."""
    return 1 / k - t / np.expm1(k * t)


def _d_tau_mean_exp_d_ln_k(k, t):
    return -1 / k + k * t**2 * np.exp(k * t) / np.expm1(k * t) ** 2


def test_elasticity_closed_form_linear_decay(local):
    _, _, out = local
    a = POINTS["A"][-1]
    tau_n = np.asarray(out["tau_mean_n"])[-1]
    np.testing.assert_allclose(tau_n, _tau_mean_exp(a, T1), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(out["d_tau_mean_n_d_log_A"])[-1],
                               _d_tau_mean_exp_d_ln_k(a, T1), rtol=1e-7)
    # PL = B n^2 decays at rate 2A; d/d ln A = d/d ln k with k = 2A
    np.testing.assert_allclose(np.asarray(out["d_tau_mean_pl_d_log_A"])[-1],
                               _d_tau_mean_exp_d_ln_k(2 * a, T1), rtol=1e-7)
    # linear and scale-free in n0 (B n0 = 1e-14 s^-1 is negligible); D = K1 = 0 enter
    # through p * d/dp = 0
    for p in ("n0", "D", "K1"):
        assert abs(float(np.asarray(out[elasticity_name("tau_mean_n", p)])[-1])) < 1e-9 * tau_n


def test_with_elasticities_bad_input(local):
    fn, g, _ = local
    assert g.model is fn.model and "d_plqy_d_log_K1" in g.elasticities  # engine metadata kept
    with pytest.raises(ParameterError, match="'K1'.*not in values"):
        g({k: v for k, v in POINTS.items() if k != "K1"})
    with pytest.raises(ParameterError, match="'tau_avg_pl'.*not an output"):
        with_elasticities(fn, ("A",), ("tau_avg_pl",))(POINTS)
    with pytest.raises(ParameterError, match="wrt"):
        with_elasticities(fn, (), SUMMARIES)


@pytest.mark.slow
def test_with_elasticities_reverse_mode_solve_is_refused():
    reverse = standin_chunk_fn(config=SolverConfig(rtol=1e-6, adjoint="checkpoint"))
    with pytest.raises(ParameterError, match="adjoint='forward'"):
        with_elasticities(reverse, ("A",), ("tau_mean_n",))({"A": np.array([1e7])})


def test_generic_chunk_fn_exact_elasticities_and_failed_points():
    """Any forward-differentiable chunk function works; failed points give NaN derivatives,
    flagged by their status (never a plausible-looking number)."""

    def fn(v):  # s = A^2 / n0: d s / d ln A = 2 s, d s / d ln n0 = -s
        s = v["A"] ** 2 / v["n0"]
        return {"s": s, "status": jnp.where(v["A"] > 1e8, 1, 0).astype(jnp.int32)}

    out = with_elasticities(fn, ("A", "n0"), ("s",))(
        {"A": np.array([1e6, 3e7, 1e9]), "n0": np.array([1e15, 1e16, 1e17])})
    s = np.asarray(out["s"])
    np.testing.assert_allclose(np.asarray(out["d_s_d_log_A"])[:2], 2 * s[:2], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(out["d_s_d_log_n0"])[:2], -s[:2], rtol=1e-14)
    assert np.asarray(out["status"])[2] == 1
    assert np.isnan(np.asarray(out["d_s_d_log_A"])[2])


# -- Saltelli design and Sobol indices ----------------------------------------------------------

ISHIGAMI = dict(num_vars=3, names=["x1", "x2", "x3"], bounds=[[-math.pi, math.pi]] * 3)


def ishigami(x, a=7.0, b=0.1):
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a=7.0, b=0.1):
    """Analytic indices (Ishigami & Homma 1990; Sobol' & Levitan 1999)."""
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v


def _ishigami_design(n, seed):
    return saltelli_design([Range(k, -math.pi, math.pi) for k in ISHIGAMI["names"]], n, seed=seed)


def test_design_is_salibs_sample():
    salib_sample = pytest.importorskip("SALib.sample.sobol")
    des = _ishigami_design(256, seed=7)
    ref = salib_sample.sample(ISHIGAMI, 256, calc_second_order=False, seed=7)
    np.testing.assert_array_equal(des.points()[des.salib_order()], ref)


def test_indices_match_salib_on_same_outputs():
    salib_analyze = pytest.importorskip("SALib.analyze.sobol")
    des = _ishigami_design(1024, seed=3)
    y = ishigami(des.points())
    ref = salib_analyze.analyze(ISHIGAMI, y[des.salib_order()], calc_second_order=False,
                                num_resamples=100, conf_level=0.95, seed=5)
    mine = sobol_indices(*des.split(y), num_resamples=100, conf_level=0.95, seed=5)
    for k in ("S1", "ST"):
        np.testing.assert_allclose(mine[k], ref[k], rtol=0, atol=1e-10, err_msg=k)
    for k in ("S1_conf", "ST_conf"):  # same bootstrap draw as SALib for a nonzero seed
        np.testing.assert_allclose(mine[k], ref[k], rtol=1e-8, err_msg=k)


def test_ishigami_analytic_indices():
    des = _ishigami_design(2**13, seed=11)
    s = sobol_indices(*des.split(ishigami(des.points())), seed=2)
    s1, st = ishigami_indices()
    # estimator error at N = 8192 is ~0.01 (the bootstrap intervals say ~0.02 at 95 %)
    np.testing.assert_allclose(s["S1"], s1, atol=0.03)
    np.testing.assert_allclose(s["ST"], st, atol=0.03)
    assert np.all(s["S1_conf"] > 0) and np.all(s["S1_conf"] < 0.05)


def test_sobol_indices_constant_and_bad_outputs():
    z = sobol_indices(np.ones(8), np.ones(8), np.ones((2, 8)))
    assert all(np.all(v == 0) for v in z.values())
    with pytest.raises(ParameterError, match="not finite"):
        sobol_indices(np.r_[np.nan, np.ones(7)], np.ones(8), np.ones((2, 8)))


def test_ranges_log_uniform_when_spanning_decades():
    assert Range("A", 1e5, 1e8).log and not Range("T", 1.0, 5.0).log
    assert not Range("A", 1e5, 1e8, log=False).log
    des = saltelli_design([Range("A", 1e5, 1e8), Range("x", 1.0, 3.0)], 1024, seed=0)
    la = np.log10(des.A[:, 0])
    assert 5 <= la.min() and la.max() < 8
    assert abs(np.mean(la) - 6.5) < 0.01  # uniform in log10 A: mean at the middle decade
    assert abs(np.mean(des.A[:, 1]) - 2.0) < 0.01
    with pytest.raises(ParameterError, match="'A'.*log"):
        Range("A", 0.0, 1e8, log=True)
    with pytest.raises(ParameterError, match="low < high"):
        Range("A", 1e8, 1e5)
    with pytest.raises(ParameterError, match="power of two"):
        saltelli_design([Range("A", 1e5, 1e8)], 1000)


def test_spec_validation():
    base = dict(observables=["tau_mean_pl"], t1=1e-6, ranges={"A": [1e5, 1e8]})
    assert spec_from_dict(base).ranges[0].log
    for bad, match in [({"ranges": {"Q": [1, 2]}}, "no parameter 'Q'"),
                       ({"fixed": {"A": 1e6}}, "both fixed and given a range"),
                       ({"observables": ["tau_nonsense"]}, "'tau_nonsense' is not known"),
                       ({"bogus": 1}, "'bogus' is not known"),
                       ({"ranges": {"A": [-1.0, 1e8]}}, "'A' = -1.0"),
                       ({"t1": -1.0}, "t1 = -1.0"),
                       ({"rtol": 2.0}, "rtol = 2.0"),
                       ({"N": "many"}, "N = 'many'"),
                       ({"ranges": {"A": {"low": 1e5, "high": 1e8, "log": "yes"}}}, "log = 'yes'"),
                       ({"conf_level": 1.5}, "conf_level = 1.5")]:
        with pytest.raises(ParameterError, match=match):
            spec_from_dict({**base, **bad})


# -- global study through the engine ------------------------------------------------------------


def test_global_known_answer_linear_decay():
    """abc with B = C = 0: tau_mean_n = 1/A - t1/(e^{A t1} - 1) depends on A alone, so
    S1_A = ST_A = 1 and n0 has no effect at all (ST_n0 = 0 exactly)."""
    spec = SensitivitySpec(ranges=(Range("A", 1e6, 1e8), Range("n0", 1e15, 1e18)),
                           observables=("tau_mean_n",), t1=T1, model="abc",
                           fixed={"B": 0.0, "C": 0.0}, n=256, seed=1, chunk=256)
    res = run(spec)
    a = res.design.points()[:, 0]
    np.testing.assert_allclose(res.outputs["tau_mean_n"], _tau_mean_exp(a, T1), rtol=1e-5)
    s = res.indices["tau_mean_n"]
    assert abs(s["A"]["S1"] - 1) < 0.05 and abs(s["A"]["ST"] - 1) < 0.05  # seed-fixed draw
    assert abs(s["A"]["S1"] - 1) < s["A"]["S1_conf"] and abs(s["A"]["ST"] - 1) < s["A"]["ST_conf"]
    assert abs(s["n0"]["S1"]) < 0.05 and abs(s["n0"]["ST"]) < 1e-6
    assert res.dropped_rows == 0


def test_cli_writes_indices_and_chart(tmp_path, capsys):
    from jaxsim.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text('model = "abc"\nobservables = ["tau_mean_n", "plqy"]\nt1 = 2e-6\nN = 16\n'
                    'seed = 4\nchunk_size = 128\n[fixed]\nC = 0.0\n[ranges]\n'
                    'A = { low = 1e6, high = 1e8 }\nn0 = [1e15, 1e18]\n')
    assert main(["sensitivity", str(spec), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    data = json.loads((tmp_path / "out" / "sensitivity.json").read_text())
    assert set(data) == {"tau_mean_n", "plqy"}
    for obs in data.values():
        assert set(obs) == {"A", "n0"}
        for v in obs.values():
            assert set(v) == {"S1", "S1_conf", "ST", "ST_conf"}
            assert all(math.isfinite(x) for x in v.values())
    png = tmp_path / "out" / "sensitivity.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 300_000
    bad = tmp_path / "bad.toml"
    bad.write_text('observables = ["plqy"]\nt1 = 1e-6\nN = 100\n[ranges]\nA = [1e5, 1e8]\n')
    assert main(["sensitivity", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "N = 100" in capsys.readouterr().err


# -- plots --------------------------------------------------------------------------------------


def _synthetic_store():
    a = np.logspace(5, 8, 4)
    d = np.logspace(3, 8, 3)
    aa, dd = np.meshgrid(a, d, indexing="ij")
    tau = 1 / (aa + 1e-2 * dd)
    ds = xr.Dataset({"tau_mean_pl": (("A", "D"), tau),
                     "d_tau_mean_pl_d_log_A": (("A", "D"), -aa * tau**2),
                     "d_tau_mean_pl_d_log_D": (("A", "D"), -1e-2 * dd * tau**2)},
                    coords={"A": a, "D": d})
    return ds


def test_dominant_parameter_and_maps(tmp_path):
    from jaxsim.plots.sensitivity import elasticity_maps, sobol_bars

    ds = _synthetic_store()
    idx = dominant_parameter(ds, "tau_mean_pl", ["A", "D"])
    expect = (1e-2 * ds["D"] > ds["A"]).astype(float)  # D wins where 1e-2 D > A
    np.testing.assert_array_equal(np.asarray(idx), np.asarray(expect.transpose("A", "D")))
    fig = elasticity_maps(ds, "tau_mean_pl", ["A", "D"], "A", "D")
    fig.savefig(tmp_path / "maps.png", dpi=60)
    assert fig.axes[0].get_xscale() == "log"
    fig = sobol_bars({"plqy": {"A": dict(S1=0.5, S1_conf=0.1, ST=0.6, ST_conf=0.1)}})
    fig.savefig(tmp_path / "bars.png", dpi=60)
    with pytest.raises(ParameterError, match="'d_tau_mean_pl_d_log_K1'"):
        elasticity_maps(ds, "tau_mean_pl", ["A", "K1"], "A", "D")
    with pytest.raises(ParameterError, match="'n0' is not a dim"):
        elasticity_maps(ds, "tau_mean_pl", ["A"], "A", "n0")


@pytest.mark.slow
def test_fit_based_summaries_elasticities_match_central_differences():
    """Curve summaries (two-exponential fit, 1/e time, diffusion length) push forward too."""
    from jaxsim.numerics.engine import chunk_solver

    summ = ("tau_avg_pl", "tau_1e_pl", "diffusion_length")
    f = chunk_solver("trap_detrap", t1=T1, summaries=summ, config=TIGHT)
    pts = {k: v[:4] for k, v in POINTS.items()}
    out = with_elasticities(f, ("A", "D", "n0"), summ)(pts)
    assert np.all(np.asarray(out["status"]) == 0)
    h = 1e-4
    for p in ("A", "D", "n0"):
        plus, minus = f({**pts, p: pts[p] * math.exp(h)}), f({**pts, p: pts[p] * math.exp(-h)})
        for s in summ:
            fd = (np.asarray(plus[s]) - np.asarray(minus[s])) / (2 * h)
            scale = np.abs(np.asarray(out[s]))
            # the fit and the 1/e interpolation add noise ~1e-5 relative to the FD quotient
            np.testing.assert_allclose(np.asarray(out[elasticity_name(s, p)]) / scale, fd / scale,
                                       rtol=0, atol=2e-4, err_msg=f"d {s} / d ln {p}")
