"""What a staged transfer holds: records, catalogue sheet, sender's bag, and how rows and
files refer to each other; and how it divides into AIPs (one per household volume when the
sheet describes volumes, otherwise one for the whole transfer)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ingest.bagcheck import BagFindings, find_bag_root, validate_bag
from ingest.formats import FormatInfo
from ingest.sheet import CatalogueSheet, SheetRow, find_sheet, read_sheet
from ingest.staging import StagedFile, StagedTransfer
from metadata_profiles import Profile

INTERPUNCTS = "\u2022\u30fb\uff0e\u2027\u22c5\uff65"
HYPHENS = "\u2010\u2011\u2012\u2013\u2014\uff0d\u2212"
VOLUME_ITEM = re.compile(
    r"(?P<volume>(?P<fonds>[A-Z0-9]{4})-JF·(?P<cls>0[1-6])(?:·(?P<village>\d{12}))?-(?P<vol>\d{3,4}))"
    r"(?:-(?P<item>\d{3,4}))?")


def normalise_code(code: str) -> str:
    """档号 with look-alike dots and dashes replaced, full-width forms folded, no spaces."""
    code = unicodedata.normalize("NFKC", code.strip())
    code = code.translate({ord(c): "·" for c in INTERPUNCTS}).translate({ord(c): "-" for c in HYPHENS})
    return "".join(code.split())


@dataclass
class Unit:
    """One future AIP: a household volume, or the whole transfer."""

    key: str                           # the volume 档号, or "transfer"
    archival_code: str | None
    label: str
    rows: list[SheetRow] = field(default_factory=list)
    files: list[StagedFile] = field(default_factory=list)


@dataclass
class Analysis:
    """A staged transfer, understood.

    Attributes:
        staged: the staged copy.
        bag: findings of the sender's bag, when the transfer is one.
        content_prefix: transfer-relative folder holding the records ('' or 'bag/data/').
        content: the record files, by content-relative path (sheet and bag tags excluded).
        sheet_file, sheet: the catalogue sheet, when there is one.
        row_files: sheet row number -> content-relative path it names (None = not found).
        formats: content-relative path -> identified format.
        submission: sender's files kept as submission documentation (sheet, bag tag files).
    """

    staged: StagedTransfer
    profile: Profile
    bag: BagFindings | None = None
    content_prefix: str = ""
    content: dict[str, StagedFile] = field(default_factory=dict)
    sheet_file: StagedFile | None = None
    sheet: CatalogueSheet | None = None
    row_files: dict[int, str | None] = field(default_factory=dict)
    formats: dict[str, FormatInfo] = field(default_factory=dict)
    submission: list[StagedFile] = field(default_factory=list)

    def content_path(self, rel: str) -> Path:
        """Where a content file lies in staging."""
        return self.staged.root / (self.content_prefix + rel)


def analyse(staged: StagedTransfer, profile: Profile) -> Analysis:
    """Find the bag, the sheet and the records of a staged transfer."""
    analysis = Analysis(staged, profile)
    by_rel = {f.rel: f for f in staged.files}
    bag_root = find_bag_root(list(by_rel))
    if bag_root is not None:
        analysis.bag = validate_bag(staged.root, bag_root, by_rel)
        analysis.content_prefix = f"{bag_root}data/"
    prefix = analysis.content_prefix
    for rel, staged_file in by_rel.items():
        if rel.startswith(prefix):
            analysis.content[rel[len(prefix):]] = staged_file
        else:
            analysis.submission.append(staged_file)
    sheet_rel = find_sheet(list(analysis.content))
    if sheet_rel is not None:
        analysis.sheet_file = analysis.content.pop(sheet_rel)
        analysis.submission.append(analysis.sheet_file)
        analysis.sheet = read_sheet(analysis.content_path(sheet_rel), sheet_rel, profile)
        analysis.row_files = _match_rows(analysis.sheet.rows, list(analysis.content))
    return analysis


def _match_rows(rows: list[SheetRow], rels: list[str]) -> dict[int, str | None]:
    """Map each row to the file it describes: 计算机文件名 first, else a file named by 档号."""
    by_name = {unicodedata.normalize("NFC", r): r for r in rels}
    by_stem: dict[str, str] = {}
    for rel in rels:
        by_stem.setdefault(normalise_code(PurePosixPath(rel).stem), rel)
    matched: dict[int, str | None] = {}
    for row in rows:
        name = row.values.get("computer_filename", "").replace("\\", "/").strip("/")
        code = normalise_code(row.values.get("archival_code", ""))
        if name:
            matched[row.row] = by_name.get(unicodedata.normalize("NFC", name))
        else:
            matched[row.row] = by_stem.get(code) if code else None
    return matched


def plan_units(analysis: Analysis, fallback_label: str) -> list[Unit]:
    """Divide the transfer into AIPs.

    With a sheet whose 档号 are household-volume codes and a profile that aggregates by
    volume, each volume is one AIP (its rows and files); rows and files outside any volume
    form one more AIP. Otherwise the whole transfer is one AIP.
    """
    sheet = analysis.sheet
    rows = sheet.rows if sheet else []
    volumes: dict[str, Unit] = {}
    rest = Unit("transfer", None, fallback_label)
    if analysis.profile.aggregation == "户卷":
        for row in rows:
            match = VOLUME_ITEM.fullmatch(normalise_code(row.values.get("archival_code", "")))
            if match:
                code = match.group("volume")
                unit = volumes.setdefault(code, Unit(code, code, f"建档立卡户档案 {code}"))
                unit.rows.append(row)
                continue
            rest.rows.append(row)
    else:
        rest.rows = list(rows)
    placed: set[str] = set()
    for unit in volumes.values():
        for row in unit.rows:
            rel = analysis.row_files.get(row.row)
            if rel and rel not in placed:
                unit.files.append(analysis.content[rel])
                placed.add(rel)
    for rel, staged_file in analysis.content.items():
        if rel not in placed:
            # a file outside the sheet goes with the volume whose folder holds it
            home = next((u for u in volumes.values() if rel.startswith(u.key + "/")), rest)
            home.files.append(staged_file)
    units = sorted(volumes.values(), key=lambda u: u.key)
    if rest.files or rest.rows or not units:
        if units:
            rest.label = f"{fallback_label}（卷外文件）"
        units.append(rest)
    return units
