"""Input and output at the edges: spec files (``spec_files``) and decay files (``readers``,
one module per format in ``formats/``), with the decay containers and transforms of
:mod:`jaxsim.studies.decays` re-exported for convenience.
"""

from jaxsim.io.formats.becker_hickl import read_sdt  # noqa: F401
from jaxsim.io.formats.picoquant import read_phu, read_ptu  # noqa: F401
from jaxsim.io.formats.text import COMMENT_PREFIXES, read_text, write_text  # noqa: F401
from jaxsim.io.readers import formats, read_decays, read_irf, register_format  # noqa: F401
from jaxsim.studies.decays import (  # noqa: F401
    EV,
    TIME_UNITS,
    DataError,
    DecaySet,
    crop,
    from_arrays,
    gaussian_irf,
    n0_from_fluence,
    normalise,
    rebin,
    shift_to_peak,
    time_scale,
)

__all__ = [
    'formats',
    'register_format',
    'COMMENT_PREFIXES',
    'read_text',
    'read_ptu',
    'read_phu',
    'read_sdt',
    'read_decays',
    'read_irf',
    'write_text',
    'TIME_UNITS',
    'EV',
    'DataError',
    'DecaySet',
    'n0_from_fluence',
    'time_scale',
    'from_arrays',
    'gaussian_irf',
    'crop',
    'shift_to_peak',
    'normalise',
    'rebin',
]
