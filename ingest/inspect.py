"""Looking inside record files: encryption, passwords, macros (GD-3-8) and readability (GD-3-4).

- PDF: pypdf opens it; an ``/Encrypt`` dictionary means encrypted (even with an empty user
  password: the owner restrictions still bind); every page is parsed and its content read.
- OOXML (docx/xlsx/pptx) and ODF (odt/ods/odp, OFD too): a zip; ``vbaProject.bin`` or a
  macro-enabled content type, or ODF ``Basic/`` and ``Scripts/``, mean macros; an ODF
  ``manifest:encryption-data`` means encrypted; every member must decompress (CRC checked).
- A password-protected Office 2007+ file is not a zip at all but an OLE compound file with
  an ``EncryptedPackage`` stream; legacy OLE documents carry macros in ``_VBA_PROJECT``.
- Any zip: encrypted members (flag bit 0) and unreadable members.
- Images: Pillow decodes the whole image (``load()``), not just the header.

Each file gets one :class:`Inspection`; files of formats not covered are not checked for
readability, and say so.
"""

from __future__ import annotations

import functools
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
IMAGE_MIMES = ("image/jpeg", "image/png", "image/tiff", "image/jp2", "image/gif", "image/bmp")
MACRO_TYPES = ("macroEnabled", "vbaProject")
MAX_ZIP_MEMBERS = 100_000


@dataclass(slots=True)
class Inspection:
    """What looking inside one file found.

    Attributes:
        encrypted: why the file counts as encrypted / password-protected, or None.
        macro: where macros were found, or None.
        readable: True (parsed), False (does not open), None (format not covered).
        reason: what was done, or what failed.
        pages: page count of a PDF, when read.
    """

    encrypted: str | None = None
    macro: str | None = None
    readable: bool | None = None
    reason: str = ""
    pages: int | None = None
    notes: list[str] = field(default_factory=list)


HEAD_BYTES = len(OLE_MAGIC)   # the bytes that tell the containers apart


def _kind(head: bytes, mime: str) -> str | None:
    """Which inspection a file needs, from its first bytes and MIME type (None: none)."""
    if head.startswith(b"%PDF") or mime == "application/pdf":
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(OLE_MAGIC):
        return "ole"
    if mime.startswith(IMAGE_MIMES):
        return "image"
    return None


@functools.lru_cache(maxsize=512)
def _not_covered(mime: str) -> Inspection:
    # one instance per MIME type, shared by every such file (nothing changes an Inspection
    # once inspect_file has returned it)
    return Inspection(reason=f"此格式（{mime or '未知'}）不做可读性检测")


def inspect_file(path: Path | str, mime: str | None, head: bytes | None = None) -> Inspection:
    """Inspect one file; never raises for bad content (that is the finding).

    Arguments:
        head: the file's first :data:`HEAD_BYTES` bytes (or all of a shorter file) when
            already read; otherwise they are read here.
    """
    if head is None:
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError as exc:
            return Inspection(readable=False, reason=f"无法读取文件: {exc.strerror}")
    mime = mime or ""
    kind = _kind(head, mime)
    if kind is None:
        return _not_covered(mime)
    return _INSPECTORS[kind](Path(path))


def inspect_files(paths: list[Path | str], mimes: list[str | None], workers: int = 2,
                  heads: list[bytes | None] | None = None) -> list[Inspection]:
    """Inspect many files in parallel (threads: pypdf, zlib and Pillow release the GIL often).

    Arguments:
        heads: each file's first bytes when staging kept them (None where it did not): a
            file whose head and MIME type call for no inspection is not opened again.
    """
    heads = heads if heads is not None else [None] * len(paths)
    found: list[Inspection | None] = []
    deep: list[int] = []
    for index, (mime, head) in enumerate(zip(mimes, heads)):
        if head is not None and _kind(head, mime or "") is None:
            found.append(_not_covered(mime or ""))
        else:
            found.append(None)
            deep.append(index)
    if deep:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for index, inspection in zip(deep, pool.map(
                    inspect_file, [paths[i] for i in deep], [mimes[i] for i in deep],
                    [heads[i] for i in deep])):
                found[index] = inspection
    return found  # type: ignore[return-value]


def _inspect_pdf(path: Path) -> Inspection:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pypdf.PdfReader(str(path), strict=False)
            if reader.is_encrypted:
                return Inspection(encrypted="PDF 已加密（含 /Encrypt 字典，需要密码或受权限限制）",
                                  readable=None, reason="加密文件，未做可读性检测")
            pages = len(reader.pages)
            for page in reader.pages:
                page.get_contents()
                page.mediabox  # noqa: B018 - reading it parses the page tree entry
            if pages == 0:
                return Inspection(readable=False, reason="PDF 没有页面", pages=0)
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError, ZeroDivisionError) as exc:
        return Inspection(readable=False, reason=f"PDF 无法解析: {type(exc).__name__}: {exc}")
    return Inspection(readable=True, reason=f"PDF 可解析，{pages} 页", pages=pages)


def _inspect_zip(path: Path) -> Inspection:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        return Inspection(readable=False, reason=f"ZIP 结构损坏: {exc}")
    found = Inspection()
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            return Inspection(readable=False, reason=f"ZIP 成员过多（{len(infos)}）")
        names = [i.filename for i in infos]
        encrypted = [i.filename for i in infos if i.flag_bits & 0x1]
        if encrypted:
            found.encrypted = f"ZIP 成员加密: {', '.join(encrypted[:3])}"
        found.macro = _zip_macros(archive, names)
        if "META-INF/manifest.xml" in names:
            manifest = archive.read("META-INF/manifest.xml")
            if b"encryption-data" in manifest:
                found.encrypted = "ODF 文档已加密（manifest 含 encryption-data）"
        if found.encrypted:
            found.reason = "加密文件，未做可读性检测"
            return found
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as exc:
            return Inspection(readable=False, macro=found.macro, reason=f"ZIP 成员无法解压: {exc}")
    if bad is not None:
        return Inspection(readable=False, macro=found.macro, reason=f"ZIP 成员 {bad} 校验失败")
    found.readable, found.reason = True, f"ZIP 容器可解压（{len(names)} 个成员，CRC 校验通过）"
    return found


def _zip_macros(archive: zipfile.ZipFile, names: list[str]) -> str | None:
    lowered = [n.lower() for n in names]
    vba = [n for n, low in zip(names, lowered) if low.endswith("vbaproject.bin")]
    if vba:
        return f"含 VBA 宏工程 {vba[0]}"
    if "[Content_Types].xml" in names:
        types = archive.read("[Content_Types].xml").decode("utf-8", "replace")
        if any(marker in types for marker in MACRO_TYPES):
            return "内容类型声明为启用宏（macroEnabled）"
    scripts = [n for n in names if n.startswith(("Basic/", "Scripts/")) and not n.endswith("/")]
    if scripts:
        return f"含 ODF 宏脚本 {scripts[0]}"
    return None


def _inspect_ole(path: Path) -> Inspection:
    data = path.read_bytes()
    if "EncryptedPackage".encode("utf-16-le") in data or "EncryptionInfo".encode("utf-16-le") in data:
        return Inspection(encrypted="Office 文档设置了打开密码（OLE 容器中的 EncryptedPackage）",
                          reason="加密文件，未做可读性检测")
    macro = None
    for marker in ("_VBA_PROJECT", "Macros", "VBA"):
        if marker.encode("utf-16-le") in data:
            macro = f"OLE 文档含宏存储 {marker}"
            break
    return Inspection(macro=macro, reason="OLE 复合文档，不做可读性检测")


def _inspect_image(path: Path) -> Inspection:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size = image.size
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Inspection(readable=False, reason=f"图像无法解码: {exc}")
    return Inspection(readable=True, reason=f"图像解码成功（{size[0]}×{size[1]}）")


_INSPECTORS = {"pdf": _inspect_pdf, "zip": _inspect_zip, "ole": _inspect_ole,
               "image": _inspect_image}
