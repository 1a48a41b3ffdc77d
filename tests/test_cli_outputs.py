"""The README's commands never write into tracked files: every output goes under out/, which
git ignores, and `jaxsim reproduce --out results` refuses to replace the committed outputs."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jaxsim.cli import main
from jaxsim.cli.reproduce import DEFAULT_OUT, REFERENCE_DIR

ROOT = Path(__file__).resolve().parents[1]


def _git(*args):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def _readme_outputs() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S)
    blocks += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    outs = []
    for block in blocks:
        for cmd in re.split(r"\n(?!\s)|&&", block.replace("\\\n", " ")):
            if not re.search(r"\bjaxsim\b|make_example\.py", cmd):
                continue
            outs += re.findall(r"--out\s+(\S+)", cmd)
            outs += re.findall(r"make_example\.py\s+(\S+)", cmd)
            if re.search(r"make_example\.py\s*$", cmd.split("#")[0].strip()):
                outs.append("results/sensitivity_example")  # its old default: tracked files
            if re.search(r"\bjaxsim reproduce\b", cmd) and "--out" not in cmd:
                outs.append(DEFAULT_OUT)
    return outs


def test_readme_commands_write_only_where_git_ignores():
    outs = _readme_outputs()
    assert len(outs) >= 10, outs  # sweep, reproduce, plot, bench, fit, protocol, sensitivity
    for out in outs:
        assert out.startswith("out/"), out
        assert _git("check-ignore", "-q", out).returncode == 0, f"{out} is not ignored by git"
        assert _git("ls-files", out).stdout == "", f"{out} holds tracked files"


def test_reproduce_default_folder_is_ignored():
    assert DEFAULT_OUT == "out/reproduce"
    assert _git("check-ignore", "-q", DEFAULT_OUT + "/fig3.json").returncode == 0


def test_reproduce_refuses_to_replace_committed_results(capsys, monkeypatch):
    assert REFERENCE_DIR == ROOT / "results" and (REFERENCE_DIR / "fig3.json").exists()
    monkeypatch.chdir(ROOT)
    before = (REFERENCE_DIR / "fig3.json").read_bytes()
    mtime = (REFERENCE_DIR / "fig3.json").stat().st_mtime_ns

    def no_work(*a, **k):  # the refusal comes before any work
        raise AssertionError("reproduce ran")

    monkeypatch.setattr("jaxsim.cli.reproduce.load", no_work)
    for argv in (["reproduce", "fig3", "--out", "results"],
                 ["reproduce", "all", "--out", str(REFERENCE_DIR) + "/"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("jaxsim reproduce: error: --out = ")
        assert "fig3.json" in err and "committed reference output" in err
        assert "default out/reproduce" in err and "--overwrite" in err
    assert (REFERENCE_DIR / "fig3.json").read_bytes() == before
    assert (REFERENCE_DIR / "fig3.json").stat().st_mtime_ns == mtime


def test_reproduce_writes_elsewhere_and_overwrite_is_explicit(tmp_path, monkeypatch, capsys):
    calls = []

    class Fig:
        @staticmethod
        def reproduce(out):
            calls.append(Path(out))
            return {}

    monkeypatch.setattr("jaxsim.cli.reproduce.load", lambda name: Fig)
    assert main(["reproduce", "fig1", "--out", str(tmp_path / "x")]) == 0
    assert main(["reproduce", "fig1", "--out", str(REFERENCE_DIR), "--overwrite"]) == 0
    assert calls == [tmp_path / "x", REFERENCE_DIR]
