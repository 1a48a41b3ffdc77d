"""`jaxsim --help` is instant (imports neither JAX nor the models); every option of every
subcommand says what it is, with its unit and default."""

import subprocess
import sys
import time

CHILD = """
import sys, time
t0 = time.perf_counter()
from jaxsim.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("SECONDS", time.perf_counter() - t0, file=sys.stderr)
print("LOADED", " ".join(sorted(m for m in sys.modules if m.split(".")[0] in
      ("jax", "jaxlib", "diffrax", "equinox", "numpy", "matplotlib", "xarray", "zarr")
      or m.startswith("jaxsim.physics"))), file=sys.stderr)
"""


def _child(*argv):
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True,
                       timeout=120)
    lines = dict(ln.split(" ", 1) for ln in r.stderr.splitlines()
                 if ln.startswith(("SECONDS", "LOADED")))
    return r, float(lines["SECONDS"]), lines["LOADED"].split()


def test_top_level_help_imports_no_jax_and_is_fast():
    r, seconds, loaded = _child("--help")
    assert r.returncode == 0, r.stderr
    assert "simulate" in r.stdout and "sweep" in r.stdout and "sensitivity" in r.stdout
    assert loaded == [], loaded  # not jax, numpy, the models, ...
    assert seconds < 0.5, seconds  # about 0.02 s; importing jax alone takes 1-2 s


def test_no_arguments_and_version_import_no_jax():
    r, _, loaded = _child()
    assert r.returncode == 0 and "usage: jaxsim" in r.stdout and loaded == []
    r, _, loaded = _child("--version")
    assert "jaxsim 0." in r.stdout and loaded == []


def test_console_script_help_in_a_fresh_process():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "jaxsim", "--help"],
                       capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert r.returncode == 0 and "usage: jaxsim" in r.stdout
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in r.stderr.splitlines() if "|" in ln}
    assert "jaxsim.cli" in imported and "jax" not in imported and "numpy" not in imported
    assert wall < 5, wall


def test_importing_jaxsim_still_gives_float64():
    code = ("import jaxsim, jax.numpy as jnp; import jax; "
            "print(jax.config.jax_enable_x64, jnp.zeros(1).dtype, jaxsim.solve.__module__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "float64", "jaxsim.numerics.reference"], r.stderr
    # jax imported first, then jaxsim: the same
    code = "import jax; import jaxsim; import jax.numpy as jnp; print(jnp.zeros(1).dtype)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "float64", r.stderr


# -- help texts ---------------------------------------------------------------------------

import argparse  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jaxsim.cli import COMMANDS, main  # noqa: E402


def parser_of(name: str) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="jaxsim")
    importlib.import_module(COMMANDS[name][0]).register(root.add_subparsers())
    return root._subparsers._group_actions[0].choices[name]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def help_of(name: str) -> str:
    return flat(parser_of(name).format_help())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_with_its_default(name):
    for action in parser_of(name)._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            assert action.help != argparse.SUPPRESS or action.dest == "tiny", action.dest
            continue
        what = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and len(action.help) > 15, what
        if action.option_strings:  # options: the default (or 'required') is said
            assert re.search(r"default|required", action.help, re.I), what


UNITS = {
    "simulate": {"--times": ["in s", "2us"], "--rep-rate": ["Hz"], "--atol": ["n/n0", "cm^-3"],
                 "--rtol": ["relative"], "--set": ["unit"], "--max-steps": ["steps"],
                 "--dtype": ["float64"], "--plot": ["ns"]},
    "fit": {"--n0": ["cm^-3"], "--n0-per-watt": ["cm^-3 W^-1"], "--irf-fwhm": ["in s", "50ps"],
            "--crop": ["in s", "600ns"], "--time-unit": ["time column", "default ns"],
            "--sigma": ["data's unit"], "--layout": ["columns"], "--background": ["free"],
            "--shift": ["bins"], "--seed": ["default 0"], "--bounds": ["unit"]},
    "protocol": {"--rtol": ["relative", "default 1e-6"]},
    "sweep": {"--chunk": ["4096"]},
    "sensitivity": {"--N": ["power of two"], "--chunk-size": ["1024"]},
    "bench": {"--dtype": ["float32"], "--seed": ["default 0"]},
    "plot": {"--at": ["unit"]},
}


@pytest.mark.parametrize("name", list(UNITS))
def test_units_in_option_help(name):
    actions = {s: a for a in parser_of(name)._actions for s in a.option_strings}
    for option, words in UNITS[name].items():
        for w in words:
            assert w in flat(actions[option].help), (name, option, w)


def test_model_help_lists_each_model_with_one_line_from_the_registry():
    from jaxsim.physics.registry import models

    for name in ("simulate", "fit"):
        action = next(a for a in parser_of(name)._actions if "--model" in a.option_strings)
        lines = action.help.splitlines()
        for m in models().values():
            assert f"  {m.name}: {m.description}" in lines, (name, m.name)


def test_parameters_listed_with_unit_default_and_meaning():
    from jaxsim.physics.registry import models

    text = help_of("simulate")
    for m in models().values():
        for p in m.parameters:
            assert re.search(rf"{re.escape(p.name)} {re.escape(p.unit)} {re.escape(f'{p.default:g}')} "
                             rf"{re.escape(flat(p.meaning))}", text), (m.name, p.name)


def test_solver_names_in_words():
    from jaxsim.cli._help import SOLVER_WORDS
    from jaxsim.numerics.config import SOLVERS

    assert set(SOLVER_WORDS) == {"auto", *SOLVERS}
    text = help_of("simulate")
    assert "explicit Runge-Kutta" in text and "implicit (ESDIRK) for stiff" in text
    for name, words in SOLVER_WORDS.items():
        assert f"{name}: {flat(words)}" in text


@pytest.fixture()
def decay_file(tmp_path):
    """One decay in a text file, time column in ns: bins 0..99 ns of 1 ns."""
    t = np.arange(100.0)
    y = np.round(1000 * np.exp(-t / 20)) + 5
    p = tmp_path / "decay.txt"
    p.write_text("t y\n" + "".join(f"{a:g} {b:g}\n" for a, b in zip(t, y)))
    return p


@pytest.fixture()
def captured_fit(monkeypatch):
    """`jaxsim fit` up to the fit: the DecaySet it would fit, without fitting."""
    seen = {}

    def fake_fit(model, ds, **kw):
        from jaxsim.physics.errors import ParameterError

        seen["ds"] = ds
        raise ParameterError("stopped before fitting (test)")

    monkeypatch.setattr("jaxsim.studies.fit.fit", fake_fit)
    return seen


def test_fit_times_one_convention(decay_file, tmp_path, captured_fit, capsys):
    base = ["fit", str(decay_file), "--n0", "1e16", "--free", "A", "--out", str(tmp_path / "o")]
    # --crop and --irf-fwhm: seconds, or a number with a unit, whatever --time-unit is
    for crop, fwhm in ((":60ns", "2ns"), (":6e-8", "2e-9"), (":0.06us", "2000ps")):
        assert main([*base, "--crop", crop, "--irf-fwhm", fwhm]) == 2
        assert "stopped before fitting" in capsys.readouterr().err
        ds = captured_fit["ds"]
        np.testing.assert_array_equal(np.asarray(ds.mask)[0], np.arange(100) < 60)
        irf = np.asarray(ds.irf)
        assert irf.size > 1 and abs(irf.sum() - 1) < 1e-12
        if fwhm == "2ns":
            first = irf
        np.testing.assert_allclose(irf, first, rtol=1e-12)


@pytest.mark.parametrize("extra,message", [
    (["--crop", ":600"], "--crop TMAX = '600' = 600 s is outside the data (0 to 1e-07 s): expected "
     "a time within it, in s, or a number with a unit"),
    (["--crop", ":60"], "for 60 ns write 60ns"),
    (["--crop", "600"], "--crop = '600': expected TMIN:TMAX"),
    (["--crop", "50ns:10ns"], "TMAX is not after TMIN"),
    (["--crop", ":60parsec"], "--crop TMAX = '60parsec': unit 'parsec' is not known"),
    (["--irf-fwhm", "0"], "--irf-fwhm = '0': expected a width > 0"),
    (["--irf-fwhm", "fast"], "--irf-fwhm = 'fast' is not a time"),
])
def test_fit_refuses_times_that_cannot_be_meant(decay_file, tmp_path, captured_fit, capsys,
                                                extra, message):
    assert main(["fit", str(decay_file), "--n0", "1e16", "--free", "A", "--out",
                 str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after any progress lines
    assert last.startswith("jaxsim fit: error: ") and message in last, err
    assert "ds" not in captured_fit
