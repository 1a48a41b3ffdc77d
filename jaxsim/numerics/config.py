from __future__ import annotations

from dataclasses import dataclass

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import NS, Model

STIFF_THRESHOLD = 1e5


#: controller tolerance / requested tolerance (see ``SolverConfig.local_tolerances``)
LOCAL_SAFETY = 0.1


STATUS_MESSAGES = (
    "success",
    "max_steps_reached",
    "solver_failed",
    "non_finite",
)


SUCCESS, MAX_STEPS, FAILED, NON_FINITE = range(4)


SOLVERS = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno5": diffrax.Kvaerno5,
    "kvaerno3": diffrax.Kvaerno3,
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

    @property
    def local_tolerances(self) -> tuple[float, float]:
        """(rtol, atol) handed to the step-size controller.

        The controller bounds the local error per step; the global error of the saved curve
        accumulates to several times that (measured for Tsit5 over 2 us, trap_detrap:
        ~8x). So the controller gets ``LOCAL_SAFETY`` x (rtol, atol), which makes the
        requested ``rtol`` about the relative error delivered (worst pointwise error where
        n >= 1e-8 n0, 16 random trap_detrap points to 2 us, against SciPy Radau: 1.9e-6 at
        rtol 1e-6, 8.6e-8 at 1e-7, 1.4e-8 at 1e-8, 9e-10 at 1e-9). The local rtol is floored
        at 8 ulps of the dtype (float32: ~1e-6).
        """
        floor = 8 * float(np.finfo(DTYPES[self.dtype]).eps)
        rtol = max(self.rtol * LOCAL_SAFETY, floor)
        return rtol, self.abs_tol * LOCAL_SAFETY

    def with_solver(self, solver: str) -> "SolverConfig":
        return SolverConfig(solver, self.rtol, self.atol, self.max_steps, self.dtype,
                            self.adjoint, self.t_ref)


def persistent_rate(model: Model, values: dict) -> np.ndarray:
    """The model's rate bound (``max_rate``) with the density terms taken at late times.

    Without generation the density only falls, so the B n0 and C n0^2 terms of ``max_rate``
    are a transient at t = 0 that an adaptive explicit solver follows with short first steps
    (accuracy-limited, not stability-limited); what makes a solve stiff is a rate that
    persists, such as A + D + K1. With a generation rate G > 0 the density stays up, so n0 is
    kept (conservative).
    """
    vals = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    if "n0" in vals:
        g = vals.get("G", np.zeros(()))
        vals["n0"] = np.where(g > 0, vals["n0"], 0.0)
    return np.asarray(model.max_rate(vals))


def choose_solver(model: Model, values: dict, t1: float) -> str:
    """The documented rule: 'tsit5' unless max stiffness index over the batch > 1e5."""
    try:
        rate = persistent_rate(model, values)
    except jax.errors.TracerArrayConversionError:
        return "tsit5"
    return "kvaerno5" if float(np.max(rate)) * float(t1) > STIFF_THRESHOLD else "tsit5"


def pid_controller(config: SolverConfig) -> diffrax.PIDController:
    """The step-size controller of a solve: PID with ``config.local_tolerances``."""
    rtol, atol = config.local_tolerances
    return diffrax.PIDController(rtol=rtol, atol=atol)
