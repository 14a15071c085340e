"""Format identification: MIME type from libmagic (python-magic) and PRONOM PUID from
Siegfried (pygfried), each tool recorded with its version and signature file.

Siegfried runs in a child Python process for many files: pygfried holds the GIL while it
scans, which would stop every other thread here. The child is a plain interpreter running
:func:`_siegfried_main`; it imports this module and pygfried only (a multiprocessing child
would import the parent's ``__main__`` again, the whole CLI or benchmark). libmagic releases
the GIL and runs on threads here meanwhile; for a file staged in one read, staging already
asked libmagic about the bytes it held (:func:`sniff_mime`), and identification does not
open the file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import magic
import pygfried

from storage.aip import map_files


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


def _detector() -> magic.Magic:
    """This thread's libmagic handle (a handle is not thread-safe; python-magic's ctypes
    calls release the GIL, so threads identify in parallel)."""
    detector = getattr(_local, "magic", None)
    if detector is None:
        detector = _local.magic = magic.Magic(mime=True)
    return detector


def _mime(path: str | Path) -> str | None:
    """libmagic's MIME type of a file."""
    try:
        return _detector().from_file(str(path))
    except (OSError, magic.MagicException):
        return None


def sniff_mime(data: bytes) -> str | None:
    """libmagic's MIME type of the whole content of a non-empty file.

    For every byte of a regular file that libmagic would read itself (it reads up to 7 MiB;
    staging hands over files of at most 1 MiB) the answer is the one :func:`_mime` gives for
    the file: libmagic looks at the same bytes. An empty file is not sniffed, because
    libmagic names it from its inode (``inode/x-empty``).
    """
    if not data:
        raise ValueError("an empty file is identified from its inode, not sniffed")
    try:
        return _detector().from_buffer(data)
    except magic.MagicException:
        return None


SUBPROCESS_MIN = 200   # below this, a child process costs more than it saves


def _siegfried(names: list[str], workers: int) -> dict:
    return pygfried.identify_many(names, workers=workers)


class SiegfriedJob:
    """Siegfried over many files in a child process, started at once; :meth:`result`
    waits for it.

    The names go to the child through an unnamed temporary file (NUL-separated, so that any
    file name passes) and its result comes back as JSON on its standard output.
    """

    def __init__(self, names: Sequence[str], workers: int = 2) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._done = False
        with tempfile.TemporaryFile() as listing:
            listing.write(b"\0".join(os.fsencode(n) for n in names))
            listing.seek(0)
            self._child = subprocess.Popen(
                [sys.executable, "-c", "from ingest.formats import _siegfried_main; _siegfried_main()",
                 str(max(1, workers))],
                stdin=listing, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def result(self) -> dict:
        """pygfried's detailed result for every name (waits for the child).

        Raises:
            RuntimeError: the child failed (its error output is in the message).
        """
        out, err = self._child.communicate()
        self._done = True
        if self._child.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise RuntimeError(f"Siegfried child process failed (exit {self._child.returncode}): "
                               + " | ".join(tail))
        return json.loads(out)

    def cancel(self) -> None:
        """Stop the child unless its result was collected (the transfer was refused or is
        already ingested)."""
        if self._done:
            return
        self._done = True
        if self._child.poll() is None:
            self._child.kill()
        self._child.communicate()


def _siegfried_main() -> None:
    """The child's body: NUL-separated names on stdin, pygfried's result as JSON on stdout."""
    names = [os.fsdecode(n) for n in sys.stdin.buffer.read().split(b"\0") if n]
    result = _siegfried(names, int(sys.argv[1]))
    # only what _combine reads travels back: the PRONOM match of each file
    result["files"] = [{"filename": f["filename"],
                        "matches": [m for m in f.get("matches", []) if m.get("ns") == "pronom"]}
                       for f in result.get("files", [])]
    sys.stdout.write(json.dumps(result))


def _mimes(names: list[str], known: Sequence[str | None] | None, workers: int) -> list[str | None]:
    """libmagic's MIME type of each file: the one already known, else read from the file
    (on ``workers`` threads)."""
    if known is None:
        known = [None] * len(names)
    missing = [i for i, mime in enumerate(known) if mime is None]
    found = list(known)
    if missing:
        paths = [names[i] for i in missing]
        for index, mime in zip(missing, map_files(_mime, paths, max(1, workers),
                                                  [1] * len(paths), batch_bytes=64)):
            found[index] = mime
    return found


class BackgroundIdentification:
    """Identification of a folder transfer's files, started before the files are staged so
    that Siegfried (in a child process) overlaps with the copy (the bytes are the same:
    staging refuses a file that changes while it is read, and storage verifies every digest).

    Use :meth:`results` to collect them, keyed by the source path relative to the folder.
    """

    def __init__(self, root: Path, rels: list[str], workers: int = 2) -> None:
        self.root = root
        self.rels = rels
        self._names = [os.path.join(root, r) for r in rels]
        self._job = SiegfriedJob(self._names, workers)
        self.workers = workers

    @classmethod
    def start(cls, root: Path, workers: int = 2) -> "BackgroundIdentification | None":
        """Start on a folder with enough files to be worth a child process, else None."""
        rels = sorted(_regular_files(root))
        return cls(root, rels, workers) if len(rels) >= SUBPROCESS_MIN else None

    def results(self, mimes: Mapping[str, str | None] | None = None) -> dict[str, FormatInfo]:
        """source-relative path -> FormatInfo (waits for the child).

        Arguments:
            mimes: MIME types already known (sniffed while staging), by source-relative
                path; libmagic reads the other files now, while Siegfried finishes.
        """
        try:
            known = [mimes.get(r) for r in self.rels] if mimes else None
            found = _mimes(self._names, known, self.workers)
            result = self._job.result()
        except BaseException:
            self._job.cancel()
            raise
        return dict(zip(self.rels, _combine(self._names, result, found)))

    def cancel(self) -> None:
        """Stop the child (the transfer was refused)."""
        self._job.cancel()


def _regular_files(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return found


def identify(paths: Sequence[Path | str], workers: int = 2,
             mimes: Sequence[str | None] | None = None) -> list[FormatInfo]:
    """Identify many files with Siegfried and libmagic.

    Arguments:
        paths: the files.
        workers: Siegfried's workers, and libmagic's threads.
        mimes: libmagic's MIME type of each file when already known (None where not).

    For many files Siegfried runs in a child process while libmagic works through the
    files on threads here.
    """
    if not paths:
        return []
    names = [str(p) for p in paths]
    job = SiegfriedJob(names, workers) if len(names) >= SUBPROCESS_MIN else None
    try:
        found = _mimes(names, mimes, workers if job else 1)
        result = job.result() if job else _siegfried(names, workers)
    except BaseException:
        if job:
            job.cancel()
        raise
    return _combine(names, result, found)


def _combine(names: list[str], result: dict, mimes: list[str | None]) -> list[FormatInfo]:
    by_name = {entry["filename"]: entry for entry in result.get("files", [])}
    infos = []
    cache: dict[tuple, FormatInfo] = {}
    for name, mime in zip(names, mimes):
        entry = by_name.get(name, {})
        match = next((m for m in entry.get("matches", []) if m.get("ns") == "pronom"), {})
        key = (mime, match.get("id"), match.get("format"), match.get("version"),
               match.get("mime"), match.get("basis", ""), match.get("warning", ""))
        info = cache.get(key)
        if info is None:
            puid = match.get("id")
            if puid in (None, "", "UNKNOWN"):
                puid = None
            # FormatInfo is frozen: files with the same answer share one instance
            info = cache[key] = FormatInfo(
                mime=mime or match.get("mime") or None, puid=puid,
                format_name=match.get("format") or None,
                format_version=match.get("version") or None,
                basis=match.get("basis", ""), warning=match.get("warning", ""))
        infos.append(info)
    return infos
