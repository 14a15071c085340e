"""Staging hands each small file's bytes to libmagic while it holds them: the MIME type must
be the one libmagic gives for the file itself, so identification need not open it again."""

from __future__ import annotations

import io
import os

import pytest

from ingest.formats import _mime, sniff_mime
from ingest.staging import HEAD_BYTES, Limits, stage
from storage.aip import CHUNK

LIMITS = Limits(1 << 34, 100_000, 100)


def _odd_files(folder):
    """Files whose type libmagic decides from their content in different ways."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utf8.txt").write_text("脱贫攻坚 因病致贫\n" * 20, encoding="utf-8")
    (folder / "gbk.txt").write_bytes("建档立卡户 低保\n".encode("gb18030") * 20)
    (folder / "rows.csv").write_text("序号,档号,题名\n1,A-1,申请书\n2,A-2,调查表\n", encoding="utf-8")
    (folder / "doc.xml").write_text('<?xml version="1.0"?><a><b>档案</b></a>', encoding="utf-8")
    (folder / "data.json").write_text('{"档号": "A-1", "页数": 3}', encoding="utf-8")
    (folder / "script.sh").write_text("#!/bin/sh\necho hi\n", encoding="utf-8")
    (folder / "noise.bin").write_bytes(os.urandom(5000))
    (folder / "tiny").write_bytes(b"%")
    png = io.BytesIO()
    Image.new("RGB", (9, 9), "blue").save(png, "PNG")
    (folder / "img.png").write_bytes(png.getvalue())
    (folder / "empty.txt").write_bytes(b"")
    (folder / "big.bin").write_bytes(b"%PDF-1.4\n" + os.urandom(CHUNK + 10))
    return folder


def test_sniffed_mime_is_the_files_own(sample, tmp_path):
    files = [p for p in sorted(sample.rglob("*")) + sorted(_odd_files(tmp_path / "odd").iterdir())
             if p.is_file() and 0 < p.stat().st_size <= CHUNK]
    assert len(files) > 20
    kinds = set()
    for path in files:
        expected = _mime(path)
        kinds.add(expected)
        assert sniff_mime(path.read_bytes()) == expected, path
    assert {"application/pdf", "image/jpeg", "image/png", "text/plain"} <= kinds


def test_an_empty_file_is_never_sniffed():
    with pytest.raises(ValueError):
        sniff_mime(b"")


def test_staging_keeps_the_head_and_the_sniffed_mime(tmp_path):
    source = _odd_files(tmp_path / "odd")
    staged = {f.rel: f for f in stage(source, tmp_path / "staged", ("sha256",), LIMITS,
                                      sniff=sniff_mime).files}
    for rel, found in staged.items():
        data = (source / rel).read_bytes()
        assert found.head == data[:HEAD_BYTES], rel
        if 0 < len(data) <= CHUNK:
            assert found.mime == _mime(source / rel), rel
        else:   # empty or larger than one chunk: identified from the file later
            assert found.mime is None, rel
    plain = stage(source, tmp_path / "again", ("sha256",), LIMITS).files
    assert all(f.mime is None and f.head is not None for f in plain)
