"""GPU checks: the engine on a GPU against float64 Radau, and a sweep store on a GPU against the
same sweep on the CPU. Run with ``python -m pytest -m gpu`` on a machine with a GPU; skipped
elsewhere."""

import numpy as np
import pytest

import jaxsim  # noqa: F401  (float64)
import jax

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (jax backend is "
                       f"{jax.default_backend()!r})"),
]


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-5), ("float32", 2e-5)])
@pytest.mark.parametrize("kind", ["summary", "curves"])
def test_engine_on_gpu_matches_radau(kind, dtype, tol):
    from jaxsim.bench.engine import curve_times, engine_fn, random_grid, reference, rel_err

    points = random_grid(8192, seed=11)
    out = engine_fn(kind, dtype)({k: np.asarray(v) for k, v in points.items()})
    out = {k: np.asarray(v) for k, v in out.items()}
    assert np.all(out["status"] == 0), np.unique(out["status"], return_counts=True)
    pick = np.random.default_rng(0).choice(8192, 24, replace=False)
    ref = reference({k: v[pick] for k, v in points.items()}, curve_times())
    got = {k: v[pick] for k, v in out.items() if k not in ("status", "num_steps")}
    assert rel_err(got, ref, kind) < tol


def test_sweep_store_on_gpu_agrees_with_cpu(tmp_path):
    from jaxsim.io.spec_files import parse_sweep_spec
    from jaxsim.studies.sweep import run_sweep

    text = """
name = "gpu_vs_cpu"
model = "trap_detrap"
t1 = 2e-6
chunk_size = 512
[axes]
A = { logspace = [1e5, 1e8, 12] }
D = { logspace = [1e3, 1e8, 10] }
n0 = { logspace = [1e15, 1e18, 9] }
[observables]
summaries = ["tau_mean_pl", "plqy", "share_trapping", "tau_avg_n"]
"""
    spec = parse_sweep_spec(text)
    import xarray as xr

    run_sweep(spec, tmp_path / "gpu.zarr", progress=False)
    with jax.default_device(jax.devices("cpu")[0]):
        run_sweep(spec, tmp_path / "cpu.zarr", progress=False, devices=jax.devices("cpu"))
    a, b = xr.open_zarr(tmp_path / "gpu.zarr"), xr.open_zarr(tmp_path / "cpu.zarr")
    assert int((a["status"] != 0).sum()) == 0 and int((b["status"] != 0).sum()) == 0
    for name in ("tau_mean_pl", "plqy", "share_trapping"):
        np.testing.assert_allclose(np.asarray(a[name]), np.asarray(b[name]), rtol=1e-6)
    # a two-exponential fit is a different reduction order on each backend: looser
    np.testing.assert_allclose(np.asarray(a["tau_avg_n"]), np.asarray(b["tau_avg_n"]), rtol=1e-4)
