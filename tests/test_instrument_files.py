"""Real instrument files (tests/data/instrument, see its SOURCE.md): the readers take bin
width, sync rate, channels and frames from the headers, and the histograms match the raw
records decoded here independently of ptufile."""

import pathlib

import numpy as np
import pytest

from jaxsim import io as D

HERE = pathlib.Path(__file__).parent / "data" / "instrument"
PTU = HERE / "picoquant_ptu"
DAT = HERE / "easytau_dat"


def _ht3_histograms(path, n_bins):
    """HydraHarp T3 records (32 bit: special 1, channel 6, dtime 15, nsync 10), decoded here:
    per channel, the histogram of the photons' dtime."""
    raw = pathlib.Path(path).read_bytes()
    end = raw.index(b"Header_End")  # tag: 32 s ident, i4 index, u4 type, 8 s value
    recs = np.frombuffer(raw[end + 48:], "<u4")
    special = recs >> 31
    chan = (recs >> 25) & 0x3F
    dtime = (recs >> 10) & 0x7FFF
    photon = special == 0
    return np.stack([np.bincount(dtime[photon & (chan == c)], minlength=n_bins)[:n_bins]
                     for c in range(2)])


@pytest.mark.parametrize("name,frames,bin_ps,sync_hz", [("v10_t3.ptu", 37, 128, 2.5e6),
                                                        ("v20_t3.ptu", 15, 64, 4999960.0)])
def test_ptu_header_and_histograms(name, frames, bin_ps, sync_hz):
    pytest.importorskip("ptufile")
    ds = D.read_decays(PTU / name, [1e16, 1e16])
    m = ds.meta
    # SOURCE.md: HydraHarp, 2 channels, 15 / 37 frames, 3125 histogram bins
    assert m["channels"] == 2 and m["frames"] == frames and ds.n_bins == 3125
    assert m["instrument"].startswith("HydraHarp")
    assert m["bin_width_s"] == pytest.approx(bin_ps * 1e-12, rel=1e-6)
    assert ds.bin_width == pytest.approx(m["bin_width_s"], rel=1e-9)
    assert m["sync_rate_hz"] == pytest.approx(sync_hz)
    # the sync period holds the histogram: 3125 bins x width = 1 / sync rate
    assert ds.n_bins * ds.bin_width == pytest.approx(1 / m["sync_rate_hz"], rel=1e-4)
    assert "sync" in m["note"] and f"{frames} frame(s)" in m["note"]
    ref = _ht3_histograms(PTU / name, ds.n_bins)
    np.testing.assert_array_equal(ds.y, ref.astype(float))
    assert ds.y.sum() == m["photons"] and ds.is_counts and ds.sampling == "bins"


def test_ptu_t2_is_refused(tmp_path):
    """The same file with its header saying T2 (Measurement_Mode 2, record type HydraHarp2 T2)
    is refused: time tags without a sync are no decay."""
    pytest.importorskip("ptufile")
    raw = bytearray((PTU / "v20_t3.ptu").read_bytes())

    def patch(tag, old, new):
        i = raw.index(tag.encode().ljust(32, b"\0"))
        assert int.from_bytes(raw[i + 40:i + 48], "little") == old
        raw[i + 40:i + 48] = new.to_bytes(8, "little")

    patch("Measurement_Mode", 3, 2)
    patch("TTResultFormat_TTTRRecType", 0x01010304, 0x01010204)
    path = tmp_path / "t2.ptu"
    path.write_bytes(bytes(raw))
    with pytest.raises(D.DataError, match=r"t2\.ptu: T2 time-tag file \(no sync\): not a TCSPC decay"):
        D.read_decays(path)


@pytest.mark.parametrize("name,sync_hz,peak", [("Seo_FAPI1_Perov_0.dat", 53780.0, 1334),
                                               ("Seo_FAPI1_Glass_0.dat", 53960.0, 2230)])
def test_easytau_export(name, sync_hz, peak):
    ds = D.read_decays(DAT / name, [1e16])
    m = ds.meta
    # SOURCE.md: TimeHarp 260, 2 ns bins, 10,000 bins, sync 53.78 kHz (Perov)
    assert ds.n_decays == 1 and ds.n_bins == 10_000
    assert m["bin_width_s"] == pytest.approx(2e-9) and ds.bin_width == pytest.approx(2e-9)
    assert m["sync_rate_hz"] == pytest.approx(sync_hz)
    assert m["instrument"].startswith("TimeHarp 260")
    assert m["header"]["Exc_Wavelength"] == "397.7 nm"
    assert "Meas_BinWidth" in m["note"] and "Sync_Frequency" in m["note"]
    assert ds.is_counts and ds.sampling == "bins"
    assert ds.t[-1] == pytest.approx(9999 * 2e-9)
    # the header's Meas_PeakCounts is the largest count of the column
    assert ds.y.max() == peak
    col = np.loadtxt(DAT / name, skiprows=75, encoding="latin-1")[:, 1]
    np.testing.assert_array_equal(ds.y[0], col)


def test_easytau_bin_width_must_match_time_column(tmp_path):
    text = (DAT / "Seo_FAPI1_Perov_0.dat").read_bytes().replace(b"Meas_BinWidth : 2000 ps",
                                                                b"Meas_BinWidth : 1000 ps")
    path = tmp_path / "bad.dat"
    path.write_bytes(text)
    with pytest.raises(D.DataError, match="Meas_BinWidth"):
        D.read_decays(path)
