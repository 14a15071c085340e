"""The catalogue sheet (归档文件目录) of a transfer: XLSX or CSV, Chinese headings.

Real sheets come from county offices: XLSX workbooks with a title row, merged header cells
(a group heading such as 户主 spanning 姓名 | 公民身份号码, or 档号 merged over two header
rows), values merged down over a household's rows, several worksheets (one per year or per
village, plus an instructions sheet); or CSV written as UTF-8, UTF-8 with BOM or GB18030.

The header row is the one holding a profile marker heading (题名); a second header row below
it is recognised when its cells are headings too. Each column maps to a profile field through
its heading, the heading of the group above it joined to it, or the profile's synonyms.
Merged cells are filled with their value. Every problem is reported with its sheet, row and
column, never just the first one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ingest.findings import Problem
from metadata_profiles import Profile, normalise_heading

SHEET_SUFFIXES = (".xlsx", ".csv")
MAX_HEADER_SEARCH = 12
CSV_ENCODINGS = (("utf-8-sig", "UTF-8（带 BOM）"), ("utf-8", "UTF-8"), ("gb18030", "GB18030"))


@dataclass
class SheetRow:
    """One data row: where it is and its cell texts by field name.

    Attributes:
        sheet: worksheet name ('' for CSV).
        row: 1-based row number in that sheet, as the spreadsheet program shows it.
        values: field name -> cell text.
    """

    sheet: str
    row: int
    values: dict[str, str]

    @property
    def key(self) -> str:
        """Unique key of the row within its transfer (``sheet:row``)."""
        return f"{self.sheet}:{self.row}"

    def where(self) -> str:
        """``工作表 X 第 N 行`` for messages."""
        return (f"工作表 {self.sheet} " if self.sheet else "") + f"第 {self.row} 行"


@dataclass
class CatalogueSheet:
    """A parsed catalogue sheet.

    Attributes:
        path: transfer-relative path of the sheet file.
        rows: data rows of every worksheet that has a header, in order.
        columns: field -> the heading it was read from (as written), per worksheet.
        unknown_columns: headings that map to no field.
        problems: what could not be read.
        encoding: the CSV's encoding, or ``XLSX``.
        sheets: worksheets read; ``skipped``: worksheets without a header (instructions).
    """

    path: str
    rows: list[SheetRow] = field(default_factory=list)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    unknown_columns: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    encoding: str = ""
    sheets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def heading(self, sheet: str, name: str) -> str | None:
        """The heading a field was read from in a worksheet, if it had a column."""
        return self.columns.get(sheet, {}).get(name)

    def fields_present(self) -> set[str]:
        """Fields that have a column in every worksheet read."""
        sets = [set(c) for c in self.columns.values()]
        return set.intersection(*sets) if sets else set()


def find_sheet(rels: list[str]) -> str | None:
    """Pick the catalogue sheet among top-level files: 目录 in the name first, else the
    only spreadsheet at the top level."""
    top = [r for r in rels if "/" not in r and r.lower().endswith(SHEET_SUFFIXES)]
    named = [r for r in top if "目录" in r]
    if named:
        return min(named)
    return top[0] if len(top) == 1 else None


def read_sheet(path: Path, rel: str, profile: Profile) -> CatalogueSheet:
    """Read a catalogue sheet file into rows of profile fields.

    Arguments:
        path: the file in staging.
        rel: its transfer-relative path (for messages).
        profile: the metadata profile whose headings and synonyms map the columns.

    Returns:
        The sheet; unreadable input is reported in ``problems``, never raised.
    """
    result = CatalogueSheet(rel)
    try:
        if rel.lower().endswith(".xlsx"):
            tables = _read_xlsx(path)
            result.encoding = "XLSX"
        else:
            table, result.encoding = _read_csv(path)
            tables = [("", table)]
    except Exception as exc:  # noqa: BLE001 - any parser failure is a finding, not a crash
        result.problems.append(Problem(f"目录文件无法读取: {exc}", path=rel))
        return result
    headings = profile.headings()
    markers = {normalise_heading(m) for m in profile.header_markers}
    for sheet_name, table in tables:
        _read_table(result, sheet_name, table, headings, markers)
    if not result.sheets:
        where = "任何工作表" if len(tables) > 1 else "目录"
        wanted = "、".join(profile.header_markers)
        result.problems.append(Problem(f"{where}中未找到表头（需含“{wanted}”列）", path=rel))
    return result


def _read_table(result: CatalogueSheet, sheet: str, table: list[list[str]],
                headings: dict[str, str], markers: set[str]) -> None:
    top = _header_row(table, markers)
    if top is None:
        if sheet:
            result.skipped.append(sheet)
        return
    mapping, names, bottom = _map_columns(table, top, headings)
    result.sheets.append(sheet)
    result.columns[sheet] = {}
    seen: dict[str, int] = {}
    for index, name in sorted(mapping.items()):
        column = _column_label(index, names[index])
        if name in seen:
            result.problems.append(Problem(
                f"“{names[index]}”与第 {seen[name] + 1} 列对应同一著录项，已忽略此列",
                path=result.path, sheet=sheet or None, row=bottom + 1, column=column,
                severity="warning"))
            continue
        seen[name] = index
        result.columns[sheet][name] = names[index]
    for index, text in enumerate(names):
        if text and index not in mapping and text not in result.unknown_columns:
            result.unknown_columns.append(text)
    used = {i: n for n, i in seen.items()}
    for number, cells in enumerate(table[bottom + 1:], start=bottom + 2):
        values = {used[i]: cells[i] for i in used if i < len(cells)}
        if any(v for k, v in values.items() if k != "seq"):
            result.rows.append(SheetRow(sheet, number, values))


def _column_label(index: int, heading: str) -> str:
    return heading or f"第 {index + 1} 列"


def _header_row(table: list[list[str]], markers: set[str]) -> int | None:
    for index, row in enumerate(table[:MAX_HEADER_SEARCH]):
        if any(normalise_heading(c) in markers for c in row if c):
            return index
    return None


def _map_columns(table: list[list[str]], top: int, headings: dict[str, str]
                 ) -> tuple[dict[int, str], list[str], int]:
    """Column index -> field, the heading text of each column, and the last header row.

    The row under the marker row is a second header row when every cell it has is a
    heading (alone, or joined to the group heading above it) or repeats the cell above
    (a heading merged over both rows).
    """
    upper = table[top]
    lower = table[top + 1] if top + 1 < len(table) else []
    width = max(len(upper), len(lower))
    upper = upper + [""] * (width - len(upper))
    lower = lower + [""] * (width - len(lower))

    def lookup(*parts: str) -> str | None:
        return headings.get(normalise_heading("".join(parts)))

    two_rows = any(lower) and all(
        not low or low == up or lookup(low) or lookup(up, low) for up, low in zip(upper, lower))
    mapping: dict[int, str] = {}
    names: list[str] = []
    for index, (up, low) in enumerate(zip(upper, lower)):
        if two_rows and low and low != up:
            candidates = [(up + low, (up, low)), (low, (low,)), (up, (up,))]
        else:
            candidates = [(up, (up,))]
        for text, parts in candidates:
            found = lookup(*parts) if text else None
            if found:
                mapping[index] = found
                names.append(text)
                break
        else:
            names.append(low if two_rows and low else up)
    return mapping, names, top + 1 if two_rows else top


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip(" \t\r\n")


def _read_xlsx(path: Path) -> list[tuple[str, list[list[str]]]]:
    import openpyxl

    book = openpyxl.load_workbook(path, data_only=True)
    try:
        tables = []
        for sheet in book.worksheets:
            rows = [[_cell_text(v) for v in r] for r in sheet.iter_rows(values_only=True)]
            for merged in sheet.merged_cells.ranges:
                value = _cell_text(sheet.cell(merged.min_row, merged.min_col).value)
                for r in range(merged.min_row, min(merged.max_row, len(rows)) + 1):
                    row = rows[r - 1]
                    row.extend([""] * (merged.max_col - len(row)))
                    for c in range(merged.min_col, merged.max_col + 1):
                        row[c - 1] = value
            tables.append((sheet.title, _without_title_fill(rows, sheet.merged_cells.ranges)))
        return tables
    finally:
        book.close()


def _without_title_fill(rows: list[list[str]], ranges: Any) -> list[list[str]]:
    """A title merged across the whole width is kept in its first cell only, so that the
    title row is never taken for a row of headings."""
    widths = max((len(r) for r in rows), default=0)
    for merged in ranges:
        if merged.min_row == merged.max_row and merged.max_col - merged.min_col + 1 >= max(
                widths // 2, 3) and merged.min_row <= MAX_HEADER_SEARCH:
            row = rows[merged.min_row - 1]
            for c in range(merged.min_col + 1, merged.max_col + 1):
                row[c - 1] = ""
    return rows


def _read_csv(path: Path) -> tuple[list[list[str]], str]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        text, label = raw.decode("utf-8-sig"), CSV_ENCODINGS[0][1]
    else:
        for encoding, label in CSV_ENCODINGS[1:]:
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ValueError("编码既不是 UTF-8 也不是 GB18030")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    rows = [[_cell_text(c) for c in r] for r in csv.reader(io.StringIO(text), dialect)]
    return rows, label
