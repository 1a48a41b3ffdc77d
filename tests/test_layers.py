"""The package's layering (pyproject.toml [tool.importlinter]) holds: imports only go down."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    assert Path(exe).exists(), "import-linter is not installed: pip install -e '.[test]'"
    run = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_layer_is_a_package_with_one_job():
    for layer in ("physics", "observables", "numerics", "studies", "io", "plots", "paper",
                  "bench", "cli"):
        assert (ROOT / "jaxsim" / layer / "__init__.py").is_file(), layer
