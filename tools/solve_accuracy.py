"""Worst pointwise relative error of jaxsim.solve against float64 SciPy Radau (16 random
trap_detrap points, A 1e5-1e8, D 0 or 1e3-1e8, K1 1e2-1e7, n0 1e14-1e19, 2 us, where n >= 1e-8
n0) at several rtol: the numbers in docs/core.md. Run: python tools/solve_accuracy.py"""

import numpy as np, jaxsim
from scipy.integrate import solve_ivp
rng = np.random.default_rng(1)
N = 16
lu = lambda lo, hi: 10 ** rng.uniform(np.log10(lo), np.log10(hi), N)
v = dict(A=lu(1e5, 1e8), D=np.where(rng.random(N) < 0.2, 0.0, lu(1e3, 1e8)), K1=lu(1e2, 1e7), n0=lu(1e14, 1e19))
B, C = 1e-10, 1e-28
ts = np.concatenate([[0.0], np.logspace(-10, np.log10(2e-6), 200)])
ref = []
for i in range(N):
    a, d, k1, n0 = (v[k][i] for k in ("A", "D", "K1", "n0"))
    s = 1e-9
    f = lambda t, y: [(-a * y[0] - B * n0 * y[0]**2 - C * n0**2 * y[0]**3 + d * y[1]) * s, (a * y[0] - (d + k1) * y[1]) * s]
    jac = lambda t, y: [[(-a - 2 * B * n0 * y[0] - 3 * C * n0**2 * y[0]**2) * s, d * s], [a * s, -(d + k1) * s]]
    r = solve_ivp(f, (0, ts[-1] / s), [1.0, 0.0], method="Radau", t_eval=ts / s, rtol=1e-12, atol=1e-20, jac=jac)
    ref.append(r.y[0] * n0)
ref = np.array(ref)
for rtol in (1e-6, 1e-7, 1e-8, 1e-9):
    sol = jaxsim.solve("trap_detrap", dict(v, B=B, C=C), ts, rtol=rtol)
    n = np.asarray(sol.states["n"]); n0 = v["n0"][:, None]
    m = ref >= 1e-8 * n0
    err = np.max(np.abs(n - ref)[m] / ref[m])
    print(f"rtol {rtol:g}: worst rel err {err:.2g}, mean steps {np.mean(sol.num_steps):.1f}")
