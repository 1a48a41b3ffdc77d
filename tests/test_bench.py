"""The benchmark's machinery on a tiny grid: schema of the report, errors, ratios (no timing
assertions: the numbers of a tiny grid on a shared machine mean nothing)."""

import json
import math

import numpy as np
import pytest

from jaxsim.bench import engine as bench


@pytest.fixture(scope="module")
def report():
    return bench.run_benchmark(quick=True, sizes=bench.TINY, log=lambda *a: None, fit_rows=False)


def test_schema(report, tmp_path):
    assert isinstance(report["machine"], str) and report["machine"]
    assert isinstance(report["device"], str) and report["device"]
    rows = report["results"]
    pairs = {(r["name"], r["output"]) for r in rows}
    assert pairs >= {(n, o) for n in ("scipy", "diffrax_naive", "jaxsim")
                     for o in ("summary", "curves")}
    for r in rows:
        for key in ("points_per_s", "compile_s", "max_rel_err", "peak_rss_mb"):
            assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] >= 0, (r, key)
    path = tmp_path / "b.json"
    bench.write_report(report, path)
    back = json.loads(path.read_text())
    assert back["results"] == json.loads(json.dumps(rows))
    table = bench.format_table(report)
    assert "summary_float64_vs_diffrax_naive" in table and "jaxsim" in table
    assert {r["dtype"] for r in rows if r["name"] == "jaxsim"} == {"float64", "float32"}


def test_accuracy_rows(report):
    by = {(r["name"], r["output"]): r for r in report["results"] if r["dtype"] == "float64"}
    by32 = {r["output"]: r for r in report["results"]
            if r["name"] == "jaxsim" and r["dtype"] == "float32"}
    # the engine meets the bound against float64 Radau; the references agree
    assert by[("jaxsim", "summary")]["max_rel_err"] < 1e-5
    assert by[("jaxsim", "curves")]["max_rel_err"] < 1e-5
    assert by[("scipy", "summary")]["max_rel_err"] < 1e-4
    assert by[("jaxsim", "summary")]["failed"] == 0
    assert by32["summary"]["max_rel_err"] < 1e-5 and by32["curves"]["max_rel_err"] < 1e-5


def test_ratios_and_memory(report):
    r = report["ratios"]
    by = {(x["name"], x["output"], x["dtype"]): x for x in report["results"]}
    for dt in ("float64", "float32"):
        want = (by[("jaxsim", "curves", dt)]["points_per_s"]
                / by[("scipy", "curves", "float64")]["points_per_s"])
        assert r[f"curves_{dt}_vs_scipy"] == pytest.approx(want)
    assert {m["chunk"] for m in report["memory"]} == set(bench.TINY.memory_chunks)
    assert all(m["peak_rss_mb"] > 0 for m in report["memory"])


def test_rel_err_definition():
    ref = [{"tau_mean_pl": 2.0, "plqy": 0.5,
            "curve_n": np.array([1.0, 1e-3, 1e-9]), "curve_pl": np.array([1.0, 1e-6, 1e-18])}]
    got = {"tau_mean_pl": np.array([2.0 * (1 + 3e-6)]), "plqy": np.array([0.5]),
           "curve_n": np.array([[1.0, 1e-3 * (1 + 2e-6), 2e-9]]),
           "curve_pl": np.array([[1.0, 1e-6, 1e-18]])}
    assert bench.rel_err(got, ref, "summary") == pytest.approx(3e-6)
    # n = 1e-9 n0 is below the 1e-6 floor: its absolute error 1e-9 counts as 1e-9 / 1e-6
    assert bench.rel_err(got, ref, "curves") == pytest.approx(1e-3, rel=1e-3)


def test_random_grid_ranges():
    g = bench.random_grid(2000, seed=1)
    assert g["A"].min() >= 1e5 and g["A"].max() <= 1e8
    assert 0.05 < np.mean(g["D"] == 0) < 0.15
    assert g["n0"].min() >= 1e15 and g["n0"].max() <= 1e18


def test_cli_rejects_an_out_folder_it_cannot_make(tmp_path, capsys):
    """Before any work (a missing folder is made, as the other commands do)."""
    from jaxsim.cli import main

    (tmp_path / "file").write_text("")
    rc = main(["bench", "--tiny", "--out", str(tmp_path / "file" / "b.json")])
    assert rc == 2
    assert "cannot create its folder" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    from jaxsim.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", "--tiny", "--out", str(out)]) == 0
    assert {r["name"] for r in json.loads(out.read_text())["results"]} >= {"scipy", "jaxsim"}


def test_quick_leaves_out_fit_rows():
    """--quick must stay under 2 minutes: the fitting rows (over 2 minutes alone) only run in a
    full benchmark or when asked for explicitly."""
    assert not bench.want_fit_rows(True, True)
    assert bench.want_fit_rows(False, True)
    assert bench.want_fit_rows(True, "always")
    assert not bench.want_fit_rows(False, False)
    with pytest.raises(ValueError):
        bench.want_fit_rows(True, "sometimes")
