"""Safe staging: a transfer (folder, BagIt bag, .zip, .tar, .tar.gz) is copied into a private
staging folder, and every file's digests are computed during that one copy.

The transfer itself is only read, never modified. Anything that could write outside the
staging folder or smuggle in something other than plain files is refused, with every
offending entry listed: absolute names, ``..`` components, symbolic and hard links, device
files and FIFOs. Archives are bounded (unpacked bytes, file count and compression ratio) so
that a zip bomb is refused before it fills the disk, and sizes are enforced while unpacking
in case an archive lies about them. Zip member names written without the UTF-8 flag are
repaired: Chinese Windows tools store GBK bytes that zipfile decodes as CP437; names that are
not UTF-8 in a folder or a tar file are repaired the same way when they decode as GB18030.

File names follow the metadata's character rule (GD-1-6, 计算机文件名 is metadata): a name
holding a control character (C0, DEL, C1), a Unicode noncharacter (U+FFFE, U+FFFF …), bytes
that are neither UTF-8 nor GB18030, or a bidirectional override (which makes a name display
as something else, ``报告\u202efdp.exe``) is refused, never rewritten: the name is shown
escaped (``bad\x07name.txt``) with the rule, so the sender can find the file and rename it.
Such a name cannot be written into METS (XML 1.0 has no way to carry most of them), a CSV or
the report, and no Windows or macOS tool a county office uses creates one.
"""

from __future__ import annotations

import os
import stat
import tarfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from metadata_profiles.text import BIDI_CONTROLS, noncharacter, shown_text as shown_name
from policies.errors import RejectedError
from storage.aip import ReadBack, copy_hash_read_back, digest_stream, map_files, read_chunks
from storage.locations import FILE_MODE

ProgressFn = Callable[[int], None]
PlanFn = Callable[[list[str], int], None]
SniffFn = Callable[[bytes], "str | None"]
HEAD_BYTES = 8     # what content inspection needs to tell PDF, zip and OLE files apart


@dataclass(frozen=True)
class Limits:
    """Bounds an archive must stay within when unpacked."""

    max_bytes: int
    max_files: int
    max_ratio: int


@dataclass(slots=True)
class StagedFile:
    """One file of the transfer as staged.

    Attributes:
        rel: NFC-normalised path relative to the transfer root, "/" separated.
        original_name: the name as it was in the transfer (before repair/normalisation).
        size: bytes.
        digests: algorithm -> hex, computed while copying.
        name_note: how the name was repaired, if it was.
        mime: libmagic's MIME type of the bytes copied, when the file was read in one chunk
            and staging was given a sniffer (None otherwise: identify the file).
        head: the first bytes of the file (up to :data:`HEAD_BYTES`), or None when not kept.
        read_back: the staged copy read back while it was written (large files, when
            staging was asked to), for storage to count when it takes this very file.
    """

    rel: str
    original_name: str
    size: int
    digests: dict[str, str]
    name_note: str = ""
    mime: str | None = None
    head: bytes | None = None
    read_back: ReadBack | None = None


@dataclass
class StagedTransfer:
    """The staged copy of a transfer."""

    source: Path
    kind: str                      # folder | zip | tar
    root: Path                     # the staging folder holding the files
    files: list[StagedFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


NAME_RULE = "GD-1-6"
"""The code a refused file name is reported under (metadata holds no illegal characters)."""


def name_problems(name: str) -> list[str]:
    r"""Why a file or folder name cannot be kept (empty when it can), each under GD-1-6.

    >>> name_problems("户卷/001-申请书.pdf"), name_problems("bad\x07name.txt")
    ([], ['GD-1-6 控制字符 U+0007 (control character)'])
    """
    found: dict[str, None] = {}
    for ch in name:
        code = ord(ch)
        category = unicodedata.category(ch)
        if category == "Cc":
            found[f"控制字符 U+{code:04X} (control character)"] = None
        elif category == "Cs":
            found["字节既非 UTF-8 也非 GB18030 (bytes neither UTF-8 nor GB18030)"] = None
        elif noncharacter(code):
            found[f"非字符 U+{code:04X} (Unicode noncharacter)"] = None
        elif ch in BIDI_CONTROLS:
            found[f"双向控制符 U+{code:04X} (bidirectional override: the name displays "
                  "differently from what it is)"] = None
    return [f"{NAME_RULE} {why}" for why in found]


def repair_name(name: str) -> tuple[str, str]:
    """(name, note): a name holding undecodable bytes (lone surrogates from ``os.fsdecode`` or
    ``tarfile``) decoded as GB18030 when its bytes are that; otherwise unchanged."""
    if not any(0xDC80 <= ord(ch) <= 0xDCFF for ch in name):
        return name, ""
    try:
        raw = name.encode("utf-8", "surrogateescape")
        return raw.decode("gb18030"), "name decoded as gb18030 (not UTF-8)"
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name, ""


class UnsafeTransfer(RejectedError):
    """The transfer contains entries that cannot be staged safely; ``problems`` lists them
    (names shown escaped, see :func:`shown_name`)."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {shown_name(name)}: {why}" for name, why in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{message}\n{lines}{more}")
        self.problems = problems


def suffix(rel: str) -> str:
    """The extension of a "/"-separated relative path, as ``PurePosixPath(rel).suffix``
    gives it, without building a path object (this runs for every file of a transfer).

    >>> suffix("户卷/001-申请书.pdf"), suffix("a.tar.gz"), suffix(".profile"), suffix("x.")
    ('.pdf', '.gz', '', '')
    """
    name = rel.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def safe_relpath(name: str) -> str | None:
    """Return the NFC, "/"-separated relative form of an archive name, or None if unsafe."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    if any("\x00" in p for p in parts):
        return None
    return unicodedata.normalize("NFC", "/".join(parts))


def stage(source: Path, dest: Path, algorithms: tuple[str, ...], limits: Limits, *,
          workers: int = 2, progress: ProgressFn | None = None, on_plan: PlanFn | None = None,
          sniff: SniffFn | None = None, writeback: bool = False,
          read_back: str | None = None) -> StagedTransfer:
    """Copy a transfer into ``dest`` (which must not exist), computing digests on the way.

    Arguments:
        progress: called with the size of each file staged.
        on_plan: for a folder, called once it was walked and found safe, before any file is
            copied, with the source-relative names of its files and their total size.
        sniff: called with the bytes of each non-empty file that was read in one chunk (up
            to 1 MiB) while they are in memory; its answer becomes ``StagedFile.mime``.
        writeback: start writing large files to disk while they are copied (when storage
            will flush them before reading them back anyway).
        read_back: for a folder, read the staged copies of large files back while they are
            written (``"disk"`` or ``"memory"``, see :func:`copy_hash_read_back`), so that
            storage, taking them by a rename, need not read them again.

    Raises:
        RejectedError: the path does not exist, is empty, or is an unsupported file.
        UnsafeTransfer: unsafe entries, or archive limits exceeded (all entries listed).
    """
    source = Path(source)
    if not source.exists() and not source.is_symlink():
        raise RejectedError(f"{shown_name(str(source))}: no such file or folder")
    dest.mkdir(parents=True)
    if source.is_symlink():
        raise UnsafeTransfer(f"{shown_name(str(source))}: the transfer is a symbolic link",
                             [(str(source), "symbolic link")])
    refused = name_problems(source.name)
    if refused:
        # the transfer's own name becomes the AIP's label and is written into METS
        raise UnsafeTransfer(f"{shown_name(str(source))}: the transfer's name cannot be kept; "
                             "rename it and submit it again",
                             [(source.name, why) for why in refused])
    if source.is_dir():
        return _stage_folder(source, dest, algorithms, workers, progress, on_plan, sniff,
                             writeback, read_back)
    lowered = source.name.lower()
    if lowered.endswith(".zip"):
        return _stage_zip(source, dest, algorithms, limits, progress, sniff)
    if lowered.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return _stage_tar(source, dest, algorithms, limits, progress, sniff)
    raise RejectedError(f"{shown_name(str(source))}: not a folder, .zip, .tar or .tar.gz transfer")


# -- folders --------------------------------------------------------------------------------
def _walk_folder(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, "/"-separated path relative to ``root``, lstat) of every entry but folders.

    Plain strings rather than ``Path`` objects: a transfer may hold hundreds of thousands
    of files, and each ``Path`` operation costs microseconds.
    """
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    yield entry.path, prefix + entry.name, st


class _Look:
    """What staging sees of one file's bytes on their way through: its head, and libmagic's
    answer when the first chunk read was the whole file."""

    __slots__ = ("block", "head", "mime", "sniff")

    def __init__(self, sniff: SniffFn | None) -> None:
        self.sniff = sniff
        self.block: bytes | None = None
        self.head: bytes | None = None
        self.mime: str | None = None

    def first(self, block: bytes) -> None:
        """Keep the first chunk (the digest functions call this)."""
        self.block = block

    def finish(self, size: int) -> None:
        """Look at the first chunk once the file of ``size`` bytes is copied."""
        block, self.block = self.block, None
        if block is None:
            self.head = b"" if size == 0 else None
            return
        self.head = block[:HEAD_BYTES]
        if self.sniff is not None and len(block) == size:
            self.mime = self.sniff(block)


def _stage_folder(source: Path, dest: Path, algorithms: tuple[str, ...], workers: int,
                  progress: ProgressFn | None, on_plan: PlanFn | None,
                  sniff: SniffFn | None, writeback: bool,
                  read_back: str | None) -> StagedTransfer:
    problems: list[tuple[str, str]] = []
    # (path, NFC name, original name, (size, mtime)): not the whole stat result per file
    plan: list[tuple[str, str, str, tuple[int, int]]] = []
    for path, original, st in _walk_folder(str(source)):
        if stat.S_ISLNK(st.st_mode):
            problems.append((original, "symbolic link (links are not followed)"))
        elif not stat.S_ISREG(st.st_mode):
            problems.append((original, "special file (device, FIFO or socket)"))
        else:
            name, _ = repair_name(original)
            refused = name_problems(name)
            if refused:
                problems += [(original, why) for why in refused]
            else:
                plan.append((path, unicodedata.normalize("NFC", name), original,
                             (st.st_size, st.st_mtime_ns)))
    if problems:
        raise UnsafeTransfer(f"{shown_name(str(source))}: entries that cannot be staged safely",
                             problems)
    _check_collisions([(rel, orig) for _, rel, orig, _ in plan], source)
    ordered = sorted(plan, key=lambda e: e[1])
    del plan
    if on_plan is not None:
        on_plan([e[2] for e in ordered], sum(e[3][0] for e in ordered))
    root = str(dest)
    for folder in sorted({rel.rpartition("/")[0] for _, rel, _, _ in ordered} - {""}):
        os.makedirs(f"{root}/{folder}", exist_ok=True)

    def copy(entry: tuple[str, str, str, tuple[int, int]]) -> StagedFile:
        path, rel, original, before = entry
        look = _Look(sniff)
        size, digests, checked = copy_hash_read_back(path, f"{root}/{rel}", algorithms,
                                                     first=look.first, writeback=writeback,
                                                     read_back=read_back)
        after = os.stat(path, follow_symlinks=False)
        if (after.st_size, after.st_mtime_ns) != before or size != before[0]:
            raise RejectedError(f"{shown_name(path)}: changed while it was being read; submit it again")
        if checked is not None and dict(checked.digests) != digests:
            raise RejectedError(f"{shown_name(path)}: its staged copy reads back differently from the bytes "
                                "read (changed while being read, or a write error); submit it again")
        look.finish(size)
        if progress:
            progress(size)
        repaired, note = repair_name(original)
        if not note and rel != original:
            note = "name normalised to NFC"
        # the name kept as the original is the decoded one: METS must be able to carry it
        return StagedFile(rel, repaired, size, digests, note, look.mime, look.head, checked)

    files = map_files(copy, ordered, workers, [e[3][0] for e in ordered])
    return StagedTransfer(source, "folder", dest, files)


def _check_collisions(names: list[tuple[str, str]], source: Path) -> None:
    seen: dict[str, str] = {}
    clashes = []
    for rel, original in names:
        key = rel.casefold()
        if key in seen and seen[key] != original:
            clashes.append((original, f"same name as {seen[key]} after normalisation"))
        elif key in seen:  # an archive may hold one name twice: which copy is the record?
            clashes.append((original, "the archive holds this name more than once"))
        seen.setdefault(key, original)
    for rel, original in names:  # ``a`` a file and ``a/b`` too: ``a`` cannot be both
        parts = rel.casefold().split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in seen:
                clashes.append((seen[folder], f"is a file and also the folder of {original}"))
                break
    if clashes:
        raise UnsafeTransfer(f"{shown_name(str(source))}: names that collide", clashes)


# -- zip ------------------------------------------------------------------------------------
def repair_zip_name(info: zipfile.ZipInfo) -> tuple[str, str]:
    """Return (name, note): GBK/GB18030 names stored without the UTF-8 flag are decoded."""
    if info.flag_bits & 0x800:
        return info.filename, ""
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename, ""
    if raw.isascii():
        return info.filename, ""
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding), f"name decoded as {encoding} (no UTF-8 flag)"
        except UnicodeDecodeError:
            continue
    return info.filename, "name kept as CP437 (not UTF-8 nor GB18030)"


def _stage_zip(source: Path, dest: Path, algorithms: tuple[str, ...], limits: Limits,
               progress: ProgressFn | None, sniff: SniffFn | None) -> StagedTransfer:
    try:
        archive = zipfile.ZipFile(source)
    except UnicodeDecodeError as exc:
        # a member flagged UTF-8 whose name is not UTF-8
        raise RejectedError(f"{shown_name(str(source))}: a member name flagged UTF-8 is not "
                            f"UTF-8 ({NAME_RULE}; bytes {exc.object[exc.start:exc.end]!r} "
                            f"at {exc.start} of {shown_name(exc.object.decode('cp437'))})"
                            ) from exc
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise RejectedError(f"{shown_name(str(source))}: not a readable zip file "
                            f"({shown_name(str(exc))})") from exc
    with archive:
        problems: list[tuple[str, str]] = []
        members: list[tuple[zipfile.ZipInfo, str, str, str]] = []
        for info in archive.infolist():
            name, note = repair_zip_name(info)
            mode = info.external_attr >> 16
            if info.is_dir():
                if safe_relpath(name) is None and name.strip("/") not in ("", "."):
                    problems.append((name, "unsafe folder name (absolute or ..)"))
                continue
            rel = safe_relpath(name)
            refused = name_problems(name.replace("\x00", "")) if rel is not None else []
            if rel is None:
                problems.append((name, "path escapes the transfer (absolute name or ..)"))
            elif refused:
                problems += [(name, why) for why in refused]
            elif stat.S_ISLNK(mode):
                problems.append((name, "symbolic link"))
            elif mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
                problems.append((name, "special file"))
            elif info.flag_bits & 0x1:
                problems.append((name, "encrypted zip member"))
            else:
                members.append((info, rel, name, note))
        problems += _limit_problems([(m[2], m[0].file_size, m[0].compress_size) for m in members],
                                    limits)
        if problems:
            raise UnsafeTransfer(f"{shown_name(str(source))}: refused", problems)
        _check_collisions([(rel, name) for _, rel, name, _ in members], source)
        files = []
        for info, rel, name, note in sorted(members, key=lambda m: m[1]):
            with archive.open(info) as stream:
                files.append(_write_member(stream, dest, rel, name, note, info.file_size,
                                           algorithms, progress, source, sniff))
    return StagedTransfer(source, "zip", dest, files)


def _limit_problems(entries: list[tuple[str, int, int]], limits: Limits) -> list[tuple[str, str]]:
    problems = []
    total = sum(size for _, size, _ in entries)
    if len(entries) > limits.max_files:
        problems.append(("(archive)", f"{len(entries)} files, more than the limit {limits.max_files}"))
    if total > limits.max_bytes:
        problems.append(("(archive)", f"unpacks to {total} bytes, more than the limit {limits.max_bytes}"))
    for name, size, packed in entries:
        if size > 1 << 20 and size > limits.max_ratio * max(packed, 1):
            problems.append((name, f"compression ratio {size // max(packed, 1)}:1 exceeds "
                                   f"{limits.max_ratio}:1 (zip bomb?)"))
    return problems


def _write_member(stream: BinaryIO, dest: Path, rel: str, original: str, note: str,
                  declared: int, algorithms: tuple[str, ...], progress: ProgressFn | None,
                  source: Path, sniff: SniffFn | None) -> StagedFile:
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    written = 0

    def write(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)
        if written > declared:
            raise RejectedError(f"{shown_name(str(source))}: {shown_name(original)} unpacks to more than the "
                                f"{declared} bytes its header declares")
        os.write(fd, chunk)

    look = _Look(sniff)

    def chunks() -> Iterator[bytes]:
        for index, chunk in enumerate(read_chunks(stream)):
            if index == 0:
                look.first(chunk)
            yield chunk

    try:
        size, digests = digest_stream(chunks(), algorithms, expected_size=declared, write=write)
    finally:
        os.close(fd)
    if size != declared:
        raise RejectedError(f"{shown_name(str(source))}: {shown_name(original)} is {size} bytes, "
                            f"its header says {declared}")
    look.finish(size)
    if progress:
        progress(size)
    return StagedFile(rel, original, size, digests, note, look.mime, look.head)


# -- tar ------------------------------------------------------------------------------------
def _stage_tar(source: Path, dest: Path, algorithms: tuple[str, ...], limits: Limits,
               progress: ProgressFn | None, sniff: SniffFn | None) -> StagedTransfer:
    try:
        archive = tarfile.open(source, "r:*")
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise RejectedError(f"{shown_name(str(source))}: not a readable tar file "
                            f"({shown_name(str(exc))})") from exc
    with archive:
        problems: list[tuple[str, str]] = []
        members: list[tuple[tarfile.TarInfo, str]] = []
        try:
            infos = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise RejectedError(f"{shown_name(str(source))}: damaged tar file "
                                f"({shown_name(str(exc))})") from exc
        for info in infos:
            if info.isdir():
                continue
            name, note = repair_name(info.name)
            rel = safe_relpath(name)
            refused = name_problems(name.replace("\x00", "")) if rel is not None else []
            if rel is None:
                problems.append((info.name, "path escapes the transfer (absolute name or ..)"))
            elif refused:
                problems += [(info.name, why) for why in refused]
            elif info.issym() or info.islnk():
                problems.append((info.name, f"link to {info.linkname}"))
            elif not info.isreg():
                problems.append((info.name, "special file (device or FIFO)"))
            else:
                members.append((info, rel))
        packed = source.stat().st_size
        total = sum(i.size for i, _ in members)
        if len(members) > limits.max_files:
            problems.append(("(archive)", f"{len(members)} files, more than the limit {limits.max_files}"))
        if total > limits.max_bytes:
            problems.append(("(archive)", f"unpacks to {total} bytes, more than the limit {limits.max_bytes}"))
        if total > 1 << 20 and total > limits.max_ratio * max(packed, 1):
            problems.append(("(archive)", f"compression ratio {total // max(packed, 1)}:1 exceeds "
                                          f"{limits.max_ratio}:1 (archive bomb?)"))
        if problems:
            raise UnsafeTransfer(f"{shown_name(str(source))}: refused", problems)
        _check_collisions([(rel, i.name) for i, rel in members], source)
        files = []
        for info, rel in members:  # archive order: no rewinding of compressed streams
            stream = archive.extractfile(info)
            if stream is None:
                raise RejectedError(f"{shown_name(str(source))}: cannot read {shown_name(info.name)}")
            with stream:
                name, note = repair_name(info.name)
                if not note and rel != info.name:
                    note = "name normalised"
                files.append(_write_member(stream, dest, rel, name, note, info.size,
                                           algorithms, progress, source, sniff))
    files.sort(key=lambda f: f.rel)
    return StagedTransfer(source, "tar", dest, files)
