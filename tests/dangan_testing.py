"""Small helpers for tests (importable from any test folder: tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every entry under a folder, to prove it was not modified."""
    result = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        result[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return result
