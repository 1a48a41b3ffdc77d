"""jaxsim: ion-assisted detrapping in halide perovskites, at scale.

Rate equations of free and trapped carriers (Wen & Jia), solved in batches with diffrax,
reduced to observables, swept over grids, fitted to measured decays.
"""

import jax

# Reference accuracy (rtol 1e-7 against float64 SciPy) needs float64; float32 is chosen per solve.
jax.config.update("jax_enable_x64", True)

from jaxsim.models import DEFAULT_MODEL, MODELS, get_model  # noqa: E402
from jaxsim.params import Parameter, ParameterError, Params, make_params  # noqa: E402
from jaxsim.solve import STATUS_MESSAGES, Solution, SolverConfig, solve  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "MODELS", "get_model", "Parameter", "ParameterError", "Params",
    "make_params", "STATUS_MESSAGES", "Solution", "SolverConfig", "solve", "__version__",
]
