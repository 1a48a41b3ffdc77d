"""`jaxsim simulate` through `jaxsim.cli.main([...])`: output against closed forms, errors.

61 save times and rtol 1e-9 or the default, as in tests/test_solve.py, so the compiled solves
are shared (solve pads a batch of one to 8 lanes).
"""

import json

import numpy as np
import pytest

from jaxsim.cli import main
from jaxsim.cli.simulate import parse_times


def run_json(capsys, *argv):
    assert main(["simulate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_abc_matches_closed_form(capsys):
    a, b, n0 = 3e6, 1e-10, 2e17
    doc = run_json(capsys, "--model", "abc", "--set", f"A={a}", "--set", f"B={b}", "--set", "C=0",
                   "--set", f"n0={n0}", "--times", "linspace:0,1e-6,61", "--rtol", "1e-9")
    t = np.array(doc["t"])
    assert t[0] == 0 and t[-1] == pytest.approx(1e-6) and len(t) == 61
    ref = a * n0 / ((a + b * n0) * np.exp(a * t) - b * n0)
    np.testing.assert_allclose(doc["n"], ref, rtol=1e-7)
    np.testing.assert_allclose(doc["pl"], b * ref**2, rtol=2e-7)
    assert doc["status"] == "success" and doc["num_steps"] > 0
    assert "n_d" not in doc and "n_h" not in doc


def test_json_trap_detrap_and_btd_keys(capsys):
    doc = run_json(capsys, "--set", "A=1e7", "--set", "D=5e6", "--times", "linspace:0,1e-7,61")
    assert {"t", "n", "n_d", "pl", "status", "num_steps"} <= set(doc)
    assert doc["model"] == "trap_detrap" and doc["params"]["D"] == 5e6
    # carrier balance: n + n_d never increases
    tot = np.array(doc["n"]) + np.array(doc["n_d"])
    assert np.all(np.diff(tot) <= 0)
    btd = run_json(capsys, "--model", "btd", "--times", "logspace:-10,-7,61", "--rtol", "1e-9")
    assert {"n", "n_d", "n_h"} <= set(btd) and len(btd["t"]) == 61


def test_table_and_plot(capsys, tmp_path):
    png = tmp_path / "decay.png"
    assert main(["simulate", "--set", "A=1e7", "--set", "D=5e6", "--times", "linspace:0,1e-7,61",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "t (ns)" in out and "# status: success" in out
    assert len([ln for ln in out.splitlines() if ln.strip() and ln.lstrip()[0].isdigit()]) == 61
    assert png.stat().st_size > 5_000


@pytest.mark.parametrize("argv,message", [
    (["--model", "abcd"], "model = 'abcd' is not known: expected one of"),
    (["--set", "Q=1"], "no parameter 'Q': expected one of A, B, C, D, K1, n0, G"),
    (["--set", "A=nan"], "'A' = nan is not allowed: expected a finite number"),
    (["--set", "A=inf"], "'A' = inf is not allowed"),
    (["--set", "D=-1"], "'D' = -1.0 is not allowed: expected a finite number in [0, inf]"),
    (["--set", "n0=0"], "'n0' = 0.0 is not allowed: expected a finite number in (0, inf]"),
    (["--set", "A=fast"], "'A' = 'fast' is not a number"),
    (["--set", "A"], "expected NAME=VALUE"),
    (["--times", "0,2e-9,1e-9"], "not strictly increasing: 2e-09 is followed by 1e-09"),
    (["--times=-1e-9,1e-9"], "contains -1e-09: expected times >= 0"),
    (["--times", "0,abc"], "is not readable"),
    (["--times", "linspace:0,1e-6"], "is not readable"),
    (["--times", "range:0,1,2"], "unknown form 'range'"),
    (["--rtol", "0"], "rtol = 0.0: expected"),
    (["--rep-rate", "-5"], "--rep-rate = -5.0: expected a positive"),
])
def test_errors_exit_2_naming_field_value_expected(capsys, argv, message):
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxsim simulate: error:")
    assert message in err


def test_parse_times_forms():
    np.testing.assert_allclose(parse_times("linspace:0,2e-6,201"), np.linspace(0, 2e-6, 201))
    np.testing.assert_allclose(parse_times("logspace:-10,-5,100"), np.logspace(-10, -5, 100))
    np.testing.assert_allclose(parse_times("0, 1e-9 ,2e-9"), [0, 1e-9, 2e-9])


@pytest.mark.slow  # compiles the pulse-train solver (tests/test_pulses.py covers it by default)
def test_rep_rate(capsys):
    pytest.importorskip("jaxsim.numerics.pulses")
    doc = run_json(capsys, "--set", "A=1e7", "--set", "D=5e6", "--set", "K1=1e4",
                   "--times", "linspace:0,1e-6,11", "--rep-rate", "1e6")
    acc = doc["carrier_accumulation_percent"]
    assert np.isfinite(acc) and acc > 0
    assert doc["status"] == "success"
