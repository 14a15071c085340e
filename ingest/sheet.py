"""The catalogue sheet (归档文件目录) of a transfer: XLSX or CSV, Chinese headings.

The header row is found by looking for the 题名 column (title rows above it, often merged
cells, are skipped); headings map to profile fields through the profile's synonyms. CSV is
read as UTF-8 (with or without BOM) or GB18030. Every problem is reported with its sheet, row
and column, never just the first one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ingest.findings import Problem
from metadata_profiles import Profile, normalise_heading

SHEET_SUFFIXES = (".xlsx", ".csv")
MAX_HEADER_SEARCH = 10


@dataclass
class SheetRow:
    """One data row: its position and its values by field name."""

    sheet: str
    row: int
    values: dict[str, str]


@dataclass
class CatalogueSheet:
    """A parsed catalogue sheet."""

    path: str                      # transfer-relative path of the sheet file
    rows: list[SheetRow] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def find_sheet(rels: list[str]) -> str | None:
    """Pick the catalogue sheet among top-level files: 目录 in the name first, else the
    only spreadsheet at the top level."""
    top = [r for r in rels if "/" not in r and r.lower().endswith(SHEET_SUFFIXES)]
    named = [r for r in top if "目录" in r]
    if named:
        return sorted(named)[0]
    return top[0] if len(top) == 1 else None


def read_sheet(path: Path, rel: str, profile: Profile) -> CatalogueSheet:
    """Read a catalogue sheet file into rows of profile fields."""
    result = CatalogueSheet(rel)
    try:
        tables = _read_xlsx(path) if rel.lower().endswith(".xlsx") else [("", _read_csv(path))]
    except Exception as exc:  # noqa: BLE001 - any parser failure is a finding, not a crash
        result.problems.append(Problem(f"目录文件无法读取: {exc}", path=rel))
        return result
    headings = profile.headings()
    for sheet_name, table in tables:
        header_index = _header_row(table)
        if header_index is None:
            if sheet_name == "" or len(tables) == 1:
                result.problems.append(Problem("未找到表头（需含“题名”列）", path=rel,
                                               sheet=sheet_name or None))
            continue
        columns = [normalise_heading(c) if c is not None else "" for c in table[header_index]]
        mapping: dict[int, str] = {}
        for index, heading in enumerate(columns):
            if heading in headings:
                mapping[index] = headings[heading]
            elif heading:
                result.unknown_columns.append(heading)
        for offset, raw in enumerate(table[header_index + 1:], start=header_index + 2):
            values = {mapping[i]: _cell_text(v) for i, v in enumerate(raw) if i in mapping}
            if any(values.values()):
                result.rows.append(SheetRow(sheet_name, offset, values))
    return result


def _header_row(table: list[list[object]]) -> int | None:
    for index, row in enumerate(table[:MAX_HEADER_SEARCH]):
        if any(normalise_heading(c) in ("题名", "文件题名", "标题") for c in row if c is not None):
            return index
    return None


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path) -> list[tuple[str, list[list[object]]]]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return [(ws.title, [list(r) for r in ws.iter_rows(values_only=True)])
                for ws in book.worksheets]
    finally:
        book.close()


def _read_csv(path: Path) -> list[list[object]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("编码既不是 UTF-8 也不是 GB18030")
    return [list(r) for r in csv.reader(io.StringIO(text))]
