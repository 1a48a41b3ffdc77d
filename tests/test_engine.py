"""The batched engine against an independent float64 SciPy Radau solve (physical units).

Compiled functions are shared (module-scoped fixtures, one chunk size) to keep the default run
short; every reference here is computed from the rate equations directly, not from jaxsim.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jaxsim  # noqa: F401  (float64)
from jaxsim.numerics.config import SolverConfig
from jaxsim.numerics.engine import (
    chunk_solver,
    pad_chunk,
    solve_points,
    stiffness_order,
)
from jaxsim.physics.errors import ParameterError

T1 = 2e-6
CHUNK = 8
B, C = 1e-10, 1e-28
CFG = SolverConfig(rtol=2e-7, atol=1e-12, max_steps=4096)
SUMMARIES = ("tau_mean_pl", "plqy", "share_trap_relaxation", "share_remaining", "tau_1e_pl")
TS_LIN = np.linspace(0.0, T1, 200)
TS_LOG = np.concatenate([[0.0], np.geomspace(1e-10, T1, 120)])


def grid(n, seed=3):
    rng = np.random.default_rng(seed)

    def lu(lo, hi):
        return 10 ** rng.uniform(np.log10(lo), np.log10(hi), n)

    d = lu(1e5, 1e8)
    d[::4] = 0.0
    return dict(A=lu(1e5, 1e8), D=d, K1=lu(1e2, 1e7), n0=lu(1e15, 1e18))


def radau(p, ts):
    """Paper eqs. 4-5 in cm^-3 and s, with int B n^2 dt, int t B n^2 dt, int K1 n_d dt."""
    a, d, k1, n0 = p["A"], p["D"], p["K1"], p["n0"]

    def f(t, y):
        n, nd = y[0], y[1]
        pl = B * n * n
        return [-a * n - pl - C * n**3 + d * nd, a * n - d * nd - k1 * nd, pl, t * pl, k1 * nd]

    def jac(t, y):
        n, nd = y[0], y[1]
        z = [0, 0, 0, 0, 0]
        return [[-a - 2 * B * n - 3 * C * n * n, d, 0, 0, 0], [a, -d - k1, 0, 0, 0],
                [2 * B * n, 0, 0, 0, 0], [2 * t * B * n, 0, 0, 0, 0], [0, k1, 0, 0, 0], z][:5]

    def e_fold(t, y):  # PL / PL(0) = 1/e
        return y[0] - n0 * np.exp(-0.5)

    scale = np.array([n0, n0, B * n0 * n0 * T1, B * n0 * n0 * T1 * T1, n0])
    sol = solve_ivp(f, (0, T1), [n0, 0, 0, 0, 0], method="Radau", t_eval=ts, rtol=1e-11,
                    atol=1e-17 * scale, jac=jac, events=e_fold)
    assert sol.success
    n, nd, ipl, itpl, irel = sol.y
    e_fold = sol.t_events[0][0] if len(sol.t_events[0]) else np.inf
    return dict(n=n, pl=B * n * n, tau_mean_pl=itpl[-1] / ipl[-1], plqy=ipl[-1] / n0,
                share_trap_relaxation=irel[-1] / n0, share_remaining=(n[-1] + nd[-1]) / n0,
                tau_1e_pl=e_fold)


@pytest.fixture(scope="module")
def points():
    return grid(CHUNK)


@pytest.fixture(scope="module")
def ref_lin(points):
    return [radau({k: v[i] for k, v in points.items()}, TS_LIN) for i in range(CHUNK)]


@pytest.fixture(scope="module")
def f_lin():
    return chunk_solver("trap_detrap", t1=T1, summaries=SUMMARIES, curve_ts=TS_LIN,
                        curve_vars=("n", "pl", "pl_norm", "n_d"), config=CFG,
                        fixed={"B": B, "C": C}, lanes=4)


@pytest.fixture(scope="module")
def out_lin(f_lin, points):
    return {k: np.asarray(v) for k, v in f_lin(points).items()}


def rel(a, b, floor=0.0):
    return np.max(np.abs(a - b) / (np.abs(b) + floor))


def test_summaries_match_radau(out_lin, ref_lin):
    assert np.all(out_lin["status"] == 0)
    for name in ("tau_mean_pl", "plqy", "share_trap_relaxation", "share_remaining"):
        got = out_lin[name]
        want = np.array([r[name] for r in ref_lin])
        assert rel(got, want) < 1e-5, name


def test_tau_1e_from_curve(out_lin, ref_lin):
    """tau_1e is read off the saved curve by jaxsim.observables (log-linear between samples):
    it equals that rule applied to the Radau curve, and the exact 1/e time (a Radau event) to
    within the grid's resolution (10 ns here, coarse for the fastest decays)."""
    from jaxsim.observables.lifetimes import tau_1e

    on_grid = np.array([float(tau_1e(TS_LIN, r["pl"])) for r in ref_lin])
    assert rel(out_lin["tau_1e_pl"], on_grid) < 1e-5
    exact = np.array([r["tau_1e_pl"] for r in ref_lin])
    assert rel(out_lin["tau_1e_pl"], exact) < 0.1
    assert np.max(np.abs(out_lin["tau_1e_pl"] - exact)) < TS_LIN[1]


def test_curves_match_radau(out_lin, ref_lin, points):
    for i, r in enumerate(ref_lin):
        n0 = points["n0"][i]
        # relative down to n = 1e-6 n0 (atol / rtol); PL ~ n^2 down to 1e-12 PL(0)
        assert rel(out_lin["curve_n"][i], r["n"], 1e-6 * n0) < 1e-5
        assert rel(out_lin["curve_pl"][i], r["pl"], 1e-12 * B * n0**2) < 1e-5
        np.testing.assert_allclose(out_lin["curve_pl_norm"][i], out_lin["curve_pl"][i] / (B * n0**2),
                                   rtol=1e-12)
        # carriers are conserved except through the loss channels: n + n_d decreases
        tot = out_lin["curve_n"][i] + out_lin["curve_n_d"][i]
        assert np.all(np.diff(tot) <= 1e-9 * n0)


@pytest.fixture(scope="module")
def ref_log(points):
    return [radau({k: v[i] for k, v in points.items()}, TS_LOG) for i in range(CHUNK)]


def test_uneven_grid(points, ref_log):
    f = chunk_solver("trap_detrap", t1=T1, curve_ts=TS_LOG, curve_vars=("n",), config=CFG,
                     lanes=CHUNK)
    out = f(points)
    assert np.all(np.asarray(out["status"]) == 0)
    for i, r in enumerate(ref_log):
        assert rel(np.asarray(out["curve_n"])[i], r["n"], 1e-6 * points["n0"][i]) < 1e-5


def test_no_recompile_and_padding(f_lin, points, out_lin):
    other = grid(CHUNK, seed=11)
    f_lin(other)
    f_lin({k: v[::-1] for k, v in points.items()})
    assert f_lin.core._cache_size() == 1
    # a short last chunk is padded (the one padding rule: its first point repeated) and cut back
    many = {k: np.concatenate([v, other[k][:3]]) for k, v in points.items()}
    res = solve_points(f_lin, many, CHUNK)
    assert f_lin.core._cache_size() == 1
    assert res["curve_pl"].shape == (CHUNK + 3, len(TS_LIN))
    # same point, same trajectory, wherever it sits in a chunk
    np.testing.assert_allclose(res["tau_mean_pl"][:CHUNK], out_lin["tau_mean_pl"], rtol=1e-12)
    padded, m = pad_chunk({k: v[:3] for k, v in other.items()}, CHUNK)
    assert m == 3 and all(v.shape == (CHUNK,) for v in padded.values())
    assert np.all(padded["A"][3:] == other["A"][0])


def test_max_steps_flagged(points):
    f = chunk_solver("trap_detrap", t1=T1, summaries=("plqy",), curve_ts=TS_LIN,
                     config=SolverConfig(rtol=2e-7, max_steps=5), lanes=CHUNK)
    out = f(points)
    assert np.all(np.asarray(out["status"]) == 1)  # max_steps_reached
    assert np.all(np.isnan(np.asarray(out["plqy"])))  # flagged, not silently wrong
    assert np.all(np.asarray(out["num_steps"]) == 5)


def test_jvp_matches_finite_difference(points):
    """d tau_mean_pl / d log A by forward mode vs a central difference of the Radau solve."""
    f = chunk_solver("trap_detrap", t1=T1, summaries=("tau_mean_pl",), config=CFG, lanes=4)
    base = {k: jnp.asarray(v[:4]) for k, v in points.items()}

    def g(log_a):
        return f({**base, "A": jnp.exp(log_a)})["tau_mean_pl"]

    la = jnp.log(base["A"])
    val, tan = jax.jvp(g, (la,), (jnp.ones_like(la),))
    eps = 1e-4
    for i in range(4):
        p = {k: float(v[i]) for k, v in points.items()}
        hi = radau({**p, "A": p["A"] * np.exp(eps)}, np.array([0, T1]))["tau_mean_pl"]
        lo = radau({**p, "A": p["A"] * np.exp(-eps)}, np.array([0, T1]))["tau_mean_pl"]
        fd = (hi - lo) / (2 * eps)
        assert abs(float(tan[i]) - fd) <= 1e-3 * abs(fd) + 1e-6 * float(val[i])


def test_stiffness_order():
    p = dict(A=np.array([1e8, 1e5, 1e6]), D=np.array([0.0, 0.0, 1e7]), K1=np.array([1e2] * 3))
    assert list(stiffness_order("trap_detrap", p)) == [1, 2, 0]


def test_bad_input():
    with pytest.raises(ParameterError, match="summary 'tau_nope'"):
        chunk_solver("trap_detrap", t1=T1, summaries=("tau_nope",))
    with pytest.raises(ParameterError, match="curve_ts"):
        chunk_solver("trap_detrap", t1=T1, curve_ts=[0, 3e-6])
    with pytest.raises(ParameterError, match="'Q'"):
        chunk_solver("trap_detrap", t1=T1, fixed={"Q": 1.0})
    with pytest.raises(ParameterError, match="t1"):
        chunk_solver("trap_detrap", t1=-1.0)
    with pytest.raises(ParameterError, match="curve variable 'n_d'"):
        chunk_solver("abc", t1=T1, curve_ts=TS_LIN, curve_vars=("n_d",))


def test_bad_values(f_lin, points):
    with pytest.raises(ParameterError, match="no parameter 'X'"):
        f_lin({"X": np.ones(CHUNK)})
    with pytest.raises(ParameterError, match="'A' = -1.0"):
        f_lin({**points, "A": -np.ones(CHUNK)})


def test_b_zero_is_well_defined():
    """B = 0 (allowed): no radiative recombination, so PL amplitudes are 0 and PL shape
    summaries are those of the B -> 0 limit (PL per unit B ~ n^2); n-based outputs exact."""
    a = 2e6
    ts = np.linspace(0.0, T1, 200)
    f = chunk_solver("trap_detrap", t1=T1, config=CFG, curve_ts=ts,
                     curve_vars=("n", "pl", "pl_norm"),
                     summaries=("tau_mean_pl", "plqy", "pl_integrated", "tau_mean_n", "tau_1e_n",
                                "tau_1e_pl", "share_bimolecular", "share_remaining"))
    zeros = np.zeros(2)
    out = {k: np.asarray(v) for k, v in f({"A": np.full(2, a), "B": zeros, "C": zeros,
                                           "D": zeros, "K1": zeros,
                                           "n0": np.array([1e16, 1e17])}).items()}
    assert np.all(out["status"] == 0)
    for k, v in out.items():
        assert np.all(np.isfinite(v)), k
    n_exact = np.array([1e16, 1e17])[:, None] * np.exp(-a * ts)
    np.testing.assert_allclose(out["curve_n"], n_exact, rtol=1e-5)
    np.testing.assert_array_equal(out["curve_pl"], 0.0)
    np.testing.assert_allclose(out["curve_pl_norm"], np.exp(-2 * a * ts)[None].repeat(2, 0),
                               rtol=1e-5, atol=1e-12)
    for name in ("plqy", "pl_integrated", "share_bimolecular"):
        np.testing.assert_array_equal(out[name], 0.0)
    np.testing.assert_allclose(out["share_remaining"], 1.0, rtol=1e-6)
    # first moments of e^{-a t} and e^{-2 a t} over [0, T1]
    for rate, name in ((a, "tau_mean_n"), (2 * a, "tau_mean_pl")):
        x = rate * T1
        exact = (1 - np.exp(-x) * (1 + x)) / (rate * (1 - np.exp(-x)))
        np.testing.assert_allclose(out[name], exact, rtol=1e-6)
    np.testing.assert_allclose(out["tau_1e_n"], 1 / a, rtol=1e-3)
    np.testing.assert_allclose(out["tau_1e_pl"], 1 / (2 * a), rtol=1e-3)


def test_cw_generation_plqy_and_tau_1e_outside_window():
    """With G > 0 plqy is normalised by n0 + G t1 (as in jaxsim.solve + observables), and a
    decay that stays above 1/e inside the window gives tau_1e = inf with status 0."""
    from jaxsim.observables.summaries import summaries as solve_summaries

    values = {"A": np.array([1e5, 1e8]), "D": np.array([0.0, 0.0]), "G": np.array([1e22, 1e23]),
              "n0": np.array([1e16, 1e16])}
    t1 = 5e-8
    f = chunk_solver("trap_detrap", t1=t1, summaries=("plqy", "tau_1e_n"))
    out = f(values)
    assert list(np.asarray(out["status"])) == [0, 0]
    ref = solve_summaries(jaxsim.solve("trap_detrap", values, np.linspace(0, t1, 201), rtol=1e-9),
                          ["plqy"])
    np.testing.assert_allclose(np.asarray(out["plqy"]), np.asarray(ref["plqy"]), rtol=1e-4)
    assert np.isinf(np.asarray(out["tau_1e_n"])[0])      # 1/A = 10 us >> 50 ns window
    assert np.isfinite(np.asarray(out["tau_1e_n"])[1])   # 1/A = 10 ns


def test_failed_points_have_nan_curves():
    """Curves of points that stop early are NaN throughout, also when more points fail in one
    block than the engine blanks per block (they wait), and the others are untouched."""
    from jaxsim.numerics.engine import FAILED_ROWS

    n = 3 * FAILED_ROWS
    pts = grid(n, seed=11)
    f_ok = chunk_solver("trap_detrap", t1=T1, curve_ts=TS_LIN, curve_vars=("n", "pl"),
                        config=CFG, lanes=n)
    ref = {k: np.asarray(v) for k, v in f_ok(pts).items()}
    # a step budget that about half of the points cannot finish in
    budget = int(np.median(ref["num_steps"]))
    f_few = chunk_solver("trap_detrap", t1=T1, curve_ts=TS_LIN, curve_vars=("n", "pl"),
                         config=SolverConfig(rtol=2e-7, atol=1e-12, max_steps=budget), lanes=n)
    out = {k: np.asarray(v) for k, v in f_few(pts).items()}
    bad = out["status"] != 0
    assert bad.sum() > FAILED_ROWS  # more than one block's worth of blanking
    assert np.all(np.isnan(out["curve_n"][bad])) and np.all(np.isnan(out["curve_pl"][bad]))
    good = ~bad
    assert good.any()
    np.testing.assert_array_equal(out["curve_n"][good], ref["curve_n"][good])


def test_save_grid_ending_before_t1(points):
    """A grid that stops at t1 / 10: steps beyond it are not capped (they were, at zero length,
    until max_steps), the saved part equals that of the full grid, the summaries those of a
    solve without curves."""
    full = np.linspace(0.0, T1, 201)
    part = full[:21]
    out = {}
    for name, ts in (("full", full), ("part", part)):
        f = chunk_solver("trap_detrap", t1=T1, summaries=("plqy",), curve_ts=ts,
                         curve_vars=("n",), config=CFG, lanes=4)
        out[name] = {k: np.asarray(v) for k, v in f(points).items()}
    assert np.all(out["part"]["status"] == 0)
    np.testing.assert_allclose(out["part"]["curve_n"], out["full"]["curve_n"][:, :21],
                               rtol=1e-12)
    np.testing.assert_allclose(out["part"]["plqy"], out["full"]["plqy"], rtol=1e-6)


@pytest.mark.parametrize("window", [1, 16])
def test_uneven_grid_every_point_written(points, window, ref_log):
    """Uneven grids (a log grid; a cluster of points right before t1): every save point of a
    successful point is written (the step cap keeps half a spacing of margin), and agrees with
    Radau, also when the cap binds at every step (window = 1)."""
    tail = np.concatenate([np.linspace(0.0, 0.5 * T1, 50), np.linspace((1 - 1e-6) * T1, T1, 17)])
    for ts, ref in ((TS_LOG, ref_log), (tail, None)):
        f = chunk_solver("trap_detrap", t1=T1, curve_ts=ts, curve_vars=("n",), config=CFG,
                         lanes=4, window=window)
        out = {k: np.asarray(v) for k, v in f(points).items()}
        assert np.all(out["status"] == 0)
        assert np.all(np.isfinite(out["curve_n"]))
        if ref is not None:
            for i, r in enumerate(ref):
                assert rel(out["curve_n"][i], r["n"], 1e-6 * points["n0"][i]) < 1e-5


def test_float32_rejects_unresolvable_grid():
    ts = np.linspace(0.0, 1e-12, 11)  # 0.1 ps apart, below float32 resolution at t1 = 2 us
    with pytest.raises(ParameterError, match="float32"):
        chunk_solver("trap_detrap", t1=T1, curve_ts=ts, config=SolverConfig(dtype="float32"))


def test_tail_halvings_same_results():
    """Moving a chunk's last points to fewer lanes changes no number: each point's steps are
    elementwise, whichever lane holds it (2048 points on 1024 lanes, tails on 512 then 256)."""
    pts = grid(2048, seed=11)
    ts = np.linspace(0.0, T1, 40)
    order = stiffness_order("trap_detrap", pts)[::-1]
    pts = {k: v[order] for k, v in pts.items()}
    kw = dict(t1=T1, summaries=("tau_mean_pl", "plqy"), curve_ts=ts, curve_vars=("n", "pl"),
              config=CFG, lanes=1024)
    plain = chunk_solver("trap_detrap", **kw)(pts)
    tail = chunk_solver("trap_detrap", tail_halvings=2, **kw)(pts)
    assert np.all(np.asarray(plain["status"]) == 0)
    for k in plain:
        np.testing.assert_array_equal(np.asarray(tail[k]), np.asarray(plain[k]), err_msg=k)
    with pytest.raises(ParameterError, match="tail_halvings"):
        chunk_solver("trap_detrap", t1=T1, tail_halvings=-1)


def test_default_tail_halvings():
    from jaxsim.numerics.engine import TAIL_FROM_CHUNKS, default_tail_halvings

    assert default_tail_halvings(TAIL_FROM_CHUNKS - 1) == 0
    assert default_tail_halvings(TAIL_FROM_CHUNKS) == (2 if jax.default_backend() == "cpu" else 0)


def test_tsit5_tableau_is_diffrax_s():
    """The written-out tableau (the engine's and the fit's integrator) is diffrax's Tsit5 bit
    for bit, and FSAL: the last stage's input is the solution."""
    import diffrax

    from jaxsim.numerics.engine.tableau import TSIT5

    tab = diffrax.Tsit5.tableau
    assert TSIT5.a == tuple(tuple(float(x) for x in row) for row in tab.a_lower)
    assert TSIT5.c == (0.0,) + tuple(float(x) for x in tab.c)
    assert TSIT5.b_err == tuple(float(x) for x in tab.b_error)
    assert TSIT5.a[-1] + (0.0,) == tuple(float(x) for x in tab.b_sol)


def test_fit_path_does_not_import_diffrax():
    """A fit steps its own integrator: importing the fit and the command line leaves diffrax
    (~0.3 s of every fresh process) unloaded until a solve needs it."""
    import subprocess
    import sys

    code = ("import sys, jaxsim.studies.fit, jaxsim.cli.fit, jaxsim.numerics; "
            "print('diffrax' in sys.modules); "
            "from jaxsim.numerics.config import SolverConfig; SolverConfig().diffrax_solver(); "
            "print('diffrax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
