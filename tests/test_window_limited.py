"""Window-limited lifetimes: the window flags against closed forms, the threshold, the
two-exponential fit's flag on a decay whose fitted lifetime jumps along n0, the sweep store's
flags and count, and the hatching of `jaxsim plot` maps."""

import numpy as np
import pytest

from jaxsim.numerics.engine import chunk_solver
from jaxsim.numerics.reference import solve
from jaxsim.observables import summaries
from jaxsim.observables.lifetimes import (
    FIT_ILL_CONDITIONED,
    FIT_WINDOW,
    WINDOW_BIAS,
    WINDOW_TAIL_LIMIT,
    biexp_fit,
    first_moment_bias,
)
from jaxsim.observables.summaries import window_limited

T1 = 2e-6
# A t1 from 0.5 to 12 lifetimes, none within 3 % of the threshold's 6.47
A_GRID = np.array([2.5e5, 1e6, 2e6, 3e6, 3.1e6, 3.4e6, 4e6, 6e6])


def test_threshold_gives_the_stated_bias():
    # -ln f * f / (1 - f) = 1 % at the limit (bisection in the module; checked here by value)
    assert first_moment_bias(WINDOW_TAIL_LIMIT) == pytest.approx(-WINDOW_BIAS, rel=1e-9)
    assert -np.log(WINDOW_TAIL_LIMIT) == pytest.approx(6.4746, abs=1e-4)
    # the truncated first moment of an exponential, by quadrature of t e^{-t} over [0, x]
    from scipy.integrate import quad

    for x in (1.0, 4.0, 6.4746):
        m = quad(lambda t: t * np.exp(-t), 0, x)[0] / quad(lambda t: np.exp(-t), 0, x)[0]
        assert m - 1 == pytest.approx(first_moment_bias(np.exp(-x)), rel=1e-9)


@pytest.fixture(scope="module")
def single_exponential():
    """effective with D = 0, B = C = 0: n = n0 e^{-A t}, PL ~ n^2 = e^{-2 A t} (engine, B = 0:
    PL per unit B)."""
    f = chunk_solver("effective", t1=T1, fixed={"D": 0.0, "B": 0.0, "C": 0.0},
                     summaries=["tau_mean_n", "tau_mean_pl", "window_tail_n", "window_tail_pl"])
    out = f({"A": A_GRID, "n0": np.full(A_GRID.size, 1e16)})
    assert np.all(np.asarray(out["status"]) == 0)
    return {k: np.asarray(v) for k, v in out.items()}


def test_window_tail_is_exp_minus_a_t1(single_exponential):
    out = single_exponential
    np.testing.assert_allclose(out["window_tail_n"], np.exp(-A_GRID * T1), rtol=1e-5)
    np.testing.assert_allclose(out["window_tail_pl"], np.exp(-2 * A_GRID * T1), rtol=1e-5)
    # the first moments' relative bias is the formula's, at the fraction left
    bias_n = out["tau_mean_n"] * A_GRID - 1
    np.testing.assert_allclose(bias_n, first_moment_bias(out["window_tail_n"]), rtol=1e-4,
                               atol=3e-6)  # the solve's rtol 1e-6
    bias_pl = out["tau_mean_pl"] * 2 * A_GRID - 1
    np.testing.assert_allclose(bias_pl, first_moment_bias(out["window_tail_pl"]), rtol=1e-4,
                               atol=3e-6)  # the solve's rtol 1e-6


def test_threshold_marks_exactly_the_biased_points(single_exponential):
    out = single_exponential
    for which, rate in (("n", A_GRID), ("pl", 2 * A_GRID)):
        marked = window_limited(f"window_tail_{which}", out[f"window_tail_{which}"])
        expected = rate * T1 < -np.log(WINDOW_TAIL_LIMIT)
        np.testing.assert_array_equal(marked, expected)
        # marked <=> the first moment is off the true 1/rate by more than 1 %
        error = np.abs(out[f"tau_mean_{which}"] * rate - 1)
        np.testing.assert_array_equal(marked, error > WINDOW_BIAS)
    assert 0 < window_limited("window_tail_n", out["window_tail_n"]).sum() < A_GRID.size


def test_reference_solve_gives_the_same_tail():
    """The physical-unit path (Solution from the reference solve) against exp(-A t1)."""
    a = np.array([5e5, 3e6])
    sol = solve("effective", {"A": a, "B": 1e-30, "C": 0.0, "D": 0.0, "n0": 1e15},
                np.linspace(0, T1, 5), rtol=1e-10, atol=1e-14)
    s = summaries(sol, ["window_tail_n", "window_tail_pl"])
    np.testing.assert_allclose(np.asarray(s["window_tail_n"]), np.exp(-a * T1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["window_tail_pl"]), np.exp(-2 * a * T1),
                               rtol=1e-6)


def test_a_signal_that_stops_falling_is_window_limited():
    # CW generation: n tends to a steady state, the first moment is set by the window
    sol = solve("effective", {"A": 1e7, "B": 1e-10, "C": 0.0, "D": 0.0, "n0": 1e15, "G": 1e22},
                np.linspace(0, T1, 5), rtol=1e-10, atol=1e-14)
    tail = float(summaries(sol, ["window_tail_n"])["window_tail_n"])
    assert tail > 0.99


def test_biexp_flag_bits_on_exact_two_exponentials():
    t = np.linspace(0.0, 1.0, 400)
    inside = 0.6 * np.exp(-t / 0.05) + 0.4 * np.exp(-t / 0.2)
    beyond = 0.6 * np.exp(-t / 0.05) + 0.4 * np.exp(-t / 3.0)   # long tau = 3 windows
    rising = np.exp(-t / 0.2) - 0.5 * np.exp(-t / 0.05)          # negative amplitude
    fits = [biexp_fit(t, y) for y in (inside, beyond, rising)]
    assert int(fits[0].flag) == 0 and float(fits[0].tau_avg) == pytest.approx(
        (0.6 * 0.05**2 + 0.4 * 0.2**2) / (0.6 * 0.05 + 0.4 * 0.2), rel=1e-6)
    assert int(fits[1].flag) & FIT_WINDOW
    assert int(fits[2].flag) & FIT_ILL_CONDITIONED


# the jump reproduced (issue 14): effective, t1 = 5 us, D = 0, nearly one exponential of
# 114 us; the fitted tau_avg_n jumps 107.5 -> 123.1 -> 126.9 -> 102.0 us along n0 with status 0
JUMP = {"A": 8.8e3, "B": 3.94e-12, "C": 5.26e-30, "D": 0.0}
JUMP_N0 = np.geomspace(1e14, 1e18, 49)[5:12]


def test_biexp_flag_on_the_jumping_fit():
    f = chunk_solver("effective", t1=5e-6, fixed=JUMP,
                     summaries=["tau_avg_n", "biexp_flag_n", "diffusion_length"])
    out = {k: np.asarray(v) for k, v in f({"n0": JUMP_N0}).items()}
    tau = out["tau_avg_n"]
    assert np.all(out["status"] == 0)
    assert np.any(np.diff(tau) > 0.05 * tau[1:])  # the jump is there (not monotonic)
    # ... and every point is flagged: the long time constant is beyond the 5 us window
    assert np.all(out["biexp_flag_n"].astype(int) & FIT_WINDOW)


@pytest.fixture(scope="module")
def jump_store(tmp_path_factory):
    from jaxsim.io.spec_files import parse_sweep_spec
    from jaxsim.studies.sweep import run_sweep

    spec = parse_sweep_spec(f"""
name = "jump"
model = "effective"
t1 = 5e-6
[fixed]
B = {JUMP['B']}
C = {JUMP['C']}
D = 0.0
[axes]
A = {{ values = [8.8e3, 2e6] }}
n0 = {{ values = [{', '.join(f'{v:.6g}' for v in JUMP_N0)}] }}
[observables]
summaries = ["tau_avg_n", "tau_mean_n"]
""")
    path = tmp_path_factory.mktemp("jump") / "jump.zarr"
    assert run_sweep(spec, path, progress=False).complete
    return path


def test_store_holds_flags_beside_the_lifetimes(jump_store, capsys):
    import xarray as xr

    from jaxsim.cli.sweep import print_window_counts

    ds = xr.open_zarr(jump_store)
    assert ds.tau_avg_n.attrs["window_flag"] == "biexp_flag_n"
    assert ds.tau_mean_n.attrs["window_flag"] == "window_tail_n"
    assert ds.tau_mean_n.attrs["window_limited_where"] == f"window_tail_n > {WINDOW_TAIL_LIMIT:.3g}"
    assert ds.biexp_flag_n.dtype == np.int8 and ds.window_tail_n.attrs["units"] == "1"
    flag = ds.biexp_flag_n.values
    # A = 8.8e3 (tau ~ 114 us): flagged everywhere; A = 2e6 (tau <= 0.5 us in 5 us): trusted
    assert np.all(flag[0] & FIT_WINDOW) and np.all(flag[1] == 0)
    tail = ds.window_tail_n.values
    assert np.all(tail[0] > 0.9) and np.all(tail[1] < WINDOW_TAIL_LIMIT)
    print_window_counts(jump_store)
    err = capsys.readouterr().err
    n = JUMP_N0.size
    assert f"{n} of {2 * n} points window-limited in tau_avg_n (biexp_flag_n != 0)" in err
    assert f"{n} of {2 * n} points window-limited in tau_mean_n (window_tail_n > " in err


def test_plot_hatches_window_limited_cells(jump_store, tmp_path):
    from matplotlib.collections import PatchCollection

    from jaxsim.plots.sweep import HATCH, plot_store

    fig = plot_store(jump_store, x="n0", y="A", var="tau_avg_n", out=tmp_path / "m.png")
    ax = fig.axes[0]
    hatched = [c for c in ax.collections
               if isinstance(c, PatchCollection) and c.get_hatch() == HATCH]
    assert len(hatched) == 1 and len(hatched[0].get_paths()) == JUMP_N0.size  # row A = 8.8e3
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [("window-limited: biexp_flag_n != 0 (fit's long time constant beyond "
                      "the window, or ill-conditioned fit)")]
    assert ax.get_legend().legend_handles[0].get_hatch() == HATCH
    # a variable without a flag gets no hatching
    fig = plot_store(jump_store, x="n0", y="A", var="status", out=tmp_path / "s.png")
    assert not any(isinstance(c, PatchCollection) for c in fig.axes[0].collections)
