"""jaxsim: ion-assisted detrapping in halide perovskites, at scale.

Rate equations of free and trapped carriers (Wen & Jia), solved in batches with diffrax,
reduced to observables, swept over grids, fitted to measured decays.

Layers, each importing only from those below it (checked by import-linter, see pyproject.toml):
``physics`` (parameters, models) < ``observables`` < ``numerics`` (solves, engine) <
``studies`` (sweep, fit, sensitivity, protocols) < ``io`` (files), with ``plots``, ``paper``,
``bench`` and ``cli`` as leaves that nothing imports.

Importing ``jaxsim`` does not import JAX (so ``jaxsim --help`` is instant): the public names
below load on first use, and float64 is switched on for whenever JAX is imported.
"""

import os as _os
import sys as _sys

# Reference accuracy (rtol 1e-7 against float64 SciPy) needs float64; float32 is chosen per
# solve. JAX reads JAX_ENABLE_X64 when it is first imported; if it already is, set it directly.
if "jax" in _sys.modules:
    _sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    _os.environ["JAX_ENABLE_X64"] = "1"

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    "STATUS_MESSAGES": "jaxsim.numerics.config",
    "SolverConfig": "jaxsim.numerics.config",
    "Solution": "jaxsim.numerics.reference",
    "solve": "jaxsim.numerics.reference",
    **{name: "jaxsim.physics" for name in (
        "DEFAULT_MODEL", "Model", "Parameter", "ParameterError", "Params", "get_model",
        "make_params", "model_names", "models", "register")},
}

__all__ = [
    "DEFAULT_MODEL", "Model", "models", "model_names", "register", "get_model", "Parameter",
    "ParameterError", "Params", "make_params", "STATUS_MESSAGES", "Solution", "SolverConfig",
    "solve", "__version__",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jaxsim' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
