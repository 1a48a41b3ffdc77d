"""From the loop's results (scaled final states, integrals, saved curves) to the chunk's
physical outputs: summaries, curves, and the status of points whose outputs are not finite."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxsim import observables
from jaxsim.numerics.config import NON_FINITE, SUCCESS
from jaxsim.numerics.problem import ScaledProblem
from jaxsim.numerics.reference import Solution
from jaxsim.observables.lifetimes import window_tail
from jaxsim.physics.model import pl_scale
from jaxsim.physics.parameters import Params


def curve(model, var, saved, c, vals, n_ref, y0):
    """Curve ``var`` in physical units from the saved quantities: states are in cm^-3
    already, PL is scaled back, ``pl_norm`` is PL over PL at the initial state."""
    if var in model.state_names:
        return saved[var]
    if var == "pl":
        return saved["pl"] * pl_scale(vals, n_ref)[..., None]
    n_state = len(model.state_names)
    return saved["pl"] / model.pl(y0[:n_state], c)[..., None]


def physical_summaries(model, names, vals, c, n_ref, finals, integ, saved, ts_key, t1, t_ref,
                       dc, shape, dtype, code):
    """Physical summaries: integrals straight from the carried state; curve ones through
    :func:`jaxsim.observables.summaries` on a :class:`Solution` built from the saved curves."""
    if not names:
        return {}
    pls = pl_scale(vals, n_ref)
    scale = ScaledProblem(model, tuple(integ)).integral_scales(vals, n_ref, t_ref)
    integrals = {k: v * scale[k] for k, v in integ.items()}
    final = {s: v * n_ref for s, v in zip(model.state_names, finals)}
    if saved:
        t = jnp.asarray(np.asarray(ts_key), dtype)
        states = {}
        free = model.free_state.name
        if free in saved:
            states[free] = saved[free]
        # the PL curve only enters shape summaries (tau_avg_pl, tau_1e_pl: normalised), which
        # with B = 0 are those of the B -> 0 limit (PL per unit B, n p): scale by 1 there
        pl = saved["pl"] * jnp.where(pls > 0, pls, 1.0)[..., None] if "pl" in saved else None
    else:
        # the window's end: carriers put in (n0 + G t1) normalise plqy and the shares
        t = jnp.full((1,), t1, dtype)
        states, pl = {}, None
    sol = Solution(model=model, t=t, states=states, pl=pl, integrals=integrals,
                   final=final, status=code, num_steps=jnp.zeros(shape, jnp.int32),
                   params=Params(model=model, values=vals), solver="tsit5")
    out = dict(observables.summaries(sol, names, dc))
    if "tau_mean_pl" in out:
        # from the scaled integrals: independent of B, so defined (the B -> 0 limit) at B = 0
        out["tau_mean_pl"] = integ["t_pl"] / integ["pl"] * t_ref
    for which in ("n", "pl"):
        if f"window_tail_{which}" in out:
            # scaled, as tau_mean_pl: PL per unit B, so defined at B = 0 too
            out[f"window_tail_{which}"] = _scaled_tail(model, which, finals, c, integ,
                                                       t1 / t_ref)
    return out


def _scaled_tail(model, which, finals, c, integ, t_end):
    """:func:`jaxsim.observables.lifetimes.window_tail` in the scaled units of the solve."""
    import jax

    y = tuple(finals)
    free = model.state_names.index(model.free_state.name)
    signal = (lambda y: model.pl(y, c)) if which == "pl" else (lambda y: y[free])
    rhs = tuple(model.vector_field(t_end, y, c))
    level, slope = jax.jvp(signal, (y,), (rhs,))
    return window_tail(integ[which], level, slope, t_end)


def mask_failed(out, code, n_steps, has_summaries, shape):
    """``out`` with ``status`` (a point with a non-finite summary gets status 3) and
    ``num_steps``, and NaN outputs where the status is not success."""
    ok = code == SUCCESS
    finite = jnp.ones(shape, bool)
    for k, v in out.items():
        if k.startswith("curve_"):
            # finite by construction (accepted steps are finite, so is their interpolant):
            # a check would cost a pass over the largest arrays
            continue
        # tau_1e is +inf by definition when the decay stays above 1/e inside the window
        good = ~jnp.isnan(v) if k.startswith("tau_1e") else jnp.isfinite(v)
        finite = finite & jnp.all(good.reshape(shape + (-1,)), axis=-1)
    code = jnp.where(ok & ~finite, NON_FINITE, code)
    ok = code == SUCCESS
    # curves: failed points' rows are NaN already (written in the loop); a summary can
    # still turn a point non-finite, and then its curves are masked too (one more pass)
    out = {k: v if (k.startswith("curve_") and not has_summaries) else
           jnp.where(ok.reshape(shape + (1,) * (v.ndim - len(shape))), v, jnp.nan)
           for k, v in out.items()}
    out["status"] = code.astype(jnp.int32)
    out["num_steps"] = n_steps
    return out
