"""Format identification: MIME type from libmagic (python-magic) and PRONOM PUID from
Siegfried (pygfried), each tool recorded with its version and signature file.

The MIME type of a file that Siegfried identifies by its signature (a byte or container
match, no warning) is the one of its PRONOM record; libmagic is asked only about the files
Siegfried leaves unidentified, matches on the extension alone, or matches with a warning
(:func:`pronom_mime`). Each :class:`FormatInfo` says which tool gave its MIME type. The two
tools agree on every signature-identified file of the corpus of ``bench/mime_agreement.py``
(bench/results/mime_agreement.json).

Siegfried runs in a child Python process for many files: pygfried holds the GIL while it
scans, which would stop every other thread here. The child is a plain interpreter running
:func:`_siegfried_main`; it imports this module and pygfried only (a multiprocessing child
would import the parent's ``__main__`` again, the whole CLI or benchmark). It answers in
batches, one JSON line each, so that libmagic (which releases the GIL) works on threads here
on the files of one batch that need it while Siegfried goes on with the next.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import magic
import pygfried



@dataclass(frozen=True)
class FormatInfo:
    """What the tools say one file is."""

    mime: str | None
    puid: str | None
    format_name: str | None
    format_version: str | None
    basis: str = ""
    warning: str = ""
    mime_by: str = ""   # "siegfried" (the PRONOM record), "libmagic", or "" (no MIME type)


SIGNATURE, EXTENSION_ONLY, UNIDENTIFIED, AMBIGUOUS, NO_MIME, MIME_DIFFERS = (
    "signature", "extension-only", "unidentified", "ambiguous", "no-mime", "mime-differs")

MIME_DIFFERS_PUIDS = frozenset({
    "fmt/101",     # XML: PRONOM application/xml, libmagic text/xml
    "fmt/102",     # XHTML 1.0: PRONOM application/xhtml+xml, libmagic text/xml
    "x-fmt/453",   # TrueType: PRONOM font/ttf, libmagic font/sfnt
    "x-fmt/266",   # gzip: one file of the corpus libmagic names application/octet-stream
})
"""Formats that Siegfried identifies by signature but whose PRONOM MIME type is not the one
libmagic gives (found on the corpus of ``bench/mime_agreement.py``): libmagic is still asked
about them, so that their MIME type stays what it was."""


def siegfried_basis(match: Mapping[str, str]) -> str:
    """How Siegfried identified a file, from its PRONOM match: :data:`SIGNATURE` (a byte or
    container signature matched, no warning, a single MIME type in the record),
    :data:`EXTENSION_ONLY`, :data:`UNIDENTIFIED`, :data:`AMBIGUOUS` (a warning: several
    possibilities, an extension mismatch, a text-only match), :data:`NO_MIME` (identified
    by signature, but the PRONOM record has no MIME type) or :data:`MIME_DIFFERS` (a format
    of :data:`MIME_DIFFERS_PUIDS`)."""
    if match.get("id") in (None, "", "UNKNOWN"):
        return UNIDENTIFIED
    basis, warning = match.get("basis", "") or "", match.get("warning", "") or ""
    if "byte match" not in basis:
        return EXTENSION_ONLY if "extension match" in basis else AMBIGUOUS
    if warning:
        return AMBIGUOUS
    mime = (match.get("mime") or "").strip()
    if not mime:
        return NO_MIME
    if "," in mime or " " in mime:
        return AMBIGUOUS
    if match["id"] in MIME_DIFFERS_PUIDS:
        return MIME_DIFFERS
    return SIGNATURE


def pronom_mime(match: Mapping[str, str]) -> str | None:
    """The MIME type of the PRONOM record Siegfried matched by signature, or None where
    libmagic has to be asked (see :func:`siegfried_basis`)."""
    return match["mime"].strip() if siegfried_basis(match) == SIGNATURE else None


@dataclass(frozen=True)
class ToolVersions:
    """The identification tools as PREMIS agents will name them."""

    siegfried: str
    signature: str
    libmagic: str
    hashlib: str


_HEADER_KEYS = ("siegfried", "signature", "identifiers")
_siegfried_header: dict = {}
"""The header of the last answer Siegfried gave in this process or its child (its version and
signature files): :func:`tool_versions` reads it instead of loading the signatures here."""


def _keep_header(result: Mapping) -> None:
    header = {k: result[k] for k in _HEADER_KEYS if k in result}
    if header.get("signature"):
        _siegfried_header.clear()
        _siegfried_header.update(header)


@lru_cache(maxsize=1)
def tool_versions() -> ToolVersions:
    """Versions of Siegfried (and its PRONOM signature files), libmagic and OpenSSL.

    The signature files are named from the header of an answer Siegfried already gave (the
    child process of a large transfer has them loaded; loading them again here would cost
    about 80 MiB and half a second); only when there was none is a file identified to ask."""
    probe = dict(_siegfried_header) or pygfried.identify_many([__file__], workers=1)
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
BATCH = 256            # files the Siegfried child identifies before it answers for them

def _siegfried(names: list[str], workers: int) -> dict:
    result = pygfried.identify_many(names, workers=workers)
    _keep_header(result)
    return result


def _pronom_only(files: list[dict]) -> list[dict]:
    """What :func:`_combine` reads of pygfried's files: the PRONOM match of each."""
    return [{"filename": f["filename"],
             "matches": [m for m in f.get("matches", []) if m.get("ns") == "pronom"]}
            for f in files]


class SiegfriedJob:
    """Siegfried over many files in a child process, started at once; :meth:`result`
    waits for it. The child stays until :meth:`close`, with the signature files loaded, and
    :meth:`more` asks it about further files (the reports and metadata files of the AIPs),
    so that they are not loaded a second time in this process.

    The names go to the child through an unnamed temporary file (NUL-separated, so that any
    file name passes) and its result comes back on its standard output, one JSON line per
    batch of :data:`BATCH` files and a last line ``{"done": true}``. Later requests go
    through a pipe, each a NUL-separated list ended by two NULs; the child ends when that
    pipe is closed.
    """

    def __init__(self, names: Sequence[str], workers: int = 2) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # pygfried's Go heap: collected at 15 % growth instead of 100 % (about 50 MiB less
        # for 20,000 files, no slower within the noise); a GOGC of the caller's is kept
        env.setdefault("GOGC", "15")
        self._done = False
        self._closed = False
        self._reading = False
        self._released = False
        self._lock = threading.Lock()
        self._errors = tempfile.TemporaryFile()   # not a pipe: a full pipe would stop the child
        requests, self._requests = os.pipe()
        try:
            with tempfile.TemporaryFile() as listing:
                listing.write(b"\0".join(os.fsencode(n) for n in names))
                listing.seek(0)
                self._child = subprocess.Popen(
                    [sys.executable, "-c",
                     "from ingest.formats import _siegfried_main; _siegfried_main()",
                     str(max(1, workers)), str(requests)],
                    stdin=listing, stdout=subprocess.PIPE, stderr=self._errors, env=env,
                    pass_fds=(requests,))
        except BaseException:
            os.close(self._requests)
            self._errors.close()
            raise
        finally:
            os.close(requests)

    def result(self, on_files: Callable[[list[dict]], None] | None = None) -> dict:
        """pygfried's result (``{"files": [...]}``, the PRONOM match of each) for every name;
        waits for the child's answer.

        Arguments:
            on_files: called with each batch of files as the child answers for it.

        Raises:
            RuntimeError: the child failed (its error output is in the message).
        """
        files = self._answer(on_files)
        self._done = True
        return {"files": files}

    def more(self, names: Sequence[str]) -> dict:
        """pygfried's result for further files, from the child (after :meth:`result`).

        Raises:
            RuntimeError: the child is gone or failed.
        """
        if not self._done or self._closed or self._child.poll() is not None:
            raise RuntimeError("the Siegfried child process is not waiting for requests")
        view = memoryview(b"\0".join(os.fsencode(n) for n in names) + b"\0\0")
        try:
            while view:
                assert self._requests is not None
                view = view[os.write(self._requests, view):]
        except OSError as exc:
            self.cancel()
            raise RuntimeError(f"Siegfried child process failed: {exc}") from exc
        return {"files": self._answer(None)}

    def _answer(self, on_files: Callable[[list[dict]], None] | None) -> list[dict]:
        files: list[dict] = []
        assert self._child.stdout is not None
        broken: BaseException | None = None
        # the files of one format share one match dict (they are only read), so that the
        # answer for a transfer of many files is not a dict and strings per file
        shared: dict[tuple, dict] = {}
        self._reading = True
        try:
            while True:
                line = self._child.stdout.readline()
                if not line:
                    broken = EOFError("its output ended before the answer did")
                    break
                try:
                    answer = json.loads(line)
                    if answer.get("done"):
                        break
                    batch = answer["files"]
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    broken = exc
                    break
                if "header" in answer:
                    _keep_header(answer["header"])
                for entry in batch:
                    entry["matches"] = [_shared(shared, m) for m in entry.get("matches", ())]
                files += batch
                if on_files is not None:
                    on_files(batch)
        except BaseException:
            self._reading = False
            self.cancel()
            raise
        self._reading = False
        if broken is not None:
            if self._closed:          # stopped by cancel() meanwhile
                self._release()
                raise RuntimeError("the Siegfried child process was stopped")
            self._closed = True
            self._close_requests()
            if self._child.poll() is None:
                self._child.kill()
            self._child.wait()
            self._errors.seek(0)
            err = self._errors.read()
            self._release()
            tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
            why = (f"; {broken}" if isinstance(broken, EOFError)
                   else f"; its answer did not parse: {broken}")
            raise RuntimeError(f"Siegfried child process failed (exit {self._child.returncode}"
                               f"{why}): " + " | ".join(tail))
        return files

    def _close_requests(self) -> None:
        with self._lock:
            if self._requests is not None:
                os.close(self._requests)
                self._requests = None

    def _release(self) -> None:
        """Close the child's output and error files (once)."""
        with self._lock:
            if not self._released:
                self._released = True
                assert self._child.stdout is not None
                self._child.stdout.close()
                self._errors.close()

    def close(self) -> None:
        """Let the child end (it ends when its request pipe is closed) and wait for it; one
        that does not end within 10 seconds is killed."""
        if self._closed:
            return
        self._closed = True
        self._close_requests()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._release()

    def cancel(self) -> None:
        """Stop the child at once (the transfer was refused or is already ingested, or its
        answer is no longer wanted). A thread reading its answer gets an error."""
        if self._closed:
            return
        self._closed = True
        self._close_requests()
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        if not self._reading:       # else the reader closes them when it sees the end
            self._release()


def _shared(cache: dict[tuple, dict], match: dict) -> dict:
    try:
        return cache.setdefault(tuple(match.items()), match)
    except TypeError:       # a value that is not hashable: kept as it is
        return match


def _siegfried_main() -> None:
    """The child's body: NUL-separated names on stdin; for each batch of :data:`BATCH`
    names, one line of JSON on stdout with the PRONOM match of each file, then
    ``{"done": true}``; then the same for each request on the pipe named by its second
    argument, until that pipe is closed."""
    names = [os.fsdecode(n) for n in sys.stdin.buffer.read().split(b"\0") if n]
    workers = int(sys.argv[1])
    _answer_names(names, workers, header=True)
    for request in _requests(int(sys.argv[2])):
        _answer_names(request, workers, header=False)


def _answer_names(names: list[str], workers: int, header: bool) -> None:
    for start in range(0, len(names), BATCH):
        result = _siegfried(names[start:start + BATCH], workers)
        answer = {"files": _pronom_only(result.get("files", []))}
        if header and start == 0:   # the version and signature files, for the PREMIS agent
            answer["header"] = {k: result[k] for k in _HEADER_KEYS if k in result}
        _write_line(json.dumps(answer) + "\n")
    _write_line('{"done": true}\n')


def _requests(fd: int) -> Iterator[list[str]]:
    """Each request read from ``fd``: names separated by a NUL, ended by two NULs (a name
    is never empty, so two NULs in a row end it)."""
    import select

    buffer = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            select.select([fd], [], [])
            continue
        except InterruptedError:
            continue
        if not chunk:
            return
        buffer += chunk
        while True:
            end = buffer.find(b"\0\0")
            if end < 0:
                break
            request, buffer = buffer[:end], buffer[end + 2:]
            yield [os.fsdecode(n) for n in request.split(b"\0") if n]


def _write_line(text: str) -> None:
    """Write all of ``text`` to standard output, whatever the pipe does: a write that a
    signal cuts short, or that finds the pipe full once the Go runtime of pygfried has made
    the descriptor non-blocking, is continued until every byte is out."""
    import select

    view = memoryview(text.encode("utf-8"))
    while view:
        try:
            written = os.write(1, view)
        except BlockingIOError:
            select.select([], [1], [])
            continue
        except InterruptedError:
            continue
        view = view[written:]


class _Libmagic:
    """libmagic's MIME type of the files Siegfried leaves without one (:func:`pronom_mime`),
    asked batch by batch as Siegfried answers, on ``workers`` threads.

    Arguments:
        names: the files.
        known: libmagic's MIME type of each file where it is already known (None where
            not), or None.
    """

    def __init__(self, names: Sequence[str], known: Sequence[str | None] | None,
                 workers: int) -> None:
        self.known = ({n: k for n, k in zip(names, known) if k is not None}
                      if known is not None else {})
        self.found: dict[str, str | None] = {}
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self._futures: list[tuple[list[str], Future]] = []
        self._asked: set[str] = set()

    def on_files(self, files: list[dict]) -> None:
        """Ask libmagic about the files of a Siegfried batch that need it."""
        todo = []
        for entry in files:
            match = next((m for m in entry.get("matches", []) if m.get("ns") == "pronom"), {})
            if pronom_mime(match) is None:
                todo.append(entry["filename"])
        self.ask(todo)

    def ask(self, names: list[str]) -> None:
        todo = []
        for name in names:
            if name in self._asked:
                continue
            self._asked.add(name)
            known = self.known.get(name)
            if known is not None:
                self.found[name] = known
            else:
                todo.append(name)
        if self._pool is None:
            self.found.update((name, _mime(name)) for name in todo)
            return
        for start in range(0, len(todo), 64):
            part = todo[start:start + 64]
            self._futures.append((part, self._pool.submit(lambda part: [_mime(n) for n in part],
                                                          part)))

    def finish(self, names: Sequence[str], result: dict) -> dict[str, str | None]:
        """Ask about the files Siegfried did not answer for, wait for every answer and
        return them by name."""
        answered = {entry["filename"] for entry in result.get("files", [])}
        self.ask([name for name in names if name not in answered])
        self.close()
        return self.found

    def close(self) -> None:
        try:
            for part, future in self._futures:
                self.found.update(zip(part, future.result()))
        finally:
            self._futures = []
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)


class BackgroundIdentification:
    """Identification of a folder transfer's files, started before the files are staged so
    that Siegfried (in a child process) overlaps with the copy (the bytes are the same:
    staging refuses a file that changes while it is read, and storage verifies every digest).

    A thread reads the child's answers as they come (a child whose answers are not read
    stops at a full pipe after its first batch) and hands the files that need libmagic to
    its threads at once, so both tools work while the files are copied.

    Use :meth:`results` to collect them, keyed by the source path relative to the folder.
    """

    def __init__(self, root: Path, rels: list[str], workers: int = 2) -> None:
        self.root = root
        self.rels = rels
        self._names = [os.path.join(root, r) for r in rels]
        self._job = SiegfriedJob(self._names, workers)
        self.workers = workers
        self._magic = _Libmagic(self._names, None, workers)
        self._answer: dict | None = None
        self._failure: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="siegfried-answers",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            self._answer = self._job.result(self._magic.on_files)
        except BaseException as exc:    # handed to results()
            self._failure = exc

    @classmethod
    def start(cls, root: Path, workers: int = 2) -> "BackgroundIdentification | None":
        """Start on a folder with enough files to be worth a child process, else None."""
        rels = sorted(_regular_files(root))
        return cls(root, rels, workers) if len(rels) >= SUBPROCESS_MIN else None

    def results(self) -> dict[str, FormatInfo]:
        """source-relative path -> FormatInfo (waits for the child and libmagic)."""
        self._reader.join()
        try:
            if self._failure is not None:
                raise self._failure
            assert self._answer is not None
            found = self._magic.finish(self._names, self._answer)
        except BaseException:
            self._job.cancel()
            self._magic.close()
            raise
        formats = dict(zip(self.rels, _combine(self._names, self._answer, found)))
        self._names = self.rels = []   # not held for the rest of the ingest
        self._answer = None
        return formats

    def identify(self, paths: Sequence[Path | str]) -> list[FormatInfo]:
        """:func:`identify` of further files by the same child (after :meth:`results`),
        or in this process when the child is gone."""
        try:
            return identify(paths, self.workers, child=self._job)
        except RuntimeError:
            return identify(paths, self.workers)

    def cancel(self) -> None:
        """Stop the child (the transfer was refused, or the ingest is over)."""
        self._job.cancel()
        self._reader.join()
        self._magic.close()


def _regular_files(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return found


def identify(paths: Sequence[Path | str], workers: int = 2,
             mimes: Sequence[str | None] | None = None,
             child: SiegfriedJob | None = None) -> list[FormatInfo]:
    """Identify many files with Siegfried, and with libmagic those that Siegfried does not
    identify by signature (:func:`pronom_mime`).

    Arguments:
        paths: the files.
        workers: Siegfried's workers, and libmagic's threads.
        mimes: libmagic's MIME type of each file when already known (None where not).
        child: a Siegfried child whose first answer was collected, to ask instead of
            loading the signature files here (:meth:`SiegfriedJob.more`).

    For many files Siegfried runs in a child process while libmagic works through the
    files it leaves without a MIME type on threads here.
    """
    if not paths:
        return []
    names = [str(p) for p in paths]
    job = SiegfriedJob(names, workers) if child is None and len(names) >= SUBPROCESS_MIN else None
    magic_ = _Libmagic(names, mimes, workers if job else 1)
    try:
        if job is not None:
            result = job.result(magic_.on_files)
        elif child is not None:
            result = child.more(names)
            magic_.on_files(result["files"])
        else:
            result = _siegfried(names, workers)
            magic_.on_files(result.get("files", []))
        found = magic_.finish(names, result)
    except BaseException:
        if job:
            job.cancel()
        magic_.close()
        raise
    if job is not None:
        job.close()
    return _combine(names, result, found)


def _combine(names: list[str], result: dict, mimes: Mapping[str, str | None]) -> list[FormatInfo]:
    """One FormatInfo per name: Siegfried's PRONOM match, and the MIME type of the PRONOM
    record for a signature match, else libmagic's (else the record's, as before)."""
    by_name = {entry["filename"]: entry for entry in result.get("files", [])}
    infos = []
    cache: dict[tuple, FormatInfo] = {}
    for name in names:
        entry = by_name.get(name, {})
        match = next((m for m in entry.get("matches", []) if m.get("ns") == "pronom"), {})
        pronom = pronom_mime(match)
        if pronom is not None:
            mime, by = pronom, "siegfried"
        elif mimes.get(name):
            mime, by = mimes[name], "libmagic"
        elif match.get("mime"):
            mime, by = match["mime"], "siegfried"
        else:
            mime, by = None, ""
        key = (mime, by, match.get("id"), match.get("format"), match.get("version"),
               match.get("basis", ""), match.get("warning", ""))
        info = cache.get(key)
        if info is None:
            puid = match.get("id")
            if puid in (None, "", "UNKNOWN"):
                puid = None
            # FormatInfo is frozen: files with the same answer share one instance
            info = cache[key] = FormatInfo(
                mime=mime, puid=puid,
                format_name=match.get("format") or None,
                format_version=match.get("version") or None,
                basis=match.get("basis", ""), warning=match.get("warning", ""), mime_by=by)
        infos.append(info)
    return infos
