"""The sweep page: browse a store as heatmaps, click a point to see its decay recomputed."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import plotly.graph_objects as go
from dash import ALL, MATCH, Input, Output, State, dcc, html, no_update
from plotly.subplots import make_subplots

from jaxsim.app import stores as S
from jaxsim.app.ui import (
    COLORS,
    STATE_LABELS,
    base_layout,
    error_box,
    fmt,
    fmt_unit,
    info_box,
    log_dtick,
    log_ticks,
    unit_label,
)
from jaxsim.physics.errors import ParameterError

log = logging.getLogger("jaxsim.app")

LINE = "__line__"


class StoreRegistry:
    """The stores the page can show: given on the command line, found in folders, or typed."""

    def __init__(self, stores=(), folders=()):
        self.given = [str(p) for p in stores]
        self.folders = [str(f) for f in folders]
        self._views: dict[str, S.StoreView] = {}
        self._lock = threading.Lock()

    def options(self) -> list[dict]:
        paths = list(self.given)
        for p in S.find_stores(self.folders):
            if str(p) not in paths:
                paths.append(str(p))
        for p in self._views:
            if p not in paths:
                paths.append(p)
        return [{"label": p, "value": p} for p in paths]

    def get(self, path: str) -> S.StoreView:
        with self._lock:
            if path not in self._views:
                self._views[path] = S.StoreView(path)
            return self._views[path]


def layout(registry: StoreRegistry):
    opts = registry.options()
    first = opts[0]["value"] if opts else None
    controls = html.Div(className="panel controls", children=[
        html.H3("Store"),
        dcc.Dropdown(id="sweep-store", options=opts, value=first, clearable=False,
                     placeholder="choose a sweep store (.zarr)"),
        html.Div(className="row", children=[
            dcc.Input(id="sweep-path", type="text", placeholder="or type a path: results/x.zarr",
                      debounce=True, className="grow"),
            html.Button("Open", id="sweep-open", className="btn"),
        ]),
        html.Div(id="sweep-store-msg"),
        html.H3("Show"),
        html.Label("variable", htmlFor="sweep-var"),
        dcc.Dropdown(id="sweep-var", clearable=False),
        html.Div(className="row", children=[
            html.Div(className="grow", children=[html.Label("x axis"),
                                                  dcc.Dropdown(id="sweep-x", clearable=False)]),
            html.Div(className="grow", children=[html.Label("y axis"),
                                                  dcc.Dropdown(id="sweep-y", clearable=False)]),
        ]),
        html.Label("colour scale"),
        dcc.RadioItems(id="sweep-colour", options=[{"label": " auto", "value": "auto"},
                                                   {"label": " log", "value": "log"},
                                                   {"label": " linear", "value": "linear"}],
                       value="auto", inline=True, className="radio"),
        html.H3("Other axes"),
        html.Div(id="sweep-sliders"),
        html.Div(id="sweep-info", className="muted small"),
    ])
    main = html.Div(className="main", children=[
        html.Div(className="panel", children=[
            dcc.Loading(dcc.Graph(id="sweep-heatmap", config={"displaylogo": False},
                                  style={"height": "520px"}), type="dot", delay_show=400),
            html.Div(id="sweep-timing", className="muted small"),
            html.Div("Click a cell to recompute that point's decay with the sweep's model, "
                     "solver settings and time window.", className="muted small"),
        ]),
        html.Div(className="panel", children=[
            dcc.Loading(html.Div(id="sweep-point", children=info_box(
                "No point selected yet: click a cell of the map.")), type="circle"),
        ]),
    ])
    return html.Div(className="page-grid", children=[
        controls, main,
        dcc.Store(id="sweep-selected"),
    ])


def _axis_values(ax: S.AxisInfo):
    return np.log10(ax.values) if ax.log else ax.values


def _axis_layout(ax: S.AxisInfo) -> dict:
    title = f"{ax.name} ({unit_label(ax.unit)})" if unit_label(ax.unit) else ax.name
    d = dict(title=dict(text=title), showgrid=False, zeroline=False)
    if ax.log:
        v = np.log10(ax.values)
        vals, text = log_ticks(float(v.min()), float(v.max()))
        d.update(tickvals=vals, ticktext=text)
    return d


def _slider(ax: S.AxisInfo, value: int):
    n = len(ax.values)
    marks = {int(i): {"label": fmt(ax.values[int(i)], 2)}
             for i in np.unique(np.linspace(0, n - 1, min(n, 5)).round())}
    return html.Div(className="slider-block", children=[
        html.Div(className="slider-head", children=[
            html.Span(ax.name, className="pname"),
            html.Span(id={"type": "sweep-at-label", "axis": ax.name}, className="pvalue",
                      children=fmt_unit(ax.values[value], ax.unit)),
        ]),
        dcc.Slider(id={"type": "sweep-at", "axis": ax.name}, min=0, max=n - 1, step=1,
                   value=value, marks=marks, included=False, updatemode="drag"),
        dcc.Store(id={"type": "sweep-at-text", "axis": ax.name},
                  data=[fmt_unit(x, ax.unit) for x in ax.values]),
    ])


def _at_dict(ids, values) -> dict:
    return {i["axis"]: int(v) for i, v in zip(ids or [], values or []) if v is not None}


def register(app, registry: StoreRegistry, compute_lock: threading.Lock):
    @app.callback(Output("sweep-store", "options"), Output("sweep-store", "value"),
                  Output("sweep-path", "value"),
                  Input("sweep-open", "n_clicks"), Input("sweep-path", "value"),
                  State("sweep-store", "value"), prevent_initial_call=True)
    def open_path(_, path, current):
        if not path:
            return no_update, no_update, no_update
        path = path.strip()
        opts = registry.options()
        if path not in [o["value"] for o in opts]:
            opts.append({"label": path, "value": path})
        return opts, path, ""

    @app.callback(Output("sweep-point", "children", allow_duplicate=True),
                  Output("sweep-selected", "data", allow_duplicate=True),
                  Input("sweep-store", "value"), prevent_initial_call=True)
    def forget_point(_):
        return info_box("No point selected yet: click a cell of the map."), None

    @app.callback(Output("sweep-var", "options"), Output("sweep-var", "value"),
                  Output("sweep-x", "options"), Output("sweep-x", "value"),
                  Output("sweep-y", "options"), Output("sweep-y", "value"),
                  Output("sweep-store-msg", "children"), Output("sweep-info", "children"),
                  Input("sweep-store", "value"))
    def store_changed(path):
        empty = ([], None, [], None, [], None)
        if not path:
            return (*empty, info_box("No store yet: start with `jaxsim app STORE.zarr`, or "
                                     "type a path above."), "")
        try:
            v = registry.get(path)
        except (ParameterError, OSError, ValueError, KeyError) as err:
            return (*empty, error_box(f"jaxsim app: error: {err}", id_="sweep-error"), "")
        names = v.scalar_vars()
        var_opts = [{"label": _var_label(v, n), "value": n} for n in names]
        axes = [{"label": f"{a.name} ({len(a.values)})", "value": a.name} for a in v.axes]
        x = v.axis_names[0]
        y_opts = axes + [{"label": "none (line)", "value": LINE}]
        y = v.axis_names[1] if len(v.axis_names) > 1 else LINE
        spec = v.spec
        info = [html.Div(f"model {spec.model.name}; {spec.n_points:,} points "
                         f"({' × '.join(f'{a.name} {len(a.values)}' for a in v.axes)})"),
                html.Div(f"window [0, {fmt_unit(spec.t1, 's')}], rtol {spec.rtol:g}, "
                         f"{spec.dtype}, solver {spec.solver}"),
                html.Div("fixed: " + (", ".join(f"{k} = {fmt(x_)}" for k, x_ in spec.fixed)
                                      or "model defaults"))]
        return var_opts, names[0] if names else None, axes, x, y_opts, y, "", info

    @app.callback(Output("sweep-sliders", "children"),
                  Input("sweep-store", "value"), Input("sweep-x", "value"),
                  Input("sweep-y", "value"),
                  State({"type": "sweep-at", "axis": ALL}, "id"),
                  State({"type": "sweep-at", "axis": ALL}, "value"))
    def sliders(path, x, y, ids, values):
        if not path or not x:
            return []
        try:
            v = registry.get(path)
        except Exception:  # noqa: BLE001 (the store callback shows the message)
            return []
        old = _at_dict(ids, values)
        out = []
        for ax in v.axes:
            if ax.name in (x, y):
                continue
            val = old.get(ax.name, (len(ax.values) - 1) // 2)
            out.append(_slider(ax, min(val, len(ax.values) - 1)))
        if not out:
            out = [html.Div("every axis is on the map", className="muted small")]
        return out

    # the value next to each slider follows it in the browser (no round trip)
    app.clientside_callback(
        """function(i, texts) {
            if (i === undefined || i === null || !texts) {
                return window.dash_clientside.no_update; }
            return texts[i];
        }""",
        Output({"type": "sweep-at-label", "axis": MATCH}, "children"),
        Input({"type": "sweep-at", "axis": MATCH}, "value"),
        State({"type": "sweep-at-text", "axis": MATCH}, "data"))

    @app.callback(Output("sweep-heatmap", "figure"), Output("sweep-timing", "children"),
                  Input("sweep-store", "value"), Input("sweep-var", "value"),
                  Input("sweep-x", "value"), Input("sweep-y", "value"),
                  Input("sweep-colour", "value"),
                  Input({"type": "sweep-at", "axis": ALL}, "value"),
                  Input("sweep-selected", "data"),
                  State({"type": "sweep-at", "axis": ALL}, "id"))
    def draw(path, var, x, y, colour, at_values, selected, at_ids):
        if not path or not var or not x or not y:
            return _empty_figure("choose a store, a variable and two axes"), ""
        t0 = time.perf_counter()
        try:
            v = registry.get(path)
            if x == y:
                return _empty_figure("x and y are the same axis: choose two different axes"), ""
            at = _at_dict(at_ids, at_values)
            for ax in v.axes:
                at.setdefault(ax.name, (len(ax.values) - 1) // 2)
            sel = selected if selected and selected.get("path") == path else None
            fig = (line_figure(v, var, x, at, colour) if y == LINE
                   else heatmap_figure(v, var, x, y, at, colour, sel))
        except (ParameterError, KeyError, ValueError, IndexError) as err:
            return _empty_figure(str(err)), ""
        ms = (time.perf_counter() - t0) * 1e3
        return fig, f"slice read and drawn in {ms:.0f} ms (server side)"

    @app.callback(Output("sweep-point", "children"), Output("sweep-selected", "data"),
                  Input("sweep-heatmap", "clickData"),
                  State("sweep-store", "value"), State("sweep-x", "value"),
                  State("sweep-y", "value"),
                  State({"type": "sweep-at", "axis": ALL}, "id"),
                  State({"type": "sweep-at", "axis": ALL}, "value"),
                  prevent_initial_call=True)
    def clicked(click, path, x, y, at_ids, at_values):
        if not click or not click.get("points"):
            return no_update, no_update
        pt = click["points"][0]
        v = registry.get(path)
        index = _at_dict(at_ids, at_values)
        index[x] = _nearest(v.axis(x), pt.get("x"), raw=y == LINE)
        if y != LINE:
            index[y] = _nearest(v.axis(y), pt.get("y"))
        for ax in v.axes:
            index.setdefault(ax.name, (len(ax.values) - 1) // 2)
        try:
            panel = point_panel(v, index, compute_lock)
        except (ParameterError, RuntimeError, ValueError) as err:
            panel = error_box(f"jaxsim app: error: {err}")
        return panel, {"path": path, "index": index}


def _nearest(ax: S.AxisInfo, shown, raw: bool = False) -> int:
    """Grid index of a clicked coordinate (heatmaps draw log10 on log axes; lines the value)."""
    vals = _axis_values(ax)
    x = float(shown)
    if raw and ax.log:
        x = np.log10(x)
    elif raw:
        vals = ax.values
    return int(np.argmin(np.abs(vals - x)))


def _var_label(v: S.StoreView, name: str) -> str:
    info = v.vars[name]
    u = unit_label(info.unit)
    kind = "elasticity: " if name.startswith("d_") else ""
    return f"{kind}{name}" + (f" ({u})" if u else "")


def _empty_figure(message: str):
    fig = go.Figure()
    fig.update_layout(**base_layout(xaxis=dict(visible=False), yaxis=dict(visible=False)),
                      annotations=[dict(text=message, showarrow=False, x=0.5, y=0.5,
                                        xref="paper", yref="paper", font=dict(size=15))])
    return fig


def _colour_mode(z, var, colour) -> str:
    fin = z[np.isfinite(z)]
    positive = fin.size and np.all(fin > 0)
    if colour == "log":
        return "log" if positive else "linear"
    if colour == "linear" or var in ("status",) or var.startswith("d_"):
        return "linear"
    if positive and fin.max() / fin.min() > 100:
        return "log"
    return "linear"


def _slice_title(v, var, fixed_axes, at) -> str:
    parts = [f"{n} = {fmt_unit(v.axis(n).values[at[n]], v.axis(n).unit, 3)}" for n in fixed_axes]
    return f"<b>{var}</b>" + (" at " + ", ".join(parts) if parts else "")


def _sig(a, digits=6):
    """Numbers rounded to ``digits`` significant digits (short JSON, exact enough to read)."""
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(np.isfinite(a) & (a != 0), np.floor(np.log10(np.abs(a))), 0)
        f = 10.0 ** (digits - 1 - mag)
        return np.where(np.isfinite(a), np.round(a * f) / f, a)


def heatmap_figure(v: S.StoreView, var, x, y, at, colour="auto", selected=None) -> dict:
    """The map as a plain figure dict (no plotly validation: a redraw costs milliseconds)."""
    z = v.slice2d(var, x, y, at).astype(float)
    st = v.slice2d("status", x, y, at) if "status" in v.vars else np.zeros(z.shape, int)
    ax, ay = v.axis(x), v.axis(y)
    xs, ys = _axis_values(ax), _axis_values(ay)
    info = v.vars[var]
    mode = _colour_mode(z, var, colour)
    with np.errstate(divide="ignore", invalid="ignore"):
        zc = np.log10(z) if mode == "log" else z
    XX, YY = np.meshgrid(_sig(ax.values), _sig(ay.values))
    custom = np.stack([XX, YY, _sig(z), st.astype(float)], axis=-1)
    custom = np.where(np.isfinite(custom), custom, None).tolist()
    messages = {int(c): S.status_message(c) for c in np.unique(st)}
    text = [[messages[int(c)] for c in row] for row in st]
    unit = unit_label(info.unit)
    cbar = dict(title=dict(text=f"{var}" + (f"<br>({unit})" if unit else ""), side="right"),
                thickness=16)
    fin = zc[np.isfinite(zc)]
    if mode == "log" and fin.size:
        vals, ticks = log_ticks(float(fin.min()), float(fin.max()), 7)
        cbar.update(tickvals=vals, ticktext=ticks)
    hover = (f"{x} = %{{customdata[0]:.4g}} {unit_label(ax.unit)}<br>"
             f"{y} = %{{customdata[1]:.4g}} {unit_label(ay.unit)}<br>"
             f"{var} = %{{customdata[2]:.5g}} {unit}<br>status: %{{text}}<extra></extra>")
    heat = dict(type="heatmap", z=np.where(np.isfinite(zc), zc, None).tolist(),
                x=xs.tolist(), y=ys.tolist(), customdata=custom, text=text, colorbar=cbar,
                hovertemplate=hover, hoverongaps=False)
    if var.startswith("d_"):
        heat.update(colorscale="RdBu", reversescale=True, zmid=0)
    elif var == "status":
        heat.update(colorscale=[[0, "#f7f7f7"], [1, "#b2182b"]])
    else:
        heat.update(colorscale="Viridis")
    data = [heat]
    bad = np.argwhere(st != 0)
    if bad.size:
        data.append(dict(
            type="scatter", x=xs[bad[:, 1]].tolist(), y=ys[bad[:, 0]].tolist(), mode="markers",
            name=f"failed ({len(bad)})",
            marker=dict(symbol="x-thin", size=9, line=dict(width=2, color="#d62728")),
            customdata=[custom[i][j] for i, j in bad], text=[text[i][j] for i, j in bad],
            hovertemplate=hover))
    if selected:
        idx = selected["index"]
        same = all(idx.get(n) == at.get(n) for n in v.axis_names if n not in (x, y))
        if same and x in idx and y in idx:
            data.append(dict(
                type="scatter", x=[float(xs[idx[x]])], y=[float(ys[idx[y]])], mode="markers",
                name="selected point", hoverinfo="skip",
                marker=dict(symbol="circle-open", size=16, line=dict(width=3, color="#111"))))
    fixed_axes = [n for n in v.axis_names if n not in (x, y)]
    layout = base_layout(
        title=dict(text=_slice_title(v, var, fixed_axes, at), x=0.01, font=dict(size=14)),
        xaxis=_axis_layout(ax), yaxis=_axis_layout(ay), plot_bgcolor="#d9d9d9",
        showlegend=bool(bad.size), uirevision=f"{v.path}{x}{y}", clickmode="event")
    return {"data": data, "layout": layout}


def line_figure(v: S.StoreView, var, x, at, colour="auto"):
    """``var`` along one axis (every other axis at its slider)."""
    ax = v.axis(x)
    other = next((n for n in v.axis_names if n != x), None)
    if other is None:
        z = np.asarray(v.array(var)[:], dtype=float)
        st = np.asarray(v.array("status")[:]) if "status" in v.vars else np.zeros(z.shape, int)
    else:
        z2 = v.slice2d(var, x, other, at).astype(float)
        st2 = v.slice2d("status", x, other, at)
        j = at[other]
        z, st = z2[j], st2[j]
    info = v.vars[var]
    idx = np.arange(len(ax.values))
    custom = np.stack([ax.values, ax.values, z, st.astype(float), idx, idx], axis=-1)
    fig = go.Figure(go.Scatter(
        x=ax.values, y=z, mode="lines+markers", customdata=custom.tolist(),
        line=dict(color=COLORS["n"], width=2),
        text=[S.status_message(s) for s in st], name=var,
        hovertemplate=(f"{x} = %{{x:.4g}} {unit_label(ax.unit)}<br>{var} = %{{y:.5g}} "
                       f"{unit_label(info.unit)}<br>status: %{{text}}<extra></extra>")))
    bad = np.flatnonzero(st != 0)
    if bad.size:
        fig.add_trace(go.Scatter(x=ax.values[bad], y=np.where(np.isfinite(z[bad]), z[bad], 0),
                                 mode="markers", name=f"failed ({bad.size})",
                                 marker=dict(symbol="x", size=10, color="#d62728")))
    fin = z[np.isfinite(z)]
    ylog = _colour_mode(z, var, colour) == "log" and fin.size
    fixed_axes = [n for n in v.axis_names if n != x]
    fig.update_layout(**base_layout(
        title=dict(text=_slice_title(v, var, fixed_axes, at), x=0.01, font=dict(size=14)),
        xaxis=dict(title=f"{x} ({unit_label(ax.unit)})", type="log" if ax.log else "linear"),
        yaxis=dict(title=f"{var} ({unit_label(info.unit)})", type="log" if ylog else "linear")))
    return fig


def point_panel(v: S.StoreView, index: dict, lock: threading.Lock):
    """Stored values next to the recomputed ones, the decay (log and linear time) and a table."""
    values = v.point_values(index)
    stored = v.point(index)
    t0 = time.perf_counter()
    with lock:
        res = S.point_decay(v.spec, values)
    secs = time.perf_counter() - t0
    model = v.spec.model
    status = S.status_message(stored.get("status", 0))
    head = html.Div(className="point-head", children=[
        html.H3("Point"),
        html.Div(", ".join(f"{k} = {fmt_unit(val, v.axis(k).unit)}" for k, val in values.items()),
                 id="sweep-point-values", **{"data-point": json.dumps(values)}),
        html.Div([html.Span("stored status: "), html.Strong(status, id="sweep-point-status",
                                                            className="ok" if status == "success"
                                                            else "bad")]),
    ])
    rows = []
    for name, sv in stored.items():
        if name in S.BOOKKEEPING:
            continue
        rv = res["summaries"].get(name)
        unit = v.vars[name].unit
        if rv is None:
            diff = "stored only"
        elif np.isfinite(sv) and np.isfinite(rv) and sv != 0:
            diff = f"{abs(rv / sv - 1):.1e}"
        else:
            diff = "–"
        rows.append(html.Tr([
            html.Td(name, title=v.vars[name].long_name),
            html.Td(fmt_unit(sv, unit, 6), **{"data-value": repr(float(sv))},
                    className="num stored"),
            html.Td(fmt_unit(rv, unit, 6) if rv is not None else "–",
                    **{"data-value": repr(float(rv)) if rv is not None else ""},
                    className="num recomputed"),
            html.Td(diff, className="num"),
        ], **{"data-name": name}))
    compare = html.Table(id="sweep-compare", className="table", children=[
        html.Thead(html.Tr([html.Th("observable"), html.Th("stored"), html.Th("recomputed"),
                            html.Th("rel. diff")])),
        html.Tbody(rows)])
    note = [f"recomputed in {secs:.2f} s (solver {res['solver']}, rtol {v.spec.rtol:g}, "
            f"{v.spec.dtype}; summaries on the sweep's time grid)"]
    if res.get("summary_error"):
        note.append(" — " + res["summary_error"])
    if res.get("summary_note"):
        note.append(" — " + res["summary_note"])
    names = list(model.state_names) + ["pl"]
    readout_t = S.decade_times(res["t"])
    trs = []
    for tv in readout_t:
        j = int(np.argmin(np.abs(res["t"] - tv)))
        cells = [html.Td(fmt_unit(res["t"][j], "s", 6), **{"data-value": repr(float(res["t"][j]))})]
        for nm in names:
            val = float(res[nm][j])
            cells.append(html.Td(fmt(val, 6), className="num", **{"data-value": repr(val)}))
        trs.append(html.Tr(cells))
    unit_of = {nm: "cm⁻³" for nm in model.state_names}
    unit_of["pl"] = "cm⁻³ s⁻¹"
    readout = html.Table(id="sweep-readout", className="table", children=[
        html.Thead(html.Tr([html.Th("t")] + [html.Th(f"{nm} ({unit_of[nm]})", **{"data-col": nm})
                                             for nm in names])),
        html.Tbody(trs)])
    graphs = html.Div(className="two", children=[
        dcc.Graph(id="sweep-decay-log", figure=decay_figure(res, model, log_time=True),
                  config={"displaylogo": False}, style={"height": "340px"}),
        dcc.Graph(id="sweep-decay-lin", figure=decay_figure(res, model, log_time=False),
                  config={"displaylogo": False}, style={"height": "340px"}),
    ])
    stored_curves = []
    if v.curve_vars():
        stored_curves = [html.H4("Stored curves (markers) and recomputed (lines)"),
                         dcc.Graph(id="sweep-stored-curves", figure=stored_curves_figure(
                             v, index, res), config={"displaylogo": False},
                             style={"height": "400px"})]
    return html.Div([head, graphs, *stored_curves, html.Div(className="two", children=[
        html.Div([html.H4("Stored vs recomputed"), compare,
                  html.Div(note, className="muted small")]),
        html.Div([html.H4("Decay values"), readout])])])


def recomputed_curve(res, var: str) -> np.ndarray:
    """The recomputed point's curve ``var`` (a state, ``pl`` or ``pl_norm``) on the sweep's
    curve grid (``res["t_lin"]``, :func:`stores.summary_grid`); ``pl_norm`` is PL over PL at
    t = 0 (the first time of the log grid)."""
    if var == "pl_norm":
        return np.asarray(res["pl_lin"], float) / float(res["pl"][0])
    return np.asarray(res[f"{var}_lin"], float)


def stored_curves_figure(v: S.StoreView, index: dict, res) -> dict:
    """Each stored ``curve_*`` at the point (markers) over the freshly computed one (line) on
    the same time grid, one y axis per unit; the largest relative difference in the legend."""
    t = v.curve_times()
    names = v.curve_vars()
    units = list(dict.fromkeys(v.vars[n].unit for n in names))
    data = []
    for k, name in enumerate(names):
        var = name[len("curve_"):]
        unit = v.vars[name].unit
        stored = v.point_curve(name, index)
        fresh = recomputed_curve(res, var)
        ok = np.isfinite(stored) & (stored != 0)
        diff = float(np.max(np.abs(fresh[ok] / stored[ok] - 1))) if ok.any() else float("nan")
        color = COLORS.get(var[:-5] if var.endswith("_norm") else var, "#444444")
        axis = "" if units.index(unit) == 0 else str(units.index(unit) + 1)
        lab = f"{var} ({unit_label(unit) or '1'})"
        step = max(1, t.size // 120)  # markers readable over the line
        data.append(dict(type="scatter", mode="markers", x=(t[::step] / 1e-9).tolist(),
                         y=_pos(stored[::step]), name=f"{lab} stored", yaxis="y" + axis,
                         marker=dict(color=color, size=7, symbol="circle-open"),
                         hovertemplate=f"{var} stored: %{{y:.6g}}<extra></extra>"))
        data.append(dict(type="scatter", mode="lines", x=(t / 1e-9).tolist(), y=_pos(fresh),
                         name=f"{lab} recomputed (max rel. diff {diff:.1e})",
                         yaxis="y" + axis, line=dict(color=color, width=1.5),
                         hovertemplate=f"{var} recomputed: %{{y:.6g}}<extra></extra>"))
    per_unit = {u: [] for u in units}
    for name in names:
        per_unit[v.vars[name].unit].append(v.point_curve(name, index))
    layout = base_layout(margin=dict(l=70, r=90, t=30, b=40),
                         legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
                         xaxis=dict(title=dict(text="time (ns)")))
    for i, unit in enumerate(units):
        ax = dict(type="log", exponentformat="power", dtick=log_dtick(*per_unit[unit]),
                  title=dict(text=unit_label(unit) or "normalised (1)"))
        if i:
            ax.update(overlaying="y", side="right", showgrid=False)
        layout["yaxis" if i == 0 else f"yaxis{i + 1}"] = ax
    return {"data": data, "layout": layout}


def _pos(a):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > 0), a, None).tolist()


def decay_figure(res, model, *, log_time: bool):
    suffix = "" if log_time else "_lin"
    t = np.asarray(res["t" if log_time else "t_lin"]) / 1e-9
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for nm in model.state_names:
        y = np.asarray(res[nm + suffix])
        fig.add_trace(go.Scatter(x=t, y=np.where(y > 0, y, np.nan), name=STATE_LABELS.get(nm, nm),
                                 line=dict(color=COLORS.get(nm), width=2,
                                           dash="dash" if nm == "n_h" else "solid")),
                      secondary_y=False)
    pl = np.asarray(res["pl" + suffix])
    pl0 = pl[0] if pl[0] > 0 else np.nanmax(pl)
    fig.add_trace(go.Scatter(x=t, y=np.where(pl > 0, pl / pl0, np.nan), name="PL / PL(0)",
                             line=dict(color=COLORS["pl"], width=2, dash="dot")), secondary_y=True)
    if log_time:
        t = t[t > 0]
    fig.update_layout(**base_layout(
        title=dict(text="log time" if log_time else "linear time", x=0.01, font=dict(size=13)),
        margin=dict(l=70, r=60, t=60, b=50)))
    fig.update_xaxes(title="time (ns)", type="log" if log_time else "linear")
    dens = [np.asarray(res[nm + suffix]) for nm in model.state_names]
    fig.update_yaxes(title="density (cm⁻³)", type="log", exponentformat="power",
                     dtick=log_dtick(*dens), secondary_y=False)
    fig.update_yaxes(title="PL / PL(0)", type="log", exponentformat="power",
                     dtick=log_dtick(pl / pl0), secondary_y=True, showgrid=False)
    return fig
