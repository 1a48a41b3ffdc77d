"""Memory of a sweep chunk is bounded: curve summaries (two-exponential fits) run a fixed
number of curves at a time, a grid smaller than a chunk is not padded to the chunk size, and a
chunk that would not fit in memory is refused before any work, with a size that fits."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.observables.lifetimes import _vmap_fit, biexp_fit_batch
from jaxsim.physics.errors import ParameterError
from jaxsim.studies import sweep

TINY = """
name = "tiny"
model = "trap_detrap"
t1 = 2e-6
[axes]
A = { values = [1e5, 1e8] }
[observables]
summaries = ["tau_mean_pl", "tau_avg_n"]
"""

CHILD = textwrap.dedent("""
    import sys
    from jaxsim.io.spec_files import load_sweep_spec
    from jaxsim.studies.sweep import run_sweep
    spec = load_sweep_spec(sys.argv[1])
    assert run_sweep(spec, sys.argv[2], progress=False).complete
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(int(hwm) // 1024)
""")


def _peak_mb(tmp_path, text):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(text)
    r = subprocess.run([sys.executable, "-c", CHILD, str(spec_file), str(tmp_path / "s.zarr")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return int(r.stdout.split()[-1])


def test_short_grid_is_padded_only_as_far_as_it_needs():
    spec = parse_sweep_spec(TINY)
    assert spec.chunk_size == 4096 and spec.n_points == 2
    assert sweep.chunk_lanes(spec) == 8 and sweep.chunk_lanes(spec, n_dev=4) == 32


def test_tiny_curve_summary_sweep_at_default_chunk_size(tmp_path):
    # was: RESOURCE_EXHAUSTED allocating 28 GB (every lane of a 4096-lane chunk held the
    # fit's whole grid of time-constant pairs)
    assert _peak_mb(tmp_path, TINY) < 900


@pytest.mark.slow
def test_full_chunk_of_curve_summaries_within_a_gigabyte(tmp_path):
    text = TINY.replace("A = { values = [1e5, 1e8] }",
                        "A = { logspace = [1e5, 1e8, 64] }\nD = { logspace = [1e3, 1e8, 64] }")
    assert _peak_mb(tmp_path, text) < 1000  # 4096 points, one chunk of 4096 lanes: ~0.7 GB


def test_batched_fits_equal_one_batch():
    t = np.linspace(0.0, 2e-6, 200)
    rng = np.random.default_rng(3)
    taus = 10 ** rng.uniform(-8, -6, (300, 2))
    y = 0.6 * np.exp(-t / taus[:, :1]) + 0.4 * np.exp(-t / taus[:, 1:])
    w = np.ones_like(t)
    np.testing.assert_allclose(np.asarray(_vmap_fit(t, y, w)),
                               np.asarray(biexp_fit_batch(t, y, w).tau_avg), rtol=1e-12)


def test_chunk_that_cannot_fit_is_refused_with_a_size_that_fits(monkeypatch):
    text = TINY.replace('summaries = ["tau_mean_pl", "tau_avg_n"]',
                        'summaries = ["tau_avg_n"]\n[observables.curves]\nvars = ["n", "pl"]\n'
                        'ts = { linspace = [0.0, 2e-6, 1001] }')
    text = text.replace("A = { values = [1e5, 1e8] }", "A = { logspace = [1e5, 1e8, 100000] }")
    spec = parse_sweep_spec(text).replace(chunk_size=2**19)
    monkeypatch.setattr(sweep, "physical_memory_bytes", lambda: 16 * 2**30)
    with pytest.raises(ParameterError, match=r"chunk_size = 524288: .* expected chunk_size <= (\d+)") as err:
        sweep.check_chunk_memory(spec)
    fits = int(err.value.args[0].rsplit("<= ", 1)[1])
    sweep.check_chunk_memory(spec.replace(chunk_size=fits))
