from __future__ import annotations

from jaxsim.physics.parameters import Parameter

_A = Parameter("A", "s^-1", 1e7, "SRH trapping rate into deep traps", fit_lower=1e4, fit_upper=1e9)


_B = Parameter("B", "cm^3 s^-1", 1e-10, "bimolecular (radiative) recombination coefficient",
               fit_lower=1e-12, fit_upper=1e-8)


_C = Parameter("C", "cm^6 s^-1", 1e-28, "Auger recombination coefficient",
               fit_lower=1e-32, fit_upper=1e-26)


_D = Parameter("D", "s^-1", 1e6, "ion-assisted detrapping rate D = K sigma' n_ion",
               fit_lower=1e3, fit_upper=1e9)


_K1 = Parameter("K1", "s^-1", 1e4, "trap to valence-band relaxation rate",
                fit_lower=1e1, fit_upper=1e8)


_N0 = Parameter("n0", "cm^-3", 1e16, "carrier density excited by the pulse at t = 0",
                lower_inclusive=False, fit_lower=1e13, fit_upper=1e20)


_G = Parameter("G", "cm^-3 s^-1", 0.0, "constant (CW) generation rate", log=False,
               fit_lower=0.0, fit_upper=1e24)


def _carrier_rate_terms(values: dict, n_ref):
    # (C n_ref) n_ref: n_ref**2 alone overflows float32 at n_ref = 1e20
    return values["B"] * n_ref, values["C"] * n_ref * n_ref
