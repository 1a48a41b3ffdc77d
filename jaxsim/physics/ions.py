r"""The slow ionic reservoir (seconds to hours) behind the detrapping rate D and PL quenching.

Wen & Jia describe, in words (§3–4), two ionic species created by illumination:

- **energetic ("hot") ions** :math:`x = n_\mathrm{ion}`: lattice ions heated by the phonons
  that carriers emit (hot-carrier cooling, trapping, trap relaxation). They stay in the lattice,
  store energy for seconds to hours ("ionic energy reservoir") and detrap trapped carriers:
  :math:`D = K\sigma' n_\mathrm{ion}` (eqs. 4–5);
- **mobile ions** :math:`m`: ions that escaped the lattice at high intensity; charged defects
  that act as recombination centres (quenchers).

jaxsim makes that a model. With :math:`P` the phonon power density (eV cm^-3 s^-1) averaged
over one period of the fast periodic steady state,

.. math::

    \dot x &= Y P \left(1 - \frac{x}{N_\mathrm{ion}}\right) - \frac{x}{\tau_\mathrm{ion}},
    \\
    \dot m &= \frac{1}{\tau_\mathrm{mob}}\left[\frac{x}{N_\mathrm{ion}}
        \left(\frac{P}{P_\mathrm{mob}}\right)^{p} (M - m) - m\right],
    \\
    D &= K\sigma'\,x, \qquad Q = \beta_q\, m,

and the fast model is ``trap_detrap`` plus a direct non-radiative channel :math:`-Q n`
(:class:`TrapDetrapQuench`).

Where this departs from DESIGN §1.4's starting formulation, and why:

1. **Phonon power from energy conservation.** DESIGN sums :math:`(h\nu - E_g) G + E_t \langle A
   n\rangle + E_r \langle K_1 n_d\rangle`. Counting :math:`E_t` per *trapping* event heats the
   reservoir on every trap–detrap cycle, although detrapping (paper eq. 2,
   Ion* + e → Ion + e*) hands that energy back: a perpetual-motion feedback (more D → more cycles
   → more heat → more D). Over one period of the periodic steady state every absorbed photon
   ends either as an emitted photon (energy :math:`\approx E_g`) or as heat, so

   .. math:: P = \sum_s h\nu_s\,\bar G_s - E_g \langle \mathrm{PL} \rangle,

   with :math:`\bar G_s` the period-averaged generation of source s (pulses:
   :math:`f n_0`; CW: :math:`G`). It contains hot-carrier cooling :math:`(h\nu - E_g)\bar G` and
   :math:`E_g` per carrier lost non-radiatively (trap relaxation, Auger, quenchers), whatever
   the detrapping traffic. More PL (brighter film) means slightly less heat: a weak negative
   feedback.
2. **One activation yield** :math:`Y = \eta / E_\mathrm{act}` (ions per eV) instead of
   :math:`\kappa` and :math:`E_\mathrm{act}` separately: only their ratio enters.
3. **Mobile ions come from energetic ions** (factor :math:`x/N_\mathrm{ion}`): the paper says an
   ion escapes the lattice when it "obtains extra energy" through ion-phonon scattering (§3), so
   quenchers lag the reservoir; this is what lets low intensity brighten before any quenching.
   The escape probability grows superlinearly with power (:math:`p > 1`, §3: "at high intensity
   ... higher possibility to escape the lattice binding").
4. **Quenchers are a separate loss, not extra deep trapping.** DESIGN's :math:`A_\mathrm{eff} = A
   + \beta m` sends the quenched carriers into the deep trap that the energetic ions empty
   again, so when the reservoir is charged (:math:`D \gg K_1`) quenching would vanish. Mobile
   ions are recombination centres (§3), so their captures are lost: :math:`\dot n \mathrel{-}=
   Q n`.

The defaults are not measured values (the paper gives none); they are chosen so that the
model reproduces the paper's statements: lifetimes of seconds to hours (τ_ion = 100 s: memory
that outlasts a 30 s TCSPC acquisition, Fig. 4), brightening with a lengthening lifetime under
120 mW cm^-2 at 405 nm (Fig. 1a–f) and quenching under 350 mW cm^-2 (Fig. 1g); see
``sweeps/fig1_*.toml`` and ``sweeps/fig4_memory.toml``, whose claims the tests assert.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jaxsim.physics.errors import ParameterError
from jaxsim.physics.parameters import Parameter

ION_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("E_g", "eV", 1.6, "band gap: energy of an emitted PL photon "
              "(MAPbI3, the paper's Fig. 4 sample)", lower=0.0, lower_inclusive=False, log=False),
    Parameter("yield_ion", "eV^-1", 1e-7, "energetic ions activated per eV of phonon energy "
              "(ion-phonon scattering); sets P_half = N_ion/(Y tau_ion) = 1e23 eV cm^-3 s^-1, "
              "so 120 mW cm^-2 at 405 nm brightens the film over ~100 s as in Fig. 1a-f"),
    Parameter("N_ion", "cm^-3", 1e18, "density of activatable lattice ions (a small fraction "
              "of the ~4e21 cm^-3 formula units; only K_sigma * N_ion = D_max matters)",
              lower=0.0, lower_inclusive=False),
    Parameter("tau_ion", "s", 100.0, "energetic-ion lifetime: 'seconds to hours' (paper §4); "
              "longer than one 30 s TCSPC acquisition, hence the memory of Fig. 4",
              lower=0.0, lower_inclusive=False),
    Parameter("K_sigma", "cm^3 s^-1", 2e-11, "ion-electron coupling K sigma' in D = K sigma' "
              "n_ion (eq. 4); D_max = 2e7 s^-1 > A, so a charged reservoir can outpace trapping "
              "(A' = A - D down to ~1e6 in Fig. 3)"),
    Parameter("M_mob", "cm^-3", 1e17, "density of sites for mobile ions (interstitials and "
              "vacancies, §3)", lower=0.0, lower_inclusive=False),
    Parameter("beta_q", "cm^3 s^-1", 5e-10, "capture coefficient of a mobile-ion quencher: "
              "Q = beta_q m, Q_max = 5e7 s^-1 > A, enough to quench (Fig. 1g)"),
    Parameter("P_mob", "eV cm^-3 s^-1", 2e23, "phonon power at which a fully energised ion "
              "escapes as often as a mobile ion recombines: between the powers of 120 mW cm^-2 "
              "(brightening, Fig. 1d) and 350 mW cm^-2 (quenching, Fig. 1g)",
              lower=0.0, lower_inclusive=False),
    Parameter("p_mob", "1", 4.0, "superlinearity of mobile-ion creation in phonon power "
              "(§3: escape 'at high intensity'); a 3x intensity step must switch brightening to "
              "quenching (Fig. 1d vs 1g), which needs p >~ 3.6", lower=1.0, log=False),
    Parameter("tau_mob", "s", 2.0, "mobile-ion lifetime: quenchers switch on and off within "
              "seconds (blinking, Fig. 1h; reversible quenching, §4), much faster than the "
              "energetic-ion memory", lower=0.0, lower_inclusive=False),
    Parameter("n_ion0", "cm^-3", 0.0, "energetic ions at lab time 0 (0: dark-adapted sample)",
              log=False),
    Parameter("m0", "cm^-3", 0.0, "mobile ions at lab time 0 (0: dark-adapted sample)",
              log=False),
)


ION_DEFAULTS = {p.name: p.default for p in ION_PARAMETERS}


def ion_params(values: Mapping[str, float] | None = None, /, **kwargs) -> dict[str, float]:
    """Validated reservoir parameters (defaults for names not given; floats, SI-cm + eV)."""
    given = dict(values or {})
    given.update(kwargs)
    names = {p.name for p in ION_PARAMETERS}
    for name in given:
        if name not in names:
            raise ParameterError(f"ion parameter {name!r} is not known: expected one of "
                                 f"{', '.join(sorted(names))}")
    out = {}
    for row in ION_PARAMETERS:
        v = given.get(row.name, row.default)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ParameterError(f"ion parameter {row.name!r} = {v!r} is not a number: expected "
                                 f"{row.expected()}") from None
        row.check(v, where="ions")
        out[row.name] = v
    if out["n_ion0"] > out["N_ion"]:
        raise ParameterError(f"ion parameter 'n_ion0' = {out['n_ion0']!r} exceeds 'N_ion' = "
                             f"{out['N_ion']!r}: expected 0 <= n_ion0 <= N_ion")
    if out["m0"] > out["M_mob"]:
        raise ParameterError(f"ion parameter 'm0' = {out['m0']!r} exceeds 'M_mob' = "
                             f"{out['M_mob']!r}: expected 0 <= m0 <= M_mob")
    return out


def detrapping_rate(x, ions: Mapping[str, float]):
    """D = K sigma' n_ion in s^-1."""
    return ions["K_sigma"] * x


def quenching_rate(m, ions: Mapping[str, float]):
    """Q = beta_q m in s^-1."""
    return ions["beta_q"] * m


def rates(P, x, ions: Mapping[str, float]):
    r"""Coefficients of the linear slow ODEs at phonon power P (eV cm^-3 s^-1).

    Both equations have the form :math:`\dot y = a - b y`:

    - energetic ions: :math:`a_x = Y P`, :math:`b_x = Y P / N_\mathrm{ion} + 1/\tau_\mathrm{ion}`;
    - mobile ions: with :math:`s = (x/N_\mathrm{ion}) (P/P_\mathrm{mob})^p`,
      :math:`a_m = s M / \tau_\mathrm{mob}`, :math:`b_m = (s + 1)/\tau_\mathrm{mob}`.

    Returns ``(a_x, b_x, a_m, b_m)``.
    """
    P = np.maximum(np.asarray(P, dtype=float), 0.0)
    ax = ions["yield_ion"] * P
    bx = ax / ions["N_ion"] + 1.0 / ions["tau_ion"]
    s = (np.clip(x, 0.0, ions["N_ion"]) / ions["N_ion"]) * (P / ions["P_mob"]) ** ions["p_mob"]
    am = s * ions["M_mob"] / ions["tau_mob"]
    bm = (s + 1.0) / ions["tau_mob"]
    return ax, bx, am, bm


def rhs(P, x, m, ions: Mapping[str, float]):
    """(dx/dt, dm/dt) in cm^-3 s^-1 at phonon power P."""
    ax, bx, am, bm = rates(P, x, ions)
    return ax - bx * x, am - bm * m


def steady_state(P, ions: Mapping[str, float]):
    r"""Analytic steady state under constant phonon power P.

    .. math::

        x^* = \frac{Y P N_\mathrm{ion}}{Y P + N_\mathrm{ion}/\tau_\mathrm{ion}},\qquad
        m^* = M \frac{s^*}{1 + s^*},\quad s^* = \frac{x^*}{N_\mathrm{ion}}
              \left(\frac{P}{P_\mathrm{mob}}\right)^p.
    """
    P = np.maximum(np.asarray(P, float), 0.0)
    yp = ions["yield_ion"] * P
    x = yp * ions["N_ion"] / (yp + ions["N_ion"] / ions["tau_ion"])
    s = x / ions["N_ion"] * (P / ions["P_mob"]) ** ions["p_mob"]
    return x, ions["M_mob"] * s / (1.0 + s)
