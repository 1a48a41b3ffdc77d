"""One pipeline: ``rtol`` means the same on every path (numerics/config.py), so the reference
diffrax solve and a sweep through the chunk engine agree on the same points, with about as
many steps; every diffrax solve goes through one call with one set of solver objects."""

import ast
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import jaxsim
from jaxsim.numerics.config import SolverConfig, stiffness_index
from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.studies.sweep import run_sweep

SPEC = """
name = "pipeline"
model = "trap_detrap"
t1 = 2e-6
rtol = {rtol}
chunk_size = 64
[axes]
A = {{ logspace = [1e5, 1e8, 4] }}
D = {{ values = [0.0, 1e4, 1e6, 5e7] }}
K1 = {{ logspace = [1e2, 1e7, 3] }}
n0 = {{ logspace = [1e15, 1e18, 3] }}
[observables]
summaries = ["tau_mean_pl", "tau_mean_n", "plqy", "share_trapping"]
"""


@pytest.mark.parametrize("rtol", [1e-6, 1e-8])
def test_solve_and_sweep_agree_within_rtol_with_as_many_steps(tmp_path, rtol):
    spec = parse_sweep_spec(SPEC.format(rtol=rtol))
    run_sweep(spec, tmp_path / "s.zarr", progress=False)
    ds = xr.open_zarr(tmp_path / "s.zarr").load()
    grid = ds[["tau_mean_pl"]].to_dataframe().reset_index()
    values = {k: grid[k].to_numpy() for k in ("A", "D", "K1", "n0")}
    sol = jaxsim.solve("trap_detrap", values, np.linspace(0.0, 2e-6, 11),
                       config=SolverConfig(rtol=rtol))
    assert sol.ok and int((ds["status"] != 0).sum()) == 0
    from jaxsim.observables import summaries

    ref = summaries(sol, ["tau_mean_pl", "tau_mean_n", "plqy", "share_trapping"])
    for name, v in ref.items():
        swept = ds[name].to_dataframe().reset_index()[name].to_numpy()
        rel = np.abs(swept - np.asarray(v)) / np.abs(np.asarray(v))
        # both deliver errors below rtol on this grid (docs/core.md); their difference too
        assert np.max(rel) <= 2 * rtol, (name, float(np.max(rel)))
    steps_sweep = ds["num_steps"].to_dataframe().reset_index()["num_steps"].to_numpy()
    ratio = np.mean(np.asarray(sol.num_steps)) / np.mean(steps_sweep)
    assert 1 / 1.2 <= ratio <= 1.2, ratio


def test_stiffness_rule_is_one_function():
    model = jaxsim.get_model("trap_detrap")
    v = dict(A=1e7, B=1e-10, C=1e-28, D=1e6, K1=1e4, n0=1e18, G=0.0)
    # one pulse, no generation: the density terms are a transient and do not count
    assert float(stiffness_index(model, v, 2e-6)) == pytest.approx((1e7 + 1e6 + 1e4) * 2e-6)
    # pulse trains (and CW generation) keep them: the density returns every period
    dense = 1e7 + 1e6 + 1e4 + 2 * 1e-10 * 1e18 + 3 * 1e-28 * 1e36
    assert float(stiffness_index(model, v, 1e-6, repeated=True)) == pytest.approx(dense * 1e-6)
    assert float(stiffness_index(model, {**v, "G": 1e20}, 1e-6)) == pytest.approx(dense * 1e-6)


def test_one_diffeqsolve_call_in_the_library():
    """Every diffrax solve goes through numerics.problem.integrate (the bench's naive baseline
    is written as a user would, on purpose)."""
    calls = []
    for path in Path(jaxsim.__file__).parent.rglob("*.py"):
        if "bench" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "diffeqsolve":
                calls.append(str(path.relative_to(Path(jaxsim.__file__).parent)))
    assert calls == ["numerics/problem.py"], calls
