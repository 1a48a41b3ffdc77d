"""diffrax, imported on first use.

``from jaxsim.numerics import _diffrax as diffrax`` reads like the real module; the import
(~0.3 s) happens at the first attribute looked up. A fit (which steps its own integrator) and
the command line's help never pay for it.
"""

import importlib


def __getattr__(name: str):
    return getattr(importlib.import_module("diffrax"), name)
