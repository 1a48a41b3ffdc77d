"""Every figure the commands write, rendered from small synthetic inputs (no solver, a few
seconds): each is written as a sane PNG, and the things a reviewer flagged are checked on the
matplotlib objects: panel letters, units in the labels, no clipped or overlapping labels,
legends clear of the data, log colour bars with enough ticks for log quantities, times in ns,
diffusion lengths in µm, the fall of background-subtracted decays explained. The same checks on
the real protocol outputs (fig1, fig4) run with ``-m slow``."""

from __future__ import annotations

import re
import struct

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from tiny_sweep import tiny_spec  # noqa: E402

from jaxsim.plots import style  # noqa: E402
from jaxsim.plots.style import legend_overlaps, text_overlaps  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- helpers

def assert_sane_png(path, min_px=300, max_px=2500):
    """Written, a PNG by its header, of a plausible size, and not blank."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert min_px <= width <= max_px and min_px <= height <= max_px, (width, height)
    img = plt.imread(path)
    assert img.std() > 0.05, "blank image"
    return width, height


def save(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=120)
    return path


def assert_nothing_clipped(fig):
    """Everything drawn (labels, titles, tick labels, legends, annotations) of every axes, and
    the figure's own texts, lies inside the figure."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = fig.bbox.padded(1)

    def inside(bb):
        return bb.x0 >= box.x0 and bb.x1 <= box.x1 and bb.y0 >= box.y0 and bb.y1 <= box.y1

    for ax in fig.axes:
        bb = ax.get_tightbbox(r)
        assert inside(bb), f"axes {ax.get_title(loc='left') or ax.get_title()!r} is clipped: {bb}"
    for t in fig.texts:
        assert inside(t.get_window_extent(r)), f"{t.get_text()!r} is clipped"


def assert_legends_clear(fig):
    fig.canvas.draw()
    for ax in fig.axes:
        assert legend_overlaps(ax) == 0, f"the legend of {ax.get_title()!r} covers data"


def assert_has_unit(label: str):
    assert re.search(r"\(.+\)", label), f"no unit in {label!r}"


def panel_letters(fig):
    letters = []
    for ax in fig.axes:
        for title in (ax.get_title(loc="left"), ax.get_title()):
            m = re.match(r"\(([a-z])[,)]", title)
            if m:
                letters.append(m.group(1))
    return sorted(letters)


# ------------------------------------------------------------------------------- protocols

def fake_protocol_result(durations=(300.0, 30.0, 30.0, 30.0),
                         names=("presoak", "laser", "laser+bias", "laser again"),
                         cw=(False, False, True, False), rep_rate=1e6, points=5):
    """A ProtocolResult shaped like the real one: samples per segment, decays that are PL minus
    its pre-pulse level (0 at the period's end), rates that jump at the bias."""
    from jaxsim.studies.protocol import CW, Protocol, ProtocolResult, Pulsed, Segment

    segs = tuple(Segment(n, d, pulsed=Pulsed(rep_rate, 1e16, 3.06),
                         cw=CW(6.9e22, 2.7) if c else None, points=points)
                 for n, d, c in zip(names, durations, cw))
    proto = Protocol(name="fake", segments=segs, description="a synthetic protocol")
    t_lab, seg_idx = [], []
    start = 0.0
    for j, s in enumerate(segs):
        t_lab.extend(np.linspace(start, start + s.duration, points))
        seg_idx.extend([j] * points)
        start += s.duration
    t_lab, seg_idx = np.array(t_lab), np.array(seg_idx)
    bias = np.array([cw[j] for j in seg_idx])
    D = np.where(t_lab > 0, 3e6 * (1 + bias * 2), 0.0)
    Q = np.where(bias, 1e7, 7e2)
    pl = np.where(bias, 2e21, 7e21) * (1 + 0.1 * np.sin(t_lab))
    period = 1 / rep_rate
    t_dec = np.linspace(0, period, 129)
    decays, segments = [], []
    start = 0.0
    for j, s in enumerate(segs):
        tau1, tau2 = (30e-9, 200e-9) if not cw[j] else (20e-9, 120e-9)
        y = 0.8 * np.exp(-t_dec / tau1) + 0.2 * np.exp(-t_dec / tau2)
        decays.append(1e22 * (y - y[-1]))
        segments.append(dict(name=s.name, kind=s.kind, start_s=start, end_s=start + s.duration,
                             tau_avg_ns=150.0 - 40 * cw[j] + 10 * j, tau_mean_ns=100.0,
                             pl_integrated=1.0, pl_mean=1.0, D_mean=1.0, Q_mean=1.0,
                             rep_rate_hz=rep_rate, n0_cm3=1e16, G_cm3_s=None))
        start += s.duration
    return ProtocolResult(
        protocol=proto, lab_time_s=t_lab, segment_index=seg_idx, pl=pl, D=D, Q=Q,
        n_ion=D, m_mob=Q, P_ph=pl, tau_avg_ns=np.full(t_lab.size, 150.0),
        decay_t=[t_dec] * len(segs), decay=decays, segments=segments, iterations=3,
        converged=True, status=np.zeros(t_lab.size, np.int32))


def fake_fig1_results():
    names = ("0-30 s", "30-60 s", "60-90 s", "90-120 s")
    out = {}
    for k, w in (("brightening", "0.12"), ("quenching", "0.35")):
        r = fake_protocol_result((30.0,) * 4, names, (True,) * 4)
        r.protocol = type(r.protocol)(name=k, segments=r.protocol.segments,
                                      description=f"Fig. 1: 405 nm CW at {w} W/cm^2 for 120 s")
        t = r.lab_time_s
        sign = 1 if k == "brightening" else -1  # PL and lifetime rise, or fall, with time
        r.pl = 1e21 * np.exp(sign * 2.5 * (1 - np.exp(-t / 30)))
        td = r.decay_t[0]
        for j, seg in enumerate(r.segments):
            tau2 = 200e-9 * (1 + sign * 0.3 * j / 3)
            y = 0.8 * np.exp(-td / 30e-9) + 0.2 * np.exp(-td / tau2)
            r.decay[j] = 1e22 * (y - y[-1])
            seg["tau_avg_ns"] = 150.0 * (1 + sign * 0.3 * j / 3)
        out[k] = r
    return out


def check_decay_panel(ax):
    """Times in ns, the next pulse drawn, the fall to 0 explained in words."""
    assert "(ns)" in ax.get_xlabel()
    assert ax.get_yscale() == "log"
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "next pulse" in notes and "0 by construction" in notes
    assert any(np.allclose(line.get_xdata(), 1000.0) for line in ax.lines
               if len(np.atleast_1d(line.get_xdata())) == 2)  # the dotted line at 1/f_rep


def check_segment_labels(ax):
    texts = getattr(ax, "segment_label_texts", [])
    assert texts, "no segment labels"
    assert text_overlaps(texts) == [], [t.get_text() for t in texts]


def test_protocol_figure(tmp_path):
    from jaxsim.plots.protocol import plot_protocol, protocol_figure

    r = fake_protocol_result()
    fig = protocol_figure(r)
    ax_pl, ax_r, ax_d = fig.axes
    assert panel_letters(fig) == ["a", "b", "c"]
    check_segment_labels(ax_pl)
    # D and Q (same unit) share the rate axis; PL is on its own
    assert ax_r.get_ylabel() == "rate (s$^{-1}$)" and len(ax_r.get_lines()) == 2
    labels = [t.get_text() for t in ax_r.get_legend().get_texts()]
    assert any(lab.startswith("detrapping D") for lab in labels)
    assert any(lab.startswith("quenching Q") for lab in labels)
    for ax in fig.axes:
        assert_has_unit(ax.get_ylabel())
    assert_has_unit(ax_r.get_xlabel())
    check_decay_panel(ax_d)
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(plot_protocol(r, tmp_path / "protocol.png"))


def test_narrow_segments_labels_do_not_overlap():
    """Many short segments next to a long one: the names stagger into rows."""
    from jaxsim.plots.protocol import protocol_figure

    names = ("presoak", "laser", "laser+bias", "laser again", "dark", "laser once more")
    r = fake_protocol_result((600.0, 10.0, 10.0, 10.0, 10.0, 10.0), names,
                             (False, False, True, False, False, False))
    fig = protocol_figure(r)
    check_segment_labels(fig.axes[0])
    assert_nothing_clipped(fig)
    plt.close(fig)


def test_fig4_figure(tmp_path):
    from jaxsim.plots.protocol import fig4_figure, plot_fig4

    r = fake_protocol_result()
    fig = fig4_figure(r)
    assert panel_letters(fig) == ["a", "b", "c"]
    a, b, c = (ax for ax in fig.axes)
    check_decay_panel(a)
    assert [line.get_label().split(":")[0] for line in a.get_lines()
            if not line.get_label().startswith("_")] == ["laser", "laser+bias", "laser again"]
    # one quantity kind per axis, each with its unit: rates on (b), PL on (c)
    assert b.get_ylabel() == "rate (s$^{-1}$)"
    assert "PL" in c.get_ylabel() and "cm$^{-3}$ s$^{-1}$" in c.get_ylabel()
    assert c.get_xlabel() == "lab time (s)"
    # the three 30 s acquisitions fill the lab-time axis (the 300 s presoak does not)
    lo, hi = b.get_xlim()
    assert 260 <= lo <= 275 and 390 <= hi <= 395
    check_segment_labels(b)
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(plot_fig4(r, tmp_path / "fig4.png"))


def test_fig1_figure(tmp_path):
    from jaxsim.plots.protocol import fig1_figure, plot_fig1

    fig = fig1_figure(fake_fig1_results())
    assert panel_letters(fig) == ["a", "b", "c", "d"]
    a, b, c, d = fig.axes
    for ax in (a, b):
        assert_has_unit(ax.get_xlabel())
        assert_has_unit(ax.get_ylabel())
    assert "W cm$^{-2}$" in " ".join(t.get_text() for t in a.get_legend().get_texts())
    check_decay_panel(c)
    check_decay_panel(d)
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)  # (b)'s x label was cut at the right edge
    plt.close(fig)
    assert_sane_png(plot_fig1(fake_fig1_results(), tmp_path / "fig1.png"))


# ------------------------------------------------------------------------------- fig3

def fake_fig3_panels():
    from jaxsim.paper.fig3 import PANELS, a_series

    panels = {}
    for key, (kind, n0, a_range, w_end, _, _) in PANELS.items():
        a = a_series(a_range)
        t = np.linspace(0, w_end, 201)
        y = np.exp(-np.outer(a, t)) * 0.7 + 0.3 * np.exp(-np.outer(a / 5, t))
        panels[key] = dict(t=t, y=y, tau=1.3 / a, a=a, kind=kind, n0=n0)
    return panels


def test_fig3_figure(tmp_path):
    from jaxsim.paper.fig3 import figure, plot

    fig = figure(fake_fig3_panels())
    assert panel_letters(fig) == ["a", "b", "c", "d"]
    for ax in fig.axes:
        assert_has_unit(ax.get_xlabel())
        assert "_" not in ax.get_title().replace("$", "").replace("\\mathrm", "")
    c = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("(c)"))
    assert "(ns)" in c.get_ylabel() and "(s$^{-1}$)" in c.get_xlabel()
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    plt.close(fig)
    from pathlib import Path

    assert_sane_png(plot(fake_fig3_panels(), Path(tmp_path) / "fig3.png"))


# ------------------------------------------------------------------------------- sweep maps

def fake_chunk(values):
    """Closed-form outputs in place of the engine (no compile): what is tested is the drawing."""
    a, n0 = values["A"], values["n0"]
    tau = 1.0 / (a + 1e-10 * n0)
    out = {"tau_mean_pl": tau, "plqy": 1e-10 * n0 / (a + 1e-10 * n0),
           "diffusion_length": np.sqrt(0.017 * tau), "share_trapping": a * tau * 3,
           "status": np.zeros(a.shape, np.int32), "num_steps": np.ones(a.shape, np.int32)}
    ts = np.logspace(-10, np.log10(2e-6), 40)
    out["curve_pl_norm"] = np.exp(-np.outer(2 / tau, ts))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from jaxsim.io.spec_files import parse_sweep_spec
    from jaxsim.studies.sweep import run_sweep

    spec = tiny_spec(chunk_size=32).replace(
        'summaries = ["tau_mean_pl", "plqy"]',
        'summaries = ["tau_mean_pl", "plqy", "diffusion_length", "share_trapping"]\n'
        'curves = { vars = ["pl_norm"], ts = { logspace = [1e-10, 2e-6, 40] } }')
    out = tmp_path_factory.mktemp("fig") / "s.zarr"
    assert run_sweep(parse_sweep_spec(spec), out, progress=False, chunk_fn=fake_chunk).complete
    return out


def colorbar_of(fig):
    return fig.axes[1]


def labelled_ticks(cax):
    lo, hi = sorted(cax.get_ylim())
    return [t for t in cax.yaxis.get_majorticklabels()
            if t.get_text() and lo * (1 - 1e-9) <= t.get_position()[1] <= hi * (1 + 1e-9)]


def test_diffusion_length_map_in_um_on_a_log_bar(store, tmp_path):
    from jaxsim.plots.sweep import plot_store

    fig = plot_store(store, x="A", y="n0", var="diffusion_length", at={"D": 0, "K1": 1e2},
                     out=tmp_path / "L.png")
    ax, cax = fig.axes
    mesh = ax.collections[0]
    assert isinstance(mesh.norm, LogNorm)
    assert "(µm)" in cax.get_ylabel()
    expect = np.sqrt(0.017 / (1e5 + 1e-10 * 1e15)) * 1e4  # µm at A = 1e5, n0 = 1e15
    assert np.nanmax(mesh.get_array()) == pytest.approx(expect, rel=1e-6)
    fig.canvas.draw()
    assert len(labelled_ticks(cax)) >= 4
    assert ax.get_title().startswith("diffusion length") and "diffusion_length" not in ax.get_title()
    assert_has_unit(ax.get_xlabel()) and assert_has_unit(ax.get_ylabel())
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(tmp_path / "L.png")


@pytest.mark.parametrize("var,words", [("tau_mean_pl", "mean PL lifetime"),
                                       ("plqy", "PL quantum yield"),
                                       ("share_trapping", "trapping events per carrier")])
def test_maps_have_readable_titles_and_enough_ticks(store, tmp_path, var, words):
    from jaxsim.plots.sweep import plot_store

    fig = plot_store(store, x="A", y="n0", var=var, at={"D": 1e6, "K1": 1e2},
                     out=tmp_path / f"{var}.png")
    ax, cax = fig.axes
    assert ax.get_title().startswith(words)
    assert var not in ax.get_title() and var not in cax.get_ylabel()
    assert "K$_1$ = 100 s$^{-1}$" in ax.get_title() and "D = 10$^{6}$ s$^{-1}$" in ax.get_title()
    fig.canvas.draw()
    assert len(labelled_ticks(cax)) >= 4, [t.get_text() for t in labelled_ticks(cax)]
    if var == "tau_mean_pl":
        assert "(ns)" in cax.get_ylabel() and isinstance(ax.collections[0].norm, LogNorm)
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(tmp_path / f"{var}.png")


def test_curve_plot_time_in_ns(store, tmp_path):
    from jaxsim.plots.sweep import plot_store

    fig = plot_store(store, x="t", var="curve_pl_norm", at={"A": 1e6, "D": 0, "K1": 1e2,
                                                             "n0": 1e16}, out=tmp_path / "c.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time t (ns)"
    x = ax.get_lines()[0].get_xdata()
    assert x.min() == pytest.approx(0.1) and x.max() == pytest.approx(2000.0)
    assert ax.get_ylabel() == "PL$(t)$/PL$(0)$"
    plt.close(fig)
    assert_sane_png(tmp_path / "c.png")


def test_line_plot(store, tmp_path):
    from jaxsim.plots.sweep import plot_store

    fig = plot_store(store, x="n0", var="plqy", at={"A": 1e6, "D": 1e6, "K1": 1e2},
                     out=tmp_path / "l.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "initial carrier density n$_0$ (cm$^{-3}$)"
    assert ax.get_title().startswith("PL quantum yield")
    plt.close(fig)
    assert_sane_png(tmp_path / "l.png")


# ------------------------------------------------------------------------------- others

def test_decay_plot_short_log_range_is_labelled(tmp_path):
    """``simulate --plot``: a decay over less than a decade still gets several tick labels."""
    from jaxsim.plots.decays import decay_figure, save_decay_plot

    t = np.linspace(0, 1e-6, 101)
    n = 0.3 + 0.7 * np.exp(-t / 5e-8)
    fig = decay_figure(t, {"n(t)": n, "PL(t)": n**2})
    for ax in fig.axes:
        assert ax.get_xlabel() == "time (ns)"
        fig.canvas.draw()
        lo, hi = ax.get_ylim()
        shown = [tl for tl in ax.yaxis.get_majorticklabels()
                 if tl.get_text() and lo <= tl.get_position()[1] <= hi]
        assert len(shown) >= 3, [tl.get_text() for tl in shown]
    assert fig.axes[0].get_ylabel() == "carrier density $n(t)/n(0)$"
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(save_decay_plot(tmp_path / "d.png", t, {"n(t)": n, "PL(t)": n**2}))


def test_sensitivity_figures(tmp_path):
    import xarray as xr

    from jaxsim.plots.sensitivity import elasticity_maps, sobol_bars

    a, d = np.logspace(5, 8, 5), np.logspace(3, 8, 4)
    aa, dd = np.meshgrid(a, d, indexing="ij")
    tau = 1 / (aa + 1e-2 * dd)
    ds = xr.Dataset({"tau_mean_pl": (("A", "D", "K1"), tau[..., None]),
                     "d_tau_mean_pl_d_log_A": (("A", "D", "K1"), (-aa * tau**2)[..., None]),
                     "d_tau_mean_pl_d_log_D": (("A", "D", "K1"), (-1e-2 * dd * tau**2)[..., None])},
                    coords={"A": a, "D": d, "K1": [1e4]})
    ds["K1"].attrs["units"] = "s^-1"
    fig = elasticity_maps(ds, "tau_mean_pl", ["A", "D"], "A", "D")
    assert "K$_1$ = 10$^{4}$ s$^{-1}$" in fig.axes[0].get_title()
    assert_nothing_clipped(fig)
    assert_sane_png(save(fig, tmp_path, "maps"), max_px=4000)
    plt.close(fig)
    idx = {o: {p: dict(S1=s, S1_conf=0.05, ST=s + 0.1, ST_conf=0.05)
               for p, s in zip(("A", "D", "K1", "n0"), (0.2, 0.5, 0.9, 0.1))}
           for o in ("log10:tau_mean_pl", "plqy")}
    fig = sobol_bars(idx, title="Sobol indices")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("log$_{10}$ of mean PL lifetime") and titles[1].startswith("PL")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["A", "D", "K$_1$", "n$_0$"]
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    assert_sane_png(save(fig, tmp_path, "bars"))
    plt.close(fig)


def test_style_helpers():
    assert style.sci(1e4) == "10$^{4}$" and style.sci(7.2e15) == "7.2$\\times$10$^{15}$"
    assert style.sci(450) == "450" and style.sci(0.12) == "0.12" and style.sci(9.99e6) == "10$^{7}$"
    assert style.unit_tex("cm^-3 s^-1") == "cm$^{-3}$ s$^{-1}$" and style.unit_tex("1") == ""
    assert style.display_unit("diffusion_length", "cm") == ("µm", 1e4)
    assert style.display_unit("tau_avg_n", "s") == ("ns", 1e9)
    assert style.log_ticks(5, 700) == [5, 10, 20, 50, 100, 200, 500]
    # a short span gets 1.5x ticks: every label must still name its own value
    for lo, hi in ((1e5, 4e5), (1.2e-6, 4.5e-6), (2e15, 9e15)):
        ticks = style.log_ticks(lo, hi)
        labels = [style._tick_text(v) for v in ticks]
        assert len(set(labels)) == len(labels), (ticks, labels)
    assert len(style.log_ticks(0.1, 3.5)) >= 4
    assert style.wants_log([0.1, 3.5], "µm") and not style.wants_log([0.1, 3.5], "1")
    assert not style.wants_log([0.0, 3.5], "µm")


# ------------------------------------------------------------------------------- real outputs

@pytest.mark.slow
def test_real_fig1_and_fig4(tmp_path):
    """The paper's protocols through the solver (~1 min): the same checks on real data."""
    from jaxsim.io.spec_files import load_protocol
    from jaxsim.paper.fig1 import SPECS, sweeps_dir
    from jaxsim.plots.protocol import fig1_figure, fig4_figure, protocol_figure
    from jaxsim.studies.protocol import run_protocol

    r4 = run_protocol(load_protocol(sweeps_dir() / "fig4_memory.toml"))
    for make in (fig4_figure, protocol_figure):
        fig = make(r4)
        check_decay_panel(fig.axes[0] if make is fig4_figure else fig.axes[2])
        check_segment_labels(fig.axes[1] if make is fig4_figure else fig.axes[0])
        assert_legends_clear(fig)
        assert_nothing_clipped(fig)
        assert_sane_png(save(fig, tmp_path, make.__name__))
        plt.close(fig)
    r1 = {k: run_protocol(load_protocol(sweeps_dir() / v)) for k, v in SPECS.items()}
    fig = fig1_figure(r1)
    assert panel_letters(fig) == ["a", "b", "c", "d"]
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    assert_sane_png(save(fig, tmp_path, "fig1"))
    plt.close(fig)


def _cielab(colors) -> np.ndarray:
    """CIE L*a*b* (D65) of matplotlib colours: distances are perceived colour differences."""
    from matplotlib.colors import to_rgb

    c = np.array([to_rgb(x) for x in colors])
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _fake_fit_result(loss_kind="lsq"):
    """What the fit figure reads of a FitResult: 3 decays, the first 20 bins cropped out."""
    from types import SimpleNamespace

    from jaxsim.studies.decays import from_arrays

    t = np.arange(200) * 1e-9
    n0 = np.array([1e15, 3e15, 1e16, 3e16, 1e17])
    mu = np.exp(-t[None, :] / np.array([50e-9, 30e-9, 15e-9, 10e-9, 5e-9])[:, None])
    rng = np.random.default_rng(0)
    y = mu * (1 + 0.05 * rng.standard_normal(mu.shape))
    ds = from_arrays(t, y, n0, time_unit="s")
    mask = np.ones_like(y)
    mask[:, :20] = 0.0
    ds = ds.__class__(**{**{f: getattr(ds, f) for f in ds.__dataclass_fields__}, "mask": mask})
    params = {"A": {"value": 2.0e7, "stderr": 3.1e5, "unit": "s^-1"},
              "k_T": {"value": 1.228e-7, "stderr": 2.45e-9, "unit": "cm^3 s^-1"}}
    return SimpleNamespace(problem=SimpleNamespace(ds=ds), mu=mu, loss_kind=loss_kind, n_data=540,
                           n_free=2, gof={"adequate": True, "noise": 0.05}, loss=1.0,
                           params=params, free=("A", "k_T"), model="trap_detrap", reduced=1.01)


def test_fit_figure(tmp_path):
    """Model drawn only over the fitted bins, distinct colours, errors in the title, labelled
    residuals, legend clear of the data, nothing clipped."""
    from jaxsim.plots.fit import fit_figure, plot_fit

    r = _fake_fit_result()
    fig = fit_figure(r)
    ax, axr = fig.axes
    models = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(models) == 5
    for ln in models:
        y = np.asarray(ln.get_ydata(), float)
        assert np.isnan(y[:20]).all() and np.isfinite(y[20:]).all()
    lab = _cielab([ln.get_color() for ln in models])
    pairs = [np.linalg.norm(lab[i] - lab[j]) for i in range(5) for j in range(i + 1, 5)]
    assert min(pairs) > 25, f"two decay colours too alike (CIE dE {min(pairs):.0f})"
    white = np.linalg.norm(lab - _cielab(["white"]), axis=1)
    assert white.min() > 40, f"a decay colour too faint on white (CIE dE {white.min():.0f})"
    title = ax.get_title()
    assert "±" in title and "(2.000 ± 0.031)" in title and "k$_\\mathrm{T}$" in title, title
    assert "(ns)" in axr.get_xlabel() and "σ" in axr.get_ylabel()
    assert_legends_clear(fig)
    assert_nothing_clipped(fig)
    plt.close(fig)
    assert_sane_png(plot_fit(r, tmp_path / "fit.png"))
