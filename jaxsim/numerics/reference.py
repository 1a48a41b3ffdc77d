r"""Scaled, batched solves of one excitation pulse with diffrax.

``solve(model, params, ts)`` is the public entry: physical units in and out, a batch of any
shape through ``vmap``. ``solve_scaled`` is the pure kernel in scaled units for code that builds
its own ``jit``/``vmap``/``grad`` around it (fitting, pulse trains, sensitivities).

Besides the states at the requested times, the solve integrates, as extra state,

.. math::

    \int_0^{t_1} \mathrm{PL}\,dt,\quad \int_0^{t_1} t\,\mathrm{PL}\,dt,\quad
    \int_0^{t_1} n\,dt,\quad \int_0^{t_1} t\,n\,dt,\quad \int_0^{t_1} \phi_k\,dt

for every carrier flux :math:`\phi_k` of the model, so summaries need no saved curve.

The integrands and their units come from :class:`~jaxsim.numerics.problem.ScaledProblem`;
the solver rule (``solver="auto"``) and the meaning of ``rtol`` from
:mod:`jaxsim.numerics.config`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics import _diffrax as diffrax
from jaxsim.numerics.config import (
    DTYPES,
    STATUS_MESSAGES,
    SUCCESS,
    SolverConfig,
    choose_solver,
)
from jaxsim.numerics.padding import bucket_size, pad_points
from jaxsim.numerics.problem import ScaledProblem, flag_non_finite, integrate
from jaxsim.physics.errors import ParameterError
from jaxsim.physics.model import Model, pl_scale
from jaxsim.physics.parameters import Params, as_params, broadcast
from jaxsim.physics.registry import get_model


def check_times(ts, *, name: str = "times") -> np.ndarray:
    """Validated save times in seconds: finite, >= 0, strictly increasing, at least one > 0."""
    arr = np.asarray(ts, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"{name} = {ts!r}: expected a non-empty 1-D list of times in s")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"{name} contains {float(arr[~np.isfinite(arr)][0])!r}: expected finite times in s")
    if np.any(arr < 0):
        raise ParameterError(f"{name} contains {float(arr[arr < 0][0])!r}: expected times >= 0 s")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        i = int(np.argmax(np.diff(arr) <= 0))
        raise ParameterError(
            f"{name} are not strictly increasing: {float(arr[i])!r} is followed by "
            f"{float(arr[i + 1])!r}: expected strictly increasing times in s")
    if arr[-1] <= 0:
        raise ParameterError(f"{name} = {ts!r}: expected a last time > 0 s")
    return arr


class ScaledSolution(eqx.Module):
    """Raw output of :func:`solve_scaled` (scaled units)."""

    ys: tuple  # states at ts, each (T,)
    integrals: dict  # scaled time integrals at t1
    final: tuple  # states at t1
    status: jax.Array
    num_steps: jax.Array


def initial_step(model: Model, c: dict, t1):
    """The first step of every diffrax solve (:meth:`ScaledProblem.initial_step`)."""
    return ScaledProblem(model).initial_step(c, t1)


def solve_scaled(model: Model, c: dict, ts, config: SolverConfig,
                 solver: str | None = None) -> ScaledSolution:
    """Solve one scaled problem from tau = 0 to ts[-1] (scaled time) and save at ts.

    Pure and traceable: wrap it in ``jit``/``vmap``/``grad`` as needed. ``solver`` overrides
    ``config.solver`` ('auto' here means Tsit5: the rule needs concrete values; see ``solve``).
    """
    problem = ScaledProblem(model)
    dtype = DTYPES[config.dtype]
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    ts = jnp.asarray(ts, dtype)
    k = problem.n_states
    saveat = diffrax.SaveAt(subs=[
        diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: y[:k]),
        diffrax.SubSaveAt(t1=True),
    ])
    t1 = ts[-1]
    sol, status = integrate(problem.augmented_field(c),
                            problem.augmented_state(model.initial_state(c), dtype), t1, saveat,
                            config, solver, dt0=problem.initial_step(c, t1))
    ys, last = sol.ys
    final, integrals = problem.split(tuple(v[-1] for v in last))
    status = flag_non_finite(status, *ys, *final, *integrals.values())
    return ScaledSolution(ys=tuple(ys), integrals=integrals, final=final, status=status,
                          num_steps=jnp.asarray(sol.stats["num_steps"], jnp.int32))


class Solution(eqx.Module):
    """A solved decay (or batch of decays) in physical units.

    ``states[name]`` and ``pl`` have shape ``batch + (len(t),)`` in cm^-3 and cm^-3 s^-1;
    ``integrals`` hold the time integrals from 0 to the last time (units in
    :func:`jaxsim.numerics.problem.integral_units`). ``status`` is 0 for success, otherwise an index
    into :data:`STATUS_MESSAGES`.
    """

    model: object = eqx.field(static=True)
    t: jax.Array
    states: dict
    pl: jax.Array
    integrals: dict
    final: dict
    status: jax.Array
    num_steps: jax.Array
    params: Params
    solver: str = eqx.field(static=True)
    #: end of the window the integrals cover, when it is not t[-1] (a pulse train's period)
    window_end: jax.Array | None = None

    @property
    def n(self):
        """The free-carrier density (the model's ``free`` state)."""
        return self.states[self.model.free_state.name]

    @property
    def ok(self) -> bool:
        return bool(np.all(np.asarray(self.status) == SUCCESS))

    def status_messages(self) -> np.ndarray:
        return np.asarray(STATUS_MESSAGES, dtype=object)[np.asarray(self.status)]

    def raise_on_failure(self) -> "Solution":
        st = np.asarray(self.status)
        if np.any(st != SUCCESS):
            idx = np.argwhere(st != SUCCESS)
            first = tuple(int(i) for i in idx[0]) if st.ndim else ()
            raise RuntimeError(
                f"{int(np.sum(st != SUCCESS))} of {st.size} solves failed; first at batch index "
                f"{first}: {STATUS_MESSAGES[int(st[first] if st.ndim else st)]} "
                f"(steps taken: {int(np.asarray(self.num_steps)[first] if st.ndim else self.num_steps)}). "
                "Raise max_steps, loosen rtol, or choose solver='kvaerno5' for stiff points.")
        return self


def _make_batched(model: Model, config: SolverConfig, solver: str):
    def one(values, ts_scaled):
        n_ref = values["n0"]
        c = model.coefficients(values, n_ref, config.t_ref)
        return solve_scaled(model, c, ts_scaled, config, solver)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


_BATCHED_CACHE: dict = {}


def batched_solver(model: Model, config: SolverConfig, solver: str):
    """A cached ``jit(vmap(solve_one))`` for (model, config, solver): no recompiles per call."""
    key = (model, config, solver)
    if key not in _BATCHED_CACHE:
        _BATCHED_CACHE[key] = _make_batched(model, config, solver)
    return _BATCHED_CACHE[key]


def solve(model, params: Params | dict | None = None, ts=None, *, config: SolverConfig | None = None,
          **config_kwargs) -> Solution:
    """Solve the decay after one pulse at t = 0 for one parameter set or a batch.

    Args:
        model: a model name (``"trap_detrap"``, ``"abc"``, ``"effective"``, ``"btd"``) or object.
        params: :class:`Params` or a dict of physical values (validated; defaults fill gaps);
            arrays broadcast to a batch shape.
        ts: save times in seconds, strictly increasing, >= 0.
        config / config_kwargs: a :class:`SolverConfig` or its fields (``rtol``, ``atol``,
            ``solver``, ``dtype``, ``max_steps``).

    Returns a :class:`Solution` in physical units with a per-point ``status``.
    """
    model = get_model(model)
    params = as_params(model, params)
    if ts is None:
        raise ParameterError("times = None: expected save times in s")
    config = config or SolverConfig(**config_kwargs)
    ts = check_times(ts)
    solver = config.solver
    if solver == "auto":
        solver = choose_solver(model, params.values, ts[-1])
    p = broadcast(params)
    shape = p.batch_shape
    flat = {k: jnp.reshape(v, (-1,)) for k, v in p.values.items()}
    ts_scaled = jnp.asarray(ts / config.t_ref, DTYPES[config.dtype])
    size = int(np.prod(shape, dtype=int))
    padded = pad_points({k: np.asarray(v) for k, v in flat.items()}, bucket_size(size))
    out = batched_solver(model, config, solver)(padded, ts_scaled)
    out = jax.tree_util.tree_map(lambda x: x[:size], out)

    def phys(x, scale):
        return jnp.reshape(x * scale[(...,) + (None,) * (x.ndim - 1)], shape + x.shape[1:])

    n_ref = flat["n0"]
    tr = config.t_ref
    states = {name: phys(y, n_ref) for name, y in zip(model.state_names, out.ys)}
    final = {name: phys(y, n_ref) for name, y in zip(model.state_names, out.final)}
    pls = pl_scale(flat, n_ref)
    pl = phys(_scaled_pl_batch(model, out.ys, flat, n_ref, tr), pls)
    scales = ScaledProblem(model).integral_scales(flat, n_ref, tr)
    integ = {k: phys(v, scales[k]) for k, v in out.integrals.items()}
    return Solution(
        model=model, t=jnp.asarray(ts), states=states, pl=pl, integrals=integ,
        final=final, status=jnp.reshape(out.status, shape),
        num_steps=jnp.reshape(out.num_steps, shape), params=params, solver=solver,
    )


def _scaled_pl_batch(model: Model, ys, flat, n_ref, t_ref):
    c = model.coefficients(flat, n_ref, t_ref)
    c = {k: jnp.asarray(v)[:, None] for k, v in c.items()}
    return model.pl(ys, c)
