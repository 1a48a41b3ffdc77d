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
