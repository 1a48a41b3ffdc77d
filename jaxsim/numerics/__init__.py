"""Numerics: solver settings, the reference diffrax solve, the chunk engine, periodic steady
states and the slow-time integrator.
"""

from jaxsim.numerics.config import (  # noqa: F401
    STIFF_THRESHOLD,
    LOCAL_SAFETY,
    STATUS_MESSAGES,
    SOLVERS,
    DTYPES,
    SolverConfig,
    persistent_rate,
    choose_solver,
    pid_controller,
)
from jaxsim.numerics.reference import (  # noqa: F401
    check_times,
    ScaledSolution,
    initial_step,
    solve_scaled,
    Solution,
    integral_units,
    padded_size,
    batched_solver,
    solve,
)

__all__ = [
    'STIFF_THRESHOLD',
    'LOCAL_SAFETY',
    'STATUS_MESSAGES',
    'SOLVERS',
    'DTYPES',
    'SolverConfig',
    'persistent_rate',
    'choose_solver',
    'pid_controller',
    'check_times',
    'ScaledSolution',
    'initial_step',
    'solve_scaled',
    'Solution',
    'integral_units',
    'padded_size',
    'batched_solver',
    'solve',
]
