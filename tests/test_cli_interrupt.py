"""Ctrl-C on a command: one line on stderr, exit status 130, no traceback; an interrupted
sweep keeps its finished chunks and the same command resumes it.

The engine is replaced by a closed form of the inputs (no compile): what is tested is the
command line, the sweep loop and the store, not the numbers.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_sweep import tiny_spec

import jaxsim.studies.sweep as sweep_mod
from jaxsim.cli import main

SPEC = tiny_spec(chunk_size=8)  # 96 points, 12 chunks
NAMES = ("tau_mean_pl", "plqy")
LINE = re.compile(r"^jaxsim sweep: interrupted after (\d+) of 12 chunks; "
                  r"rerun the same command to resume$")


def fake_engine(raise_on_call: int | None = None, delay_s: float = 0.0):
    """A chunk function: a closed form of the inputs; call number ``raise_on_call`` (1-based)
    raises KeyboardInterrupt as a Ctrl-C inside the work would."""
    lock, calls = threading.Lock(), [0]

    def f(values):
        with lock:
            calls[0] += 1
            call = calls[0]
        if delay_s:
            time.sleep(delay_s)
        if call == raise_on_call:
            raise KeyboardInterrupt
        key = values["A"] + values["D"] + values["K1"] + values["n0"] * 1e-10
        out = {n: key * (i + 1) for i, n in enumerate(NAMES)}
        out["status"] = np.zeros(key.shape, np.int32)
        out["num_steps"] = np.full(key.shape, 7, np.int32)
        return out

    return f


def _use(monkeypatch, f):
    monkeypatch.setattr(sweep_mod, "chunk_function", lambda spec, tail_halvings=0: f)


def _done(store: Path) -> list[int]:
    d = store / "raw" / "done" / "c"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def test_sweep_ctrl_c_one_line_130_then_resume(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run.zarr"
    argv = ["sweep", str(spec), "--out", str(out), "--no-progress"]
    _use(monkeypatch, fake_engine(raise_on_call=4))
    assert main(argv) == 130
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    m = LINE.match(last)
    assert m, err
    assert "Traceback" not in err
    # chunks are written in order: the 4th call's chunk (3) and nothing after it is missing
    assert int(m.group(1)) == 3 and _done(out) == [0, 1, 2]
    before = {k: os.stat(out / "raw" / "plqy" / "c" / str(k)).st_mtime_ns for k in _done(out)}

    _use(monkeypatch, fake_engine())
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "96 points" in err and "9 chunks" in err and "complete" in err  # only the rest ran
    after = {k: os.stat(out / "raw" / "plqy" / "c" / str(k)).st_mtime_ns for k in range(3)}
    assert before == after  # finished chunks were not computed or written again

    ref = tmp_path / "ref.zarr"
    assert main(["sweep", str(spec), "--out", str(ref), "--no-progress"]) == 0
    import xarray as xr

    a, b = xr.open_zarr(out), xr.open_zarr(ref)
    for v in (*NAMES, "status", "num_steps"):
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_sweep_ctrl_c_with_overwrite_says_how_to_resume(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    _use(monkeypatch, fake_engine(raise_on_call=2))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o.zarr"), "--overwrite",
                 "--no-progress"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "jaxsim sweep: interrupted after 1 of 12 chunks; rerun the same command without "
        "--overwrite to resume")


@pytest.mark.parametrize("command,target", [
    (["simulate", "--set", "A=1e7"], "jaxsim.cli.simulate.simulate"),
    (["fit", "x.txt", "--n0", "1e16", "--free", "A", "--out", "o"], "jaxsim.io.read_decays"),
])
def test_any_command_ctrl_c_one_line_130(monkeypatch, capsys, command, target):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, boom)
    assert main(command) == 130
    err = capsys.readouterr().err
    # one line, after any progress lines, and no traceback
    assert err.splitlines()[-1] == (f"jaxsim {command[0]}: interrupted before it finished; "
                                    "rerun the same command to start again")
    assert "Traceback" not in err and all(line.startswith("[") for line in err.splitlines()[:-1])


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import jaxsim.studies.sweep as sweep_mod
    from jaxsim.cli import main

    def f(values):
        time.sleep(0.15)
        key = values["A"] + values["D"]
        out = {"tau_mean_pl": key, "plqy": key}
        out["status"] = np.zeros(key.shape, np.int32)
        out["num_steps"] = np.zeros(key.shape, np.int32)
        return out

    sweep_mod.chunk_function = lambda spec, tail_halvings=0: f
    sys.exit(main(sys.argv[1:]))
""")


def test_sweep_sigint_in_a_real_process(tmp_path):
    """A real SIGINT (Ctrl-C) to a running sweep: exit 130, one line, no traceback."""
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "sig.zarr"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "sweep", str(spec), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not _done(out):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.time() < deadline, "no chunk finished in 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    m = LINE.match(err.strip().splitlines()[-1])
    assert m, err
    assert 1 <= int(m.group(1)) < 12 and int(m.group(1)) == len(_done(out))
