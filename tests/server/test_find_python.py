"""`make` finds Python 3.10 for Rasa, or says exactly how to get one."""
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

SCRIPT = str(ROOT / "scripts" / "find-python.sh")


def find(version: str, path: str, home: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, version], capture_output=True, text=True,
                          env={"PATH": path, "HOME": home or os.environ.get("HOME", "/root")}, timeout=60)


def test_without_python_310_it_stops_with_instructions(tmp_path):
    # A PATH with bash and coreutils only, and an empty home: no python3.10, pyenv or uv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sort", "cat", "env", "ls"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = find("3.10", str(bin_dir), home=str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert "pyenv install 3.10" in result.stderr and "uv python install 3.10" in result.stderr


@pytest.mark.skipif(not (shutil.which("pyenv") or shutil.which("python3.10")), reason="no pyenv or python3.10 here")
def test_it_finds_a_working_python_310():
    result = find("3.10", os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    version = subprocess.run([result.stdout.strip(), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("Python 3.10")
