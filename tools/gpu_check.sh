#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see docs/performance.md, "GPU"): the GPU tests, the
# large GPU sweep and the engine bench rows, each under its own time limit. Expects the wheels
# the GPU image lacks (zarr and what it needs) in .whl/ and writes logs and JSON to $OUT.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, diffrax, equinox, zarr, xarray; print('jax', jax.__version__, jax.devices(), 'diffrax', diffrax.__version__, 'zarr', zarr.__version__)"
echo "== GPU tests"; date +%T
timeout "${T_TESTS:-180}" python3 -m pytest -q -p no:warnings -p no:cacheprovider -m gpu \
    tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
echo "== large sweep"; date +%T
timeout "${T_SWEEP:-150}" python3 -m jaxsim sweep sweeps/gpu_large.toml --out /tmp/large.zarr \
    2>&1 | tr '\r' '\n' | grep -v "pt/s\]$" | tail -4 | tee "$OUT/sweep_gpu.log"
echo "== bench (engine rows)"; date +%T
timeout "${T_BENCH:-200}" python3 -m jaxsim bench --quick --no-fit --out "$OUT/bench_gpu.json" \
    2>&1 | tee "$OUT/bench_gpu.log" | tail -25
date +%T
