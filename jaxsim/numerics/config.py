r"""Solver settings, and the one statement of what ``rtol`` and ``atol`` mean.

``rtol`` and ``atol`` are the tolerances of the local error of one step, on every path (the
reference diffrax solve, the chunk engine, pulse trains, fits, protocols): a step is accepted
when the RMS over the state components (the model's scaled states and the running integrals)
of :math:`e_i / (\mathrm{atol} + \mathrm{rtol} \max(|y_i|, |y_i'|))` is at most 1. ``atol`` is
absolute in the scaled variable u = n / n_ref (default ``rtol * 1e-6``, so a decay's tail is
controlled six decades down, as log-scale losses need). The error delivered at the end of a
decay is of the order of ``rtol``: docs/core.md gives measured errors against float64 Radau.

:meth:`SolverConfig.diffrax_solver`, :meth:`SolverConfig.controller` and
:meth:`SolverConfig.diffrax_adjoint` are the one place where settings become diffrax objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics import _diffrax as diffrax
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import NS, Model

STIFF_THRESHOLD = 1e5


STATUS_MESSAGES = (
    "success",
    "max_steps_reached",
    "solver_failed",
    "non_finite",
)


SUCCESS, MAX_STEPS, FAILED, NON_FINITE = range(4)


#: the solvers by name (the diffrax class each name means)
SOLVERS = {
    "tsit5": "Tsit5",
    "dopri5": "Dopri5",
    "dopri8": "Dopri8",
    "kvaerno5": "Kvaerno5",
    "kvaerno3": "Kvaerno3",
}


DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


@dataclass(frozen=True)
class SolverConfig:
    """Numerical settings of a solve (hashable: a static argument of ``jit``).

    ``atol`` is absolute in the scaled variable u = n / n0 (default ``rtol * 1e-6``, low enough
    that the tail of a decay is controlled several decades down, which log-scale losses need).
    ``adjoint`` is ``"checkpoint"`` (reverse mode) or ``"forward"`` (``jax.jvp``/``jacfwd``).
    """

    solver: str = "auto"
    rtol: float = 1e-6
    atol: float | None = None
    max_steps: int = 20_000
    dtype: str = "float64"
    adjoint: str = "checkpoint"
    t_ref: float = NS

    def __post_init__(self):
        if self.solver not in ("auto", *SOLVERS):
            raise ParameterError(
                f"solver = {self.solver!r} is not known: expected 'auto' or one of "
                f"{', '.join(SOLVERS)}")
        if self.dtype not in DTYPES:
            raise ParameterError(f"dtype = {self.dtype!r}: expected 'float32' or 'float64'")
        if not (np.isfinite(self.rtol) and 0 < self.rtol < 1):
            raise ParameterError(f"rtol = {self.rtol!r}: expected a number in (0, 1)")
        if self.atol is not None and not (np.isfinite(self.atol) and self.atol > 0):
            raise ParameterError(f"atol = {self.atol!r}: expected a positive number")
        if int(self.max_steps) < 1:
            raise ParameterError(f"max_steps = {self.max_steps!r}: expected a positive integer")
        if self.adjoint not in ("checkpoint", "forward"):
            raise ParameterError(
                f"adjoint = {self.adjoint!r}: expected 'checkpoint' or 'forward'")

    @property
    def abs_tol(self) -> float:
        return self.rtol * 1e-6 if self.atol is None else self.atol

    def controller(self) -> diffrax.PIDController:
        """diffrax's step-size controller for these tolerances (module docstring).

        Its rtol is floored at 8 ulps of the dtype (float32: ~1e-6): below that the error
        estimate is rounding noise. The chunk engine discounts that noise instead.
        """
        floor = 8 * float(np.finfo(DTYPES[self.dtype]).eps)
        return diffrax.PIDController(rtol=max(self.rtol, floor), atol=self.abs_tol)

    def diffrax_solver(self, name: str | None = None):
        """The diffrax solver ``name`` (default ``self.solver``; ``auto`` without concrete
        values to choose by, as under ``jit``, means Tsit5)."""
        name = name or self.solver
        return getattr(diffrax, SOLVERS["tsit5" if name == "auto" else name])()

    def diffrax_adjoint(self, forward: bool | None = None):
        """How derivatives pass through a solve: forward mode (``jax.jvp``/``jacfwd``) or
        checkpointed reverse mode. ``forward`` overrides ``self.adjoint``."""
        if forward is None:
            forward = self.adjoint == "forward"
        return diffrax.ForwardMode() if forward else diffrax.RecursiveCheckpointAdjoint()

    def with_solver(self, solver: str) -> "SolverConfig":
        return SolverConfig(solver, self.rtol, self.atol, self.max_steps, self.dtype,
                            self.adjoint, self.t_ref)


def stiffness_index(model: Model, values: dict, window, *, repeated: bool = False) -> np.ndarray:
    r"""The stiffness rule's measure: :math:`S = \lambda\,T`, the model's bound on the Jacobian's
    spectral radius (``max_rate``, s^-1) times the window ``window`` (s).

    After one pulse with no generation the density only falls, so the B n0 and C n0^2 terms of
    ``max_rate`` are a transient at t = 0 that an adaptive explicit solver follows with short
    first steps (accuracy-limited, not stability-limited): they are dropped, and what makes a
    solve stiff is a rate that persists, such as A + D + K1. They are kept with a generation
    rate G > 0 (the density stays up) and for pulse trains (``repeated``: the density returns
    with every pulse).
    """
    vals = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    if "n0" in vals and not repeated:
        g = vals.get("G", np.zeros(()))
        vals["n0"] = np.where(g > 0, vals["n0"], 0.0)
    return np.asarray(model.max_rate(vals)) * np.asarray(window, dtype=float)


def choose_solver(model: Model, values: dict, window, *, repeated: bool = False) -> str:
    """The one solver rule: Tsit5 unless the largest :func:`stiffness_index` of the batch
    exceeds ``STIFF_THRESHOLD`` (1e5; an explicit solver would then need ~3e4 steps for
    stability alone), then Kvaerno5 (implicit). Tsit5 under ``jit`` (no concrete values)."""
    try:
        index = stiffness_index(model, values, window, repeated=repeated)
    except jax.errors.TracerArrayConversionError:
        return "tsit5"
    return "kvaerno5" if float(np.max(index)) > STIFF_THRESHOLD else "tsit5"
