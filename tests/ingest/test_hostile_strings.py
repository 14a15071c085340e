"""Hostile strings pushed through ingest end to end: file names (folder, zip, tar), catalogue
sheet cells (CSV and XLSX), bag-info values and the transfer's own name.

Every case ends in one of two ways, never in exit 3: a clean rejection (exit 1, the message
names the file, row or column and the rule code) or an accepted AIP whose METS validates and
whose bag verifies. The receipt report of a rejected transfer is written and reads back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bagit
import openpyxl
import pytest

from metadata_profiles.text import needs_escape
from storage.aip.mets import validate_mets
from transfers import HEADER, small_transfer

# the strings: C0, DEL, C1 controls, ANSI escape, noncharacters, bidi override, private use,
# astral CJK, replacement character, a formula for spreadsheet injection
CONTROL = "bad\x07name"
ANSI = "red\x1b[31mtext"
NEL = "next\x85line"
DEL = "rub\x7fout"
NONCHAR = "non\ufffechar"
NONCHAR_FFFF = "non\uffffchar"
NONCHAR_ASTRAL = "non\U0001fffechar"
NONCHAR_FDD0 = "non\ufdd0char"
BIDI = "报告\u202efdp.exe"
PRIVATE = "生僻\ue000字"
ASTRAL = "𠀀𪚥户"
REPLACEMENT = "损坏\ufffd编码"
NEWLINE = "two\nlines"
FORMULA = '=HYPERLINK("http://example.invalid","点击")'


@dataclass(frozen=True)
class Expect:
    """What ingest must do with a case: accept it, or reject it naming ``where`` and ``code``."""

    accepted: bool
    code: str = ""
    where: tuple[str, ...] = ()


ACCEPT = Expect(True)


def rejected(code: str, *where: str) -> Expect:
    return Expect(False, code, where)


def _bytes_name(folder: Path, raw: bytes, content: bytes = b"content\n") -> None:
    """A file whose name is raw bytes (possibly not UTF-8)."""
    path = os.path.join(os.fsencode(folder), raw)
    with open(path, "wb") as handle:
        handle.write(content)


# -- file names in a folder transfer ----------------------------------------------------------
def folder_with_name(name: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = tmp / "t"
        root.mkdir()
        (root / "good.txt").write_text("正常文件\n", encoding="utf-8")
        _bytes_name(root, os.fsencode(name + ".txt"))
        return root
    return build


def folder_with_bytes(raw: bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = tmp / "t"
        root.mkdir()
        (root / "good.txt").write_text("正常文件\n", encoding="utf-8")
        _bytes_name(root, raw)
        return root
    return build


def folder_named(name: str, parent: str = "") -> Callable[[Path], Path]:
    """A transfer folder of this name (inside a folder named ``parent``)."""
    def build(tmp: Path) -> Path:
        root = tmp / parent / name if parent else tmp / name
        root.mkdir(parents=True)
        (root / "a.txt").write_text("内容\n", encoding="utf-8")
        return root
    return build


# -- names inside archives ----------------------------------------------------------------------
class _RawZipName(zipfile.ZipInfo):
    """A member whose name is written as the given bytes, with or without the UTF-8 flag."""

    raw: bytes = b""
    utf8: bool = False

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own hook
        flags = self.flag_bits | 0x800 if self.utf8 else self.flag_bits & ~0x800
        return self.raw, flags


def zip_with_raw(raw: bytes, utf8: bool) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "t.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("good.txt", "正常文件\n")
            info = _RawZipName("placeholder")
            info.raw, info.utf8 = raw, utf8
            archive.writestr(info, "内容\n")
        return path
    return build


def zip_with_name(name: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "t.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("good.txt", "正常文件\n")
            archive.writestr(name, "内容\n")
        return path
    return build


def tar_with_raw(raw: bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "t.tar"
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                          errors="surrogateescape") as archive:
            for name, data in (("good.txt", "正常文件\n".encode()),
                               (raw.decode("utf-8", "surrogateescape"), "内容\n".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return path
    return build


# -- catalogue sheet cells ----------------------------------------------------------------------
def csv_cell(column: str, value: str, *, heading: str | None = None) -> Callable[[Path], Path]:
    """The small transfer with one cell of row 2 (the first data row) replaced."""
    def build(tmp: Path) -> Path:
        root = small_transfer(tmp / "t", rows=2)
        sheet = root / "归档文件目录.csv"
        rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
        if heading is not None:
            rows[0].append(heading)
            for row in rows[1:]:
                row.append(value)
        else:
            rows[1][rows[0].index(column)] = value
        with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
            csv.writer(handle).writerows(rows)
        return root
    return build


def xlsx_cell(column: str, value: str) -> Callable[[Path], Path]:
    """The small transfer with its sheet as XLSX, one cell of the first data row replaced."""
    def build(tmp: Path) -> Path:
        root = small_transfer(tmp / "t", rows=2)
        sheet = root / "归档文件目录.csv"
        rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
        sheet.unlink()
        rows[1][rows[0].index(column)] = value
        book = openpyxl.Workbook()
        for row in rows:
            book.active.append(row)
        book.save(root / "归档文件目录.xlsx")
        return root
    return build


# -- bag-info.txt ---------------------------------------------------------------------------
def bag_with_info(raw_info: bytes) -> Callable[[Path], Path]:
    """A valid bag (sha256) whose bag-info.txt is the given bytes."""
    def build(tmp: Path) -> Path:
        root = tmp / "bag"
        (root / "data").mkdir(parents=True)
        payload = "内容\n".encode()
        (root / "data" / "a.txt").write_bytes(payload)
        (root / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        (root / "manifest-sha256.txt").write_text(
            f"{hashlib.sha256(payload).hexdigest()}  data/a.txt\n", encoding="utf-8")
        (root / "bag-info.txt").write_bytes(raw_info)
        lines = "".join(f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n"
                        for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"))
        (root / "tagmanifest-sha256.txt").write_text(lines, encoding="utf-8")
        return root
    return build


CASES: dict[str, tuple[Callable[[Path], Path], Expect]] = {
    # file names in a folder: refused with the rule, the name shown escaped
    "folder-bel": (folder_with_name(CONTROL), rejected("GD-1-6", r"bad\x07name.txt")),
    "folder-ansi": (folder_with_name(ANSI), rejected("GD-1-6", r"red\x1b[31mtext.txt")),
    "folder-nel": (folder_with_name(NEL), rejected("GD-1-6", r"next\x85line.txt")),
    "folder-del": (folder_with_name(DEL), rejected("GD-1-6", r"rub\x7fout.txt")),
    "folder-newline": (folder_with_name(NEWLINE), rejected("GD-1-6", r"two\x0alines.txt")),
    "folder-fffe": (folder_with_name(NONCHAR), rejected("GD-1-6", r"non\ufffechar.txt")),
    "folder-ffff": (folder_with_name(NONCHAR_FFFF), rejected("GD-1-6", r"non\uffffchar.txt")),
    "folder-fdd0": (folder_with_name(NONCHAR_FDD0), rejected("GD-1-6", r"non\ufdd0char.txt")),
    "folder-astral-nonchar": (folder_with_name(NONCHAR_ASTRAL),
                              rejected("GD-1-6", r"non\U0001fffechar.txt")),
    "folder-bidi": (folder_with_name(BIDI), rejected("GD-1-6", r"报告\u202efdp.exe.txt")),
    "folder-bytes": (folder_with_bytes(b"\xff\xfe-bad.txt"), rejected("GD-1-6", r"\xff\xfe-bad.txt")),
    "folder-gbk-bytes": (folder_with_bytes("申请书.txt".encode("gbk")), ACCEPT),
    "folder-private-use": (folder_with_name(PRIVATE), ACCEPT),
    "folder-astral": (folder_with_name(ASTRAL), ACCEPT),
    "folder-formula": (folder_with_name("=cmd|' calc'!A0"), ACCEPT),
    "folder-backslash": (folder_with_name("a\\b"), ACCEPT),
    # the transfer's own name (it becomes the AIP's label)
    "transfer-name-bel": (folder_named("移交\x07批次"), rejected("GD-1-6", r"移交\x07批次")),
    "transfer-name-formula": (folder_named('=HYPERLINK("x")'), ACCEPT),
    # where the transfer lies is recorded (escaped), not refused
    "transfer-parent-bel": (folder_named("批次", parent="收\x07件"), ACCEPT),
    # names inside archives
    "zip-bel-utf8": (zip_with_raw("bad\x07name.txt".encode(), True),
                     rejected("GD-1-6", r"bad\x07name.txt")),
    "zip-bel-cp437": (zip_with_raw(b"bad\x07name.txt", False), rejected("GD-1-6", r"bad\x07name.txt")),
    "zip-flagged-not-utf8": (zip_with_raw(b"\xff\xfe.txt", True), rejected("GD-1-6", "UTF-8")),
    "zip-gbk": (zip_with_raw("扶贫/申请书.txt".encode("gbk"), False), ACCEPT),
    "zip-bidi": (zip_with_name(BIDI + ".txt"), rejected("GD-1-6", r"\u202e")),
    "zip-c1": (zip_with_name(NEL + ".txt"), rejected("GD-1-6", r"next\x85line.txt")),
    "tar-bel": (tar_with_raw(b"bad\x07name.txt"), rejected("GD-1-6", r"bad\x07name.txt")),
    "tar-gbk": (tar_with_raw("扶贫/申请书.txt".encode("gbk")), ACCEPT),
    "tar-bytes": (tar_with_raw(b"\xff\xfe.txt"), rejected("GD-1-6", r"\xff\xfe.txt")),
    # catalogue sheet cells: GD-1-6 with the sheet, row and column
    "csv-title-bel": (csv_cell("题名", "申请\x07书"), rejected("GD-1-6", "row 2", "column 题名")),
    "csv-title-newline": (csv_cell("题名", NEWLINE), rejected("GD-1-6", "row 2", "column 题名")),
    "csv-remarks-fffe": (csv_cell("备注", NONCHAR), rejected("GD-1-6", "row 2", "column 备注")),
    "csv-remarks-ffff": (csv_cell("备注", NONCHAR_FFFF), rejected("GD-1-6", "row 2", "column 备注")),
    "csv-title-private": (csv_cell("题名", PRIVATE), rejected("GD-1-6", "row 2", "column 题名")),
    "csv-title-replacement": (csv_cell("题名", REPLACEMENT), rejected("GD-1-6", "row 2", "column 题名")),
    "csv-creator-bidi": (csv_cell("责任者", BIDI), ACCEPT),
    "csv-title-astral": (csv_cell("题名", ASTRAL), ACCEPT),
    "csv-title-formula": (csv_cell("题名", FORMULA), ACCEPT),
    "csv-unknown-heading": (csv_cell("", "x", heading="备\x07注二"), ACCEPT),
    "xlsx-title-c1": (xlsx_cell("题名", "申请\x9b书"), rejected("GD-1-6", "row 2", "column 题名")),
    "xlsx-remarks-fdd0": (xlsx_cell("备注", NONCHAR_FDD0), rejected("GD-1-6", "row 2", "column 备注")),
    "xlsx-title-astral-nonchar": (xlsx_cell("题名", NONCHAR_ASTRAL),
                                  rejected("GD-1-6", "row 2", "column 题名")),
    # a formula cell holds no value in a file no spreadsheet program calculated
    "xlsx-title-formula": (xlsx_cell("题名", FORMULA), rejected("GD-2-4", "row 2", "column 题名")),
    # bag-info.txt values
    "bag-info-bel": (bag_with_info("Source-Organization: 县\x07扶贫办\nBagging-Date: 2019-01-01\n"
                                   .encode()), ACCEPT),
    "bag-info-not-utf8": (bag_with_info(b"Source-Organization: \xff\xfe\n"),
                          rejected("GD-1-13", "bag-info.txt")),
    "bag-info-bidi": (bag_with_info("Source-Organization: 县\u202e办\n".encode()), ACCEPT),
}


def _aips(home) -> list[Path]:
    root = home.home / "aips"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_string_is_rejected_cleanly_or_accepted_valid(case, home, cli, tmp_path):
    build, expect = CASES[case]
    source = build(tmp_path)
    result = cli("ingest", source)
    assert result.code != 3, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    # nothing hostile reaches the terminal as itself
    assert not [ch for ch in result.out + result.err if needs_escape(ch, keep="\n")]
    if expect.accepted:
        assert result.code == 0, result.err
        aips = _aips(home)
        assert aips
        for folder in aips:
            bagit.Bag(str(folder)).validate()
            assert validate_mets((folder / "data/metadata/mets.xml").read_bytes()) == []
            json.loads((folder / "data/metadata/record.json").read_text(encoding="utf-8"))
            report = folder / "data/logs/ingest-report.json"
            json.loads(report.read_text(encoding="utf-8"))
        return
    assert result.code == 1, result.out + result.err
    assert expect.code in result.err, result.err
    for where in expect.where:
        assert where in result.err, result.err
    assert _aips(home) == []
    reports = list((home.home / "reports").glob("*/ingest-report.json")) \
        if (home.home / "reports").exists() else []
    for report in reports:   # a refused transfer's report reads back (JSON and HTML)
        json.loads(report.read_text(encoding="utf-8"))
        html = report.with_suffix(".html").read_text(encoding="utf-8")
        assert "\x07" not in html and "\x1b" not in html


def test_refused_name_is_shown_escaped_with_the_rule(home, cli, tmp_path):
    """The refusal prints the name escaped (no raw control character reaches a terminal)."""
    source = folder_with_name(ANSI)(tmp_path)
    result = cli("ingest", source)
    assert result.code == 1
    assert "\x1b" not in result.err
    assert r"red\x1b[31mtext.txt: GD-1-6 控制字符 U+001B" in result.err


def test_gbk_folder_name_is_repaired_and_recorded(home, cli, tmp_path):
    source = folder_with_bytes("申请书.txt".encode("gbk"))(tmp_path)
    result = cli("ingest", source, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    mets = (home.home / "aips" / uuid / "data/metadata/mets.xml").read_text(encoding="utf-8")
    assert "申请书.txt" in mets
    assert (home.home / "aips" / uuid / "data/objects/申请书.txt").exists()


def test_fixity_csv_does_not_run_a_submitted_formula(home, cli, tmp_path):
    """A transfer named like a formula becomes an AIP label; the auditors' CSV quotes it."""
    source = folder_named('=HYPERLINK("x","点击")')(tmp_path)
    assert cli("ingest", source).code == 0
    out = tmp_path / "report"
    cli("audit", "report", "--out", out)
    rows = list(csv.reader(io.StringIO((out / "fixity-report.csv").read_text(encoding="utf-8-sig"))))
    labels = [row[2] for row in rows[1:]]
    assert labels == ['\'=HYPERLINK("x","点击")']
