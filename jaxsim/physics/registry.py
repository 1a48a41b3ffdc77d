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


__all__ = ["DEFAULT_MODEL", "import_all", "register", "models", "model_names", "get_model"]
