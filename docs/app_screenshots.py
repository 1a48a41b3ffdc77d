"""Regenerate the README's screenshots of the explorer (docs/img/app_*.png).

    jaxsim sweep sweeps/default.toml --out results/default.zarr
    python docs/app_screenshots.py results/default.zarr ../shared/data/pears/BT_TRPL_processed.txt
    python docs/app_screenshots.py ANY_FOLDER DATA --only fit      # one page's screenshot only

Starts ``jaxsim app``, uses each page as a person would (click a point, save a curve, run a
fit) in headless Chromium and saves a screenshot of each, downscaled to keep them small.
"""

from __future__ import annotations

import argparse
import pathlib
import socket
import subprocess
import sys
import time

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = pathlib.Path(__file__).resolve().parent / "img"


def shrink(path, width=1100):
    from PIL import Image

    im = Image.open(path)
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                    dither=Image.Dither.NONE)
    im.save(path, optimize=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("data")
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--only", choices=("sweep", "model", "fit"), action="append",
                    help="redo only these pages' screenshots (repeatable; default: all)")
    a = ap.parse_args()
    pages = a.only or ["sweep", "model", "fit"]
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "jaxsim", "app", a.store, a.data, "--port",
                             str(a.port), "--no-browser"], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{a.port}"
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", a.port), 0.3).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            if "sweep" in pages:
                sweep_shot(page, url)
            if "model" in pages:
                model_shot(page, url)
            if "fit" in pages:
                fit_shot(page, url, a.data)
            b.close()
    finally:
        proc.terminate()
        proc.wait(10)
    for name in pages:
        path = OUT / f"app_{name}.png"
        shrink(path)
        print(path, path.stat().st_size // 1024, "KiB")


def sweep_shot(page, url):
    """A map, then a clicked point with its recomputed decay."""
    page.goto(url + "/sweep")
    page.wait_for_selector("#sweep-heatmap .nsewdrag")
    page.wait_for_timeout(1500)
    box = page.locator("#sweep-heatmap .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.55)
    page.wait_for_selector("#sweep-compare")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUT / "app_sweep.png"), full_page=True)


def model_shot(page, url):
    """A saved curve, then D raised by a decade and a half."""
    page.goto(url + "/model")
    page.wait_for_selector("#model-plqy span[data-value]")
    page.click("#model-save")
    page.wait_for_timeout(500)
    before = page.locator("#model-plqy span").get_attribute("data-value")
    h = page.locator("#model-params [role=slider]").nth(3)  # D
    h.focus()
    for _ in range(150):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(b) => document.querySelector('#model-plqy span[data-value]').dataset.value"
        " !== b", arg=before)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(OUT / "app_model.png"), full_page=True)


def fit_shot(page, url, data):
    """The PEARS "BT" data set with the abc model."""
    page.goto(url + "/fit")
    page.locator("#fit-upload input[type=file]").set_input_files(data)
    page.wait_for_selector("#fit-file-ok")
    page.click("#fit-model")
    page.get_by_role("option", name="abc", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#fit-param-table tbody tr')"
                           ".length === 4")
    page.fill("#fit-n0", "5.58e15, 1.00e16, 2.23e16")
    for name in ("A", "B"):
        page.locator(f"#fit-param-table tr:has(td:has-text('{name}')) "
                     "input[type=checkbox]").first.check()
    page.fill("#fit-starts", "4")
    page.click("#fit-run")
    page.wait_for_selector("#fit-done")
    page.click("#fit-progress summary")  # the fit's progress lines, as `jaxsim fit` prints them
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUT / "app_fit.png"), full_page=True)


if __name__ == "__main__":
    main()
