"""Measure the explorer's responsiveness in headless Chromium (docs/app.md, "Measured").

    python docs/app_speed.py SMALL.zarr BIG.zarr [--port 8790] [--out speed.json]
    python docs/app_speed.py --model-only [--moves 20]     # the model page alone, no store

Starts ``jaxsim app SMALL BIG``, opens /sweep (SMALL is shown first), switches to BIG and
times: the switch (store opened + first slice drawn in the page), slider moves along the
sliders, an axis swap, a click (recomputed decay, after the first compile), and model-page
slider moves. Times are wall-clock in the browser: request, server work, transfer and plotly's
redraw. Needs the app extra and Debian's chromium.

The 10^7-point store of docs/app.md (``jaxsim sweep big.toml --out big.zarr``, 14 s here)::

    name = "big"
    model = "trap_detrap"
    t1 = 2e-6
    dtype = "float32"
    rtol = 1e-4
    chunk_size = 65536
    [fixed]
    B = 1e-10
    C = 1e-28
    [axes]
    A = { logspace = [1e5, 1e8, 50] }
    D = { logspace = [1e3, 1e8, 50] }
    K1 = { logspace = [1e2, 1e7, 40] }
    n0 = { logspace = [1e15, 1e18, 100] }
    [observables]
    summaries = ["tau_mean_pl", "plqy"]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

TITLE = "document.querySelector('#sweep-heatmap .gtitle')"


def wait_port(port, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.3).close()
            return time.time() - t0
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def title_change(page, before, timeout=30_000):
    page.wait_for_function(f"(b) => {TITLE} && {TITLE}.textContent !== b", arg=before,
                           timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("small", nargs="?")
    ap.add_argument("big", nargs="?")
    ap.add_argument("--model-only", action="store_true",
                    help="time the model page only (no store needed)")
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if not a.model_only and not (a.small and a.big):
        ap.error("SMALL and BIG stores are needed (or --model-only)")
    from playwright.sync_api import sync_playwright

    out = {}
    paths = [tempfile.mkdtemp(prefix="jaxsim-speed-")] if a.model_only else [a.small, a.big]
    proc = subprocess.Popen([sys.executable, "-m", "jaxsim", "app", *paths, "--port",
                             str(a.port), "--no-browser"], stderr=subprocess.DEVNULL)
    try:
        out["server_start_s"] = wait_port(a.port)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = b.new_page(viewport={"width": 1440, "height": 1000})
            if not a.model_only:
                sweep_page_times(page, a, out)
            model_page_times(page, a, out)
            b.close()
    finally:
        proc.terminate()
        proc.wait(10)
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


def sweep_page_times(page, a, out):
    t0 = time.time()
    page.goto(f"http://127.0.0.1:{a.port}/sweep")
    page.wait_for_function(f"() => {TITLE}", timeout=120_000)
    out["first_page_with_heatmap_s"] = time.time() - t0
    page.wait_for_timeout(40_000)  # let the warm-up compile finish (background)
    # switch to the big store
    t0 = time.time()
    page.click("#sweep-store")
    page.get_by_role("option", name=a.big, exact=True).click()
    page.wait_for_function(
        "() => { const g = document.querySelector('#sweep-heatmap .js-plotly-plot');"
        " return g && g.data && g.data[0].customdata.length === 50 && "
        "document.querySelector('#sweep-info').textContent.includes('10,000,000'); }",
        timeout=60_000)
    out["big_store_open_and_draw_s"] = time.time() - t0
    page.wait_for_timeout(1000)
    moves = []
    for slider in ("last", "first"):
        h = getattr(page.locator("#sweep-sliders [role=slider]"), slider)
        h.focus()
        for i in range(a.moves):
            before = page.locator("#sweep-heatmap .gtitle").text_content()
            t0 = time.time()
            page.keyboard.press("ArrowRight" if i % 4 != 3 else "ArrowLeft")
            title_change(page, before)
            page.wait_for_timeout(50)
            moves.append(time.time() - t0)
    out["slider_redraw_s"] = {"median": statistics.median(moves), "max": max(moves),
                              "n": len(moves)}
    # swap the axes: n0 across, K1 up (other chunks)
    before = page.locator("#sweep-heatmap .gtitle").text_content()
    t0 = time.time()
    page.click("#sweep-x")
    page.get_by_role("option", name="n0 (100)", exact=True).click()
    title_change(page, before)
    out["axis_change_redraw_s"] = time.time() - t0
    # click: first (compiles the big store's float32 settings), then again
    clicks = []
    for frac in (0.3, 0.6, 0.45):
        box = page.locator("#sweep-heatmap .nsewdrag").first.bounding_box()
        prev = page.locator("#sweep-point").inner_text()
        t0 = time.time()
        page.mouse.click(box["x"] + box["width"] * frac, box["y"] + box["height"] * 0.5)
        page.wait_for_function(
            "(p) => { const e = document.querySelector('#sweep-compare');"
            " return e && document.querySelector('#sweep-point').innerText !== p; }",
            arg=prev, timeout=180_000)
        clicks.append(time.time() - t0)
    out["click_decay_s"] = {"first (compile)": clicks[0], "after": clicks[1:]}


def model_page_times(page, a, out):
    """Model page: each move is 5 key presses (0.05 decades) on the first slider; the time
    until the PLQY card changes, and the server's own compute time of each answer."""
    page.goto(f"http://127.0.0.1:{a.port}/model")
    page.wait_for_selector("#model-plqy span[data-value]", timeout=180_000)
    h = page.locator("#model-params [role=slider]").first
    h.focus()
    model, server = [], []
    for i in range(a.moves):
        before = page.locator("#model-plqy span").get_attribute("data-value")
        t0 = time.time()
        for _ in range(5):
            page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function(
            "(b) => { const e = document.querySelector('#model-plqy span[data-value]');"
            " return e && e.dataset.value !== b; }", arg=before, timeout=60_000)
        model.append(time.time() - t0)
        page.wait_for_timeout(300)
        server.append(float(page.locator("#model-timing").text_content()
                            .split("computed in ")[1].split(" ms")[0]))
    out["model_update_s"] = {"median": statistics.median(model), "max": max(model),
                             "min": min(model), "n": len(model)}
    out["model_server_compute_ms"] = {"median": statistics.median(server),
                                      "max": max(server), "min": min(server)}
    out["model_server_timing"] = page.locator("#model-timing").text_content()


if __name__ == "__main__":
    main()
