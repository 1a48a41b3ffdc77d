"""Physics: parameter tables, the abstract model, one file per model in ``models/``.

Nothing here imports from another layer of jaxsim.
"""

from jaxsim.physics.errors import (  # noqa: F401
    ParameterError,
)
from jaxsim.physics.parameters import (  # noqa: F401
    Parameter,
    table_lookup,
    Params,
    make_params,
    as_params,
    broadcast,
)
from jaxsim.physics.model import (  # noqa: F401
    NS,
    FREE,
    TRAPPED,
    HOLES,
    KINDS,
    CARRIER_KINDS,
    State,
    Flux,
    Model,
    pl_scale,
)
from jaxsim.physics.registry import (  # noqa: F401
    DEFAULT_MODEL,
    register,
    models,
    model_names,
    get_model,
)

__all__ = [
    'ParameterError',
    'Parameter',
    'table_lookup',
    'Params',
    'make_params',
    'as_params',
    'broadcast',
    'NS',
    'FREE',
    'TRAPPED',
    'HOLES',
    'KINDS',
    'CARRIER_KINDS',
    'State',
    'Flux',
    'Model',
    'pl_scale',
    'DEFAULT_MODEL',
    'register',
    'models',
    'model_names',
    'get_model',
]
