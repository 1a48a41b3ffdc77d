"""The model page: move a model's parameters on log sliders and watch the decay respond."""

from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np
from dash import ALL, MATCH, Input, Output, State, dcc, html, no_update

from jaxsim.app.stores import readout_grid
from jaxsim.app.ui import (
    COLORS,
    PALETTE,
    STATE_LABELS,
    base_layout,
    error_box,
    fmt,
    fmt_unit,
    log_dtick,
    unit_label,
)
from jaxsim.physics.errors import ParameterError

#: points of each curve (the log grid and the linear grid have the same length: one compile)
POINTS = 512

#: decades a linear-scale parameter (lower bound 0) spans on its slider; the left end is 0
LINEAR_DECADES = 10

MAX_SAVED = 5

#: colours of saved curves (dashed), apart from the live curves' colours
SAVED_COLORS = ("#444444", "#E69F00", "#56B4E9", "#009E73", "#F0E442")

DEFAULT_T1 = 2e-6

SHARE_LABELS = {"trapping": "trapping (gross)", "detrapping": "detrapping (gross)",
                "bimolecular": "radiative (B)", "auger": "Auger (C)",
                "trap_relaxation": "trap → valence band (K1)", "quenching": "quenching (Q)",
                "remaining": "still excited at t1"}


# requests of the model page in order of arrival: while a drag sends positions faster than they
# are computed, only the newest waiting one is computed (the others answer "no change")
_requests = itertools.count(1)
_latest = [0]


def slider_range(p) -> tuple[float, float, bool]:
    """(min, max, zero_at_left) of a parameter's log10 slider."""
    if p.log and p.fit_lower > 0:
        return math.log10(p.fit_lower), math.log10(p.fit_upper), False
    hi = math.log10(p.fit_upper) if p.fit_upper > 0 else 0.0
    return hi - LINEAR_DECADES, hi, True


def to_slider(p, value: float) -> float:
    lo, hi, zero_left = slider_range(p)
    if value <= 0:
        return lo
    return float(np.clip(math.log10(value), lo, hi))


def from_slider(p, x: float) -> float:
    lo, hi, zero_left = slider_range(p)
    if zero_left and x <= lo + 1e-9:
        return 0.0
    return float(10.0 ** x)


def model_curves(model, params: dict, t1: float, rep_rate: float | None = None,
                 diffusion_coefficient: float = 0.017, rtol: float = 1e-6) -> dict:
    """Decay of one parameter set on a log grid and a linear grid, with its summaries."""
    from jaxsim.numerics.config import SolverConfig
    from jaxsim.observables.summaries import summaries
    from jaxsim.physics.registry import get_model

    model = get_model(model)
    config = SolverConfig(rtol=rtol)
    if rep_rate is not None:
        t1 = min(t1, 1.0 / rep_rate)
    grids = {"log": readout_grid(t1, POINTS), "lin": np.linspace(0.0, t1, POINTS)}
    out: dict = {"t1": t1}
    for key, ts in grids.items():
        if rep_rate is None:
            from jaxsim.numerics.reference import solve

            sol = solve(model, params, ts, config=config)
            acc = None
        else:
            from jaxsim.numerics.pulses import steady_state_decay

            r = steady_state_decay(model, params, ts, rep_rate, config)
            sol, acc = r.solution, float(np.asarray(r.carrier_accumulation_percent))
        out[key] = {"t": ts, "pl": np.asarray(sol.pl),
                    **{n: np.asarray(sol.states[n]) for n in model.state_names}}
        out[key + "_status"] = int(np.asarray(sol.status))
        if key == "lin":
            names = ["tau_avg_n", "tau_mean_n", "plqy", "diffusion_length"]
            if float(params.get("B", 1.0)) > 0:
                names.append("tau_mean_pl")
            shares = [f"share_{ch}" for ch in (*model.fluxes_reported, "remaining")]
            s = summaries(sol, names + shares, diffusion_coefficient)
            out["summaries"] = {k: float(np.asarray(v)) for k, v in s.items()}
            out["accumulation"] = acc
            out["solver"] = sol.solver
    out["status"] = max(out["log_status"], out["lin_status"])
    return out


def _param_row(p, value):
    lo, hi, zero_left = slider_range(p)
    marks = {}
    for k in range(math.ceil(lo), math.floor(hi) + 1, max(1, round((hi - lo) / 5))):
        marks[k] = {"label": f"1e{k}"}
    if zero_left:
        marks[lo] = {"label": "0"}
    return html.Div(className="slider-block", title=p.meaning, children=[
        html.Div(className="slider-head", children=[
            html.Span(p.name, className="pname"),
            html.Span(unit_label(p.unit), className="muted small"),
            html.Span(id={"type": "model-label", "name": p.name}, className="pvalue",
                      children=fmt(value)),
        ]),
        dcc.Slider(id={"type": "model-p", "name": p.name}, min=lo, max=hi, step=0.01,
                   value=to_slider(p, value), marks=marks, included=False, updatemode="drag"),
        dcc.Store(id={"type": "model-zero", "name": p.name}, data=lo if zero_left else None),
    ])


def layout():
    from jaxsim.physics.registry import DEFAULT_MODEL, models

    controls = html.Div(className="panel controls", children=[
        html.H3("Model"),
        dcc.Dropdown(id="model-name", options=[{"label": f"{m.name} — {m.description}",
                                                 "value": m.name} for m in models().values()],
                     value=DEFAULT_MODEL, clearable=False, optionHeight=50),
        html.H3("Parameters"),
        html.Div(id="model-params"),
        html.Button("Reset to defaults", id="model-reset", className="btn small"),
        html.H3("Options"),
        html.Div(className="row", children=[
            html.Label("time window t1 (s)", className="grow"),
            dcc.Input(id="model-t1", type="text", value="2e-6", debounce=True,
                      className="num-input"),
        ]),
        html.Div(className="row", children=[
            dcc.Checklist(id="model-train", options=[{"label": " pulse train at", "value": "on"}],
                          value=[], className="grow"),
            dcc.Input(id="model-rep", type="text", value="1e6", debounce=True,
                      className="num-input"),
            html.Span("Hz", className="muted"),
        ]),
        html.Div("With a pulse train the decay is the periodic steady state; a CW bias is "
                 "the parameter G (generation during the decay).", className="muted small"),
        html.Div(className="row", children=[
            html.Label("D_c for L (cm²/s)", className="grow"),
            dcc.Input(id="model-dc", type="text", value="0.017", debounce=True,
                      className="num-input"),
        ]),
        html.Label("time axis"),
        dcc.RadioItems(id="model-axis", options=[{"label": " log", "value": "log"},
                                                 {"label": " linear", "value": "linear"}],
                       value="log", inline=True, className="radio"),
        html.H3("Saved curves"),
        html.Div(className="row", children=[
            html.Button("Save curve", id="model-save", className="btn"),
            html.Button("Clear", id="model-clear", className="btn small"),
        ]),
        html.Div(id="model-saved-list", className="muted small"),
    ])
    cards = html.Div(className="cards", children=[
        _card("τ_avg (n, 2-exp fit)", "model-tau-avg"),
        _card("τ_mean (PL, 1st moment)", "model-tau-mean"),
        _card("PLQY", "model-plqy"),
        _card("diffusion length L", "model-ld"),
        _card("carrier accumulation", "model-acc"),
    ])
    main = html.Div(className="main", children=[
        html.Div(className="panel", children=[
            cards,
            html.Div(id="model-msg"),
            dcc.Graph(id="model-decay", config={"displaylogo": False}, style={"height": "430px"}),
            html.Div(id="model-timing", className="muted small"),
        ]),
        html.Div(className="panel", children=[
            html.H4("Where the carriers went (share of what a pulse puts in, n0 + G t1)"),
            dcc.Graph(id="model-shares", config={"displaylogo": False},
                      style={"height": "260px"}),
        ]),
    ])
    return html.Div(className="page-grid", children=[
        controls, main, dcc.Store(id="model-saved", data=[]), dcc.Store(id="model-current")])


def _card(title, id_):
    return html.Div(className="card", children=[html.Div(title, className="card-title"),
                                                html.Div("–", id=id_, className="card-value")])


def register(app, lock: threading.Lock):
    from jaxsim.physics.registry import get_model

    @app.callback(Output("model-params", "children"), Input("model-name", "value"),
                  Input("model-reset", "n_clicks"))
    def params(name, _):
        m = get_model(name)
        return [_param_row(p, p.default) for p in m.parameters]

    # the value next to each slider follows it in the browser (no round trip)
    app.clientside_callback(
        """function(x, lo) {
            if (x === undefined || x === null) { return window.dash_clientside.no_update; }
            if (lo !== null && lo !== undefined && x <= lo + 1e-9) { return "0"; }
            const v = Math.pow(10, x);
            if (v >= 1e-3 && v < 1e5) { return String(Number(v.toPrecision(4))); }
            const [m, e] = v.toExponential(3).split("e");
            return String(Number(m)) + "e" + String(Number(e));
        }""",
        Output({"type": "model-label", "name": MATCH}, "children"),
        Input({"type": "model-p", "name": MATCH}, "value"),
        State({"type": "model-zero", "name": MATCH}, "data"))

    @app.callback(Output("model-decay", "figure"), Output("model-shares", "figure"),
                  Output("model-tau-avg", "children"), Output("model-tau-mean", "children"),
                  Output("model-plqy", "children"), Output("model-ld", "children"),
                  Output("model-acc", "children"), Output("model-timing", "children"),
                  Output("model-msg", "children"), Output("model-current", "data"),
                  Input({"type": "model-p", "name": ALL}, "value"),
                  Input("model-t1", "value"), Input("model-train", "value"),
                  Input("model-rep", "value"), Input("model-dc", "value"),
                  Input("model-axis", "value"), Input("model-saved", "data"),
                  State({"type": "model-p", "name": ALL}, "id"), State("model-name", "value"))
    def compute(xs, t1, train, rep, dc, axis, saved, ids, name):
        m = get_model(name)
        rows = {r.name: r for r in m.parameters}
        if not ids or any(i["name"] not in rows for i in ids):
            return (no_update,) * 10
        values = {i["name"]: from_slider(rows[i["name"]], x) for i, x in zip(ids, xs)}
        rep_rate = None
        try:
            t1 = _number(t1, "time window t1")
            dc = _number(dc, "D_c")
            rep = _number(rep, "repetition rate")
            if t1 is None or not (t1 > 0):
                raise ParameterError(f"time window t1 = {t1!r}: expected a time > 0 s")
            if dc is None or not (dc > 0):
                raise ParameterError(f"D_c = {dc!r}: expected a positive diffusion coefficient "
                                     "in cm^2/s")
            if "on" in (train or []):
                if rep is None or not (rep > 0):
                    raise ParameterError(f"repetition rate = {rep!r}: expected a rate > 0 Hz")
                rep_rate = float(rep)
            mine = next(_requests)
            _latest[0] = mine
            with lock:
                if _latest[0] != mine:  # a newer slider position arrived: skip this one
                    return (no_update,) * 10
                t0 = time.perf_counter()
                res = model_curves(m, values, float(t1), rep_rate, float(dc))
                secs = time.perf_counter() - t0
        except (ParameterError, RuntimeError) as err:
            return (no_update, no_update, "–", "–", "–", "–", "–", "",
                    error_box(f"jaxsim app: error: {err}", id_="model-error"), no_update)
        s = res["summaries"]
        msg = ""
        if res["status"] != 0:
            from jaxsim.numerics.config import STATUS_MESSAGES

            msg = error_box(f"the solve did not succeed ({STATUS_MESSAGES[res['status']]}): "
                            "values shown may be wrong", title="Warning")
        label = ", ".join(f"{k}={fmt(v, 3)}" for k, v in values.items() if k != "G" or v)
        current = f"{m.name}: {label}"  # the curves themselves are read from the figure on save
        fig = decay_figure(res, m, axis, saved or [])
        shares = shares_figure(s, m)
        acc = "–" if res["accumulation"] is None else f"{res['accumulation']:.3g} %"
        return (fig, shares, _value(s.get("tau_avg_n"), "s"), _value(s.get("tau_mean_pl"), "s"),
                _value(s.get("plqy"), "1", pct=True), _value(s.get("diffusion_length"), "cm"),
                acc, f"computed in {secs * 1e3:.0f} ms (solver {res['solver']}, two solves of "
                f"{POINTS} points)", msg, current)

    @app.callback(Output("model-saved", "data"), Output("model-saved-list", "children"),
                  Input("model-save", "n_clicks"), Input("model-clear", "n_clicks"),
                  State("model-current", "data"), State("model-decay", "figure"),
                  State("model-saved", "data"), prevent_initial_call=True)
    def save(_, __, current, fig, saved):
        from dash import ctx

        saved = list(saved or [])
        if ctx.triggered_id == "model-clear":
            saved = []
        elif current and fig:
            live = live_curves(fig)
            if live is not None:
                saved = (saved + [{"label": current, **live}])[-MAX_SAVED:]
        items = [html.Div(f"{i + 1}. {c['label']}") for i, c in enumerate(saved)]
        return saved, items or "none"


def live_curves(fig) -> dict | None:
    """The live PL/PL(0) and n of a decay figure (its last traces) as a saved curve: times in
    s, as :func:`decay_figure` draws saved curves."""
    traces = fig.get("data") or []
    pl = next((t for t in reversed(traces) if t.get("name") == "PL"), None)
    n = next((t for t in reversed(traces) if t.get("name") == STATE_LABELS["n"]), None)
    if pl is None or n is None:
        return None
    return {"t": [x * 1e-9 for x in pl["x"]], "pl": pl["y"], "n": n["y"]}


def _number(text, what):
    if text is None or str(text).strip() == "":
        return None
    try:
        return float(str(text).strip())
    except ValueError:
        raise ParameterError(f"{what} = {text!r}: expected a number, e.g. 2e-6") from None


def _grid(axis):
    return "log" if axis == "log" else "lin"


def _keep(size, n=256):
    """Indices of about ``n`` evenly spread samples, first and last included."""
    return np.unique(np.linspace(0, size - 1, min(size, n)).round().astype(int))


def _norm(y):
    y = np.asarray(y, dtype=float)
    ref = y[0] if y[0] > 0 else np.nanmax(y)
    return y / ref if ref > 0 else y


def _value(v, unit, pct=False):
    if v is None:
        return html.Span("–")
    if pct and np.isfinite(v):
        text = f"{fmt(v * 100, 4)} %"
    else:
        text = fmt_unit(v, unit)
    return html.Span(text, **{"data-value": repr(float(v))})


def _list(a):
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > 0), a, None).tolist()


def decay_figure(res, model, axis, saved) -> dict:
    """PL (left) and carrier densities (right) as a plain figure dict (no validation cost)."""
    g = res[_grid(axis)]
    keep = _keep(np.asarray(g["t"]).size)  # ~256 points drawn: enough for the eye
    g = {k: np.asarray(v)[keep] for k, v in g.items()}
    t = (g["t"] / 1e-9).tolist()
    data = []
    for i, c in enumerate(saved):
        tc = (np.asarray(c["t"], dtype=float) / 1e-9).tolist()
        color = SAVED_COLORS[i % len(SAVED_COLORS)]
        line = dict(color=color, dash="dash", width=1.5)
        hover = c["label"] + "<extra></extra>"
        data.append(dict(type="scatter", x=tc, y=c["pl"], name=f"saved {i + 1}",
                         legendgroup=f"s{i}", line=line, hovertemplate=hover))
        data.append(dict(type="scatter", x=tc, y=c["n"], name=f"saved {i + 1}", xaxis="x2",
                         yaxis="y2", legendgroup=f"s{i}", showlegend=False, line=line,
                         hovertemplate=hover))
    data.append(dict(type="scatter", x=t, y=_list(_norm(g["pl"])), name="PL",
                     line=dict(color=COLORS["pl"], width=2.5)))
    for nm in model.state_names:
        data.append(dict(type="scatter", x=t, y=_list(g[nm]), name=STATE_LABELS.get(nm, nm),
                         xaxis="x2", yaxis="y2",
                         line=dict(color=COLORS.get(nm), width=2.5,
                                   dash="dash" if nm == "n_h" else "solid")))
    xtype = "log" if axis == "log" else "linear"
    yax = dict(type="log", exponentformat="power")
    dt1 = log_dtick(_norm(g["pl"]), *[c["pl"] for c in saved])
    dt2 = log_dtick(*[g[nm] for nm in model.state_names])
    layout = base_layout(
        margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2, x=0),
        uirevision=axis,
        xaxis=dict(domain=[0, 0.45], title=dict(text="time (ns)"), type=xtype, anchor="y"),
        yaxis=dict(yax, anchor="x", dtick=dt1),
        xaxis2=dict(domain=[0.55, 1], title=dict(text="time (ns)"), type=xtype, anchor="y2"),
        yaxis2=dict(yax, anchor="x2", dtick=dt2),
        annotations=[dict(text="PL / PL(0)", x=0.225, y=1.06, xref="paper", yref="paper",
                          showarrow=False, font=dict(size=14)),
                     dict(text="carrier densities (cm⁻³)", x=0.775, y=1.06, xref="paper",
                          yref="paper", showarrow=False, font=dict(size=14))])
    return {"data": data, "layout": layout}


def shares_figure(s, model) -> dict:
    """Where the carriers went: the loss channels and what is left (they add up to 100 %);
    gross trapping and detrapping (a carrier may be trapped many times) in the title."""
    losses = [k for k in (*model.loss_fluxes, "remaining") if f"share_{k}" in s]
    vals = [s[f"share_{k}"] * 100 for k in losses]
    labels = [SHARE_LABELS.get(k, k) for k in losses]
    colors = [PALETTE[(i + 2) % len(PALETTE)] for i in range(len(losses))]
    bar = dict(type="bar", x=vals, y=labels, orientation="h", marker=dict(color=colors),
               text=[f"{fmt(v, 3)} %" for v in vals], textposition="outside", cliponaxis=False,
               hovertemplate="%{y}: %{x:.4g} %<extra></extra>")
    gross = [f"{SHARE_LABELS[k].split(' ')[0]} {fmt(s[f'share_{k}'] * 100, 3)} %"
             for k in ("trapping", "detrapping") if f"share_{k}" in s]
    title = ("gross, counting repeats: " + ", ".join(gross)) if gross else ""
    layout = base_layout(margin=dict(l=170, r=60, t=30, b=40),
                         title=dict(text=title, x=0.01, font=dict(size=12, color="#66707a")),
                         xaxis=dict(title=dict(text="% of carriers put in"), range=[0, 105]),
                         yaxis=dict(autorange="reversed"))
    return {"data": [bar], "layout": layout}
