r"""Scaled, batched solves of one excitation pulse with diffrax.

``solve(model, params, ts)`` is the public entry: physical units in and out, a batch of any
shape through ``vmap``. ``solve_scaled`` is the pure kernel in scaled units for code that builds
its own ``jit``/``vmap``/``grad`` around it (fitting, pulse trains, sensitivities).

Besides the states at the requested times, the solve integrates, as extra state,

.. math::

    \int_0^{t_1} \mathrm{PL}\,dt,\quad \int_0^{t_1} t\,\mathrm{PL}\,dt,\quad
    \int_0^{t_1} n\,dt,\quad \int_0^{t_1} t\,n\,dt,\quad \int_0^{t_1} \phi_k\,dt

for every carrier flux :math:`\phi_k` of the model, so summaries need no saved curve.

Solver rule (``solver="auto"``): explicit Tsit5 unless the stiffness index
:math:`S = \lambda\,t_1` exceeds ``STIFF_THRESHOLD`` (1e5) at any point of the batch, where
:math:`\lambda` is the model's bound on the Jacobian's spectral radius for the rates that
persist through the decay (:func:`persistent_rate`; for ``trap_detrap``:
:math:`A + D + K_1`, plus :math:`2 B n_0 + 3 C n_0^2` when G > 0); then Kvaerno5 (implicit).
With S = 1e5 an explicit solver would need ~3e4 steps for stability alone. The density terms
at t = 0 are a transient (n only falls without generation): Tsit5 follows them with short
first steps, e.g. n0 = 1e20 cm^-3 (3 C n0^2 = 3e12 s^-1) takes ~100 steps.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxsim.numerics.config import (
    DTYPES,
    FAILED,
    MAX_STEPS,
    NON_FINITE,
    SOLVERS,
    STATUS_MESSAGES,
    SUCCESS,
    SolverConfig,
    choose_solver,
    pid_controller,
)
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


def _integrand_names(model: Model) -> tuple[str, ...]:
    return ("pl", "t_pl", "n", "t_n") + tuple(model.fluxes_reported)


def initial_step(model: Model, c: dict, t1):
    r"""First step :math:`0.01 / r_0` with :math:`r_0 = \sum_i |f_i(y_0)| / \max_i |y_{0,i}|`.

    The relative rate of change of the state at t = 0 (scaled units), capped at t1. diffrax's
    automatic first step uses norms of f / atol, which overflow float32 when a fast transient
    (e.g. Auger at n0 = 1e20 cm^-3) meets the small atol of an integral that starts at 0, and
    then returns a zero step. The controller grows the step from here within a few steps.
    """
    y0 = model.initial_state(c)
    f0 = model.vector_field(jnp.zeros_like(t1), y0, c)
    num = sum(jnp.abs(f) for f in f0)
    den = jnp.maximum(jnp.max(jnp.stack([jnp.abs(y) for y in y0])), jnp.finfo(t1.dtype).tiny)
    rate = num / den
    dt0 = jnp.where(rate > 0, 0.01 / jnp.where(rate > 0, rate, 1.0), t1)
    return jnp.clip(dt0, 1e-6 * t1, t1)


def solve_scaled(model: Model, c: dict, ts, config: SolverConfig,
                 solver: str | None = None) -> ScaledSolution:
    """Solve one scaled problem from tau = 0 to ts[-1] (scaled time) and save at ts.

    Pure and traceable: wrap it in ``jit``/``vmap``/``grad`` as needed. ``solver`` overrides
    ``config.solver`` ('auto' here means Tsit5: the rule needs concrete values; see ``solve``).
    """
    dtype = DTYPES[config.dtype]
    c = {k: jnp.asarray(v, dtype) for k, v in c.items()}
    ts = jnp.asarray(ts, dtype)
    names = _integrand_names(model)
    n_state = len(model.state_names)

    def field(t, y, args):
        state = y[:n_state]
        dstate = model.vector_field(t, state, c)
        pl = model.pl(state, c)
        fl = model.fluxes(state, c)
        u = state[0]
        extra = (pl, t * pl, u, t * u) + tuple(fl[k] for k in model.fluxes_reported)
        return tuple(dstate) + extra

    y0 = tuple(model.initial_state(c)) + tuple(jnp.zeros((), dtype) for _ in names)
    y0 = tuple(jnp.asarray(v, dtype) for v in y0)
    name = solver or config.solver
    if name == "auto":
        name = "tsit5"
    solver_obj = SOLVERS[name]()
    controller = pid_controller(config)
    adjoint = (diffrax.ForwardMode() if config.adjoint == "forward"
               else diffrax.RecursiveCheckpointAdjoint())
    saveat = diffrax.SaveAt(subs=[
        diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: y[:n_state]),
        diffrax.SubSaveAt(t1=True),
    ])
    t1 = ts[-1]
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), solver_obj, t0=jnp.zeros((), dtype), t1=t1,
        dt0=initial_step(model, c, t1), y0=y0, saveat=saveat, stepsize_controller=controller,
        max_steps=config.max_steps, throw=False, adjoint=adjoint,
    )
    ys, last = sol.ys
    last = tuple(v[-1] for v in last)
    integrals = dict(zip(names, last[n_state:]))
    status = jnp.where(
        sol.result == diffrax.RESULTS.successful, SUCCESS,
        jnp.where(sol.result == diffrax.RESULTS.max_steps_reached, MAX_STEPS, FAILED))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in (*ys, *last)]))
    status = jnp.where((status == SUCCESS) & ~finite, NON_FINITE, status)
    return ScaledSolution(ys=tuple(ys), integrals=integrals, final=last[:n_state],
                          status=status.astype(jnp.int32),
                          num_steps=jnp.asarray(sol.stats["num_steps"], jnp.int32))


class Solution(eqx.Module):
    """A solved decay (or batch of decays) in physical units.

    ``states[name]`` and ``pl`` have shape ``batch + (len(t),)`` in cm^-3 and cm^-3 s^-1;
    ``integrals`` hold the time integrals from 0 to the last time (units in
    :func:`integral_units`). ``status`` is 0 for success, otherwise an index
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


def integral_units(model: Model) -> dict[str, str]:
    """Units of ``Solution.integrals``: PL and n moments, and every flux of ``model`` (a flux
    integrates to the unit of the state it drains)."""
    units = {"pl": "cm^-3", "t_pl": "cm^-3 s", "n": "cm^-3 s", "t_n": "cm^-3 s^2"}
    units.update({f.name: model.state(f.source).unit for f in model.flux_table})
    return units


def _make_batched(model: Model, config: SolverConfig, solver: str):
    def one(values, ts_scaled):
        n_ref = values["n0"]
        c = model.coefficients(values, n_ref, config.t_ref)
        return solve_scaled(model, c, ts_scaled, config, solver)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


_BATCHED_CACHE: dict = {}


def padded_size(n: int) -> int:
    """Lanes a batch of n is padded to: a power of two >= 8 up to 1024, then multiples of 1024.

    ``jit`` compiles once per batch shape; a few bucket sizes mean a handful of compiles
    (~3 s each) instead of one per batch size.
    """
    if n <= 1024:
        return max(8, 1 << max(n - 1, 0).bit_length())
    return -(-n // 1024) * 1024


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
    lanes = padded_size(size)
    if lanes > size:  # repeat the first point: same stiffness, no extra steps for the batch
        idx = jnp.concatenate([jnp.arange(size), jnp.zeros(lanes - size, int)])
        padded = {k: v[idx] for k, v in flat.items()}
    else:
        padded = flat
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
    integ = {}
    for k, v in out.integrals.items():
        if k == "pl":
            s = pls * tr
        elif k == "t_pl":
            s = pls * tr**2
        elif k == "n":
            s = n_ref * tr
        elif k == "t_n":
            s = n_ref * tr**2
        else:
            s = n_ref
        integ[k] = phys(v, s)
    return Solution(
        model=model, t=jnp.asarray(ts), states=states, pl=pl, integrals=integ,
        final=final, status=jnp.reshape(out.status, shape),
        num_steps=jnp.reshape(out.num_steps, shape), params=params, solver=solver,
    )


def _scaled_pl_batch(model: Model, ys, flat, n_ref, t_ref):
    c = model.coefficients(flat, n_ref, t_ref)
    c = {k: jnp.asarray(v)[:, None] for k, v in c.items()}
    return model.pl(ys, c)
