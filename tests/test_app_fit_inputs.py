"""The fit page's IRF file and --n0-per-watt: prepared as `jaxsim fit` prepares them, and bad
input answered with the CLI's own messages."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

pytest.importorskip("dash", reason="the app extra is not installed (pip install -e '.[app]')")

from jaxsim import io as D
from jaxsim.app import fit_page
from jaxsim.physics.errors import ParameterError

DATA = pathlib.Path(__file__).resolve().parent / "data" / "BT_TRPL_processed.txt"


def write_irf(path, bin_ns=3.90625, n=12, shift=2):
    t = (np.arange(n) - shift) * bin_ns
    y = np.exp(-0.5 * (t / 5.0) ** 2) * 1000
    np.savetxt(path, np.column_stack([t, y]), header="time_ns irf", comments="")
    return path


def write_hzb(path, powers=(1e-7, 1e-6)):
    rows = ["t," + ",".join(f"d{i}" for i in range(len(powers))),
            "0," + ",".join(f"{p:g}" for p in powers), "0," + ",".join("1.0" for _ in powers),
            "0," + ",".join("2.0" for _ in powers)]
    rows += [f"{0.25 * i}," + ",".join(str(int(500 * np.exp(-i / (8 + k))) + 3)
                                       for k in range(len(powers))) for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


def options(**kw):
    base = dict(model="abc", n0="5.58e15, 1e16, 2.23e16", free=("A",), fixed={}, init={},
                bounds={})
    return fit_page.FitOptions(**{**base, **kw})


def cli_error(capsys, argv):
    from jaxsim.cli import main

    assert main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_irf_file_is_read_as_the_cli_reads_it(tmp_path):
    irf = write_irf(tmp_path / "irf.txt")
    ds = fit_page.prepare(DATA, options(irf_path=str(irf), irf_name="irf.txt"))
    k, off = D.read_irf(irf, time_unit="ns", bin_width_s=ds.bin_width)
    np.testing.assert_array_equal(ds.irf, k)
    assert ds.irf_offset == off == -2 and ds.irf.sum() == pytest.approx(1.0)
    # the kernel is the file's curve over its sum (background 0 in a plain columns file)
    y = np.loadtxt(irf, skiprows=1)[:, 1]
    np.testing.assert_allclose(ds.irf, y / y.sum(), rtol=1e-12)
    assert ds.preprocessing[-1] == "irf file irf.txt"
    # a Gaussian IRF as the CLI sets it: the fit uses the exact Gaussian (irf_fwhm_s)
    g = fit_page.prepare(DATA, options(irf_fwhm=50e-12))
    assert g.meta["irf_fwhm_s"] == 50e-12
    with pytest.raises(ParameterError, match="not allowed with argument --irf"):
        fit_page.prepare(DATA, options(irf_path=str(irf), irf_fwhm=50e-12))


def test_irf_file_errors_are_the_cli_messages(tmp_path, capsys):
    irf = write_irf(tmp_path / "irf_wide.txt", bin_ns=10.0)
    cli = cli_error(capsys, ["fit", str(DATA), "--n0", "5.58e15,1e16,2.23e16", "--free", "A",
                             "--irf", str(irf), "--out", str(tmp_path / "o")])
    with pytest.raises(ParameterError) as err:
        fit_page.prepare(DATA, options(irf_path=str(irf), irf_name="irf_wide.txt"))
    assert f"jaxsim fit: error: {err.value}" == cli
    assert "IRF bin width 1e-08 s differs from the data's" in cli


def test_n0_per_watt_as_the_cli(tmp_path, capsys):
    hzb = write_hzb(tmp_path / "hzb.csv")
    ds = fit_page.prepare(hzb, options(n0="", n0_per_watt=1e21, model="abc"))
    np.testing.assert_allclose(ds.n0, [1e14, 1e15], rtol=1e-12)  # 1e21 cm^-3/W x P
    # the same errors as the CLI, word for word
    for argv, kw, data in (
            (["--n0", "1e16,1e16", "--n0-per-watt", "1e21"], dict(n0="1e16,1e16",
                                                                 n0_per_watt=1e21), hzb),
            (["--n0-per-watt", "1e21"], dict(n0="", n0_per_watt=1e21), DATA)):
        cli = cli_error(capsys, ["fit", str(data), "--free", "A", *argv, "--out",
                                 str(tmp_path / "o")])
        with pytest.raises(ParameterError) as err:
            fit_page.prepare(data, options(**kw))
        assert f"jaxsim fit: error: {err.value}" == cli
    ids = [{"name": n} for n in ("A", "B", "C", "G")]
    args = ("abc", "", [["free"], [], [], []], ids, ["1e6", "1e-10", "1e-28", "0"], ids,
            ["1e4", "1e-12", "1e-32", "0"], ["1e8", "1e-8", "1e-26", "1e24"], "auto", "auto",
            "", "", "1", "1", [], "ns", "auto")
    o = fit_page.options_from_inputs(*args, irf_file={"path": "/x/irf.txt", "name": "irf.txt"},
                                     n0_per_watt=" 2e21 ")
    assert o.n0_per_watt == 2e21 and o.irf_path == "/x/irf.txt" and o.irf_name == "irf.txt"
    with pytest.raises(ParameterError, match=r"--n0-per-watt = -1.0: expected a positive"):
        fit_page.options_from_inputs(*args, n0_per_watt="-1")
    with pytest.raises(ParameterError, match=r"--n0-per-watt = 'lots': expected a number"):
        fit_page.options_from_inputs(*args, n0_per_watt="lots")
