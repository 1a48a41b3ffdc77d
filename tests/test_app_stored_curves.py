"""The sweep page shows a store's stored curves (``curve_*``) beside the recomputed ones."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dash", reason="the app extra is not installed (pip install -e '.[app]')")

from jaxsim.app import stores as S
from jaxsim.app import sweep_page
from jaxsim.io.spec_files import parse_sweep_spec

SPEC = """
model = "trap_detrap"
t1 = 2e-6
chunk_size = 8
[fixed]
B = 1e-10
C = 1e-28
[axes]
A = [1e6, 1e7]
D = [1e5]
K1 = [1e4]
n0 = [1e16, 1e17]
[observables]
summaries = ["plqy"]
curves = { vars = ["n", "n_d", "pl_norm"], ts = { linspace = [0.0, 2e-6, 65] } }
"""


@pytest.fixture(scope="module")
def curve_store(tmp_path_factory):
    from jaxsim.studies.sweep import run_sweep

    path = tmp_path_factory.mktemp("curves") / "c.zarr"
    run_sweep(parse_sweep_spec(SPEC), path, progress=False)
    return path


def test_stored_curves_are_read_and_overlay_the_recomputed_ones(curve_store):
    import zarr

    import jaxsim

    v = S.StoreView(curve_store, cache=S.ChunkCache())
    assert v.curve_vars() == ["curve_n", "curve_n_d", "curve_pl_norm"]
    t = v.curve_times()
    np.testing.assert_array_equal(t, np.linspace(0.0, 2e-6, 65))
    idx = {"A": 1, "D": 0, "K1": 0, "n0": 1}
    raw = zarr.open_group(str(curve_store), mode="r")
    np.testing.assert_array_equal(v.point_curve("curve_n", idx), raw["curve_n"][1, 0, 0, 1, :])
    # the stored curves are those of an independent solve at the point (float64 reference)
    params = {"A": 1e7, "B": 1e-10, "C": 1e-28, "D": 1e5, "K1": 1e4, "n0": 1e17}
    sol = jaxsim.solve("trap_detrap", params, t, rtol=1e-10)
    np.testing.assert_allclose(v.point_curve("curve_n", idx), np.asarray(sol.states["n"]),
                               rtol=1e-4)
    pl = np.asarray(sol.pl)
    np.testing.assert_allclose(v.point_curve("curve_pl_norm", idx), pl / pl[0], rtol=1e-4)
    # and the page's recomputation gives them again, on the same grid
    res = S.point_decay(v.spec, v.point_values(idx))
    np.testing.assert_array_equal(res["t_lin"], t)
    for name in v.curve_vars():
        fresh = sweep_page.recomputed_curve(res, name[len("curve_"):])
        np.testing.assert_allclose(fresh, v.point_curve(name, idx), rtol=1e-5, err_msg=name)
    fig = sweep_page.stored_curves_figure(v, idx, res)
    names = [tr["name"] for tr in fig["data"]]
    assert names[0] == "n (cm⁻³) stored" and names[1].startswith("n (cm⁻³) recomputed")
    assert "pl_norm (1) stored" in names
    # two units, two y axes: densities on the left, the normalised PL on the right
    assert fig["layout"]["yaxis"]["title"]["text"] == "cm⁻³"
    assert fig["layout"]["yaxis2"]["title"]["text"].startswith("normalised")
    assert fig["data"][-1]["yaxis"] == "y2"
