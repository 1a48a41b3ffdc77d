"""Models and parameters: vector fields against the paper's equations, validation messages."""

import math

import jax
import numpy as np
import pytest

from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.reference import check_times, solve
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import pl_scale
from jaxsim.physics.parameters import Params, make_params
from jaxsim.physics.registry import get_model, models

RNG = np.random.default_rng(7)


def physical_rhs(name, v, y):
    """The paper's / PEARS's right-hand sides written out in physical units (cm^-3 s^-1)."""
    if name == "abc":
        n = y[0]
        return [v["G"] - v["A"] * n - v["B"] * n**2 - v["C"] * n**3]
    if name == "effective":
        n = y[0]
        return [v["G"] - (v["A"] - v["D"]) * n - v["B"] * n**2 - v["C"] * n**3]
    if name == "trap_detrap":
        n, nd = y
        return [v["G"] - v["A"] * n - v["B"] * n**2 - v["C"] * n**3 + v["D"] * nd,
                v["A"] * n - v["D"] * nd - v["K1"] * nd]
    if name == "trap_detrap_quench":
        n, nd = y
        return [v["G"] - (v["A"] + v["Q"]) * n - v["B"] * n**2 - v["C"] * n**3 + v["D"] * nd,
                v["A"] * n - v["D"] * nd - v["K1"] * nd]
    if name == "btd":
        ne, nt, nh = y
        p = nh + v["p0"]
        return [v["G"] - v["B"] * ne * p - v["k_T"] * ne * (v["N_T"] - nt),
                v["k_T"] * ne * (v["N_T"] - nt) - v["k_D"] * nt * p,
                v["G"] - v["B"] * ne * p - v["k_D"] * nt * p]
    raise AssertionError(name)


def random_values(model):
    vals = {}
    for p in model.parameters:
        lo, hi = p.fit_lower, p.fit_upper
        if p.name == "G":
            vals[p.name] = float(RNG.uniform(0, 1e22))
        elif not p.log:
            vals[p.name] = float(RNG.uniform(lo, hi))
        elif p.name == "D" and model.name == "effective":
            vals[p.name] = 0.0
        else:
            vals[p.name] = float(10 ** RNG.uniform(math.log10(lo), math.log10(hi)))
    if model.name == "effective":
        vals["D"] = 0.3 * vals["A"]
    return vals


@pytest.mark.parametrize("name", list(models()))
def test_scaled_vector_field_matches_physical_equations(name):
    model = get_model(name)
    for _ in range(5):
        v = random_values(model)
        n_ref, t_ref = v["n0"], 1e-9
        c = model.coefficients(v, n_ref, t_ref)
        y = [float(x) for x in RNG.uniform(0.01, 1.5, len(model.state_names)) * n_ref]
        if name == "btd":
            y[1] = min(y[1], 0.9 * v["N_T"])
        scaled = model.vector_field(0.0, tuple(x / n_ref for x in y), c)
        expect = physical_rhs(name, v, y)
        for got, exp in zip(scaled, expect):
            # d(u)/d(tau) = dn/dt * t_ref / n_ref; compare relative to the largest term
            scale = max(abs(exp), 1e-300) * t_ref / n_ref
            terms = np.abs(exp) + v.get("A", 0.0) * y[0] + v["B"] * y[0] ** 2 * 10
            assert abs(float(got) - exp * t_ref / n_ref) <= 1e-12 * max(scale, terms * t_ref / n_ref)
        # PL: B n p in cm^-3 s^-1
        pl = float(model.pl(tuple(x / n_ref for x in y), c)) * pl_scale(v, n_ref)
        p = y[2] + v["p0"] if name == "btd" else y[0]
        assert pl == pytest.approx(v["B"] * y[0] * p, rel=1e-12)


def test_trap_detrap_carrier_balance():
    """d(n + n_d)/dt = G - B n^2 - C n^3 - K1 n_d: the loss fluxes account for every carrier."""
    model = get_model("trap_detrap")
    v = random_values(model)
    c = model.coefficients(v, v["n0"], 1e-9)
    y = (0.7, 0.4)
    du, dv = model.vector_field(0.0, y, c)
    fl = model.fluxes(y, c)
    assert float(du + dv) == pytest.approx(
        float(c["g"] - sum(fl[k] for k in model.loss_fluxes)), rel=1e-12, abs=1e-300)


def test_params_pytree_and_immutability():
    p = make_params("trap_detrap", A=1e7, n0=[1e15, 1e16, 1e17])
    assert p.batch_shape == (3,)
    leaves = jax.tree_util.tree_leaves(p)
    assert len(leaves) == len(get_model("trap_detrap").parameters)
    doubled = jax.jit(lambda q: jax.tree_util.tree_map(lambda x: 2 * x, q))(p)
    assert isinstance(doubled, Params) and float(doubled["A"]) == 2e7
    with pytest.raises(Exception):
        p.values = {}
    q = p.replace(D=2e6)
    assert float(q["D"]) == 2e6 and float(p["D"]) == get_model("trap_detrap").parameters[3].default
    with pytest.raises(ParameterError, match="'D'"):
        p.replace(D=-1.0)


@pytest.mark.parametrize("field,value", [
    ("A", -1.0), ("A", float("nan")), ("B", float("inf")), ("C", -1e-30), ("D", float("nan")),
    ("K1", -5.0), ("n0", 0.0), ("n0", -1e16), ("G", -1.0),
])
def test_bad_values_name_field_value_expected(field, value):
    with pytest.raises(ParameterError) as err:
        make_params("trap_detrap", **{field: value})
    msg = str(err.value)
    assert repr(field) in msg
    assert (repr(value) in msg) or (str(value) in msg)
    assert "expected" in msg


def test_bad_value_inside_batch_is_reported():
    with pytest.raises(ParameterError, match=r"'A' = -3.0 \(1 of 3 values\)"):
        make_params("abc", A=[1e6, -3.0, 1e7])


def test_non_number_and_unknown_names():
    with pytest.raises(ParameterError, match="'A' = 'fast' is not a number"):
        make_params("abc", A="fast")
    with pytest.raises(ParameterError, match="no parameter 'K1'.*expected one of A, B, C, n0, G"):
        make_params("abc", K1=1.0)
    with pytest.raises(ParameterError, match="model = 'abcd' is not known: expected one of"):
        get_model("abcd")
    with pytest.raises(ParameterError, match="do not broadcast"):
        make_params("abc", A=[1e6, 1e7], n0=[1e15, 1e16, 1e17])


def test_effective_needs_a_at_least_d():
    with pytest.raises(ParameterError, match=r"'D' = 2e\+07 exceeds 'A' = 1e\+07"):
        make_params("effective", A=1e7, D=2e7)


@pytest.mark.parametrize("ts,match", [
    ([0.0, 2e-9, 1e-9], "not strictly increasing: 2e-09 is followed by 1e-09"),
    ([0.0, 1e-9, 1e-9], "not strictly increasing"),
    ([-1e-9, 1e-9], "contains -1e-09: expected times >= 0"),
    ([0.0, float("nan")], "contains nan: expected finite"),
    ([0.0, float("inf")], "contains inf: expected finite"),
    ([], "expected a non-empty"),
    ([0.0], "expected a last time > 0"),
])
def test_bad_times(ts, match):
    with pytest.raises(ParameterError, match=match):
        check_times(ts)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rtol=0.0), "rtol = 0.0: expected"),
    (dict(rtol=float("nan")), "rtol = nan"),
    (dict(atol=-1.0), "atol = -1.0: expected a positive"),
    (dict(solver="euler"), "solver = 'euler' is not known"),
    (dict(dtype="float16"), "dtype = 'float16'"),
    (dict(max_steps=0), "max_steps = 0"),
])
def test_bad_solver_config(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SolverConfig(**kwargs)


def test_solve_rejects_mismatched_params_and_missing_times():
    with pytest.raises(ParameterError, match="params are for model 'abc'"):
        solve("trap_detrap", make_params("abc"), [0.0, 1e-9])
    with pytest.raises(ParameterError, match="times = None"):
        solve("abc", {}, None)


def test_parameter_table_is_complete():
    for model in models().values():
        for p in model.parameters:
            assert p.unit and p.meaning
            assert p.lower <= p.default <= p.upper
            assert p.fit_lower is not None and p.fit_upper is not None
            assert p.fit_lower <= p.fit_upper
        assert set(model.loss_fluxes) <= set(model.fluxes_reported)
