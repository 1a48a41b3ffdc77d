"""The explorer: a local web app to browse sweeps, play with a model and fit decays.

``jaxsim app [STORE.zarr | FOLDER | DATAFILE ...]`` serves three pages (Dash + Plotly, every
asset served locally): *Sweep* (heatmaps of a store, read slice by slice; click a point to
recompute its decay), *Model* (log sliders over a model's parameters, live decays and
summaries) and *Fit* (upload a decay file and fit it as ``jaxsim fit`` does). A leaf package:
nothing else in jaxsim imports it. Needs the ``app`` extra (``pip install -e ".[app]"``).
"""

from __future__ import annotations


def create_app(paths=(), **kw):
    """The Dash app (see :func:`jaxsim.app.server.create_app`)."""
    from jaxsim.app.server import create_app as _create

    return _create(paths, **kw)
