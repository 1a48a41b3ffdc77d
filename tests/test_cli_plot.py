"""`jaxsim plot` names the window [0, t1] of window-limited summaries (first-moment lifetimes
first) in the title and on the colour bar / y axis. The store comes from a closed form of the
inputs in place of the engine (no compile): what is tested is the labelling."""

import numpy as np
import pytest
from tiny_sweep import tiny_spec

from jaxsim.cli import main
from jaxsim.plots.sweep import format_time, plot_store
from jaxsim.io.spec_files import parse_sweep_spec
from jaxsim.studies.sweep import run_sweep


def fake(values):
    key = values["A"] + values["D"] + values["K1"]
    out = {"tau_mean_pl": 1.0 / key, "plqy": key / key.max()}
    out["status"] = np.zeros(key.shape, np.int32)
    out["num_steps"] = np.ones(key.shape, np.int32)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("plot") / "s.zarr"
    spec = tiny_spec(chunk_size=32).replace("t1 = 2e-6", "t1 = 4.5e-7")
    assert run_sweep(parse_sweep_spec(spec), out, progress=False, chunk_fn=fake).complete
    return out


def test_format_time():
    assert format_time(2e-6) == "2 µs" and format_time(4.5e-7) == "450 ns"
    assert format_time(1e-3) == "1 ms" and format_time(2.4e-6) == "2.4 µs"


def test_heatmap_names_the_window(store, tmp_path, capsys):
    fig = plot_store(store, x="A", y="D", var="tau_mean_pl", at={"K1": 1e2, "n0": 1e16})
    ax, bar = fig.axes
    assert ax.get_title() == ("mean PL lifetime over [0, 450 ns]\n"
                              "at K$_1$ = 100 s$^{-1}$, n$_0$ = 10$^{16}$ cm$^{-3}$")
    assert bar.get_ylabel() == "$\\tau_\\mathrm{mean,PL}$ (ns), over [0, 450 ns]"
    png = tmp_path / "t.png"
    assert main(["plot", str(store), "--x", "A", "--y", "D", "--var", "tau_mean_pl", "--at",
                 "K1=1e2", "--at", "n0=1e16", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_line_names_the_window_and_other_variables_do_not_need_one(store):
    fig = plot_store(store, x="n0", var="plqy", at={"A": 1e6, "D": 0, "K1": 1e6})
    assert "over [0, 450 ns]" in fig.axes[0].get_title()
    assert fig.axes[0].get_ylabel() == "PLQY, over [0, 450 ns]"
    fig = plot_store(store, x="n0", var="num_steps", at={"A": 1e6, "D": 0, "K1": 1e6})
    assert "over" not in fig.axes[0].get_title() and "over" not in fig.axes[0].get_ylabel()
