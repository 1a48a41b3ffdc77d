"""jaxsim: ion-assisted detrapping in halide perovskites, at scale.

Rate equations of free and trapped carriers (Wen & Jia), solved in batches with diffrax,
reduced to observables, swept over grids, fitted to measured decays.

Layers, each importing only from those below it (checked by import-linter, see pyproject.toml):
``physics`` (parameters, models) < ``observables`` < ``numerics`` (solves, engine) <
``studies`` (sweep, fit, sensitivity, protocols) < ``io`` (files), with ``plots``, ``paper``,
``bench`` and ``cli`` as leaves that nothing imports.
"""

import jax

# Reference accuracy (rtol 1e-7 against float64 SciPy) needs float64; float32 is chosen per solve.
jax.config.update("jax_enable_x64", True)

from jaxsim.numerics.config import STATUS_MESSAGES, SolverConfig  # noqa: E402
from jaxsim.numerics.reference import Solution, solve  # noqa: E402
from jaxsim.physics import (  # noqa: E402
    DEFAULT_MODEL,
    Model,
    Parameter,
    ParameterError,
    Params,
    get_model,
    make_params,
    model_names,
    models,
    register,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "Model", "models", "model_names", "register", "get_model", "Parameter",
    "ParameterError", "Params", "make_params", "STATUS_MESSAGES", "Solution", "SolverConfig",
    "solve", "__version__",
]
