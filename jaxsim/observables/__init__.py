"""Observables of a decay: lifetimes, yields, recombination shares.
"""

from jaxsim.observables.lifetimes import (  # noqa: F401
    E_INV,
    BiexpFit,
    biexp_fit,
    window_weights,
    first_moment,
    tau_1e,
    diffusion_length,
    normalised,
    biexp_fit_batch,
)
from jaxsim.observables.summaries import (  # noqa: F401
    Summary,
    SUMMARIES,
    SHARE_REMAINING,
    carrier_states,
    share_summaries,
    summary_table,
    check_summary_names,
    curve_units,
    PL_SHAPE_SUMMARIES,
    carriers_in,
    recombination_shares,
    summaries,
)

__all__ = [
    'E_INV',
    'BiexpFit',
    'biexp_fit',
    'window_weights',
    'first_moment',
    'tau_1e',
    'diffusion_length',
    'normalised',
    'biexp_fit_batch',
    'Summary',
    'SUMMARIES',
    'SHARE_REMAINING',
    'carrier_states',
    'share_summaries',
    'summary_table',
    'check_summary_names',
    'curve_units',
    'PL_SHAPE_SUMMARIES',
    'carriers_in',
    'recombination_shares',
    'summaries',
]
