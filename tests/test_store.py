"""The zarr store: layout xarray reads, permuted chunks written back by index, resume state,
spec identity, disk-space check. Chunk outputs here are synthetic functions of the flat grid
index, so the expected gridded arrays are known independently of any solver."""

import jaxsim.studies.store as store_mod
import numpy as np
import pytest
import xarray as xr

from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.studies.store import (
    StoreError,
    create_store,
    finalize,
    open_store,
    open_sweep,
)

SPEC = """
model = "trap_detrap"
t1 = 1e-6
chunk_size = 7
[axes]
A = { logspace = [1e5, 1e8, 4] }
D = [0.0, 1e6, 1e7]
n0 = { logspace = [1e15, 1e18, 5] }
[observables]
summaries = ["tau_mean_pl", "plqy"]
curves = { vars = ["pl"], ts = { linspace = [1e-9, 1e-6, 300] } }
"""


@pytest.fixture()
def spec():
    return parse_sweep_spec(SPEC)


def _outputs(spec, flat):
    """Synthetic chunk outputs: every variable a known function of the flat grid index."""
    n_t = len(spec.curve_ts)
    return {
        "tau_mean_pl": flat * 1.5,
        "plqy": -flat.astype(float),
        "curve_pl": flat[:, None] * 10.0 + np.arange(n_t)[None, :],
        "status": (flat % 3 == 0).astype(np.int32),
        "num_steps": flat.astype(np.int32) + 5,
    }


def _fill(store, chunks):
    for k in chunks:
        idx = store.index(k)
        store.write_chunk(k, _outputs(store.spec, idx))


def _check_gridded(ds, spec):
    flat = np.arange(spec.n_points).reshape(spec.shape)
    np.testing.assert_array_equal(ds["tau_mean_pl"].values, flat * 1.5)
    np.testing.assert_array_equal(ds["plqy"].values, -flat)
    np.testing.assert_array_equal(ds["curve_pl"].values,
                                  flat[..., None] * 10.0 + np.arange(len(spec.curve_ts)))
    np.testing.assert_array_equal(ds["status"].values, flat % 3 == 0)
    np.testing.assert_array_equal(ds["num_steps"].values, flat + 5)


@pytest.mark.parametrize("limits", [
    {},  # every variable scattered whole
    {"WHOLE_BYTES": 60 * 8 * 128},  # the curve in column blocks of 128 times (large curves)
    {"WHOLE_BYTES": 100, "SLAB_BYTES": 30000},  # slab by slab through the grid (huge grids)
], ids=["whole", "columns", "slabs"])
def test_permuted_chunks_land_on_their_grid_points(tmp_path, spec, monkeypatch, limits):
    for k, v in limits.items():
        monkeypatch.setattr(store_mod, k, v)
    perm = np.random.default_rng(0).permutation(spec.n_points)
    st = create_store(tmp_path / "s.zarr", spec, perm, version="test")
    assert st.n_chunks == -(-60 // 7)
    _fill(st, reversed(range(st.n_chunks)))  # any order
    finalize(st)
    ds = xr.open_zarr(tmp_path / "s.zarr")
    assert dict(ds.sizes) == {"A": 4, "D": 3, "n0": 5, "t": 300}
    np.testing.assert_allclose(ds["A"].values, [1e5, 1e6, 1e7, 1e8], rtol=1e-14)
    assert ds["A"].attrs["units"] == "s^-1" and ds["A"].attrs["scale"] == "log"
    assert ds["n0"].attrs["units"] == "cm^-3"
    assert ds["tau_mean_pl"].attrs["units"] == "s"
    assert ds["curve_pl"].dims == ("A", "D", "n0", "t")
    assert ds.attrs["jaxsim_version"] == "test" and ds.attrs["complete"]
    assert parse_sweep_spec(ds.attrs["jaxsim_spec"]) == spec
    _check_gridded(ds, spec)
    raw = xr.open_zarr(tmp_path / "s.zarr", group="raw")
    np.testing.assert_array_equal(raw["index"].values, perm)


def test_partial_store_and_resume_state(tmp_path, spec):
    st = create_store(tmp_path / "s.zarr", spec, None)
    _fill(st, [0, 3])
    # a torn chunk: data written, killed before its marker -> not done, recomputed on resume
    idx = st.index(5)
    for name, v in _outputs(spec, idx).items():
        st.group["raw"][name][35:42] = v
    again = open_store(tmp_path / "s.zarr", spec)
    np.testing.assert_array_equal(np.flatnonzero(again.done_mask()), [0, 3])
    ds = open_sweep(tmp_path / "s.zarr")  # assembled from raw/ for an unfinished store
    flat = np.arange(spec.n_points).reshape(spec.shape)
    done = (flat < 7) | ((flat >= 21) & (flat < 28))
    np.testing.assert_array_equal(ds["tau_mean_pl"].values[done], (flat * 1.5)[done])
    assert np.all(np.isnan(ds["tau_mean_pl"].values[~done]))
    assert np.all(ds["status"].values[~done] == -1)
    with pytest.raises(StoreError, match="not done"):
        finalize(again)
    _fill(again, [k for k in range(again.n_chunks) if not again.done_mask()[k]])
    finalize(again)
    _check_gridded(xr.open_zarr(tmp_path / "s.zarr"), spec)


def test_unfinished_store_of_an_older_version_is_refused_with_what_it_lacks(tmp_path, spec):
    """A store begun before a variable existed (here: its window flag) has no values for it in
    its finished chunks: resuming is refused, naming the variable, instead of leaving holes."""
    import zarr

    st = create_store(tmp_path / "s.zarr", spec, None)
    _fill(st, [0])
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="a")
    del g["raw"]["window_tail_pl"]
    store_mod._consolidate(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match=r"did not compute window_tail_pl.*overwrite"):
        open_store(tmp_path / "s.zarr", spec)
    assert open_store(tmp_path / "s.zarr").spec == spec  # reading it is still allowed


def test_other_spec_refused(tmp_path, spec):
    create_store(tmp_path / "s.zarr", spec, None)
    other = spec.replace(rtol=1e-8)
    with pytest.raises(StoreError, match=r"different sweep spec \(differs in: rtol\).*overwrite"):
        open_store(tmp_path / "s.zarr", other)
    with pytest.raises(StoreError, match="exists"):
        create_store(tmp_path / "s.zarr", other, None)
    create_store(tmp_path / "s.zarr", other, None, overwrite=True)
    assert open_store(tmp_path / "s.zarr", other).spec == other


def test_not_a_store(tmp_path, spec):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious.txt").write_text("x")
    with pytest.raises(StoreError, match="not a zarr store"):
        open_store(tmp_path / "d", spec)
    with pytest.raises(StoreError, match="refusing"):
        create_store(tmp_path / "d", spec, None, overwrite=True)
    assert (tmp_path / "d" / "precious.txt").exists()


def test_disk_check_estimates_bytes(tmp_path, spec):
    assert spec.estimated_bytes() == 60 * (3 * 8 + 300 * 8 + 1 + 4 + 8)  # summaries + window_tail_pl, curve, ...
    store_mod.check_disk(spec, tmp_path / "s.zarr")
    big = parse_sweep_spec(SPEC.replace("[1e15, 1e18, 5]", "[1e15, 1e18, 2000000]").replace(
        "[1e5, 1e8, 4]", "[1e5, 1e8, 3000000]"))
    assert big.estimated_bytes() == 3000000 * 3 * 2000000 * (3 * 8 + 300 * 8 + 13)
    with pytest.raises(StoreError, match=r"would need about .* GB .* free"):
        create_store(tmp_path / "big.zarr", big, None)
    assert not (tmp_path / "big.zarr").exists()


def test_slabs_cover_grid_exactly(monkeypatch):
    monkeypatch.setattr(store_mod, "SLAB_BYTES", 8 * 12)
    shape = (3, 5, 4)
    chunk, slabs = store_mod._slabs(shape, 8)
    covered = np.zeros(60, int)
    for start, stop, region in slabs:
        covered[start:stop] += 1
        block = np.arange(60).reshape(shape)[region]
        np.testing.assert_array_equal(block.ravel(), np.arange(start, stop))
    assert np.all(covered == 1)
    assert chunk == (1, 3, 4)
