"""Readers, validation and pre-processing of decay files (no ODE solves: fast)."""

from __future__ import annotations

import pathlib
import struct

import numpy as np
import pytest

from jaxsim import io as D
from jaxsim.physics.errors import ParameterError

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _need(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (CI keeps ../shared beside the clone)")
    return path


# -- text ---------------------------------------------------------------------------------

def test_text_round_trip_with_comments_and_header(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(50) * 0.25
    y = rng.poisson(100, size=(3, 50)).astype(float)
    ds = D.from_arrays(t, y, [1e15, 2e15, 3e15], time_unit="ns", labels=["a", "b", "c"])
    path = tmp_path / "d.txt"
    D.write_text(path, ds, time_unit="ps")
    text = "% instrument: test\n# another comment\n" + path.read_text()
    path.write_text(text)
    back = D.read_text(path, [1e15, 2e15, 3e15], time_unit="ps")
    np.testing.assert_allclose(back.t, ds.t, rtol=1e-12)
    np.testing.assert_array_equal(back.y, ds.y)
    assert back.is_counts and back.sampling == "bins"
    assert back.bin_width == pytest.approx(0.25e-9)
    assert back.labels == ("a", "b", "c")


def test_csv_with_header_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("time,Y1,Y2\n0,1.0,0.5\n1,0.5,0.25\n2,0.25,0.125\n")
    ds = D.read_text(path, [1e16, 2e16])
    assert not ds.is_counts and ds.sampling == "points"
    np.testing.assert_allclose(ds.t, [0, 1e-9, 2e-9])
    assert ds.labels == ("Y1", "Y2")


@pytest.mark.parametrize("body, words", [
    ("0 1 2\n1 2\n", ["line 2", "columns"]),                      # ragged
    ("0 1\n2 3\n1 4\n", ["line 3", "increasing"]),                 # non-increasing time
    ("# nothing here\nfoo bar\n", ["no rows of numbers"]),         # no numbers
    ("0 5\n1 -3\n2 1\n", ["line 2", "negative count"]),            # negative counts
    ("0 5\n1 3\nabc 1\n", ["line 3", "not a row of numbers"]),     # garbage inside the data
])
def test_malformed_text_names_file_and_line(tmp_path, body, words):
    path = tmp_path / "bad.txt"
    path.write_text(body)
    with pytest.raises(D.DataError) as err:
        D.read_text(path, is_counts=True if "-3" in body else None)
    msg = str(err.value)
    assert "bad.txt" in msg
    for w in words:
        assert w in msg


def test_n0_count_mismatch(tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("0 1 2\n1 2 3\n2 1 1\n")
    with pytest.raises(D.DataError, match="2 decay"):
        D.read_text(path, [1e15, 2e15, 3e15])
    with pytest.raises(ParameterError, match="n0"):
        D.read_text(path, [1e15, -1.0])


def test_power_nd_background_layout(tmp_path):
    path = tmp_path / "hzb.csv"
    rows = ["x1,x2,x3", "0,1e-7,1e-6", "0,1.5,2.0", "0,0.5,3.0"]
    rows += [f"{0.25 * i},{10 + i},{20 + i}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    ds = D.read_text(path)
    assert ds.meta["power_W"] == [1e-7, 1e-6]
    assert ds.meta["nd_log10"] == [1.5, 2.0]
    np.testing.assert_allclose(ds.background, [0.5, 3.0])
    assert ds.n_bins == 10 and ds.is_counts
    with pytest.raises(D.DataError, match="line 3"):  # as plain columns: time 0 repeats
        D.read_text(path, layout="columns")


def test_power_layout_forced_on_plain_file_fails(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("0 1\n1 2\n2 3\n3 4\n4 5\n")
    with pytest.raises(D.DataError, match="three"):
        D.read_text(path, layout="power_nd_background")


def test_grossmann_files_read():
    folder = _need(SHARED / "grossmann_trpl")
    ds = D.read_decays(folder / "sample1.csv")
    assert ds.n_decays == 5 and ds.n_bins == 5604 and ds.is_counts
    assert ds.bin_width == pytest.approx(0.2560491614390088e-9, rel=1e-6)
    assert ds.meta["power_W"][0] == pytest.approx(6.94e-8)
    assert np.max(ds.y) == 58341


def test_pears_file_reads():
    path = _need(SHARED / "pears" / "BTD_TRPL_processed.txt")
    ds = D.read_decays(path, [55e12, 164e12, 511e12, 1720e12, 4750e12])
    assert ds.n_decays == 5 and ds.n_bins == 1001
    assert not ds.is_counts and ds.sampling == "points"
    assert ds.bin_width == pytest.approx(20e-9)


# -- pre-processing -----------------------------------------------------------------------------

def test_preprocessing_is_recorded():
    t = np.arange(20.0)
    y = np.r_[np.zeros(5), 100 * np.exp(-np.arange(15) / 3.0)].round()
    ds = D.from_arrays(t, np.vstack([y, y]), [1e15, 2e15], time_unit="ns")
    s = D.shift_to_peak(ds)
    assert s.y[0, 0] == 100 and s.mask[0, -5:].sum() == 0
    c = D.crop(s, None, 10e-9)
    assert c.mask[0].sum() == 10
    n = D.normalise(c)
    assert not n.is_counts and n.y.max() == pytest.approx(1.0)
    r = D.rebin(ds, 2)
    assert r.n_bins == 10 and r.y.sum() == ds.y.sum() and r.bin_width == pytest.approx(2e-9)
    assert [p.split()[0] for p in n.preprocessing] == ["shift_to_peak", "crop", "normalise"]


def test_gaussian_irf_moments():
    k, off = D.gaussian_irf(100e-12, 10e-12)
    lags = np.arange(k.size) + off
    mean = np.sum(k * lags)
    var = np.sum(k * (lags - mean) ** 2)
    sigma_bins = 100 / 10 / (2 * np.sqrt(2 * np.log(2)))
    assert k.sum() == pytest.approx(1.0)
    assert mean == pytest.approx(0.0, abs=1e-9)
    # binning adds w^2/12 to the variance of a Gaussian
    assert var == pytest.approx(sigma_bins**2 + 1 / 12, rel=1e-3)


def test_n0_from_fluence():
    # 1 uJ/cm^2 at 2.33 eV (532 nm), all absorbed in 500 nm: 1e-6/(2.33*1.602e-19*5e-5)
    n0 = D.n0_from_fluence(1e-6, 2.33, 1.0, 500e-7)
    assert n0 == pytest.approx(1e-6 / (2.33 * 1.602176634e-19 * 5e-5))
    with pytest.raises(ParameterError, match="absorptance"):
        D.n0_from_fluence(1e-6, 2.33, 1.5, 500e-7)


# -- PicoQuant and Becker & Hickl -----------------------------------------------------------

def test_ptu_round_trip(tmp_path):
    ptufile = pytest.importorskip("ptufile")
    rng = np.random.default_rng(0)
    hist = rng.poisson(30 * np.exp(-np.arange(64) / 10.0)).astype(np.uint16)
    path = tmp_path / "decay.ptu"
    # one pixel, one channel: the file's histogram is the decay
    ptufile.imwrite(path, hist.reshape(1, 1, 1, -1), 50e-9, 100e-12, pixel_time=1e-3)
    ds = D.read_decays(path, [1e16])
    assert ds.n_decays == 1 and ds.is_counts
    assert ds.bin_width == pytest.approx(100e-12, rel=1e-6)
    n = ds.n_bins  # ptufile stops the histogram after the last non-empty bin
    np.testing.assert_array_equal(ds.y[0], hist[:n])
    assert n >= 40 and not hist[n:].any()


def _tag(name, value, typecode, index=-1):
    return struct.pack("<32siI8s", name.encode(), index, typecode, value)


def _write_phu(path, curves, resolution):
    """A minimal PicoQuant .phu: the tags PhuFile reads, then the uint32 curves."""
    i8, f8, empty = 0x10000008, 0x20000008, 0xFFFF0008
    n = len(curves)
    ntags = 4 + 2 * n + 1
    data_start = 16 + 48 * ntags
    tags = [_tag("Measurement_Mode", struct.pack("<q", 0), i8),
            _tag("Measurement_SubMode", struct.pack("<q", 0), i8),
            _tag("MeasDesc_Resolution", struct.pack("<d", resolution), f8),
            _tag("HistoResult_NumberOfCurves", struct.pack("<q", n), i8)]
    offset = data_start
    for i, c in enumerate(curves):
        tags.append(_tag("HistResDscr_DataOffset", struct.pack("<q", offset), i8, i))
        offset += 4 * len(c)
    for i, c in enumerate(curves):
        tags.append(_tag("HistResDscr_HistogramBins", struct.pack("<q", len(c)), i8, i))
    tags.append(_tag("Header_End", b"\0" * 8, empty))
    body = b"PQHISTO\0" + b"1.1\0\0\0\0\0" + b"".join(tags)
    assert len(body) == data_start
    body += b"".join(np.asarray(c, "<u4").tobytes() for c in curves)
    pathlib.Path(path).write_bytes(body)


def test_phu_round_trip(tmp_path):
    pytest.importorskip("ptufile")
    curves = [np.arange(40, 0, -1), np.arange(80, 0, -2)]
    path = tmp_path / "two.phu"
    _write_phu(path, curves, 25e-12)
    ds = D.read_decays(path, [1e15, 2e15])
    assert ds.n_decays == 2 and ds.bin_width == pytest.approx(25e-12)
    np.testing.assert_array_equal(ds.y, np.asarray(curves, float))


def _write_sdt(path, curves, tac_r=50e-9, tac_g=1, scan=None):
    """A minimal Becker & Hickl .sdt (revision 15+): header, info, one measurement description
    and one uncompressed DECAY block per curve (uint16)."""
    from sdtfile.sdtfile import BLOCK_HEADER, FILE_HEADER, MEASURE_INFO

    fh_t = np.dtype(FILE_HEADER).newbyteorder("<")
    mi_t = np.dtype(MEASURE_INFO).newbyteorder("<")
    bh_t = np.dtype(BLOCK_HEADER).newbyteorder("<")
    info = b"*IDENTIFICATION\r\nID : SPC Setup & Data File\r\n*END\r\n"
    adc = len(curves[0]) if scan is None else scan[2]  # scan: (x, y, adc) of image blocks
    info_offs = fh_t.itemsize
    mi_offs = info_offs + len(info)
    blk_offs = mi_offs + mi_t.itemsize
    fh = np.zeros(1, fh_t)
    fh["revision"] = 0x28F  # SPC-150, software revision 15
    fh["info_offs"], fh["info_length"] = info_offs, len(info)
    fh["setup_offs"], fh["setup_length"] = 0, 0
    fh["data_block_offs"] = blk_offs
    fh["no_of_data_blocks"] = len(curves)
    fh["data_block_length"] = 2 * len(curves[0])
    fh["meas_desc_block_offs"] = mi_offs
    fh["no_of_meas_desc_blocks"] = 1
    fh["meas_desc_block_length"] = mi_t.itemsize
    fh["header_valid"] = 0x5555
    fh["chksum"] = 0x55AA
    mi = np.zeros(1, mi_t)
    mi["adc_re"], mi["tac_r"], mi["tac_g"] = adc, tac_r, tac_g
    if scan is not None:
        mi["scan_x"], mi["scan_y"] = scan[0], scan[1]
    out = fh.tobytes() + info + mi.tobytes()
    pos = blk_offs
    for c in curves:
        bh = np.zeros(1, bh_t)
        data_offs = pos + bh_t.itemsize
        bh["data_offs"] = data_offs
        bh["next_block_offs"] = data_offs + 2 * len(c)
        bh["block_type"] = 0x0  # DECAY_BLOCK, uint16
        bh["meas_desc_block_no"] = 0
        bh["block_length"] = 2 * len(c)
        out += bh.tobytes() + np.asarray(c, "<u2").tobytes()
        pos = data_offs + 2 * len(c)
    pathlib.Path(path).write_bytes(out)


def test_sdt_round_trip(tmp_path):
    pytest.importorskip("sdtfile")
    rng = np.random.default_rng(3)
    curves = [rng.poisson(50, 256), rng.poisson(20, 256)]
    path = tmp_path / "decay.sdt"
    _write_sdt(path, curves, tac_r=50e-9, tac_g=2)
    ds = D.read_decays(path, [1e15, 1e16])
    assert ds.n_decays == 2
    assert ds.bin_width == pytest.approx(50e-9 / (2 * 256), rel=1e-6)
    np.testing.assert_array_equal(ds.y, np.asarray(curves, float))


@pytest.mark.parametrize("suffix", [".ptu", ".phu", ".sdt"])
def test_corrupt_binary_names_file(tmp_path, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"not a real file" * 10)
    with pytest.raises(D.DataError, match=f"junk{suffix}"):
        D.read_decays(path)
