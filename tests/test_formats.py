"""Decay file formats are registered by their own modules (jaxsim/io/formats/): read_decays picks
the reader by suffix, and a new format needs nothing but its reader registered."""

import numpy as np
import pytest

from jaxsim import io
from jaxsim.io.readers import _READERS


def test_every_shipped_format_is_registered():
    got = io.formats()
    assert got[".ptu"] is io.read_ptu and got[".phu"] is io.read_phu
    assert got[".sdt"] is io.read_sdt and got[".csv"] is io.read_text and got[""] is io.read_text


def test_a_registered_reader_is_used_by_suffix(tmp_path, monkeypatch):
    monkeypatch.setitem(_READERS, ".mydecay", _READERS[".ptu"])  # restored after the test
    calls = []

    def reader(path, n0=None):
        calls.append(path.name)
        t = np.arange(8) * 1e-9
        return io.from_arrays(t, np.exp(-t / 3e-9) * 100, n0, time_unit="s", is_counts=True)

    io.register_format((".MyDecay",), reader)
    f = tmp_path / "x.mydecay"
    f.write_bytes(b"anything")
    ds = io.read_decays(f, [1e16])
    assert calls == ["x.mydecay"] and ds.y.shape == (1, 8)


def test_unknown_suffix_is_read_as_text(tmp_path):
    f = tmp_path / "decay.out"
    f.write_text("# t y\n0 10\n1 5\n2 2.5\n")
    ds = io.read_decays(f, [1e16], time_unit="ns")
    np.testing.assert_allclose(np.asarray(ds.t), [0.0, 1e-9, 2e-9])
    with pytest.raises(FileNotFoundError):
        io.read_decays(tmp_path / "missing.ptu", [1e16])
