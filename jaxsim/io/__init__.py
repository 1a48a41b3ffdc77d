"""Input and output at the edges: decay files (text, PicoQuant, Becker & Hickl).
"""

from jaxsim.io.readers import (  # noqa: F401
    COMMENT_PREFIXES,
    read_text,
    read_ptu,
    read_phu,
    read_sdt,
    read_decays,
    read_irf,
    write_text,
)
from jaxsim.studies.decays import (  # noqa: F401
    TIME_UNITS,
    EV,
    DataError,
    DecaySet,
    n0_from_fluence,
    time_scale,
    from_arrays,
    gaussian_irf,
    crop,
    shift_to_peak,
    normalise,
    rebin,
)

__all__ = [
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
