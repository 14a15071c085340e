"""Validation of a transfer that arrives as a BagIt bag (bagit-python), every problem listed.

bagit-python checks the structure (bagit.txt, bag-info, Payload-Oxum, files present and
listed); the digests are compared with the ones computed while staging, so the payload is
read once. Only an algorithm the sender used that the fixity policy does not compute costs a
second read, of the files it covers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import bagit

from ingest.findings import Problem
from ingest.staging import StagedFile
from metadata_profiles.text import shown_text
from storage.aip import hash_file


@dataclass
class BagFindings:
    """What validating a submitted bag found."""

    root: str                            # transfer-relative folder of the bag ('' = top)
    info: dict[str, str] = field(default_factory=dict)
    structure: list[Problem] = field(default_factory=list)   # bagit-python's findings
    digests: list[Problem] = field(default_factory=list)     # manifest vs bytes
    oxum: tuple[int, int] | None = None  # (bytes, files) declared by Payload-Oxum
    algorithms: tuple[str, ...] = ()


MANIFEST_NAME = re.compile(r"(tag)?manifest-([A-Za-z0-9]+)\.txt")
DECLARATION_LINES = (re.compile(r"BagIt-Version: (\d+)\.(\d+)"),
                     re.compile(r"Tag-File-Character-Encoding: (\S(?:.*\S)?)"))
SUPPORTED_VERSIONS = ("0.93", "0.94", "0.95", "0.96", "0.97", "1.0")
_LINE_END = re.compile(r"\r\n|\r|\n")
_MANIFEST_LINE = re.compile(r"([0-9A-Fa-f]+)[ \t]+\*?(.*\S.*)")   # "*": md5sum's binary mark


def looks_like_bag(rels: list[str] | set[str], prefix: str = "") -> bool:
    """Whether the files under ``prefix`` look like a BagIt bag: a bag declaration, a payload
    or tag manifest (``manifest-md5.txt``), or ``bag-info.txt`` / ``fetch.txt`` beside a
    ``data/`` folder. A plain county transfer holds none of these names."""
    names = {r[len(prefix):] for r in rels if r.startswith(prefix)}
    top = {n for n in names if "/" not in n}
    if "bagit.txt" in top or any(MANIFEST_NAME.fullmatch(n) for n in top):
        return True
    has_data = any(n.startswith("data/") for n in names)
    return has_data and bool(top & {"bag-info.txt", "fetch.txt"})


def find_bag_root(rels: list[str]) -> str | None:
    """'' if the transfer is a bag (or looks like one, see :func:`looks_like_bag`), 'name/' if
    it is one folder holding a bag, else None (a plain folder).

    A transfer that looks like a bag is validated as one, so a bag that lost its
    ``bagit.txt`` is refused as a broken bag instead of being taken as a plain folder whose
    manifests are content.
    """
    if looks_like_bag(rels):
        return ""
    tops = {r.split("/", 1)[0] for r in rels}
    if len(tops) == 1:
        top = tops.pop()
        if any("/" in r for r in rels) and looks_like_bag(rels, f"{top}/"):
            return f"{top}/"
    return None


def declaration_problems(raw: bytes | None, where: str) -> list[Problem]:
    """RFC 8493 §2.1.1: ``bagit.txt`` is exactly two lines, ``BagIt-Version: M.N`` and
    ``Tag-File-Character-Encoding: ENCODING``, in UTF-8 without a byte-order mark.

    Stricter than bagit-python, which strips whitespace around the colon: the RFC's tag
    grammar (§2.2.2) has the label end right before the colon, so ``BagIt-Version : 1.0`` is
    refused (the conformance suite's ``bagit-with-invalid-whitespace``). A bag's declaration is
    what says it is a bag; a tool that writes it wrongly may write the rest wrongly too.
    """
    if raw is None:
        return [Problem("缺少 bagit.txt：有 BagIt 清单或标签文件，但没有包声明，按损坏的 BagIt "
                        "包拒收 (bagit.txt missing: the transfer looks like a bag but has no "
                        "bag declaration)", path=where)]
    if raw.startswith(b"\xef\xbb\xbf"):
        return [Problem("bagit.txt 不得有字节顺序标记 BOM (RFC 8493 §2.1.1)", path=where)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [Problem("bagit.txt 不是 UTF-8 (RFC 8493 §2.1.1)", path=where)]
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    problems = []
    if len(lines) != 2:
        problems.append(Problem(f"bagit.txt 应恰好两行，实为 {len(lines)} 行 (RFC 8493 §2.1.1)",
                                path=where, actual=shown_text(text)))
    for pattern, line, label in zip(DECLARATION_LINES, lines + ["", ""],
                                    ("BagIt-Version", "Tag-File-Character-Encoding")):
        match = pattern.fullmatch(line)
        if match is None:
            problems.append(Problem(
                f"bagit.txt 的“{label}”行不符合 “{label}: 值” 的格式（标签名与冒号之间不得有空白，"
                f"冒号后恰一个空格；RFC 8493 §2.1.1、§2.2.2）", path=where,
                expected=f"{label}: …", actual=shown_text(line)))
        elif label == "BagIt-Version" and f"{match[1]}.{match[2]}" not in SUPPORTED_VERSIONS:
            problems.append(Problem(f"不支持的 BagIt 版本 {match[1]}.{match[2]}", path=where,
                                    expected=" / ".join(SUPPORTED_VERSIONS),
                                    actual=f"{match[1]}.{match[2]}"))
    return problems


def validate_bag(staging_root: Path, bag_root: str, files: dict[str, StagedFile]) -> BagFindings:
    """Validate the bag under ``staging_root/bag_root``; digests from ``files`` (by rel)."""
    findings = BagFindings(bag_root)
    folder = staging_root / bag_root if bag_root else staging_root
    declaration = folder / "bagit.txt"
    findings.structure += declaration_problems(
        declaration.read_bytes() if declaration.is_file() else None, bag_root + "bagit.txt")
    if not declaration.is_file():
        return findings
    try:
        bag = bagit.Bag(str(folder))
    except bagit.BagError as exc:
        findings.structure.append(Problem(f"BagIt 结构无效: {shown_text(str(exc))}",
                                          path=bag_root + "bagit.txt"))
        return findings
    except (UnicodeError, LookupError) as exc:
        # a tag file not in the encoding bagit.txt declares (or an unknown encoding)
        findings.structure.append(Problem(
            f"BagIt 标签文件编码无效（应为 bagit.txt 声明的编码）: {shown_text(str(exc))}",
            path=bag_root + "bag-info.txt"))
        return findings
    # bag-info values are the sender's text: kept escaped, they go into the report
    findings.info = {shown_text(k): shown_text(v if isinstance(v, str) else "; ".join(v))
                     for k, v in bag.info.items()}
    findings.algorithms = tuple(bag.algorithms)
    oxum = bag.info.get("Payload-Oxum")
    if isinstance(oxum, str) and "." in oxum:
        size, _, count = oxum.partition(".")
        if size.isdigit() and count.isdigit():
            findings.oxum = (int(size), int(count))
    findings.structure += _manifest_problems(folder, bag, bag_root)
    _decode_percent_paths(folder, bag)
    try:
        bag.validate(completeness_only=True)
    except bagit.BagValidationError as exc:
        details = exc.details or []
        if not details:
            findings.structure.append(Problem(str(exc.message if hasattr(exc, "message") else exc)))
        for detail in details:
            path = getattr(detail, "path", None)
            findings.structure.append(Problem(shown_text(str(detail)),
                                              path=bag_root + path if path else None))
    except bagit.BagError as exc:
        findings.structure.append(Problem(shown_text(str(exc))))
    except (UnicodeError, LookupError) as exc:
        findings.structure.append(Problem(f"BagIt 清单编码无效: {shown_text(str(exc))}"))
    for path, by_alg in sorted(bag.entries.items()):
        rel = bag_root + path
        # staging keeps names in NFC; a manifest may name a file in NFD (macOS tools)
        staged = files.get(rel) or files.get(unicodedata.normalize("NFC", rel))
        if staged is None:
            continue  # reported by the completeness check
        for algorithm, expected in by_alg.items():
            actual = staged.digests.get(algorithm)
            if actual is None:
                actual = hash_file(staging_root / staged.rel, [algorithm])[1][algorithm]
            if actual.lower() != expected.lower():
                findings.digests.append(Problem(f"{algorithm} 摘要不符", path=rel,
                                                expected=expected.lower(), actual=actual))
    return findings


def _manifest_problems(folder: Path, bag: bagit.Bag, bag_root: str) -> list[Problem]:
    """What bagit-python lets through in manifests: lines that are not ``<digest> <path>``
    (it logs and skips them), digests of the wrong length, and payload files missing from
    one of several payload manifests (RFC 8493 §3: every manifest lists every file)."""
    problems = []
    for manifest in sorted(folder.iterdir()):
        match = MANIFEST_NAME.fullmatch(manifest.name) if manifest.is_file() else None
        if match is None:
            continue
        algorithm = match[2].lower()
        try:
            width = hashlib.new(algorithm).digest_size * 2
        except (ValueError, TypeError):
            width = None
        try:
            text = manifest.read_bytes().decode(bag.encoding)
        except (UnicodeError, LookupError):
            problems.append(Problem(f"清单不是 {bag.encoding} 编码", path=bag_root + manifest.name))
            continue
        for number, line in enumerate(_LINE_END.split(text), start=1):
            if not line.strip():
                continue
            entry = _MANIFEST_LINE.fullmatch(line)
            if entry is None or (width is not None and len(entry[1]) != width):
                problems.append(Problem(
                    f"清单第 {number} 行不是“摘要 路径”格式（{algorithm} 摘要应为 {width or '?'} 位十六进制）",
                    path=bag_root + manifest.name, actual=shown_text(line[:200])))
    algorithms = set(bag.algorithms)
    for path, by_alg in sorted(bag.entries.items()):
        missing = algorithms - set(by_alg)
        if path.startswith("data/") and missing:
            problems.append(Problem(f"文件未列入 manifest-{'、'.join(sorted(missing))}.txt"
                                    "（每个清单须列出全部文件，RFC 8493 §3）",
                                    path=bag_root + path))
    return problems


def _decode_percent_paths(folder: Path, bag: bagit.Bag) -> None:
    """RFC 8493 §2.1.3 writes a ``%`` in a manifest path as ``%25``; bagit-python decodes only
    ``%0A`` and ``%0D``. An entry naming no file as written but one once ``%25`` is decoded
    is that file (a bag written by bagit-python, with a bare ``%``, is read as before)."""
    for path in [p for p in bag.entries if "%25" in p]:
        decoded = path.replace("%25", "%")
        if not (folder / path).exists() and (folder / decoded).exists():
            bag.entries[decoded] = bag.entries.pop(path)
