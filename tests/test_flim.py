"""FLIM maps: many independent fits at once (fit_many / fit_decays), image readers (.ptu
image, .sdt image, folder), binning, the min-counts threshold, and ``jaxsim fit --pixels``
writing maps.zarr (read back with xarray) and maps.png.

The synthetic image's decays come from SciPy (LSODA, Simpson over each bin), not from the
fit's forward model; the sample .ptu files are not images and no public .sdt sample was found,
so the images here are written synthetically (ptufile.imwrite; a minimal .sdt writer)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxsim import io as D
from jaxsim.io.images import bin_pixels, read_image
from jaxsim.physics.errors import ParameterError
from jaxsim.studies.many import STATUS, fit_decays, fit_many

FIXED = {"K1": 1e7, "B": 1e-10, "C": 0.0}
N0 = 1e16
W = 8e-9  # bin width, s (the decays end well inside the window: background determined)
T = 64


def _scipy_bins(A, Dd, n_bins=T, w=W, sub=8):
    """Bin-integrated PL (prop. to n^2) of trap_detrap after a pulse at t = 0, by SciPy."""
    B, K1 = FIXED["B"], FIXED["K1"]

    def rhs(_t, y):
        n, nd = y
        return [-A * n - B * n * n + Dd * nd, A * n - Dd * nd - K1 * nd]

    tt = np.arange(n_bins * sub + 1) * (w / sub)
    s = solve_ivp(rhs, (0, tt[-1]), [N0, 0.0], t_eval=tt, method="LSODA", rtol=1e-9,
                  atol=1e-3)
    pl = (s.y[0] / N0) ** 2
    wts = np.ones(sub + 1)
    wts[1:-1:2], wts[2:-1:2] = 4, 2
    return np.array([wts @ pl[i * sub:(i + 1) * sub + 1] / (3 * sub) for i in range(n_bins)])


def _image(ny=5, nx=6, seed=0, photons=3e4):
    rng = np.random.default_rng(seed)
    A = 10 ** rng.uniform(7.0, 7.7, (ny, nx))
    Dd = 10 ** rng.uniform(6.5, 7.3, (ny, nx))
    bg = 2.0  # per bin; K1 fast enough that the detrapping tail ends within the window
    mu = np.empty((ny, nx, T))
    for i in range(ny):
        for j in range(nx):
            c = _scipy_bins(A[i, j], Dd[i, j])
            mu[i, j] = photons * c / c.sum() + bg
    return rng.poisson(mu).astype(np.uint16), A, Dd


@pytest.fixture(scope="module")
def image():
    return _image()


def _z(res, name, truth):
    v, se = res.values[name], res.stderr[name]
    return np.log(v / truth.reshape(-1)) / (se / v)


def test_fit_decays_recovers_truths_within_stderr(image):
    counts, A, Dd = image
    ny, nx, _ = counts.shape
    ds = D.from_arrays(np.arange(T) * W, counts.reshape(ny * nx, T), np.full(ny * nx, N0),
                       is_counts=True)
    res = fit_decays("trap_detrap", ds, free=("A", "D"), fixed=FIXED, batch=8,
                     init={"A": 2e7, "D": 5e6}, loss="poisson")
    assert res.counts() == {"converged": ny * nx}
    for name, truth in (("A", A), ("D", Dd)):
        z = _z(res, name, truth)
        assert np.all(np.abs(z) < 4.5), (name, z)
        assert 0.5 < np.std(z) < 1.6, (name, np.std(z))  # the stderr is the scatter's size
    assert np.all(np.abs(res.reduced - 1) < 0.6)  # deviance/dof of Poisson counts
    # background (2 per bin): each pixel's estimate scatters by ~0.6; their mean by ~0.11
    assert abs(np.mean(res.background) - 2.0) < 0.35, res.background


def test_fit_many_statuses_and_skip():
    """Skipped decays say so; a decay the model cannot reach in max_iter says so; no silent
    values: every row has a status and non-converged rows are not reported as converged."""
    counts = _image(1, 4, seed=2)[0]
    ys = counts.reshape(4, T).astype(float)
    res = fit_many("trap_detrap", np.arange(T) * W, ys, N0, free=("A", "D"), fixed=FIXED,
                   loss="poisson", sampling="bins", skip=[False, True, False, False],

                   max_iter=1, batch=4)
    assert res.status[1] == 4 and np.isnan(res.values["A"][1]) and STATUS[4] == "too few counts"
    assert set(res.status[[0, 2, 3]]) <= {0, 1, 2}
    one = fit_many("trap_detrap", np.arange(T) * W, ys, N0, free=("A", "D"), fixed=FIXED,
                   loss="poisson", sampling="bins", max_iter=100, batch=4)
    assert np.all(one.status == 0) and np.all(one.iterations >= 1)
    # a row stopped after 1 iteration is not converged where the full fit needed more
    needed = one.iterations[[0, 2, 3]] > 1
    assert np.all(res.status[[0, 2, 3]][needed] != 0)


def test_bad_arguments_name_the_field():
    with pytest.raises(ParameterError, match="shift = -1e-09 s"):
        fit_many("trap_detrap", np.arange(T) * W, np.ones((2, T)), N0, free=("A",),
                 shift=-1e-9)
    with pytest.raises(D.DataError, match="bin = 0"):
        bin_pixels(np.zeros((4, 4, 8)), 0)


def _write_ptu_image(path, counts):
    ptufile = pytest.importorskip("ptufile")
    ny, nx, t = counts.shape
    # the sync period holds exactly the histogram: global resolution = t bins
    ptufile.imwrite(path, counts.reshape(ny, nx, 1, t), t * W, W)  # pixel time: all photons


def test_ptu_image_reads_pixels_and_bins(tmp_path, image):
    counts = image[0]
    path = tmp_path / "img.ptu"
    _write_ptu_image(path, counts)
    im = read_image(path)
    assert im.shape == counts.shape[:2] and im.ds.n_bins == T
    np.testing.assert_array_equal(im.ds.y.reshape(counts.shape), counts)
    assert im.ds.meta["bin_width_s"] == pytest.approx(W) and im.ds.meta["frames"] == 1
    assert im.ds.meta["sync_rate_hz"] == pytest.approx(1 / (T * W), rel=1e-6)
    b = read_image(path, bin=2)
    ref = counts[:4, :6].reshape(2, 2, 3, 2, T).sum(axis=(1, 3))
    assert b.shape == (2, 3)
    np.testing.assert_array_equal(b.ds.y.reshape(2, 3, T), ref)
    np.testing.assert_array_equal(b.counts, ref.sum(axis=-1))
    assert (b.too_few(ref.sum(axis=-1).max()).sum() == 5)


def test_sdt_image_block(tmp_path):
    pytest.importorskip("sdtfile")
    from test_data import _write_sdt

    rng = np.random.default_rng(4)
    cube = rng.poisson(20, (3, 4, 32))
    path = tmp_path / "img.sdt"
    _write_sdt(path, [cube.reshape(-1)], tac_r=50e-9, tac_g=1, scan=(4, 3, 32))
    im = read_image(path)
    assert im.shape == (3, 4)
    np.testing.assert_array_equal(im.ds.y.reshape(3, 4, 32), cube)
    assert im.ds.bin_width == pytest.approx(50e-9 / 32, rel=1e-6)


def test_folder_is_a_row_of_pixels(tmp_path):
    t = np.arange(40) * 0.5
    for k in range(3):
        y = np.round(100 * (k + 1) * np.exp(-t / (5.0 + k)))
        np.savetxt(tmp_path / f"d{k}.txt", np.column_stack([t, y]))
    (tmp_path / "README.md").write_text("not a decay")
    im = read_image(tmp_path)
    assert im.shape == (1, 3) and im.ds.bin_width == pytest.approx(0.5e-9)
    np.testing.assert_array_equal(im.counts[0], [np.round(100 * (k + 1) * np.exp(-t / (5.0 + k))).sum()
                                                  for k in range(3)])
    np.savetxt(tmp_path / "d9.txt", np.column_stack([t[:20], t[:20]]))
    with pytest.raises(D.DataError, match="d9.txt: 20 bins"):
        read_image(tmp_path)


def test_cli_pixels_writes_maps(tmp_path, image):
    xr = pytest.importorskip("xarray")
    counts, A, Dd = image
    counts = counts.copy()
    counts[0, 0] = 0  # a dark pixel: below --min-counts
    path = tmp_path / "img.ptu"
    _write_ptu_image(path, counts)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "jaxsim", "fit", "--pixels", str(path), "--model",
           "trap_detrap", "--n0", repr(N0), "--free", "A,D", "--fix", "K1=1e7,B=1e-10,C=0",
           "--init", "A=2e7", "--init", "D=5e6", "--min-counts", "1000", "--starts", "2",
           "--batch", "8", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "PicoQuant PTU T3" in run.stderr and "fit_many done" in run.stderr
    maps = xr.open_zarr(out / "maps.zarr", consolidated=False)
    assert maps["A"].dims == ("y", "x") and maps["A"].attrs["units"] == "s^-1"
    st = maps["status"].values
    assert st[0, 0] == 4 and np.isnan(maps["A"].values[0, 0])
    ok = st == 0
    assert ok.sum() == st.size - 1
    for name, truth in (("A", A), ("D", Dd)):
        v, se = maps[name].values[ok], maps[f"{name}_stderr"].values[ok]
        z = np.log(v / truth[ok]) / (se / v)
        assert np.all(np.abs(z) < 4.5), (name, z)
    assert np.all(np.isfinite(maps["chi2"].values[ok])) and maps["chi2"].attrs["statistic"]
    assert (out / "maps.png").stat().st_size > 10_000
    summary = json.loads((out / "maps.json").read_text())
    assert summary["status_counts"] == {"converged": int(ok.sum()), "too few counts": 1}
