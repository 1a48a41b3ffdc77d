"""The explorer in a real browser: headless Chromium (Debian's package) driven by Playwright.

A module-scoped server (``python -m jaxsim app STORE tests/data --port P``, a subprocess on a
free port) and browser (both from tests/browser_support.py, shared with
tests/test_app_browser_more.py); each test loads a page as a lab member would. A failing test leaves a
screenshot in $JAXSIM_TEST_ARTIFACTS (default /tmp/jaxsim-test-screenshots). Skipped, with the
reason, where Chromium, Playwright or Dash is missing.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from browser_support import HERE, app_server, launch_browser, open_page

pytestmark = pytest.mark.browser

DATA = HERE / "data" / "BT_TRPL_processed.txt"

SPEC = """
name = "app-test"
model = "trap_detrap"
t1 = 2e-6
chunk_size = 64
[fixed]
B = 1e-10
C = 1e-28
[axes]
A = { logspace = [1e5, 1e8, 7] }
D = { logspace = [1e3, 1e8, 6] }
K1 = [1e2, 1e4, 1e6]
n0 = { logspace = [1e15, 1e18, 4] }
[observables]
summaries = ["tau_mean_pl", "plqy", "share_trapping", "diffusion_length"]
"""


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from jaxsim.io.spec_files import parse_sweep_spec
    from jaxsim.studies.sweep import run_sweep

    path = tmp_path_factory.mktemp("app") / "app_test.zarr"
    spec = parse_sweep_spec(SPEC)
    run_sweep(spec, path, progress=False)
    return path, spec


@pytest.fixture(scope="module")
def server(store, browser, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with app_server([str(store[0]), str(HERE / "data")], log) as srv:
        yield srv


@pytest.fixture
def page(browser, server, request):
    yield from open_page(browser, server, request)


def _floats(cells):
    return [float(c.get_attribute("data-value")) for c in cells]


def test_sweep_page_slider_and_click_agree_with_a_direct_solve(page, server, store):
    import jaxsim
    from jaxsim.observables.summaries import summaries

    _, spec = store
    page.goto(server["url"] + "/sweep")
    page.wait_for_selector("#sweep-heatmap .nsewdrag")
    title = page.locator("#sweep-heatmap .gtitle")
    page.wait_for_function("() => document.querySelector('#sweep-heatmap .gtitle') && "
                           "document.querySelector('#sweep-heatmap .gtitle').textContent"
                           ".includes('n0')")
    before = title.text_content()
    # move the n0 slider one grid step with the keyboard (it snaps to grid values)
    handle = page.locator("#sweep-sliders [role=slider]").last
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(b) => document.querySelector('#sweep-heatmap .gtitle').textContent !== b", arg=before)
    assert "n0 = 1e17" in title.text_content() or "n0 = 1e16" in title.text_content()

    box = page.locator("#sweep-heatmap .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.4)
    page.wait_for_selector("#sweep-compare", timeout=180_000)
    point = json.loads(page.locator("#sweep-point-values").get_attribute("data-point"))
    assert set(point) == {"A", "D", "K1", "n0"}
    # stored and recomputed summaries agree
    for row in page.locator("#sweep-compare tbody tr").all():
        stored, recomputed = _floats(row.locator("td.num[data-value]").all()[:2])
        np.testing.assert_allclose(recomputed, stored, rtol=1e-5,
                                   err_msg=row.get_attribute("data-name"))
    # the decay values shown are those of a direct solve at the same point
    rows = page.locator("#sweep-readout tbody tr").all()
    table = np.array([_floats(r.locator("td").all()) for r in rows])
    params = {**spec.fixed_parameters, **point}
    sol = jaxsim.solve(spec.model, params, np.concatenate([[0.0], table[:, 0]]),
                       rtol=spec.rtol)
    np.testing.assert_allclose(table[:, 1], np.asarray(sol.states["n"])[1:], rtol=1e-5)
    np.testing.assert_allclose(table[:, 2], np.asarray(sol.states["n_d"])[1:], rtol=1e-5)
    np.testing.assert_allclose(table[:, 3], np.asarray(sol.pl)[1:], rtol=1e-5)
    # and the stored summary is the one a direct solve gives on the engine's grid
    direct = jaxsim.solve(spec.model, params, np.linspace(0, spec.t1, 512), rtol=spec.rtol)
    plqy = float(np.asarray(summaries(direct, ["plqy"])["plqy"]))
    row = page.locator("#sweep-compare tr[data-name=plqy] td.stored")
    np.testing.assert_allclose(float(row.get_attribute("data-value")), plqy, rtol=1e-5)


def test_sweep_page_marks_the_selected_variable_units_and_log_axes(page, server):
    page.goto(server["url"] + "/sweep")
    page.wait_for_selector("#sweep-heatmap .nsewdrag")
    page.wait_for_function("() => document.querySelector('#sweep-heatmap .cbtitle')")
    assert "(s)" in page.locator("#sweep-heatmap .cbtitle").text_content()  # tau_mean_pl in s
    ticks = page.locator("#sweep-heatmap .xtick text").all_text_contents()
    assert "1e5" in ticks and "1e8" in ticks  # log axis, decades labelled


def test_model_page_updates_when_a_slider_moves(page, server):
    page.goto(server["url"] + "/model")
    page.wait_for_selector("#model-plqy span[data-value]", timeout=180_000)
    before = float(page.locator("#model-plqy span").get_attribute("data-value"))
    handle = page.locator("#model-params [role=slider]").first  # A
    handle.focus()
    for _ in range(20):
        page.keyboard.press("ArrowRight")  # A up by 0.2 decades
    page.wait_for_function(
        "(b) => { const e = document.querySelector('#model-plqy span[data-value]');"
        " return e && parseFloat(e.dataset.value) !== b; }", arg=before, timeout=180_000)
    after = float(page.locator("#model-plqy span").get_attribute("data-value"))
    assert after < before  # faster trapping, less light
    assert "computed in" in page.locator("#model-timing").text_content()


def _upload(page, path):
    page.locator("#fit-upload input[type=file]").set_input_files(str(path))


def test_fit_page_fits_the_shipped_file(page, server):
    page.goto(server["url"] + "/fit")
    _upload(page, DATA)
    page.wait_for_selector("#fit-file-ok")
    assert "3 decay(s)" in page.locator("#fit-file-ok").text_content()
    page.click("#fit-model")
    page.get_by_role("option", name="abc", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#fit-param-table tbody tr')"
                           ".length === 4")  # abc: A, B, C, G
    page.fill("#fit-n0", "5.58e15, 1.00e16, 2.23e16")
    for name in ("A", "B"):
        page.locator(f"#fit-param-table tr:has(td:has-text('{name}')) input[type=checkbox]"
                     ).first.check()
    page.click("#fit-loss")
    page.get_by_role("option", name="lsq", exact=True).click()
    page.fill("#fit-starts", "2")
    page.click("#fit-run")
    page.wait_for_selector("#fit-running, #fit-done", timeout=30_000)
    page.wait_for_selector("#fit-done", timeout=600_000)
    a = float(page.locator("#fit-table tr[data-name=A] td.value").get_attribute("data-value"))
    b = float(page.locator("#fit-table tr[data-name=B] td.value").get_attribute("data-value"))
    # the same fit as `jaxsim fit BT_TRPL_processed.txt --model abc --free A,B --loss lsq
    # --starts 2 --n0 5.58e15,1e16,2.23e16` (A 1.639e6 s^-1, B 6.462e-10 cm^3 s^-1)
    np.testing.assert_allclose(a, 1.6386e6, rtol=2e-3)
    np.testing.assert_allclose(b, 6.4617e-10, rtol=2e-3)
    n_traces = page.evaluate("document.querySelector('#fit-graph .js-plotly-plot').data.length")
    assert n_traces == 9  # data, model and residuals of 3 decays
    with page.expect_download() as dl:
        page.click("#fit-dl-json")
    doc = json.loads(pathlib.Path(dl.value.path()).read_text())
    assert doc["model"] == "abc" and doc["params"]["A"]["free"]
    assert doc["params"]["A"]["value"] == pytest.approx(a, rel=1e-9)
    with page.expect_download() as dl:
        page.click("#fit-dl-png")
    assert pathlib.Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_page_bad_file_shows_the_cli_message_and_server_survives(page, server, tmp_path,
                                                                   capsys):
    from jaxsim.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_text("time counts\n1 2 3\nfoo bar\n")
    assert main(["fit", str(bad), "--n0", "1e16", "--free", "A", "--out",
                 str(tmp_path / "out")]) == 2
    cli = capsys.readouterr().err.strip().splitlines()[-1]  # the error, after progress lines
    assert cli.startswith("jaxsim fit: error:")
    page.goto(server["url"] + "/fit")
    _upload(page, bad)
    page.wait_for_selector("#fit-error")
    shown = page.locator("#fit-error").text_content()
    # the same message; only the folder the upload was saved in differs
    assert shown.replace("Error: ", "").split("bad.txt")[-1] == cli.split("bad.txt")[-1]
    assert "jaxsim fit: error: bad.txt, line 3" in shown  # the file's name, not where it was saved
    # bad input: a fit without n0 says what is missing
    _upload(page, DATA)
    page.wait_for_selector("#fit-file-ok")
    page.locator("#fit-param-table input[type=checkbox]").first.check()
    page.click("#fit-run")
    page.wait_for_function("() => document.querySelector('#fit-error') && document."
                           "querySelector('#fit-error').textContent.includes('--n0')")
    # the server keeps running and still answers the other pages
    assert server["proc"].poll() is None
    page.goto(server["url"] + "/model")
    page.wait_for_selector("#model-plqy span[data-value]", timeout=180_000)
