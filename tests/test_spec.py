"""Sweep specs: TOML round trip, value lists against numpy closed forms, and bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsim.physics.errors import ParameterError
from jaxsim.studies.spec import SpecError, SweepSpec, Values, from_dict, to_toml
from jaxsim.io.spec_files import load_sweep_spec, parse_sweep_spec

BASE = """
name = "t"
model = "trap_detrap"
t1 = 2e-6
chunk_size = 32
[fixed]
B = 1e-10
[axes]
A = { logspace = [1e5, 1e8, 4] }
D = { linspace = [0.0, 1e8, 3] }
K1 = [1e2, 1e4]
[observables]
summaries = ["tau_mean_pl", "plqy"]
"""


def test_parse_values_and_grid():
    spec = parse_sweep_spec(BASE)
    assert spec.axis_names == ("A", "D", "K1")
    assert spec.shape == (4, 3, 2) and spec.n_points == 24
    np.testing.assert_allclose(spec.axes[0].array(), [1e5, 1e6, 1e7, 1e8], rtol=1e-14)
    np.testing.assert_array_equal(spec.axes[1].array(), [0.0, 5e7, 1e8])
    assert [a.values.scale for a in spec.axes] == ["log", "linear", "log"]
    assert [a.unit for a in spec.axes] == ["s^-1", "s^-1", "s^-1"]
    assert spec.fixed_dict == {"B": 1e-10}


def test_grid_values_match_meshgrid():
    from jaxsim.studies.sweep import grid_values

    spec = parse_sweep_spec(BASE)
    mesh = np.meshgrid(*[a.array() for a in spec.axes], indexing="ij")
    idx = np.arange(spec.n_points)
    vals = grid_values(spec, idx)
    for a, m in zip(spec.axes, mesh):
        np.testing.assert_array_equal(vals[a.name], m.ravel())


def test_toml_round_trip_and_fingerprint():
    spec = parse_sweep_spec(BASE + '\n[observables.curves]\nvars = ["pl", "n"]\n'
                      'ts = { logspace = [1e-10, 2e-6, 50] }\n')
    again = parse_sweep_spec(to_toml(spec))
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()
    assert spec.replace(rtol=1e-7).fingerprint() != spec.fingerprint()
    assert spec.replace(name="other").fingerprint() == spec.fingerprint()


finite = st.floats(1e-3, 1e20, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=1, max_size=5, unique=True), finite, finite,
       st.integers(1, 30))
def test_round_trip_property(values, a, b, n):
    raw = dict(model="trap_detrap", t1=1e-6, axes={"n0": values, "A": {"logspace": [a, b, n]}},
               observables={"summaries": ["plqy"]})
    if n > 1 and a == b:
        return  # repeated values: rejected (tested below)
    spec = from_dict(raw)
    again = parse_sweep_spec(to_toml(spec))
    assert again == spec
    np.testing.assert_array_equal(again.axes[0].array(), np.asarray(values))


def test_python_constructor_equals_toml():
    spec = SweepSpec.create(model="trap_detrap", t1=2e-6, chunk_size=32, name="t",
                            fixed={"B": 1e-10},
                            axes={"A": {"logspace": [1e5, 1e8, 4]},
                                  "D": {"linspace": [0.0, 1e8, 3]}, "K1": [1e2, 1e4]},
                            summaries=["tau_mean_pl", "plqy"])
    assert spec == parse_sweep_spec(BASE)


def test_bytes_estimate():
    spec = parse_sweep_spec(BASE)
    # 2 float64 summaries + window_tail_pl (beside tau_mean_pl) + int8 status + int32 steps
    # + int64 index
    assert spec.bytes_per_point() == 3 * 8 + 1 + 4 + 8


def test_shipped_specs_parse():
    for name, least in (("default", 10**5), ("paper_fig3", 1), ("gpu_large", 10**8)):
        spec = load_sweep_spec(name)
        assert spec.n_points >= least, name
    assert set(load_sweep_spec("default").axis_names) >= {"A", "D", "K1", "n0"}


# -- bad input --------------------------------------------------------------------------------


def _err(text, *fragments):
    with pytest.raises(SpecError) as e:
        parse_sweep_spec(text, source="x.toml")
    msg = str(e.value)
    for f in fragments:
        assert f in msg, msg
    assert isinstance(e.value, ParameterError) and isinstance(e.value, ValueError)
    return msg


def test_malformed_toml_names_line():
    bad = BASE.replace('K1 = [1e2, 1e4]', 'K1 = [1e2, 1e4')
    line = bad.splitlines().index("K1 = [1e2, 1e4") + 1
    msg = _err(bad, "x.toml", "not valid TOML")
    assert f"line {line}" in msg or f"line {line + 1}" in msg


def test_unknown_parameter_and_observable():
    _err(BASE.replace("K1 = [", "K9 = ["), "K9", "axes.K9")
    _err(BASE.replace("B = 1e-10", "Bee = 1e-10"), "Bee")
    _err(BASE.replace('"plqy"', '"tau_magic"'), "tau_magic", "tau_mean_pl")
    _err(BASE.replace('model = "trap_detrap"', 'model = "nope"'), "nope")
    _err(BASE + "\nfoo = 1\n", "foo")


def test_empty_and_nonpositive_axes():
    _err(BASE.replace("K1 = [1e2, 1e4]", "K1 = []"), "axes.K1", "at least one")
    _err(BASE.replace("[1e5, 1e8, 4]", "[1e5, 1e8, 0]"), "axes.A", "num")
    _err(BASE.replace("[1e5, 1e8, 4]", "[0.0, 1e8, 4]"), "logspace", "> 0")
    _err(BASE.replace("[1e5, 1e8, 4]", "[-1e5, 1e8, 4]"), "logspace", "-100000")
    _err(BASE.replace("K1 = [1e2, 1e4]", "K1 = [-1.0, 1e4]"), "K1", "-1.0")
    _err(BASE.replace("K1 = [1e2, 1e4]", "K1 = [1e2, 1e2]"), "repeated")
    _err(BASE.replace("K1 = [1e2, 1e4]", 'K1 = "many"'), "axes.K1")


def test_other_bad_fields():
    _err(BASE.replace("t1 = 2e-6", "t1 = -1.0"), "t1")
    _err(BASE.replace("chunk_size = 32", "chunk_size = 0"), "chunk_size")
    _err(BASE.replace("chunk_size = 32", 'chunk_size = 32\ndtype = "float16"'), "float16")
    _err(BASE.replace("[fixed]\nB = 1e-10", "[fixed]\nA = 1e6"), "either swept or fixed")
    _err(BASE + '[observables.curves]\nts = { linspace = [0.0, 5e-6, 10] }\n', "after t1")
    eff = BASE.replace('model = "trap_detrap"', 'model = "effective"').replace(
        "K1 = [1e2, 1e4]\n", "")
    _err(eff, "corner", "'D'")  # D up to 1e8 > A = 1e5: A' < 0 somewhere on the grid


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="not found"):
        load_sweep_spec("no_such_spec_anywhere")


def test_values_logspace_closed_form():
    v = Values.parse({"logspace": [1e-3, 1e3, 7]}, where="x").array()
    np.testing.assert_allclose(v, [10.0**k for k in range(-3, 4)], rtol=1e-13)
    assert math.isclose(Values.parse({"linspace": {"start": 1, "stop": 2, "num": 3}},
                                     where="x").array()[1], 1.5)


def test_diffusion_coefficient_field():
    """A single-crystal sweep sets D_c; the default keeps older stores' fingerprints."""
    base = parse_sweep_spec(BASE)
    assert base.diffusion_coefficient == 0.017
    assert "diffusion_coefficient" not in to_toml(base)
    crystal = parse_sweep_spec("diffusion_coefficient = 2.05\n" + BASE)
    assert crystal.diffusion_coefficient == 2.05
    assert parse_sweep_spec(to_toml(crystal)) == crystal
    assert crystal.fingerprint() != base.fingerprint()
    _err("diffusion_coefficient = -1.0\n" + BASE, "diffusion_coefficient", "-1.0", "cm^2/s")


def test_sweep_diffusion_length_uses_the_spec_coefficient(tmp_path):
    import xarray as xr

    from jaxsim.studies.sweep import run_sweep

    text = ('diffusion_coefficient = 2.05\nname = "dc"\nmodel = "abc"\nt1 = 2e-6\n'
            'chunk_size = 4\n[axes]\nA = [1e6, 1e7]\n[observables]\n'
            'summaries = ["tau_avg_n", "diffusion_length"]\n')
    run_sweep(parse_sweep_spec(text), tmp_path / "dc.zarr", progress=False)
    ds = xr.open_zarr(tmp_path / "dc.zarr")
    np.testing.assert_allclose(ds.diffusion_length.values,
                               np.sqrt(2.05 * ds.tau_avg_n.values), rtol=1e-12)
    assert ds.diffusion_length.attrs["diffusion_coefficient_cm2_per_s"] == 2.05
