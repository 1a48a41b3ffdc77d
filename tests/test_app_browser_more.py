"""The explorer in headless Chromium, continued: a store's stored curves on the sweep page, the
fit page's IRF file, --n0-per-watt and live progress lines. Same setup as
tests/test_app_browser.py (skipped with the reason where Chromium, Playwright or Dash is
missing); screenshots of each page state go to $JAXSIM_TEST_ARTIFACTS
(default /tmp/jaxsim-test-screenshots).
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import pytest
from browser_support import ARTIFACTS, app_server, launch_browser, open_page
from test_app_browser import DATA
from test_app_fit_inputs import write_hzb, write_irf

pytestmark = pytest.mark.browser

#: each page state is kept as a screenshot (browser_support.open_page)
SCREENSHOT_EVERY_PAGE = True

SPEC = """
name = "app-curves"
model = "trap_detrap"
t1 = 2e-6
chunk_size = 16
[fixed]
B = 1e-10
C = 1e-28
K1 = 1e4
[axes]
A = { logspace = [1e5, 1e8, 4] }
D = { logspace = [1e3, 1e7, 3] }
n0 = [1e16, 1e17]
[observables]
summaries = ["tau_mean_pl", "plqy"]
curves = { vars = ["n", "n_d", "pl_norm"], ts = { linspace = [0.0, 2e-6, 201] } }
"""


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from jaxsim.io.spec_files import parse_sweep_spec
    from jaxsim.studies.sweep import run_sweep

    folder = tmp_path_factory.mktemp("app_more")
    run_sweep(parse_sweep_spec(SPEC), folder / "curves.zarr", progress=False)
    return {"store": folder / "curves.zarr", "irf": write_irf(folder / "irf.txt"),
            "irf_wide": write_irf(folder / "irf_wide.txt", bin_ns=10.0),
            "hzb": write_hzb(folder / "hzb.csv")}


@pytest.fixture(scope="module")
def server(files, browser, tmp_path_factory):
    log = tmp_path_factory.mktemp("server_more") / "server.log"
    with app_server([str(files["store"])], log) as srv:
        yield srv


@pytest.fixture
def page(browser, server, request):
    yield from open_page(browser, server, request)


def _upload(page, sel, path):
    page.locator(f"{sel} input[type=file]").set_input_files(str(path))


def test_sweep_page_overlays_stored_and_recomputed_curves(page, server, files):
    import zarr

    page.goto(server["url"] + "/sweep")
    page.wait_for_selector("#sweep-heatmap .nsewdrag")
    page.wait_for_function("() => document.querySelector('#sweep-heatmap .gtitle') && "
                           "document.querySelector('#sweep-heatmap .gtitle').textContent"
                           ".includes('n0')")
    page.wait_for_timeout(1000)  # the map's click handler is bound once plotly has drawn it
    box = page.locator("#sweep-heatmap .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.wait_for_selector("#sweep-stored-curves .js-plotly-plot", timeout=180_000)
    point = json.loads(page.locator("#sweep-point-values").get_attribute("data-point"))
    data = page.evaluate("document.querySelector('#sweep-stored-curves .js-plotly-plot').data"
                         ".map(t => ({name: t.name, x: t.x, y: t.y, yaxis: t.yaxis}))")
    names = [d["name"] for d in data]
    assert names[0] == "n (cm⁻³) stored" and "pl_norm (1) stored" in names
    # the stored markers are the store's values at the clicked point, times in ns
    g = zarr.open_group(str(files["store"]), mode="r")
    idx = tuple(int(np.argmin(np.abs(np.asarray(g[a][:]) - point[a]))) for a in ("A", "D", "n0"))
    t = np.asarray(g["t"][:])
    for k, var in enumerate(("n", "n_d", "pl_norm")):
        stored, fresh = data[2 * k], data[2 * k + 1]
        ref = np.asarray(g[f"curve_{var}"][idx])
        keep = np.isin(np.round(t / 1e-9, 9), np.round(stored["x"], 9))
        ref = np.where(ref[keep] > 0, ref[keep], np.nan)  # zeros are gaps on a log axis
        np.testing.assert_allclose(np.asarray(stored["y"], float), ref, rtol=1e-6)
        # and the recomputed line lies on them: the legend says by how much
        diff = float(fresh["name"].split("max rel. diff ")[1].rstrip(")"))
        assert diff < 1e-3, fresh["name"]
        assert fresh["yaxis"] == ("y2" if var == "pl_norm" else "y")


def test_fit_page_irf_file_and_live_progress(page, server, files):
    page.goto(server["url"] + "/fit")
    _upload(page, "#fit-upload", DATA)
    page.wait_for_selector("#fit-file-ok")
    _upload(page, "#fit-irf-upload", files["irf"])
    page.wait_for_selector("#fit-irf-name")
    assert "12 bins of 3.906 ns" in page.locator("#fit-irf-info").text_content()
    page.click("#fit-model")
    page.get_by_role("option", name="abc", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#fit-param-table tbody tr')"
                           ".length === 4")
    page.fill("#fit-n0", "5.58e15, 1.00e16, 2.23e16")
    for name in ("A", "B"):
        page.locator(f"#fit-param-table tr:has(td:has-text('{name}')) input[type=checkbox]"
                     ).first.check()
    page.click("#fit-loss")
    page.get_by_role("option", name="lsq", exact=True).click()
    page.fill("#fit-starts", "2")
    page.click("#fit-run")
    # the fit's own progress lines appear while it runs
    page.wait_for_function("() => document.querySelector('#fit-running #fit-log') && "
                           "document.querySelector('#fit-log').textContent.includes('fit abc')",
                           timeout=120_000)
    # and the server keeps answering meanwhile
    t0 = time.time()
    assert page.request.get(server["url"] + "/_dash-layout").ok
    assert time.time() - t0 < 10
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fit_running.png"), full_page=True)
    page.wait_for_selector("#fit-done", timeout=600_000)
    log = page.locator("#fit-log").text_content()
    assert "optimising: Levenberg-Marquardt" in log and "done: loss" in log
    with page.expect_download() as dl:
        page.click("#fit-dl-json")
    doc = json.loads(pathlib.Path(dl.value.path()).read_text())
    assert "irf file irf.txt" in json.dumps(doc)  # the IRF went into the fit, by its name


def test_fit_page_n0_per_watt_and_irf_errors_are_the_cli_messages(page, server, files,
                                                                    tmp_path, capsys):
    from jaxsim.cli import main

    def cli(argv):
        assert main(["fit", *argv, "--free", "A", "--out", str(tmp_path / "o")]) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    def run_and_read():  # each step's message differs from the one before
        err = "document.querySelector('#fit-message #fit-error')"
        before = page.evaluate(f"() => {err} ? {err}.textContent : ''")
        page.click("#fit-run")
        page.wait_for_function(f"(b) => {err} && {err}.textContent !== b", arg=before)
        return page.locator("#fit-message #fit-error").text_content().replace("Error: ", "")

    page.goto(server["url"] + "/fit")
    page.locator("#fit-param-table input[type=checkbox]").first.check()
    # an HZB file: n0 from the powers
    _upload(page, "#fit-upload", files["hzb"])
    page.wait_for_selector("#fit-file-ok")
    page.fill("#fit-n0", "1e16, 1e16")
    page.fill("#fit-n0-per-watt", "1e21")
    expected = cli([str(files["hzb"]), "--n0", "1e16,1e16", "--n0-per-watt", "1e21"])
    assert run_and_read() == expected
    # a file without power rows: the CLI's message, with the file's own name
    _upload(page, "#fit-upload", DATA)
    page.wait_for_function("() => document.querySelector('#fit-file-ok') && document"
                           ".querySelector('#fit-file-ok').textContent.includes('BT_TRPL')")
    page.fill("#fit-n0", "")
    expected = cli([str(DATA), "--n0-per-watt", "1e21"])
    shown = run_and_read()
    assert shown.split("BT_TRPL_processed.txt")[-1] == expected.split("BT_TRPL_processed.txt")[-1]
    assert "has no power row" in shown
    # an IRF file whose bins differ from the data's
    page.fill("#fit-n0-per-watt", "")
    page.fill("#fit-n0", "5.58e15, 1e16, 2.23e16")
    _upload(page, "#fit-irf-upload", files["irf_wide"])
    page.wait_for_selector("#fit-irf-name")
    expected = cli([str(DATA), "--n0", "5.58e15,1e16,2.23e16", "--irf", str(files["irf_wide"])])
    shown = run_and_read()
    assert shown == expected.replace(str(files["irf_wide"]), "irf_wide.txt")
    assert server["proc"].poll() is None


def test_model_page_saved_curve_is_the_curve_shown_when_saved(page, server):
    """'Save curve' reads the live curve from the figure (it is no longer sent with every
    answer): the dashed overlay is the PL drawn at the moment of saving, in the same units."""
    page.goto(server["url"] + "/model")
    page.wait_for_selector("#model-plqy span[data-value]", timeout=180_000)
    live = "document.querySelector('#model-decay .js-plotly-plot').data"
    pl = page.evaluate(f"{live}.filter(t => t.name === 'PL').map(t => [t.x, t.y])[0]")
    page.click("#model-save")
    page.wait_for_function(f"() => {live}.some(t => t.name === 'saved 1')")
    before = page.locator("#model-plqy span").get_attribute("data-value")
    page.locator("#model-params [role=slider]").first.focus()
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("(b) => document.querySelector('#model-plqy span[data-value]')"
                           ".dataset.value !== b", arg=before)
    saved = page.evaluate(f"{live}.filter(t => t.name === 'saved 1').map(t => [t.x, t.y])[0]")
    now = page.evaluate(f"{live}.filter(t => t.name === 'PL').map(t => [t.x, t.y])[0]")
    np.testing.assert_allclose(saved[0], pl[0], rtol=1e-12)  # times in ns, as drawn
    np.testing.assert_allclose(np.asarray(saved[1], float), np.asarray(pl[1], float),
                               rtol=1e-12)
    assert not np.allclose(np.asarray(now[1], float), np.asarray(pl[1], float))
    assert "1. trap_detrap: A=" in page.locator("#model-saved-list").text_content()
