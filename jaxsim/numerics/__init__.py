"""Numerics: solver settings, the reference diffrax solve, the chunk engine, periodic steady
states and the slow-time integrator.
"""

from jaxsim.numerics.config import (  # noqa: F401
    DTYPES,
    SOLVERS,
    STATUS_MESSAGES,
    STIFF_THRESHOLD,
    SolverConfig,
    choose_solver,
    stiffness_index,
)
from jaxsim.numerics.problem import ScaledProblem, integral_units, integrate  # noqa: F401
from jaxsim.numerics.reference import (  # noqa: F401
    ScaledSolution,
    Solution,
    batched_solver,
    check_times,
    initial_step,
    solve,
    solve_scaled,
)

__all__ = [
    'ScaledProblem',
    'integrate',
    'STIFF_THRESHOLD',
    'STATUS_MESSAGES',
    'SOLVERS',
    'DTYPES',
    'SolverConfig',
    'choose_solver',
    'stiffness_index',
    'check_times',
    'ScaledSolution',
    'initial_step',
    'solve_scaled',
    'Solution',
    'integral_units',
    'batched_solver',
    'solve',
]
