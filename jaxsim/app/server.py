"""The explorer's Dash app: three pages (sweep, model, fit) behind one local server.

Every asset (Dash's renderer, React, plotly.js, the style sheet) is served by this server from
the installed Python packages: the page works with no internet. See docs/app.md.
"""

from __future__ import annotations

import atexit
import ipaddress
import shutil
import logging
import tempfile
import threading
from pathlib import Path

from dash import Dash, Input, Output, dcc, html

from jaxsim.app import fit_page, model_page, sweep_page

log = logging.getLogger("jaxsim.app")

PAGES = (("/sweep", "Sweep"), ("/model", "Model"), ("/fit", "Fit"))

ASSETS = Path(__file__).resolve().parent / "assets"


def split_paths(paths):
    """(stores, folders, data files) from the command line's paths."""
    from jaxsim.app.stores import is_store

    stores, folders, files = [], [], []
    for p in paths:
        p = Path(p)
        if is_store(p):
            stores.append(p)
        elif p.is_dir():
            folders.append(p)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such store, folder or file")
    return stores, folders, files


def create_app(paths=(), *, folders=None, warm: bool = True) -> Dash:
    """The Dash app for the given stores, folders (searched for stores and decay files) and
    decay files. ``folders`` defaults to the current directory when no path is given."""
    stores, dirs, files = split_paths(paths)
    if folders is not None:
        dirs = dirs + [Path(f) for f in folders]
    elif not paths:
        dirs = [Path.cwd()]
    registry = sweep_page.StoreRegistry(stores, dirs)
    data_files = files + [f for f in fit_page.find_data_files(dirs) if f not in files]
    upload_dir = Path(tempfile.mkdtemp(prefix="jaxsim-app-"))
    atexit.register(shutil.rmtree, upload_dir, ignore_errors=True)
    compute_lock = threading.Lock()
    jobs = fit_page.FitJobs()

    app = Dash(__name__, title="jaxsim explorer", assets_folder=str(ASSETS),
               suppress_callback_exceptions=True, serve_locally=True,
               update_title=None)
    nav = html.Header(className="topbar", children=[
        html.Div(className="brand", children=[html.Span("jaxsim", className="logo"),
                                              html.Span(" explorer", className="muted")]),
        html.Nav([dcc.Link(label, href=href, id=f"nav-{label.lower()}", className="navlink")
                  for href, label in PAGES]),
        html.Div("local server · no internet needed", className="muted small right"),
    ])
    app.layout = html.Div([
        dcc.Location(id="url"),
        nav,
        html.Div(id="page-sweep", children=sweep_page.layout(registry)),
        html.Div(id="page-model", children=model_page.layout(), style={"display": "none"}),
        html.Div(id="page-fit", children=fit_page.layout(data_files), style={"display": "none"}),
    ])

    @app.callback(Output("page-sweep", "style"), Output("page-model", "style"),
                  Output("page-fit", "style"), Output("nav-sweep", "className"),
                  Output("nav-model", "className"), Output("nav-fit", "className"),
                  Input("url", "pathname"))
    def route(path):
        which = {"/model": 1, "/fit": 2}.get((path or "/").rstrip("/"), 0)
        styles = [{"display": "block" if i == which else "none"} for i in range(3)]
        classes = ["navlink active" if i == which else "navlink" for i in range(3)]
        return (*styles, *classes)

    sweep_page.register(app, registry, compute_lock)
    model_page.register(app, compute_lock)
    fit_page.register(app, jobs, upload_dir)
    app.jaxsim = {"registry": registry, "jobs": jobs, "upload_dir": upload_dir,
                  "lock": compute_lock}
    if warm:
        threading.Thread(target=_warm_up, args=(registry, compute_lock), daemon=True,
                         name="jaxsim-warm-up").start()
    return app


def _warm_up(registry, lock) -> None:
    """Compile the first store's point solve and the model page's solve in the background,
    so the first click and the first slider move answer at once (a compile takes ~20 s)."""
    from jaxsim.app import stores as S
    from jaxsim.physics.registry import DEFAULT_MODEL, get_model

    try:
        opts = registry.options()
        if opts:
            v = registry.get(opts[0]["value"])
            idx = {a.name: (len(a.values) - 1) // 2 for a in v.axes}
            with lock:
                S.point_decay(v.spec, v.point_values(idx))
    except Exception as err:  # noqa: BLE001 (a warm-up failure only costs time later)
        log.info("store warm-up skipped: %s", err)
    try:
        m = get_model(DEFAULT_MODEL)
        with lock:
            model_page.model_curves(m, {p.name: p.default for p in m.parameters},
                                    model_page.DEFAULT_T1)
    except Exception as err:  # noqa: BLE001
        log.info("model warm-up skipped: %s", err)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: Dash, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Run the app's server (blocking). Quiet request logging."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)
