"""A model added as one file (jaxsim/physics/models/trap_detrap_shallow.py) works through
every command: simulate, pulse trains, sweep (summaries, shares, curves of its new state,
elasticities), fit and sensitivity. The references are independent of jaxsim: the rate
equations written out here from their definition, solved by SciPy's Radau in float64."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.optimize import fsolve

from jaxsim.cli import main
from jaxsim.physics.registry import get_model, models

NAME = "trap_detrap_shallow"
#: a point where all three levels matter: the shallow level (N_s < n0) saturates
TRUTH = dict(A=5e6, B=1e-10, C=1e-28, D=2e6, K1=1e5, G=0.0, c_s=3e-9, N_s=5e15, e_s=4e6,
             n0=1e16)


def rhs(v, y):
    """dn/dt, dn_d/dt, dn_s/dt (cm^-3 s^-1): trap_detrap plus the saturable shallow level
    -c_s n (N_s - n_s) + e_s n_s, written out from the definition."""
    n, nd, ns = y[0], y[1], y[2]
    capture = v["c_s"] * n * (v["N_s"] - ns)
    release = v["e_s"] * ns
    return [v["G"] - v["A"] * n - v["B"] * n * n - v["C"] * n**3 + v["D"] * nd - capture
            + release,
            v["A"] * n - v["D"] * nd - v["K1"] * nd,
            capture - release]


def radau(v, t_end, y0=None, t_eval=None):
    """States and int PL dt (PL = B n^2) from y0 (default: the pulse, n = n0) over [0, t_end]."""
    y0 = [v["n0"], 0.0, 0.0] if y0 is None else list(y0)

    def f(t, y):
        return rhs(v, y) + [v["B"] * y[0] * y[0]]

    return solve_ivp(f, (0.0, t_end), y0 + [0.0], method="Radau", rtol=1e-11,
                     atol=1e-12 * v["n0"], t_eval=t_eval, dense_output=True)


def close(got, ref, rtol, floor):
    """Pointwise relative error where the reference is above ``floor`` of its maximum."""
    got, ref = np.asarray(got, float), np.asarray(ref, float)
    scale = np.maximum(np.abs(ref), floor * np.max(np.abs(ref)))
    err = np.max(np.abs(got - ref) / scale)
    assert err < rtol, err


def test_registered_from_its_own_file_with_its_equations():
    model = get_model(NAME)
    assert NAME in models() and type(model).__module__ == f"jaxsim.physics.models.{NAME}"
    assert model.state_names == ("n", "n_d", "n_s")
    assert [s.kind for s in model.states] == ["free", "trapped", "trapped"]
    assert {p.name: p.unit for p in model.parameters if p.name in ("c_s", "N_s", "e_s")} == {
        "c_s": "cm^3 s^-1", "N_s": "cm^-3", "e_s": "s^-1"}
    rng = np.random.default_rng(5)
    for _ in range(3):
        y = list(rng.uniform(0.1, 2.0, 3) * TRUTH["n0"])
        np.testing.assert_allclose(model.physical_rhs(TRUTH, tuple(y)), rhs(TRUTH, y),
                                   rtol=1e-13, atol=1e-13 * TRUTH["c_s"] * TRUTH["n0"] ** 2)


def sets():
    return [x for k, v in TRUTH.items() for x in ("--set", f"{k}={v!r}")]


def test_simulate_matches_radau(capsys):
    ts = np.linspace(0.0, 1e-6, 51)
    rc = main(["simulate", "--model", NAME, *sets(), "--times", "linspace:0,1e-6,51",
               "--rtol", "1e-9", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["status"] == "success"
    ref = radau(TRUTH, ts[-1], t_eval=ts)
    for i, var in enumerate(("n", "n_d", "n_s")):
        close(doc[var], ref.y[i], 1e-8, 1e-6)
    close(doc["pl"], TRUTH["B"] * ref.y[0] ** 2, 1e-8, 1e-10)
    # the shallow level saturates, and holds carriers at the end
    assert max(doc["n_s"]) > 0.5 * TRUTH["N_s"] and doc["n_s"][-1] > 1e-3 * TRUTH["n0"]
    rc = main(["simulate", "--model", NAME, "--times", "0,1e-7,2e-7"])
    assert rc == 0 and "n_s (cm^-3)" in capsys.readouterr().out


def periodic_reference(v, period):
    """Start of the periodic steady state: z = Phi_T(z) + (n0, 0, 0), Newton (fsolve) on
    Radau's one-period map from a few periods of plain iteration."""
    inc = np.array([v["n0"], 0.0, 0.0])

    def phi(z):
        return radau(v, period, y0=z).y[:3, -1]

    z = inc.copy()
    for _ in range(5):
        z = phi(z) + inc
    z = fsolve(lambda x: (phi(x * v["n0"]) + inc) / v["n0"] - x, z / v["n0"], xtol=1e-12)
    return z * v["n0"]


def test_pulse_train_matches_radau_periodic_state(capsys):
    rate = 5e6
    ts = np.linspace(0.0, 1.0 / rate, 41)
    rc = main(["simulate", "--model", NAME, *sets(), "--times", "linspace:0,2e-7,41",
               "--rtol", "1e-9", "--rep-rate", repr(rate), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["status"] == "success"
    z = periodic_reference(TRUTH, 1.0 / rate)
    ref = radau(TRUTH, ts[-1], y0=z, t_eval=ts)
    # the periodic state is a fixed point: one period ends where the next pulse starts
    np.testing.assert_allclose(ref.y[:3, -1] + [TRUTH["n0"], 0, 0], z, rtol=1e-8)
    for i, var in enumerate(("n", "n_d", "n_s")):
        close(doc[var], ref.y[i], 1e-8, 1e-6)
    close(doc["pl"], TRUTH["B"] * ref.y[0] ** 2, 1e-8, 1e-10)
    # carriers pile up in the slow deep traps between pulses
    assert doc["n_d"][0] > 0.1 * TRUTH["n0"]
    assert doc["carrier_accumulation_percent"] > 1.0


SWEEP = """
model = "trap_detrap_shallow"
t1 = 1e-6
rtol = 1e-9
chunk_size = 8
sensitivities = ["c_s", "e_s"]

[fixed]
A = 5e6
D = 2e6
K1 = 1e5
N_s = 5e15
e_s = 4e6

[axes]
c_s = [1e-10, 3e-9, 3e-8]
n0 = [1e15, 1e16, 1e17]

[observables]
summaries = ["plqy", "share_trapping", "share_detrapping", "share_bimolecular", "share_auger",
             "share_trap_relaxation", "share_shallow_trapping", "share_shallow_release",
             "share_remaining"]
curves = { vars = ["n_s", "pl"], ts = { linspace = [0.0, 1e-6, 11] } }
"""


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "spec.toml").write_text(SWEEP)
    assert main(["sweep", str(d / "spec.toml"), "--out", str(d / "s.zarr")]) == 0
    return xr.open_zarr(d / "s.zarr")


def point(c_s, n0):
    return {**TRUTH, "c_s": c_s, "n0": n0}


def test_sweep_shares_conserve_carriers_and_match_radau(sweep_store):
    ds = sweep_store
    assert np.all(ds["status"].values == 0)
    losses = ("bimolecular", "auger", "trap_relaxation")
    total = sum(ds[f"share_{k}"] for k in losses) + ds["share_remaining"]
    # a linear invariant of the rate equations, which Runge-Kutta steps keep to rounding
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-12)
    ts = ds["t"].values
    for c_s in ds["c_s"].values:
        for n0 in ds["n0"].values:
            v = point(c_s, n0)
            ref = radau(v, 1e-6, t_eval=ts)
            at = ds.sel(c_s=c_s, n0=n0)
            n, nd, ns, int_pl = ref.y[:, -1]
            # net flow into the shallow level is what it holds at t1
            net = float(at["share_shallow_trapping"] - at["share_shallow_release"])
            assert net == pytest.approx(ns / n0, rel=1e-8)
            assert float(at["share_remaining"]) == pytest.approx((n + nd + ns) / n0, rel=1e-8)
            assert float(at["plqy"]) == pytest.approx(int_pl / n0, rel=1e-8)
            close(at["curve_n_s"].values, ref.y[2], 1e-8, 1e-6)
            close(at["curve_pl"].values, v["B"] * ref.y[0] ** 2, 1e-8, 1e-10)
    assert ds["curve_n_s"].attrs["units"] == "cm^-3"
    assert "shallow traps" in ds["share_shallow_trapping"].attrs["long_name"]


def test_sweep_elasticities_match_finite_differences(sweep_store):
    """d plqy / d ln c_s and d ln e_s (forward mode through the engine) against central
    differences of the Radau reference."""
    at = sweep_store.sel(c_s=3e-9, n0=1e16)
    h = 1e-3
    for p in ("c_s", "e_s"):
        plqy = []
        for sign in (1, -1):
            v = point(3e-9, 1e16)
            v[p] *= math.exp(sign * h)
            plqy.append(radau(v, 1e-6).y[3, -1] / v["n0"])
        fd = (plqy[0] - plqy[1]) / (2 * h)
        assert float(at[f"d_plqy_d_log_{p}"]) == pytest.approx(fd, rel=1e-6), p


def bin_means(sol, n0, edges):
    """(1/W) int over each bin of PL/PL(0) (Simpson, 16 panels per bin)."""
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        x = np.linspace(a, b, 17)
        pl = (sol.sol(x)[0] / n0) ** 2
        h = (b - a) / 16
        out.append(h / 3 * (pl[0] + pl[-1] + 4 * pl[1:-1:2].sum() + 2 * pl[2:-1:2].sum())
                   / (b - a))
    return np.asarray(out)


def test_fit_recovers_shallow_parameters(tmp_path, capsys):
    """Poisson counts of binned PL from the Radau reference at two excitation densities;
    ``jaxsim fit`` recovers c_s, e_s and A within 3.5 standard errors."""
    w, bins, amp, bg = 2e-9, 150, 2e4, 3.0
    edges = np.arange(bins + 1) * w
    n0s = (1e16, 1e17)
    rng = np.random.default_rng(17)
    counts = []
    for n0 in n0s:
        v = {**TRUTH, "n0": n0}
        counts.append(rng.poisson(amp * bin_means(radau(v, edges[-1]), n0, edges) + bg))
    path = tmp_path / "counts.txt"
    np.savetxt(path, np.column_stack([edges[:-1], np.asarray(counts).T]), fmt="%.10g")
    free = ("A", "c_s", "e_s")
    fixes = [x for k in ("B", "C", "D", "K1", "N_s") for x in ("--fix", f"{k}={TRUTH[k]!r}")]
    rc = main(["fit", str(path), "--model", NAME, "--n0", ",".join(map(repr, n0s)),
               "--free", ",".join(free), *fixes, "--init", "A=1.5e7,c_s=1e-9,e_s=1e7",
               "--time-unit", "s", "--starts", "4", "--out", str(tmp_path / "out")])
    capsys.readouterr()
    assert rc == 0
    js = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert js["model"] == NAME and js["converged"] is True
    for name in free:
        v, se = js["params"][name]["value"], js["params"][name]["stderr"]
        assert 0 < se < 0.1 * v, (name, v, se)
        assert abs(v - TRUTH[name]) < 3.5 * se, (name, v, se, TRUTH[name])


SENSITIVITY = """
model = "trap_detrap_shallow"
observables = ["plqy", "log10:share_shallow_trapping"]
t1 = 1e-6
N = 128
num_resamples = 20
chunk_size = 128
rtol = 1e-8

[fixed]
A = 5e6
D = 2e6
K1 = 1e5
n0 = 1e16

[ranges]
c_s = { low = 1e-10, high = 1e-8 }
N_s = { low = 1e15, high = 1e17 }
e_s = { low = 1e5, high = 1e8 }
"""


def test_sensitivity_runs_on_the_new_parameters(tmp_path, capsys):
    (tmp_path / "spec.toml").write_text(SENSITIVITY)
    rc = main(["sensitivity", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out"),
               "--save-samples", "--no-progress"])
    capsys.readouterr()
    assert rc == 0
    indices = json.loads((tmp_path / "out" / "sensitivity.json").read_text())
    assert set(indices) == {"plqy", "log10:share_shallow_trapping"}
    for table in indices.values():
        assert set(table) == {"c_s", "N_s", "e_s"}
        for s in table.values():
            assert all(np.isfinite(s[k]) for k in ("S1", "ST", "S1_conf", "ST_conf"))
            # each new parameter moves both observables: its total index is clear of 0
            # (a parameter the engine dropped, e.g. left at its default, would show ST ~ 0)
            assert s["ST"] - s["ST_conf"] > 0.1, s
    # the outputs behind the indices, against the reference at a few design points
    smp = np.load(tmp_path / "out" / "samples.npz")
    names = list(smp["names"])
    for row in (0, 7, 100):
        v = {**TRUTH, **dict(zip(names, smp["points"][row])), "n0": 1e16}
        assert float(smp["y_plqy"][row]) == pytest.approx(radau(v, 1e-6).y[3, -1] / 1e16,
                                                          rel=1e-6)
