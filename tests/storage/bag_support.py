"""Small BagIt bags for the storage tests, and what each of their files must be."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bagit

from storage.locations import ExpectedFile


def make_bag(folder: Path, files: dict[str, bytes]) -> dict[str, ExpectedFile]:
    """Write ``files`` (payload path -> bytes) as a BagIt bag; return every file's expectation.

    The paths are relative to ``data/``; the bag's tag files are included in the result.
    """
    for rel, body in files.items():
        target = folder / rel          # make_bag moves everything into data/
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    bagit.make_bag(str(folder), checksums=["sha256"])
    return expected_of_folder(folder)


def expected_of_folder(folder: Path) -> dict[str, ExpectedFile]:
    """Size and SHA-256 of every file under ``folder``, by bag-relative path."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            body = path.read_bytes()
            result[path.relative_to(folder).as_posix()] = ExpectedFile(
                len(body), {"sha256": hashlib.sha256(body).hexdigest()})
    return result
