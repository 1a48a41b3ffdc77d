"""Several processes (hosts) on one store through jax.distributed: two local processes with a
coordinator on 127.0.0.1 each take their own chunks (process i: chunks i, i + 2, ...); the
finished store must equal a one-process run exactly."""

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from tiny_sweep import tiny_spec

from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.studies.sweep import run_sweep

SPEC = tiny_spec(chunk_size=8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two JAX processes plus a reference: ~30 s on 2 busy cores
def test_two_processes_share_one_store(tmp_path):
    import jax

    spec_file = tmp_path / "tiny.toml"
    spec_file.write_text(SPEC)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    one = tmp_path / "one.zarr"
    if jax.default_backend() == "cpu":
        run_sweep(parse_sweep_spec(SPEC), one, progress=False)
    else:
        subprocess.run([sys.executable, "-m", "jaxsim", "sweep", str(spec_file), "--out",
                        str(one), "--no-progress"], env=env, check=True)
    two = tmp_path / "two.zarr"
    outs = _launch(spec_file, two, env)
    assert [rc for rc, _ in outs] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    outs = [err for _, err in outs]
    chunks = []
    for i, err in enumerate(outs):
        m = re.search(rf"\[process {i}/2\] (\d+) points in (\d+) chunks", err)
        assert m, err[-2000:]
        chunks.append(int(m.group(2)))
    assert chunks == [6, 6]  # 12 chunks, alternating
    a, b = xr.open_zarr(one), xr.open_zarr(two)
    assert b.attrs["complete"]
    for v in ("tau_mean_pl", "plqy", "status", "num_steps"):
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    # a store of another spec: every process stops with process 0's message (no hang)
    outs = _launch(spec_file, two, env, "--chunk", "16")
    for rc, err in outs:
        assert rc == 2 and "different sweep spec" in err and "chunk_size" in err, err[-2000:]


def _launch(spec_file, out, env, *extra):
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "jaxsim", "sweep", str(spec_file), "--out", str(out),
         "--no-progress", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
         "--process-id", str(i), *extra], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        outs.append((p.returncode, err))
    return outs
