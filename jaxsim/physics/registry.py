"""Model names, for the command line and spec files only.

Inside jaxsim a model travels as an object; this registry maps the names a user types to those
objects. Every module of :mod:`jaxsim.physics.models` is imported on the first lookup, and each
registers its model with :func:`register`, so adding a model is adding one file there. A model
object that was never registered works everywhere except where a name must be typed.
"""

from __future__ import annotations

import importlib
import pkgutil

from jaxsim.physics.errors import ParameterError

DEFAULT_MODEL = "trap_detrap"

_REGISTRY: dict[str, object] = {}
_LOADED = False


def register(model):
    """Make ``model`` (an instance) reachable by ``model.name``; returns it (use at import)."""
    name = model.name
    if name in _REGISTRY and _REGISTRY[name] != model:
        raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name]!r}")
    _REGISTRY[name] = model
    return model


def import_all(package_name: str) -> None:
    """Import every public module of a package: plug-ins (models, file formats) register
    themselves when imported."""
    package = importlib.import_module(package_name)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_all("jaxsim.physics.models")


def models() -> dict:
    """Every registered model by name, the default first."""
    _load_all()
    order = sorted(_REGISTRY, key=lambda n: (n != DEFAULT_MODEL, n))
    return {n: _REGISTRY[n] for n in order}


def model_names() -> tuple[str, ...]:
    """Every name :func:`get_model` accepts, the default first."""
    return tuple(models())


def get_model(model):
    """The model object for a name; a model object is returned as it is."""
    if not isinstance(model, str):
        if hasattr(model, "vector_field") and hasattr(model, "parameters"):
            return model
        raise ParameterError(f"model = {model!r} is not a model: expected a model object or "
                             f"one of {', '.join(model_names())}")
    found = models().get(model)
    if found is None:
        raise ParameterError(
            f"model = {model!r} is not known: expected one of {', '.join(model_names())}")
    return found


#: the generated part of docs/models.md lies between these lines
TABLE_BEGIN = ("<!-- BEGIN MODEL TABLE: generated from the registry by "
               "`jaxsim models --update docs/models.md`; do not edit by hand -->")
TABLE_END = "<!-- END MODEL TABLE -->"


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def _num(x: float) -> str:
    return f"{x:g}"


def model_table_markdown() -> str:
    """Every registered model as markdown: an overview table (name, description, states,
    parameters with units), then per model its states, fluxes and parameter table."""
    rows = ["| model | description | states | parameters |", "|---|---|---|---|"]
    for name, m in models().items():
        label = f"`{name}`" + (" (default)" if name == DEFAULT_MODEL else "")
        states = ", ".join(f"{s.name} ({s.kind})" for s in m.states)
        params = ", ".join(f"{p.name} [{p.unit}]" for p in m.parameters)
        rows.append(f"| {label} | {_cell(m.description)} | {states} | {_cell(params)} |")
    out = ["\n".join(rows)]
    for name, m in models().items():
        sec = [f"### `{name}`", "", _cell(m.description), "",
               "| state | kind | unit | meaning |", "|---|---|---|---|"]
        sec += [f"| {s.name} | {s.kind} | {s.unit} | {_cell(s.meaning)} |" for s in m.states]
        sec += ["", "| flux (share) | from | to | meaning |", "|---|---|---|---|"]
        for f in m.flux_table:
            to = f.sink or ("lost (radiative)" if f.radiative else "lost")
            sec.append(f"| {f.name} (`{f.share}`) | {f.source} | {to} | {_cell(f.meaning)} |")
        sec += ["", "| parameter | unit | default | allowed | fit/sweep range | meaning |",
                "|---|---|---|---|---|---|"]
        for p in m.parameters:
            lo = "[" if p.lower_inclusive else "("
            hi = ")" if p.upper == float("inf") else "]"
            scale = " (log)" if p.log else ""
            sec.append(f"| {p.name} | {p.unit} | {_num(p.default)} | {lo}{_num(p.lower)}, "
                       f"{_num(p.upper)}{hi} | {_num(p.fit_lower)} .. {_num(p.fit_upper)}{scale} "
                       f"| {_cell(p.meaning)} |")
        out.append("\n".join(sec))
    return "\n\n".join(out) + "\n"


def with_model_table(text: str) -> str:
    """``text`` (a markdown file) with the part between :data:`TABLE_BEGIN` and
    :data:`TABLE_END` replaced by :func:`model_table_markdown`."""
    head, sep, rest = text.partition(TABLE_BEGIN)
    _, sep2, tail = rest.partition(TABLE_END)
    if not sep or not sep2:
        raise ValueError(f"expected the marker lines {TABLE_BEGIN!r} and {TABLE_END!r}")
    return f"{head}{TABLE_BEGIN}\n\n{model_table_markdown()}\n{TABLE_END}{tail}"


__all__ = ["DEFAULT_MODEL", "import_all", "register", "models", "model_names", "get_model",
           "model_table_markdown", "with_model_table", "TABLE_BEGIN", "TABLE_END"]
