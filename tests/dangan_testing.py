"""Small helpers for tests (importable from any test folder: tests/ is on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every entry under a folder, to prove it was not modified."""
    result = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        result[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return result


def throwaway_venv(where: Path, requirement: str) -> Path:
    """A virtual environment of its own under ``where`` with ``requirement`` installed from
    PyPI (a tool run as its users run it, never imported into Dangan's environment); fails the
    test, with pip's message, when it does not install."""
    import pytest

    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                              "--disable-pip-version-check", requirement],
                             capture_output=True, text=True, timeout=900, check=False)
    if install.returncode != 0:
        pytest.fail(f"could not install {requirement} from PyPI:\n{install.stderr[-2000:]}")
    return venv
