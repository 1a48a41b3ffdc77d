"""The fit page: upload or pick a decay file, set up a fit, run it, look and download.

The data are read and prepared in the order ``jaxsim fit`` uses (read, n0, rebin, shift to
peak, crop, normalise, IRF) and fitted with the same :func:`jaxsim.studies.fit.fit`; errors are
shown as the command line prints them (``jaxsim fit: error: ...``). A fit runs in a thread of
its own; the page polls it, so the server keeps serving the other pages meanwhile.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, dcc, html, no_update
from plotly.subplots import make_subplots

from jaxsim.app.stores import find_paths
from jaxsim.app.ui import PALETTE, base_layout, error_box, fmt, info_box, unit_label
from jaxsim.physics.errors import ParameterError

log = logging.getLogger("jaxsim.app")

DATA_SUFFIXES = (".txt", ".csv", ".dat", ".tsv", ".asc", ".ptu", ".phu", ".sdt")

#: uploaded files larger than this are refused (a TCSPC file is a few MB)
MAX_UPLOAD_BYTES = 200 * 2**20

TIME_UNITS = ("ns", "ps", "us", "s")

#: progress lines kept per fit (the page shows them all, newest last)
MAX_LOG_LINES = 200


def find_data_files(folders, max_depth: int = 2) -> list[Path]:
    """Decay files (by suffix) under the given folders, or given directly."""
    return find_paths(folders, lambda p: p.is_file() and p.suffix.lower() in DATA_SUFFIXES,
                      max_depth)


@dataclasses.dataclass
class FitOptions:
    model: str
    n0: str
    free: tuple
    fixed: dict
    init: dict
    bounds: dict
    loss: str | None = None
    time_unit: str = "ns"
    layout: str = "auto"
    irf_fwhm: float | None = None
    rebin: int = 1
    shift_to_peak: bool = False
    normalise: bool = False
    crop: str = ""
    background: str = "auto"
    starts: int = 8
    irf_path: str | None = None  # an IRF file (the CLI's --irf), with the data's bins
    irf_name: str | None = None  # the name the user knows it by (an upload's own name)
    n0_per_watt: float | None = None  # n0 = this x the file's laser power (--n0-per-watt)


def _floats(text, what):
    try:
        vals = [float(v) for v in re.split(r"[,\s;]+", text.strip()) if v]
    except ValueError:
        raise ParameterError(f"{what} {text!r}: expected comma-separated numbers") from None
    return vals


def read_file(path, time_unit="ns", layout="auto"):
    from jaxsim import io as D

    return D.read_decays(path, time_unit=time_unit, layout=layout)


def prepare(path, o: FitOptions):
    """The DecaySet ``jaxsim fit`` would fit, from the same options, in the same order."""
    from jaxsim import io as D

    scale = D.time_scale(o.time_unit)
    ds = read_file(path, o.time_unit, o.layout)
    has_n0 = bool(o.n0 and o.n0.strip())
    if has_n0 and o.n0_per_watt is not None:
        raise ParameterError("give either --n0 or --n0-per-watt, not both")
    if has_n0:
        ds = ds.with_n0(_floats(o.n0, "--n0"))
    elif o.n0_per_watt is not None:
        if "power_W" not in ds.meta:
            raise ParameterError(f"--n0-per-watt: {path} has no power row "
                                 "(expected the power_nd_background layout)")
        ds = ds.with_n0(np.asarray(ds.meta["power_W"]) * o.n0_per_watt)
    else:
        raise ParameterError(f"--n0 is missing: expected {ds.n_decays} excitation densities "
                             "(cm^-3), one per decay")
    if o.rebin > 1:
        ds = D.rebin(ds, o.rebin)
    if o.shift_to_peak:
        ds = D.shift_to_peak(ds)
    if o.crop and o.crop.strip():
        lo, _, hi = o.crop.partition(":")
        try:
            ds = D.crop(ds, float(lo) * scale if lo.strip() else None,
                        float(hi) * scale if hi.strip() else None)
        except ValueError:
            raise ParameterError(f"--crop {o.crop!r}: expected TMIN:TMAX in {o.time_unit}") \
                from None
    if o.normalise:
        ds = D.normalise(ds)
    if o.irf_path and o.irf_fwhm:
        raise ParameterError("argument --irf-fwhm: not allowed with argument --irf")
    if o.irf_path:
        k, off = D.read_irf(o.irf_path, time_unit=o.time_unit, bin_width_s=ds.bin_width)
        ds = ds.with_irf(k, off, record=f"irf file {o.irf_name or o.irf_path}")
    elif o.irf_fwhm:
        ds = ds.with_gaussian_irf(o.irf_fwhm)  # as the CLI: the exact Gaussian in the fit
    return ds


class FitJobs:
    """Fits running in background threads, polled by the page."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.lock = threading.Lock()

    def start(self, path, name, options: FitOptions) -> str:
        job_id = uuid.uuid4().hex[:12]
        job = {"state": "running", "stage": "reading and preparing the data",
               "started": time.time(), "name": name, "options": options, "result": None,
               "error": None, "finished": None, "path": str(path), "lines": []}
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, path, options), daemon=True,
                         name=f"fit-{job_id}").start()
        return job_id

    def get(self, job_id):
        with self.lock:
            return self.jobs.get(job_id)

    def _run(self, job, path, o: FitOptions):
        from jaxsim.studies.fit import FitWarning, fit

        def say(msg):  # the fit's progress lines, stamped as `jaxsim fit` prints them
            line = f"[{time.time() - job['started']:6.1f} s] {msg}"
            with self.lock:
                job["lines"].append(line)
                del job["lines"][:-MAX_LOG_LINES]

        try:
            say(f"reading {job['name']}")
            ds = prepare(path, o)
            job["stage"] = (f"fitting {len(o.free)} parameter(s) of {o.model} to {ds.n_decays} "
                            f"decay(s) from {o.starts} start(s) (the first fit of a model "
                            "and data shape compiles it: about a minute on 2 cores)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                result = fit(o.model, ds, free=o.free, fixed=o.fixed, init=o.init,
                             bounds=o.bounds, loss=o.loss, background=o.background,
                             n_starts=o.starts, progress=say)
            job["result"] = result
            job["state"] = "done"
        except (ParameterError, FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as err:
            job["error"] = f"jaxsim fit: error: {_named(err, o, job['path'], job['name'])}"
            job["state"] = "error"
        except Exception as err:  # noqa: BLE001 (shown in the page; the server keeps running)
            log.error("fit failed:\n%s", traceback.format_exc())
            job["error"] = (f"jaxsim fit: unexpected error ({type(err).__name__}): {err}. "
                            "Please report it with the data file.")
            job["state"] = "error"
        finally:
            job["finished"] = time.time()


def layout(files):
    from jaxsim.physics.registry import DEFAULT_MODEL, models

    file_opts = [{"label": str(p), "value": str(p)} for p in files]
    data = html.Div(className="panel controls", children=[
        html.H3("Data"),
        dcc.Upload(id="fit-upload", className="upload", max_size=MAX_UPLOAD_BYTES,
                   children=html.Div(["Drop a decay file here or ", html.A("choose one"),
                                      html.Div(".txt/.csv (X/Y1/Y2…), .ptu, .phu, .sdt",
                                               className="muted small")])),
        dcc.Dropdown(id="fit-pick", options=file_opts, placeholder="or pick a file",
                     optionHeight=45),
        html.Div(className="row", children=[
            html.Div(className="grow", children=[
                html.Label("time unit (text files)"),
                dcc.Dropdown(id="fit-time-unit", options=list(TIME_UNITS), value="ns",
                             clearable=False)]),
            html.Div(className="grow", children=[
                html.Label("layout"),
                dcc.Dropdown(id="fit-layout", options=["auto", "columns", "power_nd_background"],
                             value="auto", clearable=False)]),
        ]),
        html.Div(id="fit-file-info"),
        html.Label("n0 per decay (cm⁻³, comma-separated)", htmlFor="fit-n0"),
        dcc.Input(id="fit-n0", type="text", placeholder="e.g. 5.58e15, 1e16, 2.23e16",
                  className="wide", debounce=False),
        html.Div(className="row", children=[
            html.Label("or n0 per watt (cm⁻³ W⁻¹)", htmlFor="fit-n0-per-watt", className="grow",
                       title="n0 = this × each decay's laser power (W) read from a "
                       "power/ND/background file (the CLI's --n0-per-watt)"),
            dcc.Input(id="fit-n0-per-watt", type="text", placeholder="e.g. 1e21",
                      className="num-input"),
        ]),
        html.H3("Model"),
        dcc.Dropdown(id="fit-model", options=[{"label": m.name, "value": m.name}
                                              for m in models().values()],
                     value=DEFAULT_MODEL, clearable=False),
        html.Div(id="fit-param-table"),
        html.H3("Fit options"),
        html.Div(className="row", children=[
            html.Div(className="grow", children=[
                html.Label("loss"),
                dcc.Dropdown(id="fit-loss", options=[
                    {"label": "auto (poisson for counts, lsq else)", "value": "auto"},
                    {"label": "poisson", "value": "poisson"}, {"label": "lsq", "value": "lsq"},
                    {"label": "loglsq", "value": "loglsq"}], value="auto", clearable=False)]),
            html.Div(className="grow", children=[
                html.Label("background"),
                dcc.Dropdown(id="fit-background", options=["auto", "free", "fixed"],
                             value="auto", clearable=False)]),
        ]),
        html.Div(className="row", children=[
            html.Label("IRF: Gaussian FWHM (s)", className="grow"),
            dcc.Input(id="fit-irf", type="text", placeholder="none, e.g. 50e-12",
                      className="num-input"),
        ]),
        html.Div(className="row", children=[
            dcc.Upload(id="fit-irf-upload", className="upload small grow",
                       max_size=MAX_UPLOAD_BYTES,
                       children=html.Div(["or an IRF file: drop it or ", html.A("choose"),
                                          html.Span(" (the data's bins; --irf)",
                                                    className="muted small")])),
            html.Button("×", id="fit-irf-clear", className="btn small", title="no IRF file"),
        ]),
        html.Div(id="fit-irf-info", className="small"),
        html.Div(className="row", children=[
            html.Label("crop TMIN:TMAX (time unit)", className="grow"),
            dcc.Input(id="fit-crop", type="text", placeholder="e.g. 0:500", className="num-input"),
        ]),
        html.Div(className="row", children=[
            html.Label("rebin", className="grow"),
            dcc.Input(id="fit-rebin", type="text", value="1", className="num-input short"),
            html.Label("starts", className="grow"),
            dcc.Input(id="fit-starts", type="text", value="8", className="num-input short"),
        ]),
        dcc.Checklist(id="fit-prep", options=[
            {"label": " shift each peak to t = 0", "value": "shift"},
            {"label": " normalise each decay to its peak", "value": "normalise"}], value=[]),
        html.Button("Run fit", id="fit-run", className="btn primary"),
        html.Div(id="fit-message"),
        html.Div(id="fit-progress"),
    ])
    main = html.Div(className="main", children=[
        html.Div(className="panel", children=[
            dcc.Graph(id="fit-graph", config={"displaylogo": False}, style={"height": "560px"},
                      figure=_empty("load a decay file to see it here")),
        ]),
        html.Div(className="panel", id="fit-results-panel", children=[
            html.Div(id="fit-results"),
            html.Div(className="row", children=[
                html.Button("Download fit.json", id="fit-dl-json", className="btn",
                            disabled=True),
                html.Button("Download fit.png", id="fit-dl-png", className="btn", disabled=True),
            ]),
            dcc.Download(id="fit-download"),
        ]),
    ])
    return html.Div(className="page-grid wide-controls", children=[
        data, main, dcc.Store(id="fit-file"), dcc.Store(id="fit-job"), dcc.Store(id="fit-irf-file"),
        dcc.Interval(id="fit-poll", interval=500, disabled=True)])


def _empty(message):
    fig = go.Figure()
    fig.update_layout(**base_layout(xaxis=dict(visible=False), yaxis=dict(visible=False)),
                      annotations=[dict(text=message, showarrow=False, x=0.5, y=0.5,
                                        xref="paper", yref="paper", font=dict(size=15))])
    return fig


def _param_table(model_name):
    from jaxsim.physics.registry import get_model

    m = get_model(model_name)
    rows = []
    for p in m.parameters:
        if p.name == "n0":
            continue
        rows.append(html.Tr(title=p.meaning, children=[
            html.Td([html.Span(p.name, className="pname"), html.Br(),
                     html.Span(unit_label(p.unit), className="muted small")]),
            html.Td(dcc.Checklist(id={"type": "fit-free", "name": p.name},
                                  options=[{"label": "", "value": "free"}], value=[])),
            html.Td(dcc.Input(id={"type": "fit-value", "name": p.name}, type="text",
                              value=f"{p.default:g}", className="cell-input")),
            html.Td(dcc.Input(id={"type": "fit-lo", "name": p.name}, type="text",
                              value=f"{p.fit_lower:g}", className="cell-input")),
            html.Td(dcc.Input(id={"type": "fit-hi", "name": p.name}, type="text",
                              value=f"{p.fit_upper:g}", className="cell-input")),
        ]))
    return html.Table(className="table compact", children=[
        html.Thead(html.Tr([html.Th("parameter"), html.Th("free"),
                            html.Th("start / fixed"), html.Th("lower"), html.Th("upper")])),
        html.Tbody(rows)])


def _count(text, what, default):
    text = str(text if text is not None else "").strip()
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        raise ParameterError(f"{what} = {text!r}: expected a positive integer") from None
    if n < 1:
        raise ParameterError(f"{what} = {n}: expected a positive integer")
    return n


def _num(text, what):
    try:
        return float(str(text).strip())
    except ValueError:
        raise ParameterError(f"{what} = {text!r}: expected a number") from None


def options_from_inputs(model, n0, free_vals, free_ids, values, value_ids, los, his, loss,
                        background, irf, crop, rebin, starts, prep, time_unit, layout,
                        irf_file=None, n0_per_watt=None):
    """FitOptions from the page's inputs (bad input raises ParameterError with a message).
    ``irf_file``: ``{"path", "name"}`` of an uploaded or picked IRF file, or None."""
    from jaxsim.physics.registry import get_model

    m = get_model(model)
    free = tuple(i["name"] for i, v in zip(free_ids, free_vals) if v)
    if not free:
        raise ParameterError("no free parameter: tick 'free' for at least one parameter "
                             "(the CLI's --free)")
    val = {i["name"]: v for i, v in zip(value_ids, values)}
    lo = {i["name"]: v for i, v in zip(value_ids, los)}
    hi = {i["name"]: v for i, v in zip(value_ids, his)}
    defaults = {p.name: p for p in m.parameters}
    fixed, init, bounds = {}, {}, {}
    for name, text in val.items():
        if name not in defaults:
            continue
        v = _num(text, f"parameter {name}")
        if name in free:
            init[name] = v
            a = _num(lo[name], f"lower bound of {name}")
            b = _num(hi[name], f"upper bound of {name}")
            if (a, b) != (defaults[name].fit_lower, defaults[name].fit_upper):
                bounds[name] = (a, b)
        elif v != defaults[name].default:
            fixed[name] = v
    irf_fwhm = None
    if irf and str(irf).strip() and str(irf).strip().lower() != "none":
        irf_fwhm = _num(irf, "IRF FWHM (s)")
        if not irf_fwhm > 0:
            raise ParameterError(f"--irf-fwhm = {irf_fwhm!r}: expected a width > 0 s")
    rebin = _count(rebin, "--rebin", 1)
    starts = _count(starts, "--starts", 8)
    per_watt = None
    if n0_per_watt is not None and str(n0_per_watt).strip():
        per_watt = _num(n0_per_watt, "--n0-per-watt")
        if not (np.isfinite(per_watt) and per_watt > 0):
            raise ParameterError(f"--n0-per-watt = {per_watt!r}: expected a positive number "
                                 "in cm^-3 W^-1")
    irf_file = irf_file or {}
    return FitOptions(model=model, n0=n0 or "", free=free, fixed=fixed, init=init, bounds=bounds,
                      loss=None if loss == "auto" else loss, time_unit=time_unit, layout=layout,
                      irf_fwhm=irf_fwhm, rebin=rebin, shift_to_peak="shift" in (prep or []),
                      normalise="normalise" in (prep or []), crop=crop or "",
                      background=background, starts=starts, irf_path=irf_file.get("path"),
                      irf_name=irf_file.get("name"), n0_per_watt=per_watt)


def _named(err, o: FitOptions, path, name) -> str:
    """An error's message with the files as the user knows them (not the upload folder)."""
    msg = str(err).replace(str(path), name)
    if o.irf_path and o.irf_name:
        msg = msg.replace(str(o.irf_path), o.irf_name)
    return msg


def _save_upload(contents, filename, upload_dir: Path):
    """An upload (``data:...;base64,...``) written to a folder of its own: its path."""
    _, _, b64 = contents.partition(",")
    raw = base64.b64decode(b64)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename or "upload.txt").name)[:100]
    folder = upload_dir / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (safe or "upload.txt")
    path.write_bytes(raw)
    return path


def data_figure(ds, result=None):
    """Data (dots) and, after a fit, model (lines) on a log axis over the residuals."""
    t_ns = (np.asarray(ds.t) + 0.5 * ds.bin_width * (ds.sampling == "bins")) / 1e-9
    y = np.asarray(ds.y, float)
    rows = 2 if result is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.72, 0.28] if rows == 2 else [1.0])
    res = None
    if result is not None:
        from jaxsim.plots.fit import residuals

        res = residuals(result)
        mu = np.asarray(result.mu, float)
    for k in range(ds.n_decays):
        c = PALETTE[k % len(PALETTE)]
        lab = ds.labels[k] + (f", n0 = {fmt(float(ds.n0[k]), 3)} cm⁻³"
                              if np.isfinite(float(ds.n0[k])) else "")
        fig.add_trace(go.Scattergl(x=t_ns, y=np.where(y[k] > 0, y[k], np.nan), mode="markers",
                                   marker=dict(size=3, color=c, opacity=0.55), name=lab,
                                   legendgroup=str(k)), row=1, col=1)
        if result is not None:
            fig.add_trace(go.Scatter(x=t_ns, y=mu[k], mode="lines", line=dict(color=c, width=2),
                                     name=f"model {k + 1}", legendgroup=str(k),
                                     showlegend=False), row=1, col=1)
            fig.add_trace(go.Scattergl(x=t_ns, y=res[k], mode="markers",
                                       marker=dict(size=3, color=c, opacity=0.6),
                                       showlegend=False, legendgroup=str(k)), row=2, col=1)
    fig.update_yaxes(type="log", exponentformat="power", dtick=1,
                     title="counts per bin" if ds.is_counts else "normalised PL", row=1, col=1)
    if rows == 2:
        fig.update_yaxes(title="residual / σ", row=2, col=1, zeroline=True)
        fig.update_xaxes(title="time (ns)", row=2, col=1)
    else:
        fig.update_xaxes(title="time (ns)", row=1, col=1)
    title = ds.source.split("/")[-1] if getattr(ds, "source", "") else "data"
    if result is not None:
        free = ", ".join(f"{n} = {fmt(result.params[n]['value'], 4)}" for n in result.free)
        title = f"{result.model}: {free}"
    fig.update_layout(**base_layout(title=dict(text=title, x=0.01, font=dict(size=14)),
                                    legend=dict(orientation="h", y=-0.12, x=0)))
    return fig


def results_block(result):
    rows = []
    for n, p in result.params.items():
        v, se = p["value"], p["stderr"]
        rel = f"{se / abs(v):.2%}" if p["free"] and v and np.isfinite(se) else ""
        rows.append(html.Tr(**{"data-name": n}, className="free" if p["free"] else "fixed",
                            children=[
            html.Td(n, className="pname"),
            html.Td(fmt(v, 5), className="num value", **{"data-value": repr(float(v))}),
            html.Td(fmt(se, 3) if p["free"] else "fixed", className="num"),
            html.Td(rel, className="num"),
            html.Td(unit_label(p["unit"]), className="muted small")]))
    red = "deviance/dof" if result.loss_kind == "poisson" else "reduced χ²"
    summary = html.Div(className="muted", children=(
        f"{result.loss_kind} loss = {result.loss:.6g}, {red} = {result.reduced:.4g}, "
        f"{'converged' if result.converged else 'NOT converged'}, {result.n_starts} starts, "
        f"{result.n_data} data points, {result.n_free} unknowns"))
    per = []
    for d in result.per_decay:
        per.append(html.Tr([html.Td(str(d.get("label", ""))),
                            html.Td(fmt(d.get("n0")), className="num"),
                            html.Td(fmt(d.get("amplitude")), className="num"),
                            html.Td(fmt(d.get("background")), className="num"),
                            html.Td(fmt(d.get("shift")), className="num")]))
    warn = [html.Li(w) for w in result.warnings]
    return html.Div([
        html.H4("Fitted parameters"),
        html.Table(id="fit-table", className="table", children=[
            html.Thead(html.Tr([html.Th("parameter"), html.Th("value"), html.Th("stderr"),
                                html.Th("rel."), html.Th("unit")])),
            html.Tbody(rows)]),
        summary,
        html.H4("Per decay"),
        html.Table(className="table compact", children=[
            html.Thead(html.Tr([html.Th("decay"), html.Th("n0 (cm⁻³)"), html.Th("amplitude"),
                                html.Th("background"), html.Th("shift (s)")])),
            html.Tbody(per)]),
        html.Div(id="fit-warnings", children=[html.H4("Warnings"), html.Ul(warn)]
                 if warn else [html.Div("no warnings", className="muted small")]),
    ])


def progress_log(lines, open_: bool = True, show: int = 14):
    """The fit's progress lines (as `jaxsim fit` prints them), newest last."""
    if not lines:
        return ""
    more = f"… {len(lines) - show} earlier line(s)\n" if len(lines) > show else ""
    return html.Details(open=open_, className="fit-log-box", children=[
        html.Summary(f"progress ({len(lines)} lines)", className="small"),
        html.Pre(more + "\n".join(lines[-show:]), id="fit-log", className="log")])


def register(app, jobs: FitJobs, upload_dir: Path):
    @app.callback(Output("fit-param-table", "children"), Input("fit-model", "value"))
    def table(model):
        return _param_table(model)

    @app.callback(Output("fit-file", "data"), Output("fit-pick", "value"),
                  Input("fit-upload", "contents"), Input("fit-pick", "value"),
                  State("fit-upload", "filename"), prevent_initial_call=True)
    def choose(contents, picked, filename):
        from dash import ctx

        if ctx.triggered_id == "fit-upload" and contents:
            try:
                path = _save_upload(contents, filename, upload_dir)
            except ValueError:
                return {"error": "the upload could not be decoded"}, None
            return {"path": str(path), "name": filename or path.name}, None
        if picked:
            return {"path": picked, "name": Path(picked).name}, no_update
        return no_update, no_update

    @app.callback(Output("fit-irf-file", "data"), Output("fit-irf-info", "children"),
                  Output("fit-irf-upload", "contents"),
                  Input("fit-irf-upload", "contents"), Input("fit-irf-clear", "n_clicks"),
                  State("fit-irf-upload", "filename"), prevent_initial_call=True)
    def irf_file(contents, _, filename):
        """An IRF file: read at once (as `jaxsim fit --irf` reads it) to say what it holds."""
        from dash import ctx

        from jaxsim import io as D

        if ctx.triggered_id == "fit-irf-clear" or not contents:
            return None, "", None
        try:
            path = _save_upload(contents, filename, upload_dir)
        except ValueError:
            return None, error_box("the IRF upload could not be decoded", id_="fit-irf-error"), \
                no_update
        name = filename or path.name
        try:
            d = D.read_decays(path, layout="columns")
        except Exception as err:  # noqa: BLE001 (any unreadable file: say so, keep serving)
            msg = str(err).replace(str(path), name)
            return None, error_box(f"jaxsim fit: error: {msg}", id_="fit-irf-error"), no_update
        info = html.Span([html.Strong(name, id="fit-irf-name"),
                          f": IRF of {d.n_bins} bins of {fmt(d.bin_width / 1e-9, 4)} ns "
                          "(time column in the data's time unit); the fit convolves with it"],
                         className="muted")
        return {"path": str(path), "name": name}, info, no_update

    @app.callback(Output("fit-file-info", "children"), Output("fit-graph", "figure"),
                  Output("fit-n0", "placeholder"),
                  Input("fit-file", "data"), Input("fit-time-unit", "value"),
                  Input("fit-layout", "value"), prevent_initial_call=True)
    def loaded(f, unit, lay):
        if not f:
            return no_update, no_update, no_update
        if f.get("error"):
            return error_box(f["error"], id_="fit-error"), _empty("no data"), no_update
        try:
            ds = read_file(f["path"], unit, lay)
        except Exception as err:  # noqa: BLE001 (any unreadable file: say so, keep serving)
            msg = err if isinstance(err, (ParameterError, FileNotFoundError)) else \
                f"{f['name']}: cannot read it as a decay file ({type(err).__name__}: {err})"
            msg = str(msg).replace(f["path"], f["name"])
            return (error_box(f"jaxsim fit: error: {msg}", id_="fit-error"),
                    _empty("the file could not be read"), no_update)
        info = info_box([html.Strong(f["name"]), f": {ds.n_decays} decay(s), {ds.n_bins} bins of "
                         f"{fmt(ds.bin_width / 1e-9, 4)} ns, "
                         f"{'counts' if ds.is_counts else 'normalised intensity'}; "
                         f"labels: {', '.join(ds.labels)}"], id_="fit-file-ok")
        hint = f"{ds.n_decays} value(s), e.g. " + ", ".join(["1e16"] * ds.n_decays)
        if "power_W" in ds.meta:
            hint = "powers in the file: n0 = k × P (W); give n0 per decay"
        return info, data_figure(ds), hint

    @app.callback(Output("fit-job", "data"), Output("fit-poll", "disabled"),
                  Output("fit-message", "children"), Output("fit-run", "disabled"),
                  Input("fit-run", "n_clicks"),
                  State("fit-file", "data"), State("fit-model", "value"), State("fit-n0", "value"),
                  State({"type": "fit-free", "name": ALL}, "value"),
                  State({"type": "fit-free", "name": ALL}, "id"),
                  State({"type": "fit-value", "name": ALL}, "value"),
                  State({"type": "fit-value", "name": ALL}, "id"),
                  State({"type": "fit-lo", "name": ALL}, "value"),
                  State({"type": "fit-hi", "name": ALL}, "value"),
                  State("fit-loss", "value"), State("fit-background", "value"),
                  State("fit-irf", "value"), State("fit-crop", "value"),
                  State("fit-rebin", "value"), State("fit-starts", "value"),
                  State("fit-prep", "value"), State("fit-time-unit", "value"),
                  State("fit-layout", "value"), State("fit-irf-file", "data"),
                  State("fit-n0-per-watt", "value"), prevent_initial_call=True)
    def run(_, f, model, n0, free_vals, free_ids, values, value_ids, los, his, loss, background,
            irf, crop, rebin, starts, prep, unit, lay, irf_file, per_watt):
        if not f or not f.get("path"):
            return (no_update, True, error_box("jaxsim fit: error: no data file: upload or "
                                               "pick one first", id_="fit-error"), False)
        try:
            o = options_from_inputs(model, n0, free_vals, free_ids, values, value_ids, los, his,
                                    loss, background, irf, crop, rebin, starts, prep, unit, lay,
                                    irf_file=irf_file, n0_per_watt=per_watt)
            prepare(f["path"], o)  # bad input answers at once, before a thread starts
        except (ParameterError, FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as err:
            o = locals().get("o") or FitOptions(model, "", (), {}, {}, {}, **(
                {"irf_path": irf_file["path"], "irf_name": irf_file["name"]} if irf_file else {}))
            msg = _named(err, o, f["path"], f["name"])
            return no_update, True, error_box(f"jaxsim fit: error: {msg}", id_="fit-error"), False
        job = jobs.start(f["path"], f["name"], o)
        return job, False, "", True

    @app.callback(Output("fit-progress", "children"), Output("fit-poll", "disabled",
                                                              allow_duplicate=True),
                  Output("fit-results", "children"), Output("fit-graph", "figure",
                                                            allow_duplicate=True),
                  Output("fit-run", "disabled", allow_duplicate=True),
                  Output("fit-dl-json", "disabled"), Output("fit-dl-png", "disabled"),
                  Output("fit-message", "children", allow_duplicate=True),
                  Input("fit-poll", "n_intervals"), State("fit-job", "data"),
                  prevent_initial_call=True)
    def poll(_, job_id):
        job = jobs.get(job_id) if job_id else None
        if job is None:
            return "", True, no_update, no_update, False, True, True, no_update
        elapsed = (job["finished"] or time.time()) - job["started"]
        with jobs.lock:
            lines = list(job["lines"])
        if job["state"] == "running":
            bar = html.Div(className="progress", id="fit-running", children=[
                html.Div(className="progress-bar indeterminate"),
                html.Div(f"{job['stage']} — {elapsed:.0f} s", className="small"),
                progress_log(lines)])
            return bar, False, no_update, no_update, True, True, True, no_update
        if job["state"] == "error":
            msg = job["error"].replace(job["path"], job["name"])
            return (progress_log(lines), True, "", no_update, False, True, True,
                    error_box(msg, id_="fit-error"))
        r = job["result"]
        done = html.Div([html.Div(f"fit finished in {elapsed:.1f} s", id="fit-done",
                                  className="muted small"), progress_log(lines, open_=False)])
        msg = "" if r.converged else error_box("the fit did not converge: the values are the "
                                               "best found; see the warnings", title="Warning")
        return (done, True, results_block(r), data_figure(r.problem.ds, r), False, False, False,
                msg)

    @app.callback(Output("fit-download", "data"), Input("fit-dl-json", "n_clicks"),
                  Input("fit-dl-png", "n_clicks"), State("fit-job", "data"),
                  prevent_initial_call=True)
    def download(_, __, job_id):
        from dash import ctx

        from jaxsim.plots.fit import plot_fit
        from jaxsim.studies.fit import save_json

        job = jobs.get(job_id) if job_id else None
        if not job or job["result"] is None:
            return no_update
        folder = Path(tempfile.mkdtemp(prefix="jaxsim-fit-", dir=upload_dir))
        if ctx.triggered_id == "fit-dl-json":
            save_json(job["result"], folder / "fit.json")
            return dcc.send_file(str(folder / "fit.json"))
        plot_fit(job["result"], folder / "fit.png")
        return dcc.send_file(str(folder / "fit.png"))
