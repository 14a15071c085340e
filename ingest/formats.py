"""Format identification: MIME type from libmagic (python-magic) and PRONOM PUID from
Siegfried (pygfried), each tool recorded with its version and signature file."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import ssl
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import magic
import pygfried

from storage.digest import map_files


@dataclass(frozen=True)
class FormatInfo:
    """What the tools say one file is."""

    mime: str | None
    puid: str | None
    format_name: str | None
    format_version: str | None
    basis: str = ""
    warning: str = ""


@dataclass(frozen=True)
class ToolVersions:
    """The identification tools as PREMIS agents will name them."""

    siegfried: str
    signature: str
    libmagic: str
    hashlib: str


@lru_cache(maxsize=1)
def tool_versions() -> ToolVersions:
    """Versions of Siegfried (and its PRONOM signature files), libmagic and OpenSSL."""
    probe = pygfried.identify_many([__file__], workers=1)
    details = "; ".join(i.get("details", "") for i in probe.get("identifiers", []))
    signature = f"{probe.get('signature', '')} ({details})" if details else probe.get("signature", "")
    version = magic.version() if hasattr(magic, "version") else 0
    libmagic = f"{version // 100}.{version % 100}" if version else "unknown"
    algorithms = "+".join(sorted(a for a in ("sha256", "sm3") if a in hashlib.algorithms_available))
    return ToolVersions(pygfried.version(), signature, libmagic, f"{ssl.OPENSSL_VERSION} ({algorithms})")


_local = threading.local()


def _mime(path: Path) -> str | None:
    """libmagic's MIME type; one handle per thread (a handle is not thread-safe, and
    python-magic's ctypes calls release the GIL, so threads identify in parallel)."""
    detector = getattr(_local, "magic", None)
    if detector is None:
        detector = _local.magic = magic.Magic(mime=True)
    try:
        return detector.from_file(str(path))
    except (OSError, magic.MagicException):
        return None


SUBPROCESS_MIN = 200   # below this, a child process costs more than it saves


def _siegfried(names: list[str], workers: int) -> dict:
    return pygfried.identify_many(names, workers=workers)


def _both(names: list[str], workers: int) -> tuple[dict, list[str | None]]:
    """Siegfried, then libmagic on threads: the body of a background identification."""
    result = _siegfried(names, workers)
    paths = [Path(n) for n in names]
    return result, map_files(_mime, paths, max(1, workers), [1] * len(paths), batch_bytes=64)


class BackgroundIdentification:
    """Identification of a folder transfer's files in a child process, started before the
    files are staged so that it overlaps with the copy (the bytes are the same: staging
    refuses a file that changes while it is read, and storage verifies every digest).

    Use :meth:`results` to collect them, keyed by the source path relative to the folder.
    """

    def __init__(self, root: Path, rels: list[str], workers: int = 2) -> None:
        self.root = root
        self.rels = rels
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._future = self._pool.submit(_both, [str(root / r) for r in self.rels], workers)

    @classmethod
    def start(cls, root: Path, workers: int = 2) -> "BackgroundIdentification | None":
        """Start on a folder with enough files to be worth a child process, else None."""
        rels = sorted(_regular_files(root))
        return cls(root, rels, workers) if len(rels) >= SUBPROCESS_MIN else None

    def results(self) -> dict[str, FormatInfo]:
        """source-relative path -> FormatInfo (waits for the child to finish)."""
        try:
            result, mimes = self._future.result()
        finally:
            self._pool.shutdown()
        infos = _combine([self.root / r for r in self.rels], result, mimes)
        return dict(zip(self.rels, infos))

    def cancel(self) -> None:
        """Stop waiting for the child (the transfer was refused)."""
        self._future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _regular_files(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return found


def identify(paths: list[Path], workers: int = 2) -> list[FormatInfo]:
    """Identify many files with Siegfried and libmagic.

    pygfried holds the GIL while Siegfried (Go, ``workers`` threads) scans, so for many files
    it runs in a child process while libmagic works through the same files on threads here.
    """
    if not paths:
        return []
    names = [str(p) for p in paths]
    if len(names) < SUBPROCESS_MIN:
        result = _siegfried(names, workers)
        mimes = [_mime(p) for p in paths]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            siegfried = pool.submit(_siegfried, names, workers)
            mimes = map_files(_mime, list(paths), max(1, workers), [1] * len(paths),
                              batch_bytes=64)
            result = siegfried.result()
    return _combine(paths, result, mimes)


def _combine(paths: list[Path], result: dict, mimes: list[str | None]) -> list[FormatInfo]:
    by_name = {entry["filename"]: entry for entry in result.get("files", [])}
    infos = []
    for path, mime in zip(paths, mimes):
        entry = by_name.get(str(path), {})
        match = next((m for m in entry.get("matches", []) if m.get("ns") == "pronom"), {})
        puid = match.get("id")
        if puid in (None, "", "UNKNOWN"):
            puid = None
        infos.append(FormatInfo(mime=mime or match.get("mime") or None, puid=puid,
                                format_name=match.get("format") or None,
                                format_version=match.get("version") or None,
                                basis=match.get("basis", ""), warning=match.get("warning", "")))
    return infos
