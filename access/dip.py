"""Dissemination: a whole AIP as a zip streamed to the client, never built in memory or on
disk. Each member's bytes come verified from storage (see :mod:`storage.copies.retrieval`)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator

from storage.copies import FileRef, Retriever


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


def stream_zip(retriever: Retriever, refs: Iterable[FileRef], prefix: str) -> Iterator[bytes]:
    """Yield a zip of the given files (stored, not compressed: archives are mostly PDFs and
    JPEGs), each under ``prefix/<bag path>``, with ZIP64 for files over 4 GiB."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for ref in refs:
            info = zipfile.ZipInfo(f"{prefix}/{ref.path}")
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = ref.size
            with archive.open(info, "w", force_zip64=ref.size >= 1 << 31) as member:
                for chunk in retriever.stream(ref):
                    member.write(chunk)
                    if pipe.offset and len(pipe.parts) > 4:
                        yield pipe.drain()
            yield pipe.drain()
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
    retriever: Retriever, refs: Iterable[FileRef], record: dict, prefix: str
) -> Iterator[bytes]:
    """Yield a DIP as a zipped BagIt bag: the given files under their bag paths, and
    ``data/metadata/record.json`` (the reader's view of the record). The manifest is written
    from the catalogue's digests; each file's bytes are verified as they stream."""
    import hashlib
    import json
    from datetime import date

    body = json.dumps(record, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    refs = list(refs)
    manifest = [(ref.sha256, ref.path) for ref in refs]
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
    tags["tagmanifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(tags.items())
    ).encode()
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for ref in refs:
            yield from _members(
                pipe, archive, f"{prefix}/{ref.path}", ref.size, retriever.stream(ref)
            )
        yield from _members(pipe, archive, f"{prefix}/data/metadata/record.json", len(body), [body])
        for name, data in tags.items():
            yield from _members(pipe, archive, f"{prefix}/{name}", len(data), [data])
    yield pipe.drain()
