"""Looking inside files: encryption, passwords and macros (GD-3-8); readability (GD-3-4)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pypdf
from PIL import Image
from reportlab.pdfgen import canvas

from ingest.inspect import OLE_MAGIC, inspect_file


def pdf_bytes(pages: int = 2) -> bytes:
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    for n in range(pages):
        page.drawString(72, 720, f"page {n + 1}")
        page.showPage()
    page.save()
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_pdf_readable_encrypted_and_damaged(tmp_path):
    good = inspect_file(write(tmp_path / "a.pdf", pdf_bytes(3)), "application/pdf")
    assert good.readable and good.pages == 3 and not good.encrypted
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes())))
    writer.encrypt("123456", algorithm="AES-128")
    locked = io.BytesIO()
    writer.write(locked)
    found = inspect_file(write(tmp_path / "b.pdf", locked.getvalue()), "application/pdf")
    assert found.encrypted and "加密" in found.encrypted and found.readable is None
    owner_only = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes())))
    owner_only.encrypt("", owner_password="owner", algorithm="RC4-128")
    restricted = io.BytesIO()
    owner_only.write(restricted)
    assert inspect_file(write(tmp_path / "c.pdf", restricted.getvalue()), None).encrypted
    truncated = pdf_bytes()[:300]
    damaged = inspect_file(write(tmp_path / "d.pdf", truncated), "application/pdf")
    assert damaged.readable is False and "PDF" in damaged.reason


def docx_bytes(macro: bool = False) -> bytes:
    buffer = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("帮扶计划")
    document.save(buffer)
    if not macro:
        return buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        target.writestr("word/vbaProject.bin", OLE_MAGIC + b"\0" * 512)
    return out.getvalue()


def test_office_macros_and_passwords(tmp_path):
    plain = inspect_file(write(tmp_path / "a.docx", docx_bytes()), None)
    assert plain.readable and not plain.macro and not plain.encrypted
    macro = inspect_file(write(tmp_path / "b.docm", docx_bytes(macro=True)), None)
    assert macro.macro and "vbaProject.bin" in macro.macro
    # a password-protected OOXML file is an OLE container holding EncryptedPackage
    ole = OLE_MAGIC + b"\0" * 1000 + "EncryptedPackage".encode("utf-16-le") + b"\0" * 100
    assert inspect_file(write(tmp_path / "c.docx", ole), None).encrypted
    legacy = OLE_MAGIC + b"\0" * 1000 + "_VBA_PROJECT".encode("utf-16-le")
    assert "_VBA_PROJECT" in inspect_file(write(tmp_path / "d.doc", legacy), None).macro


def test_odf_and_zip_encryption(tmp_path):
    odf = io.BytesIO()
    with zipfile.ZipFile(odf, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("META-INF/manifest.xml",
                         '<manifest:file-entry><manifest:encryption-data/></manifest:file-entry>')
        archive.writestr("content.xml", b"\x93\x11 encrypted bytes")
    assert "ODF" in inspect_file(write(tmp_path / "a.odt", odf.getvalue()), None).encrypted
    scripts = io.BytesIO()
    with zipfile.ZipFile(scripts, "w") as archive:
        archive.writestr("META-INF/manifest.xml", "<manifest/>")
        archive.writestr("Basic/Standard/Module1.xml", "Sub Main\nEnd Sub")
    assert "Basic/" in inspect_file(write(tmp_path / "b.odt", scripts.getvalue()), None).macro
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", "甲" * 1000)
    data = bytearray(plain.getvalue())
    central = bytes(data).index(b"PK\x01\x02")
    data[6] |= 0x1  # the member's "encrypted" flag, as a password-protected zip sets it
    data[central + 8] |= 0x1
    assert "加密" in inspect_file(write(tmp_path / "c.zip", bytes(data)), None).encrypted
    corrupt = bytearray(plain.getvalue())
    corrupt[40] ^= 0xFF
    assert inspect_file(write(tmp_path / "d.zip", bytes(corrupt)), None).readable is False


def test_images_decode_fully(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(buffer, "JPEG")
    good = inspect_file(write(tmp_path / "a.jpg", buffer.getvalue()), "image/jpeg")
    assert good.readable and "400×300" in good.reason
    broken = inspect_file(write(tmp_path / "b.jpg", buffer.getvalue()[:400]), "image/jpeg")
    assert broken.readable is False
    other = inspect_file(write(tmp_path / "c.txt", "纯文本".encode()), "text/plain")
    assert other.readable is None and "不做可读性检测" in other.reason
