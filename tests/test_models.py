"""Models and parameters: vector fields against the paper's equations, validation messages."""

import math

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.reference import check_times, solve
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import FREE, HOLES, Flux, State, pl_scale
from jaxsim.physics.parameters import Params, make_params
from jaxsim.physics.registry import get_model, models

RNG = np.random.default_rng(7)


def random_values(model, rng=RNG):
    """Valid physical values drawn over each parameter's fit range (log-uniform where the
    table says log); draws that break a model's cross-field check (effective: D <= A) are
    drawn again."""
    for _ in range(100):
        vals = {}
        for p in model.parameters:
            lo, hi = p.fit_lower, p.fit_upper
            if p.log and lo > 0:
                vals[p.name] = float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))
            else:
                vals[p.name] = float(rng.uniform(lo, hi))
        try:
            make_params(model, vals)
        except ParameterError:
            continue
        return vals
    raise AssertionError(f"no valid random values for {model.name}")


def physical_fluxes(model, v, y):
    """The model's fluxes at physical state ``y`` (cm^-3), in cm^-3 s^-1."""
    n_ref, t_ref = v["n0"], 1e-9
    c = model.coefficients(v, n_ref, t_ref)
    fl = model.fluxes(tuple(x / n_ref for x in y), c)
    return {k: float(x) * n_ref / t_ref for k, x in fl.items()}


def random_state(model, v):
    return [float(x) for x in RNG.uniform(0.01, 1.5, len(model.states)) * v["n0"]]


@pytest.mark.parametrize("name", list(models()))
def test_scaled_vector_field_matches_physical_rhs(name):
    """Each model's scaled field against its own physical-units right-hand side (written out
    independently), and the scaled PL against the physical PL."""
    model = get_model(name)
    for _ in range(5):
        v = random_values(model)
        n_ref, t_ref = v["n0"], 1e-9
        c = model.coefficients(v, n_ref, t_ref)
        y = random_state(model, v)
        scaled = model.vector_field(0.0, tuple(x / n_ref for x in y), c)
        expect = model.physical_rhs(v, tuple(y))
        assert len(scaled) == len(expect) == len(model.states)
        # every term of a field is G or a flux: their sizes bound the rounding of the sum
        terms = v.get("G", 0.0) + sum(abs(x) for x in physical_fluxes(model, v, y).values())
        for got, exp in zip(scaled, expect):
            # d(u)/d(tau) = dn/dt * t_ref / n_ref
            assert float(got) * n_ref / t_ref == pytest.approx(
                float(exp), rel=1e-12, abs=1e-12 * (terms + abs(float(exp))))
        pl = float(model.pl(tuple(x / n_ref for x in y), c)) * pl_scale(v, n_ref)
        assert pl == pytest.approx(float(model.physical_pl(v, tuple(y))), rel=1e-12)


@pytest.mark.parametrize("name", list(models()))
def test_declared_fluxes_account_for_the_field(name):
    """The flux table is what shares and carrier conservation rely on: each carrier state
    changes by G (the free one) plus the fluxes declared into it minus those out of it, and a
    hole state by G minus the losses (each recombination takes a hole)."""
    model = get_model(name)
    v = random_values(model)
    y = random_state(model, v)
    rhs = [float(x) for x in model.physical_rhs(v, tuple(y))]
    fl = physical_fluxes(model, v, y)
    assert set(fl) == set(model.fluxes_reported)
    g = v.get("G", 0.0)
    for i, state in enumerate(model.states):
        if state.kind == HOLES:
            expect = g - sum(fl[f.name] for f in model.flux_table if f.loss)
        else:
            expect = (g if state.kind == FREE else 0.0)
            expect += sum(fl[f.name] for f in model.flux_table if f.sink == state.name)
            expect -= sum(fl[f.name] for f in model.flux_table if f.source == state.name)
        scale = g + sum(abs(x) for x in fl.values())
        assert rhs[i] == pytest.approx(expect, abs=1e-12 * scale), state.name


@pytest.mark.parametrize("name", list(models()))
def test_max_rate_bounds_the_jacobian_at_t0(name):
    """The stiffness measure bounds the spectral radius of d(physical_rhs)/dy at the state
    just after the pulse (what orders sweep points and picks the solver)."""
    model = get_model(name)
    rng = np.random.default_rng(11)
    for _ in range(20):
        v = random_values(model, rng)
        c = model.coefficients(v, v["n0"], 1e-9)
        y0 = jnp.asarray([float(x) for x in model.initial_state(c)]) * v["n0"]
        jac = jax.jacfwd(lambda y: jnp.stack(model.physical_rhs(v, tuple(y))))(y0)
        radius = float(np.max(np.abs(np.linalg.eigvals(np.asarray(jac)))))
        assert radius <= float(model.max_rate(v)) * (1 + 1e-9)


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
        for item in (*model.states, *model.flux_table):
            assert item.meaning, (model.name, item.name)
        assert all(s.unit == "cm^-3" for s in model.states)


def test_bad_declarations_are_caught_when_the_model_is_built():
    """A model whose declarations break what the machinery relies on fails at construction,
    naming the model, the field, the value and what was expected."""
    trap_detrap = type(get_model("trap_detrap"))

    @dataclass(frozen=True)
    class TrappedFirst(trap_detrap):
        name: ClassVar[str] = "bad_order"
        states: ClassVar[tuple] = tuple(reversed(trap_detrap.states))

    with pytest.raises(ValueError, match=r"model 'bad_order': state kinds = \['trapped', "
                       r"'free'\]: expected exactly one 'free' state, first"):
        TrappedFirst()

    @dataclass(frozen=True)
    class DanglingFlux(trap_detrap):
        name: ClassVar[str] = "bad_flux"
        flux_table: ClassVar[tuple] = trap_detrap.flux_table + (
            Flux("leak", "to nowhere", "n", "n_x"),)

    with pytest.raises(ValueError, match=r"flux 'leak' runs 'n' -> 'n_x': expected a source"):
        DanglingFlux()

    @dataclass(frozen=True)
    class NoN0(trap_detrap):
        name: ClassVar[str] = "bad_params"
        parameters: ClassVar[tuple] = tuple(p for p in trap_detrap.parameters
                                            if p.name != "n0")

    with pytest.raises(ValueError, match=r"lack 'n0'"):
        NoN0()
    with pytest.raises(ValueError, match=r"kind = 'bound' is not known: expected one of "
                       r"free, trapped, holes"):
        State("n_b", "bound", "carriers somewhere")


@dataclass(frozen=True)
class _Unregistered(type(get_model("trap_detrap_quench"))):
    """trap_detrap_quench under another name, never passed to ``register``."""

    name: ClassVar[str] = "unregistered_quench"


def test_unregistered_model_object_works_everywhere():
    """Inside jaxsim a model travels as an object: one that is not registered solves, takes
    new parameters, gives summaries and shares, runs in the chunk engine and in a sweep's
    chunk function, with the numbers of the registered model it copies."""
    from jaxsim.numerics.engine import chunk_solver
    from jaxsim.observables.summaries import share_summaries, summaries
    from jaxsim.studies.spec import SweepSpec
    from jaxsim.studies.sweep import chunk_function

    model = _Unregistered()
    twin = get_model("trap_detrap_quench")
    assert model not in models().values()
    with pytest.raises(ParameterError, match="'unregistered_quench' is not known"):
        get_model(model.name)
    params = make_params(model, Q=3e6).replace(A=2e7, n0=[1e16, 1e17])
    assert params.model is model and float(params["A"]) == 2e7
    ts = np.linspace(0.0, 1e-6, 21)
    sol = solve(model, params, ts, rtol=1e-8)
    ref = solve(twin, dict(params.values), ts, rtol=1e-8)
    assert sol.model is model
    np.testing.assert_array_equal(np.asarray(sol.pl), np.asarray(ref.pl))
    shares = list(share_summaries(model))
    s = summaries(sol, ["plqy", *shares])
    lost = sum(np.asarray(s[f"share_{f}"]) for f in model.loss_fluxes)
    np.testing.assert_allclose(lost + np.asarray(s["share_remaining"]), 1.0, rtol=1e-6)
    assert np.all(np.asarray(s["share_quenching"]) > 0)

    f = chunk_solver(model, t1=1e-6, summaries=["plqy", "share_quenching", "share_remaining"],
                     curve_ts=ts, curve_vars=("n_d",))
    out = f({"A": np.array([2e7, 2e7]), "n0": np.array([1e16, 1e17]), "Q": np.full(2, 3e6)})
    assert list(np.asarray(out["status"])) == [0, 0]
    np.testing.assert_allclose(out["plqy"], np.asarray(s["plqy"]), rtol=1e-5)
    np.testing.assert_allclose(out["share_quenching"], np.asarray(s["share_quenching"]),
                               rtol=1e-5)
    np.testing.assert_allclose(out["curve_n_d"], np.asarray(sol.states["n_d"]), rtol=1e-4,
                               atol=1e-6 * 1e17)

    spec = SweepSpec.create(model=model, axes={"n0": [1e16, 1e17]}, t1=1e-6,
                            fixed={"A": 2e7, "Q": 3e6}, summaries=["plqy"])
    assert spec.replace(chunk_size=7).model is model
    g = chunk_function(spec)
    np.testing.assert_allclose(g({"n0": np.array([1e16, 1e17])})["plqy"], out["plqy"],
                               rtol=1e-12)


def test_docs_model_table_is_generated_from_the_registry(tmp_path, capsys):
    """docs/models.md carries the registry's table: adding a model file and running
    ``jaxsim models --update docs/models.md`` is all the docs need."""
    import pathlib

    from jaxsim.cli import main
    from jaxsim.physics.registry import TABLE_BEGIN, TABLE_END, model_table_markdown

    table = model_table_markdown()
    for model in models().values():
        assert f"| `{model.name}`" in table and f"### `{model.name}`" in table
        for p in model.parameters:
            assert f"| {p.name} | {p.unit} |" in table
    docs = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    committed = docs.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    assert committed.strip() == table.strip(), (
        "docs/models.md is out of date: run `jaxsim models --update docs/models.md`")
    # the command rewrites only what lies between the markers
    page = tmp_path / "m.md"
    page.write_text(f"intro\n{TABLE_BEGIN}\nold\n{TABLE_END}\noutro\n")
    assert main(["models", "--update", str(page)]) == 0
    capsys.readouterr()
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{TABLE_END}\noutro\n")
    assert "\nold\n" not in text and table in text
    assert main(["models"]) == 0 and capsys.readouterr().out.startswith("| model |")
    page.write_text("no markers\n")
    assert main(["models", "--update", str(page)]) == 2
    assert "expected the marker lines" in capsys.readouterr().err
