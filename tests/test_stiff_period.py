"""The pulse train's period by Rodas4 (jaxsim.numerics.rosenbrock, used by
jaxsim.studies.periodic) on stiff cases, against SciPy's Radau in float64:

- btd with PEARS-like values at 53.78 kHz, where trapping into empty traps is ~1e5 times
  faster than the period, and trap_detrap with fast trapping at 10 kHz;
- the one-period map Phi_T at rtol 1e-10, and the periodic state z* = Phi_T(z*) + Delta
  (its residual under Radau's Phi_T);
- the tangents (Phi_z, Phi_theta from the discrete steps, dz*/dtheta by the implicit function
  theorem) against central differences;
- the method's order (4) on a linear stiff system against its closed form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from jaxsim.numerics import rosenbrock
from jaxsim.numerics.config import SolverConfig
from jaxsim.physics.registry import models
from jaxsim.studies.periodic import periodic_start

TIGHT = SolverConfig(rtol=1e-12, dtype="float64")

CASES = {
    # PEARS BTD fit's values with many fast traps: k_T N_T = 1e10 s^-1 against 18.6 us
    "btd": ({"B": 2.6e-10, "k_T": 1e-6, "k_D": 3.6e-10, "N_T": 1e16, "p0": 1.2e14, "G": 0.0},
            5e14, 53.78e3),
    # trapping at 1e9 s^-1, detrapping and trap loss slow, 100 us period
    "trap_detrap": ({"A": 1e9, "D": 1e4, "K1": 1e3, "B": 1e-10, "C": 1e-28}, 1e16, 1e4),
}


def _case(name):
    m = models()[name]
    vals = {p.name: p.default for p in m.parameters}
    upd, n0, rate = CASES[name]
    vals.update(upd)
    vals["n0"] = n0
    c = m.coefficients(vals, n0, TIGHT.t_ref)
    c = {k: jnp.reshape(jnp.asarray(v, jnp.float64), (1,)) for k, v in c.items()}
    return m, c, 1.0 / (rate * TIGHT.t_ref)


def _radau_period(m, c, z, T):
    """Phi_T(z) by SciPy Radau (float64, rtol 1e-13) with the model's Jacobian."""
    cc = {k: float(v[0]) for k, v in c.items()}
    f = jax.jit(lambda y: jnp.stack(m.vector_field(0.0, tuple(y), cc)))
    jac = jax.jit(jax.jacfwd(lambda y: jnp.stack(m.vector_field(0.0, tuple(y), cc))))
    sol = solve_ivp(lambda t, y: np.asarray(f(y)), (0.0, T), np.asarray(z, float),
                    method="Radau", rtol=1e-13, atol=1e-20, jac=lambda t, y: np.asarray(jac(y)))
    assert sol.success, sol.message
    return sol.y[:, -1]


def _flow(m, c, z, T, config=TIGHT):
    return jax.jit(lambda z, c: rosenbrock.flow(m, c, z, T, config))(z, c)


@pytest.mark.parametrize("name", list(CASES))
def test_period_and_periodic_state_match_radau(name):
    m, c, T = _case(name)
    inc = np.asarray(jnp.stack(m.initial_state(c)))  # (k, 1)
    start = jax.jit(lambda c: periodic_start(m, c, T, TIGHT))(c)
    assert int(start.status[0]) == 0
    z = np.asarray(start.z)
    # stiff indeed: the fastest rate at the periodic state times the period
    cc = {k: v[0] for k, v in c.items()}
    J = jax.jacfwd(lambda y: jnp.stack(m.vector_field(0.0, tuple(y), cc)))(jnp.asarray(z[:, 0]))
    stiffness = np.max(np.abs(np.linalg.eigvals(np.asarray(J)))) * T
    assert stiffness > 1e4
    # Phi_T from the state after a single pulse and from z*, against Radau at rtol 1e-10
    for z0 in (inc, z):
        out = _flow(m, c, jnp.asarray(z0), T)
        assert int(out.status[0]) == 0
        ref = _radau_period(m, c, z0[:, 0], T)
        np.testing.assert_allclose(np.asarray(out.y[:, 0]), ref, rtol=1e-10,
                                   atol=1e-10 * np.max(np.abs(ref)))
    # z* is Radau's periodic state: z* = Phi_T(z*) + Delta
    ref = _radau_period(m, c, z[:, 0], T) + inc[:, 0]
    np.testing.assert_allclose(z[:, 0], ref, rtol=1e-10, atol=1e-10 * np.max(np.abs(ref)))
    # fewer steps than an explicit method's stability alone would need (~stiffness / 3.3)
    assert int(out.steps[0]) < stiffness / 10


@pytest.mark.parametrize("name", list(CASES))
def test_tangents_match_central_differences(name):
    m, c, T = _case(name)
    k = len(m.state_names)
    free = [kk for kk in c if kk not in ("g", "u0") and float(c[kk][0]) != 0.0][:3]
    P = len(free)
    cfg = SolverConfig(rtol=1e-11, dtype="float64")
    inc = jnp.stack(m.initial_state(c))
    z0 = inc * 1.3
    # Phi_z and Phi_theta (relative directions dc = c e_i) from the steps' tangents
    dy0 = jnp.concatenate([jnp.eye(k)[:, :, None], jnp.zeros((P, k, 1))])
    dc = {kk: (jnp.zeros((k + P, 1)).at[k + free.index(kk)].set(c[kk]) if kk in free
               else jnp.zeros((k + P, 1))) for kk in c}
    out = jax.jit(lambda z, c: rosenbrock.flow(m, c, z, T, cfg, dc, dy0))(z0, c)
    tang = np.asarray(out.dy[:, :, 0])  # (k + P, k)
    fd = []
    for i in range(k):
        h = 1e-5 * float(jnp.max(jnp.abs(z0)))
        e = jnp.zeros((k, 1)).at[i].set(h)
        fd.append((np.asarray(_flow(m, c, z0 + e, T, cfg).y[:, 0])
                   - np.asarray(_flow(m, c, z0 - e, T, cfg).y[:, 0])) / (2 * h))
    for kk in free:
        h = 1e-4
        up = dict(c, **{kk: c[kk] * (1 + h)})
        dn = dict(c, **{kk: c[kk] * (1 - h)})
        fd.append((np.asarray(_flow(m, up, z0, T, cfg).y[:, 0])
                   - np.asarray(_flow(m, dn, z0, T, cfg).y[:, 0])) / (2 * h))
    fd = np.asarray(fd)
    # differences of adaptive solves carry ~rtol |y| / h of noise: compared on the state's scale
    ymax = float(np.max(np.abs(np.asarray(out.y))))
    assert np.max(np.abs(fd)) > 1e-2 * ymax
    np.testing.assert_allclose(tang, fd, rtol=1e-4, atol=1e-5 * ymax)
    # the structure holds exactly for the steps' tangents: btd conserves n_e + n_t - n_h
    if name == "btd":
        np.testing.assert_allclose(tang[:, 0] + tang[:, 1] - tang[:, 2],
                                   np.r_[np.ones(1), np.ones(1), -np.ones(1), np.zeros(P)],
                                   atol=1e-9)
    # dz*/dtheta by the implicit function theorem against differences of z*
    start = jax.jit(lambda c, dc: periodic_start(m, c, T, cfg, dc))(
        c, {kk: v[k:] for kk, v in dc.items()})
    dz = np.asarray(start.dz[:, :, 0])  # (P, k)
    zmax = float(np.max(np.abs(np.asarray(start.z))))
    for i, kk in enumerate(free):
        h = 1e-4
        zs = [np.asarray(jax.jit(lambda c: periodic_start(m, c, T, cfg))(
            dict(c, **{kk: c[kk] * (1 + s * h)})).z[:, 0]) for s in (1, -1)]
        fdz = (zs[0] - zs[1]) / (2 * h)
        np.testing.assert_allclose(dz[i], fdz, rtol=1e-4, atol=1e-5 * zmax)


def test_order_four_on_a_stiff_linear_system():
    """y' = A y (eigenvalues -1e4, -1, -0.1) with fixed steps: the end error falls 16 times
    per halving of the step, against expm."""
    A = np.array([[-1e4, 1.0, 0.0], [0.0, -1.0, 0.5], [0.0, 0.2, -0.1]])
    y0 = np.array([1.0, 1.0, 1.0])
    ref = expm(2.0 * A) @ y0
    Aj = jnp.asarray(A)

    def field(t, y):
        return [sum(Aj[i, j] * y[j] for j in range(3)) for i in range(3)]

    def run(n):
        h = jnp.full((1,), 2.0 / n)
        y = [jnp.full((1,), v) for v in y0]
        for _ in range(n):
            y, _err = rosenbrock.rosenbrock_step(field, jnp.zeros((1,)), y, h)
        return np.array([float(v[0]) for v in y])

    errs = [np.max(np.abs(run(n) - ref)) for n in (8, 16, 32)]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(10 < r < 25 for r in ratios), (errs, ratios)
    # L-stable: one step far beyond the fast mode's time constant leaves nothing of it
    y, _ = rosenbrock.rosenbrock_step(field, jnp.zeros((1,)), [jnp.ones((1,))] * 3,
                                      jnp.full((1,), 1.0))
    assert abs(float(y[0][0]) - float((expm(A) @ y0)[0])) < 1e-3
