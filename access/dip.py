"""Dissemination: a whole AIP as a zip streamed to the client, never built in memory or on
disk. Each member's bytes come verified from storage (see :mod:`storage.retrieval`)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator

from storage.retrieval import FileRef, Retriever


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
