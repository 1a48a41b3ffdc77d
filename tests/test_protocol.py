"""Illumination protocols: the paper's three claims asserted on numbers, plus the bookkeeping.

One compiled batched fast solve (lanes padded to a multiple of 16, 129 decay points, default
config) serves every protocol here; the three shipped specs run in a module fixture.
"""

import copy
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import jaxsim  # noqa: F401  (float64)
from jaxsim.numerics.config import SolverConfig
from jaxsim.physics.errors import ParameterError
from jaxsim.studies.protocol import EV, fast_steady_states, protocol_from_dict, run_protocol
from jaxsim.io.spec_files import load_protocol

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


def _spec(name):
    with open(SWEEPS / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def runs():
    return {name: run_protocol(load_protocol(SWEEPS / f"{name}.toml"))
            for name in ("fig1_brightening", "fig1_quenching", "fig4_memory")}


def _seg(result, key):
    return np.array([s[key] for s in result.segments])


def test_all_protocols_converge(runs):
    for r in runs.values():
        assert r.converged and r.iterations <= 12
        assert np.all(r.status == 0)
        assert np.all(np.isfinite(r.pl)) and np.all(r.pl > 0)


def test_brightening_pl_rises_and_lifetime_grows(runs):
    r = runs["fig1_brightening"]
    assert r.protocol.duration == 120.0
    assert np.all(np.diff(r.pl) >= 0) and r.pl[-1] > 10 * r.pl[0]
    pl_seg, tau_seg = _seg(r, "pl_mean"), _seg(r, "tau_avg_ns")
    assert np.all(np.diff(pl_seg) > 0)
    assert np.all(np.diff(tau_seg) > 0) and tau_seg[-1] > 1.2 * tau_seg[0]
    assert np.all(np.diff(r.D) >= 0)
    # brightening without quenching: quenchers stay far below the trapping rate A
    assert r.Q.max() < 0.01 * r.protocol.fast["A"]


def test_quenching_pl_falls_at_high_intensity(runs):
    r, b = runs["fig1_quenching"], runs["fig1_brightening"]
    # same film and light, ~3x the intensity of the brightening protocol
    g_b = b.protocol.segments[0].cw.G
    np.testing.assert_allclose(r.protocol.segments[0].cw.G / g_b, 0.35 / 0.12, rtol=1e-12)
    assert r.pl[-1] < r.pl[0]
    assert np.all(np.diff(_seg(r, "pl_mean")) < 0)
    assert np.all(np.diff(r.pl[2:]) <= 0)  # falls after a transient of a few seconds
    tau = _seg(r, "tau_avg_ns")
    assert tau[-1] < 0.5 * tau[0]
    assert r.Q[-1] > r.protocol.fast["A"]  # mobile-ion quenchers outpace deep trapping


def test_memory_faster_under_bias_slower_after(runs):
    r = runs["fig4_memory"]
    tau = dict(zip(_seg(r, "name"), _seg(r, "tau_avg_ns")))
    assert tau["laser+bias"] < 0.9 * tau["laser"]
    assert tau["laser again"] > 1.1 * tau["laser"]
    # the memory is ionic: D after the bias is higher than before it
    d = dict(zip(_seg(r, "name"), _seg(r, "D_mean")))
    assert d["laser again"] > d["laser"]


def test_memory_bias_acceleration_survives_without_quenchers():
    # the paper's reason: bimolecular recombination with the bias carriers, n(t) + n_bias
    spec = _spec("fig4_memory")
    spec["ions"]["beta_q"] = 0.0
    r = run_protocol(protocol_from_dict(spec))
    tau = dict(zip(_seg(r, "name"), _seg(r, "tau_avg_ns")))
    assert np.all(r.Q == 0)
    assert tau["laser+bias"] < tau["laser"] < tau["laser again"]


def test_dark_segment_relaxes_exponentially_with_tau_ion():
    spec = _spec("fig4_memory")
    spec["segment"] = [spec["segment"][0], {"name": "dark", "duration_s": 200.0, "points": 6}]
    spec["segment"][0]["duration_s"] = 60.0
    r = run_protocol(protocol_from_dict(spec))
    dark = r.segment_index == 1
    t = r.lab_time_s[dark] - 60.0
    tau_ion = r.protocol.ions["tau_ion"]
    np.testing.assert_allclose(r.D[dark], r.D[dark][0] * np.exp(-t / tau_ion), rtol=1e-12)
    assert np.all(r.pl[dark] == 0)
    assert r.segments[1]["tau_avg_ns"] != r.segments[1]["tau_avg_ns"]  # nan: no decay in the dark


def test_periodic_steady_state_balances_carriers_and_energy(runs):
    """Generation = PL + non-radiative losses over a period; P = absorbed - E_g <PL>."""
    r = runs["fig4_memory"]
    fast, _ = fast_steady_states(r.protocol, r.D, r.Q, SolverConfig())
    gen = np.array([(s.pulsed.rep_rate * s.pulsed.n0 if s.pulsed else 0.0)
                    + (s.cw.G if s.cw else 0.0) for s in
                    (r.protocol.segments[j] for j in r.segment_index)])
    np.testing.assert_allclose(fast["pl_avg"] + fast["nonrad_avg"], gen, rtol=1e-5)
    absorbed = np.array([r.protocol.segments[j].absorbed_power() for j in r.segment_index])
    np.testing.assert_allclose(r.P_ph, absorbed - r.protocol.ions["E_g"] * fast["pl_avg"],
                               rtol=1e-9)
    # the slow states are the ones this P produces (self-consistent to the sweep tolerance)
    from jaxsim.studies.protocol import _sweep

    x, m = _sweep(r.protocol, r.P_ph)
    np.testing.assert_allclose(x, r.n_ion, rtol=1e-3)


def test_decoupled_limit_uses_absorbed_power():
    spec = _spec("fig1_brightening")
    spec["coupling"] = "decoupled"
    r = run_protocol(protocol_from_dict(spec))
    p = protocol_from_dict(spec)
    absorbed = np.array([p.segments[j].absorbed_power() for j in r.segment_index])
    np.testing.assert_allclose(r.P_ph, absorbed)
    assert r.iterations == 1
    # absorbed power of a 0.12 W cm^-2 CW beam absorbed within 1/alpha plus the probe
    g = 0.12 / (3.06 * EV) * 1e5
    np.testing.assert_allclose(p.segments[0].cw.G, g, rtol=1e-12)


def test_cli_writes_json_and_png(tmp_path, runs):
    from jaxsim.cli import main

    out = tmp_path / "mem"
    assert main(["protocol", str(SWEEPS / "fig4_memory.toml"), "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "protocol.json").read_text())
    assert {"lab_time_s", "pl", "D", "segments"} <= set(data)
    assert len(data["lab_time_s"]) == len(data["pl"]) == len(data["D"]) == 20
    for s in data["segments"]:
        assert {"name", "tau_avg_ns", "pl_integrated"} <= set(s)
    ref = runs["fig4_memory"]
    np.testing.assert_allclose([s["tau_avg_ns"] for s in data["segments"]],
                               _seg(ref, "tau_avg_ns"), rtol=1e-9)
    assert (out / "protocol.png").stat().st_size > 10_000


@pytest.mark.parametrize("mutate, match", [
    (lambda s: s["segment"][0].update(duration_s=-1.0), "duration_s = -1.0"),
    (lambda s: s["segment"][0]["pulsed"].update(n0_cm3=1e16), "exactly one of"),
    (lambda s: s["segment"][0]["pulsed"].update(photon_energy_eV=1.2), "below the band gap"),
    (lambda s: s["segment"][0].update(color="blue"), "unknown key"),
    (lambda s: s["fast"].update(D=1e6), "'D' is not allowed"),
    (lambda s: s["fast"].update(A=-1.0), "'A' = -1.0"),
    (lambda s: s["ions"].update(tau_ion=0.0), "'tau_ion' = 0.0"),
    (lambda s: s.update(segment=[]), "no \\[\\[segment\\]\\]"),
])
def test_bad_specs_raise_parameter_error(mutate, match):
    spec = copy.deepcopy(_spec("fig4_memory"))
    mutate(spec)
    with pytest.raises(ParameterError, match=match):
        protocol_from_dict(spec)


def test_missing_spec_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_protocol(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ParameterError, match="not valid TOML"):
        load_protocol(bad)


@pytest.mark.slow
def test_paper_figures_reproduce(tmp_path):
    from jaxsim.paper import fig1, fig4

    d1 = fig1.reproduce(tmp_path)
    d4 = fig4.reproduce(tmp_path)
    assert all(v for k, v in d1["claims"].items())
    assert d4["claims"]["faster_under_bias"] and d4["claims"]["slower_after_than_before"]
    for n in ("fig1", "fig4"):
        assert (tmp_path / f"{n}.png").exists() and (tmp_path / f"{n}.json").exists()
    assert math.isfinite(d4["claims"]["tau_avg_ns"]["after"])
