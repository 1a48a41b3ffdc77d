"""Honest reporting of a fit: the noise estimated from the data, reduced chi^2 and runs tests
that say when the model misses the data (and then no 'converged'), the pulse found in data that
rise from a dark start, and the persistent compilation cache across processes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxsim import io as D
from jaxsim.studies.fit import FitWarning, fit, goodness_of_fit, noise_from_scatter, runs_test

# ../shared/data beside the clone (or beside a parent folder of it, for git worktrees)
SHARED = next((p / "shared" / "data" for p in pathlib.Path(__file__).resolve().parents[1:]
               if (p / "shared" / "data").is_dir()), pathlib.Path("../shared/data"))
ROOT = pathlib.Path(__file__).resolve().parents[1]


def trap_detrap_pl(t, A, D_, K1, n0, B=1e-10):
    """PL(t)/PL(0) of trap_detrap (SciPy Radau), 0 before t = 0."""
    sol = solve_ivp(lambda _t, y: [-A * y[0] - B * y[0] ** 2 + D_ * y[1],
                                   A * y[0] - D_ * y[1] - K1 * y[1]],
                    (0, max(t.max(), 1e-12)), [n0, 0.0], method="Radau", rtol=1e-10,
                    atol=1e-10 * n0, dense_output=True)
    return np.where(t >= 0, (sol.sol(np.clip(t, 0, None))[0] / n0) ** 2, 0.0)


def test_noise_from_scatter_constant_and_shot_noise():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 2000)
    smooth = np.exp(-3 * t)[None, :]
    mask = np.ones_like(smooth)
    # white noise of 0.01 on a smooth curve, plus a smooth misfit the estimate must not see
    y = smooth + 0.01 * rng.standard_normal(smooth.shape)
    resid = y - smooth + 0.05 * np.sin(6 * t)
    sd = noise_from_scatter(resid, smooth, mask)
    assert np.nanmedian(sd) == pytest.approx(0.01, rel=0.05)
    # shot noise: variance proportional to the level
    y = smooth + np.sqrt(1e-4 * smooth) * rng.standard_normal(smooth.shape)
    sd = noise_from_scatter(y - smooth, smooth, mask)
    ratio = sd[0, [10, 1000, 1990]] / np.sqrt(1e-4 * smooth[0, [10, 1000, 1990]])
    assert np.allclose(ratio, 1.0, atol=0.1), ratio
    # no scatter at all (noise-free): nothing can be estimated
    assert noise_from_scatter(np.zeros_like(smooth), smooth, mask) is None


def test_runs_test_separates_noise_from_structure():
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((1, 400))
    blocks = np.repeat([[1.0, -1.0] * 10], 20, axis=1)
    mask = np.ones((1, 400))
    z_noise = runs_test(noise, mask)[0]["z"]
    z_blocks = runs_test(blocks, mask)[0]
    assert abs(z_noise) < 3
    assert z_blocks["z"] < -10 and z_blocks["longest"] == 20


def test_goodness_of_fit_with_and_without_sigma():
    rng = np.random.default_rng(5)
    mu = np.exp(-np.linspace(0, 5, 500))[None, :]
    y = mu + 0.02 * rng.standard_normal(mu.shape)
    mask = np.ones_like(mu)
    g = goodness_of_fit("lsq", y, mu, mask, n_free=3)
    assert g["reduced"] == pytest.approx(1.0, abs=0.2) and g["adequate"] is True
    assert g["noise"] == pytest.approx(0.02, rel=0.1)
    g = goodness_of_fit("lsq", y, mu, mask, n_free=3, sigma=0.01)  # a wrong (too small) sigma
    assert g["reduced"] == pytest.approx(4.0, rel=0.2) and g["adequate"] is False
    g = goodness_of_fit("lsq", mu, mu, mask, n_free=3)  # noise-free: cannot be judged
    assert g["reduced"] is None and "no reduced chi2" in g["noise_source"]


def _biexp_data(seed=0, sigma=0.01):
    """Normalised 'points' decays of trap_detrap with strong detrapping (two time scales)."""
    t = np.arange(300) * 2e-9
    n0s = [1e16, 3e16]
    rng = np.random.default_rng(seed)
    y = np.stack([trap_detrap_pl(t, 5e7, 2e7, 1e6, n0) for n0 in n0s])
    return D.from_arrays(t, y + sigma * rng.standard_normal(y.shape), n0s, time_unit="s",
                         is_counts=False)


def test_a_model_that_misses_the_data_is_not_converged():
    """abc (one channel) cannot describe a decay with trapping and detrapping: the optimiser
    converges, but the fit is not 'converged', and the table and fit.json say why."""
    ds = _biexp_data()
    with pytest.warns(FitWarning, match="does not describe"):
        r = fit("abc", ds, free=("A", "B"), loss="lsq", n_starts=2)
    assert r.optimizer_converged and not r.converged
    assert r.gof["adequate"] is False
    assert r.gof["noise"] == pytest.approx(0.01, rel=0.1)  # from the scatter, not the misfit
    assert r.reduced > 2 or r.gof["runs_z_min"] < -5
    table = r.table()
    assert "does NOT describe" in table and "converged = False" in table
    js = r.to_json()
    assert js["converged"] is False and js["optimizer_converged"] is True
    assert js["model_describes_data"] is False and js["misfit_reasons"]
    # the right model on the same data is fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        r2 = fit("trap_detrap", ds, free=("A", "D", "K1"), fixed={"C": 0.0}, loss="lsq",
                 init={"A": 3e7, "D": 1e7, "K1": 2e6}, n_starts=2)
    assert r2.converged and r2.gof["adequate"] is True, r2.table()
    assert r2.reduced == pytest.approx(1.0, abs=0.25)


def test_shift_auto_finds_a_pulse_after_a_dark_start():
    """Points data that are 0 until the pulse (here at 61.3 ns of a 600 ns window): --shift
    auto fits the pulse time inside the bin of the rise; fixed at 0, the fit says it is off."""
    t = np.arange(300) * 2e-9
    pulse = 61.3e-9
    rng = np.random.default_rng(1)
    n0s = [1e16, 3e16]
    y = np.stack([trap_detrap_pl(t - pulse, 2e7, 5e6, 1e6, n0) for n0 in n0s])
    y = y + 0.005 * rng.standard_normal(y.shape) * (t >= pulse)
    ds = D.from_arrays(t, y, n0s, time_unit="s", is_counts=False)
    kw = dict(free=("A", "D", "K1"), fixed={"C": 0.0}, loss="lsq",
              init={"A": 1e7, "D": 1e7, "K1": 3e6}, n_starts=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        r = fit("trap_detrap", ds, **kw)
        r0 = fit("trap_detrap", ds, shift="fixed", **kw)
    assert any("rise from a dark start" in n for n in r.notes)
    for d in r.per_decay:
        assert 60e-9 < d["shift"] <= 62e-9, d["shift"]
    assert r.converged, r.table()
    assert r.value("A") == pytest.approx(2e7, rel=0.05)
    assert not r0.converged and r0.gof["adequate"] is False
    assert any("rise only at" in n for n in r0.notes)


def test_bt_raw_counts_pulse_found():
    """PEARS's raw BT decays (zero until the pulse at ~133 ns): the pulse is found."""
    path = SHARED / "pears" / "BT_TRPL_nonprocessed.txt"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    ds = D.read_decays(path, [5.58e15, 1e16, 2.23e16], time_unit="ns")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        r = fit("abc", ds, free=("A", "B"), n_starts=2)
    for d in r.per_decay:
        assert 128e-9 < d["shift"] <= 133e-9, d["shift"]
    assert r.value("B") > 1e-10  # not pushed to its lower bound as with the pulse at t = 0


def test_persistent_cache_serves_a_new_process(tmp_path):
    """Two processes fit the same small problem: the second loads the compiled program from the
    cache directory instead of compiling it."""
    t = np.arange(80) * 2e-9
    y = trap_detrap_pl(t, 2e7, 0.0, 0.0, 1e16)
    data = tmp_path / "d.txt"
    np.savetxt(data, np.column_stack([t / 1e-9, y + 0.01 * np.sin(t * 1e9)]))
    env = dict(os.environ, JAXSIM_CACHE_DIR=str(tmp_path / "cache"), JAXSIM_NO_CACHE="",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    hits = []
    for i in range(2):
        out = tmp_path / f"o{i}"
        subprocess.run([sys.executable, "-m", "jaxsim", "fit", str(data), "--model", "abc",
                        "--n0", "1e16", "--free", "A", "--starts", "1", "--quiet",
                        "--out", str(out)], env=env, check=False, capture_output=True,
                       timeout=300)
        hits.append(json.loads((out / "fit.json").read_text())["timings_s"]["cache_hit"])
    assert hits == [False, True]
    assert any((tmp_path / "cache").iterdir())


def test_two_column_nnls_matches_scipy():
    from scipy.optimize import nnls

    from jaxsim.studies.fit import _nnls2

    rng = np.random.default_rng(0)
    for _ in range(200):
        M = np.column_stack([np.ones(40), rng.uniform(0, 1, 40)])
        b = M @ rng.normal(0, 1, 2) + rng.normal(0, 0.3, 40)
        w = rng.uniform(0.5, 2, 40)
        ref, _ = nnls(M * np.sqrt(w)[:, None], b * np.sqrt(w))
        np.testing.assert_allclose(_nnls2(M, b, w), ref, atol=1e-10)
