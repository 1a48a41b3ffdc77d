"""What the browser tests share: headless Chromium (Debian's package) driven by Playwright, the
explorer served by ``python -m jaxsim app ...`` on a free port, and a page per test.

Test modules use these through fixtures of their own (``browser``, ``server``, ``page``), so
each module keeps its store and its server. A test module sets ``SCREENSHOT_EVERY_PAGE = True``
to keep a screenshot of every page state (for the docs); otherwise only a failing test leaves
one. Screenshots go to $JAXSIM_TEST_ARTIFACTS (default /tmp/jaxsim-test-screenshots).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ARTIFACTS = pathlib.Path(os.environ.get("JAXSIM_TEST_ARTIFACTS", "/tmp/jaxsim-test-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

#: how long the app's server may take to answer (it imports JAX and opens the store)
SERVER_START_S = 120


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def launch_browser():
    """A generator for a module-scoped ``browser`` fixture; skips, with the reason, where Dash,
    Playwright or Chromium is missing."""
    pytest.importorskip("dash", reason="the app extra is not installed (pip install -e '.[app]')")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[app]')")
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install -y chromium chromium-driver)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(args: list[str], log: pathlib.Path):
    """``python -m jaxsim app ARGS --port P --no-browser`` until the block ends: yields
    ``{"url", "proc", "log"}`` once the server answers (fails the test with its log if it
    exits or does not answer in time)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get(
        "PYTHONPATH", ""))
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "jaxsim", "app", *args,
                                 "--port", str(port), "--no-browser"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent)
    deadline = time.time() + SERVER_START_S
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"the server did not start within {SERVER_START_S} s: {log.read_text()}")
    try:
        yield {"url": f"http://127.0.0.1:{port}", "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_page(browser, server, request):
    """A generator for a ``page`` fixture: a fresh browser context on ``server``; at the end a
    screenshot (always, or only when the test failed) and a check that the page asked for
    nothing off the server."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    external = []
    pg.on("request", lambda r: external.append(r.url)
          if not r.url.startswith((server["url"], "data:", "blob:")) else None)
    pg.set_default_timeout(60_000)
    yield pg
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    if failed or getattr(request.module, "SCREENSHOT_EVERY_PAGE", False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        pg.screenshot(path=str(shot), full_page=True)
        if failed:
            print(f"screenshot of the failing page: {shot}")
    ctx.close()
    assert not external, f"the page asked for something off this server: {external[:3]}"
