"""Dissemination: a whole AIP as a zip streamed to the client, never built in memory or on
disk. Each member's bytes come verified from storage (see :mod:`storage.copies.retrieval`).

A file no copy serves intact is left out and named, with the reason, in ``OMITTED.txt`` at the
top of the bag (a DIP's own manifest then leaves it out too; a whole AIP's original manifests
still list it, so the bag shows as incomplete). Damage found part way through a large file
cannot be taken back: the zip then breaks off, and the file is left out of the next one.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator

from storage.copies import FileRef, NoIntactCopy, Retriever

OMITTED = "OMITTED.txt"


class _Pipe:
    """A write-only file object whose written bytes are collected for a generator."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _omitted_note(omitted: list[tuple[str, str]]) -> bytes:
    lines = ["以下文件的所有副本均未通过校验（内容与入库登记的摘要不符或无法读取），"
             "未包含在本压缩包中。损坏已记入保存记录（PREMIS 事件与审计日志），修复后可重新下载。",
             "These files were left out: no copy of them reads intact (recorded for the "
             "auditors; download again once repaired).", ""]
    lines += [f"{path}\t{reason}" for path, reason in omitted]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _opened(retriever: Retriever, ref: FileRef, omitted: list[tuple[str, str]]
            ) -> Iterator[bytes] | None:
    """The verified bytes of one member, or None (and the file noted) when no copy serves."""
    try:
        return retriever.open(ref)
    except NoIntactCopy as exc:
        # the copies by location name only: the failures' own texts may quote server paths
        where = sorted({line.split(":", 1)[0] for line in exc.failures})
        reason = "known damaged" if exc.known else "damaged or unreadable"
        omitted.append((ref.path, f"{reason}: {', '.join(where)}"))
        return None


def stream_zip(retriever: Retriever, refs: Iterable[FileRef], prefix: str,
               name: Callable[[str], str] = lambda path: path) -> Iterator[bytes]:
    """Yield a zip of the given files (stored, not compressed: archives are mostly PDFs and
    JPEGs), each under ``prefix/<bag path>`` (``name``: the bag path of a stored path, for
    a version's objects), with ZIP64 for files over 4 GiB; files no copy serves are named in
    ``prefix/OMITTED.txt``."""
    pipe = _Pipe()
    omitted: list[tuple[str, str]] = []
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for ref in refs:
            chunks = _opened(retriever, ref, omitted)
            if chunks is not None:
                yield from _members(pipe, archive, f"{prefix}/{name(ref.path)}", ref.size,
                                    chunks)
        if omitted:
            note = _omitted_note(omitted)
            yield from _members(pipe, archive, f"{prefix}/{OMITTED}", len(note), [note])
    yield pipe.drain()


def _members(
    pipe: _Pipe, archive: zipfile.ZipFile, name: str, size: int, chunks: Iterable[bytes]
) -> Iterator[bytes]:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    with archive.open(info, "w", force_zip64=size >= 1 << 31) as member:
        for chunk in chunks:
            member.write(chunk)
            if len(pipe.parts) > 4:
                yield pipe.drain()
    yield pipe.drain()


def stream_view_dip(
    retriever: Retriever,
    refs: Iterable[FileRef],
    record: dict,
    prefix: str,
    shown: Callable[[str], str] = lambda path: path,
) -> Iterator[bytes]:
    """Yield a DIP as a zipped BagIt bag: the given files under their bag paths as ``shown``
    writes them (ID numbers masked), and ``data/metadata/record.json`` (the reader's view of
    the record). The manifest is written from the catalogue's digests; each file's bytes are
    verified as they stream."""
    import json

    pipe = _Pipe()
    omitted: list[tuple[str, str]] = []
    sent: list[FileRef] = []
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for ref in refs:
            chunks = _opened(retriever, ref, omitted)
            if chunks is None:
                continue
            yield from _members(pipe, archive, f"{prefix}/{shown(ref.path)}", ref.size, chunks)
            sent.append(ref)
        omitted = [(shown(path), reason) for path, reason in omitted]
        if omitted:
            record = {**record, "omitted": [path for path, _ in omitted]}
        body = json.dumps(record, ensure_ascii=False, indent=2, default=str).encode("utf-8")
        yield from _members(pipe, archive, f"{prefix}/data/metadata/record.json", len(body), [body])
        for name, data in _dip_tags(sent, body, prefix, omitted, shown).items():
            yield from _members(pipe, archive, f"{prefix}/{name}", len(data), [data])
    yield pipe.drain()


def _dip_tags(refs: list[FileRef], body: bytes, prefix: str, omitted: list[tuple[str, str]],
              shown: Callable[[str], str]) -> dict[str, bytes]:
    """The tag files of a DIP bag holding ``refs`` (named as ``shown`` writes them) and
    ``record.json`` (``body``): the manifest from the catalogue's digests, and the note of
    omitted files if any."""
    import hashlib
    from datetime import date

    manifest = [(ref.sha256, shown(ref.path)) for ref in refs]
    manifest.append((hashlib.sha256(body).hexdigest(), "data/metadata/record.json"))
    oxum = f"{sum(ref.size for ref in refs) + len(body)}.{len(manifest)}"
    tags = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": (
            f"External-Identifier: {prefix}\nBagging-Date: {date.today()}\n"
            f"Payload-Oxum: {oxum}\nBag-Software-Agent: Dangan (DIP)\n"
        ).encode(),
        "manifest-sha256.txt": "".join(
            f"{d}  {p}\n" for d, p in sorted(manifest, key=lambda e: e[1])
        ).encode("utf-8"),
    }
    if omitted:
        tags[OMITTED] = _omitted_note(omitted)
    tags["tagmanifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(tags.items())
    ).encode()
    return tags
