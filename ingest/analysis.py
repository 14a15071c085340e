"""What a staged transfer holds: records, catalogue sheet, sender's bag, and how rows and
files refer to each other; and how it divides into AIPs (one per household volume when the
sheet describes volumes, otherwise one for the whole transfer)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ingest.bagcheck import BagFindings, find_bag_root, validate_bag
from ingest.formats import FormatInfo
from ingest.sheet import CatalogueSheet, SheetRow, find_sheet, read_sheet
from ingest.staging import StagedFile, StagedTransfer
from metadata_profiles import Profile, normalise_code, parse_code

__all__ = ["Analysis", "Unit", "analyse", "normalise_code", "plan_units"]


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
        row_files: sheet row key -> content-relative path it names (None = not found).
        formats: content-relative path -> identified format.
        submission: sender's files kept as submission documentation (sheet, bag tag files).
        records: the validated catalogue rows (an ``ingest.records.RecordSet``), once checked.
        scan: the virus scan's result (an ``ingest.virus.ScanResult``), once scanned.
    """

    staged: StagedTransfer
    profile: Profile
    bag: BagFindings | None = None
    content_prefix: str = ""
    content: dict[str, StagedFile] = field(default_factory=dict)
    sheet_file: StagedFile | None = None
    sheet: CatalogueSheet | None = None
    row_files: dict[str, str | None] = field(default_factory=dict)
    formats: dict[str, FormatInfo] = field(default_factory=dict)
    submission: list[StagedFile] = field(default_factory=list)
    records: Any = None
    scan: Any = None

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


def _match_rows(rows: list[SheetRow], rels: list[str]) -> dict[str, str | None]:
    """Map each row to the file it describes: 计算机文件名 first, else a file named by 档号."""
    by_name = {unicodedata.normalize("NFC", r): r for r in rels}
    by_stem: dict[str, str] = {}
    for rel in rels:
        by_stem.setdefault(normalise_code(PurePosixPath(rel).stem), rel)
    matched: dict[str, str | None] = {}
    for row in rows:
        name = row.values.get("computer_filename", "").replace("\\", "/").strip("/")
        code = normalise_code(row.values.get("archival_code", ""))
        if name:
            matched[row.key] = by_name.get(unicodedata.normalize("NFC", name))
        else:
            matched[row.key] = by_stem.get(code) if code else None
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
    codes = analysis.profile.codes
    if analysis.profile.aggregation == "户卷" and codes is not None:
        for row in rows:
            parsed = parse_code(row.values.get(codes.field, ""), codes, analysis.profile.normalise)
            if parsed is not None and parsed.volume:
                code = parsed.volume
                unit = volumes.setdefault(code, Unit(code, code, f"建档立卡户档案 {code}"))
                unit.rows.append(row)
                continue
            rest.rows.append(row)
        # a row whose 档号 is unreadable stays with the volume whose folder holds its file
        for row in list(rest.rows):
            rel = analysis.row_files.get(row.key) or ""
            home = volumes.get(rel.split("/", 1)[0]) if "/" in rel else None
            if home is not None:
                rest.rows.remove(row)
                home.rows.append(row)
    else:
        rest.rows = list(rows)
    placed: set[str] = set()
    for unit in volumes.values():
        for row in unit.rows:
            rel = analysis.row_files.get(row.key)
            if rel and rel not in placed and rel in analysis.content:  # not quarantined
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
