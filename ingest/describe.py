"""Descriptive records of an AIP: items from catalogue rows, the household volume, the
retention class it takes, and the documents the search index receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath

from ingest.analysis import Analysis, Unit, normalise_code
from storage.catalogue import SearchDocument
from storage.mets import Item, Retention

RETENTION_CODES = {"永久": "Y", "Y": "Y", "定期30年": "D30", "30年": "D30", "D30": "D30",
                   "定期10年": "D10", "10年": "D10", "D10": "D10", "长期": "D30", "短期": "D10"}
RETENTION_RANK = {"Y": 3, "D30": 2, "D10": 1}
RETENTION_YEARS = {"D30": 30, "D10": 10}
OPEN_AFTER_YEARS = 25
HOUSEHOLD_FIELDS = ("head_name", "head_id_number", "village_code", "household_type",
                    "poverty_causes", "family_size", "identified_year", "exit_year",
                    "jzfp_category", "fonds_code")
NEVER_INDEXED = ("head_id_number",)   # searchable only through a keyed hash, never as text


@dataclass
class Description:
    """The descriptive side of one AIP."""

    items: list[Item]
    item_of: dict[str, str]            # content-relative file path -> item id
    record: dict
    retention: Retention | None
    documents: list[SearchDocument]


def _row_fields(values: dict[str, str]) -> dict[str, object]:
    fields: dict[str, object] = {k: v for k, v in values.items() if v != ""}
    if "archival_code" in fields:
        fields["archival_code"] = normalise_code(str(fields["archival_code"]))
    if "poverty_causes" in fields:
        causes = str(fields["poverty_causes"]).replace("，", "、").replace(",", "、")
        fields["poverty_causes"] = [c.strip() for c in causes.split("、") if c.strip()]
    return fields


def describe(unit: Unit, analysis: Analysis, transfer_label: str) -> Description:
    """Items, record, retention and search documents of one unit."""
    items: list[Item] = []
    item_of: dict[str, str] = {}
    parent = None
    if unit.archival_code:
        first = unit.rows[0].values if unit.rows else {}
        volume_fields = {"archival_code": unit.archival_code, "title": unit.label,
                         "aggregation_level": "案卷"}
        volume_fields.update({k: v for k, v in _row_fields(first).items() if k in HOUSEHOLD_FIELDS})
        parent = "item-000"
        items.append(Item(parent, unit.label, volume_fields, "户卷", None))
    for index, row in enumerate(unit.rows, start=1):
        fields = _row_fields(row.values)
        fields.setdefault("aggregation_level", "文件")
        item = Item(f"item-{index:03d}", str(fields.get("title", "")) or f"第 {row.row} 行",
                    fields, "件", parent)
        items.append(item)
        rel = analysis.row_files.get(row.row)
        if rel:
            item_of[rel] = item.id
    if not items:
        items.append(Item("item-001", transfer_label,
                          {"title": transfer_label, "aggregation_level": "文件"}, "件", None))
        for staged in unit.files:
            item_of[staged.rel[len(analysis.content_prefix):]] = "item-001"
    retention = retention_of(items)
    record = {"profile": analysis.profile.id, "profile_version": analysis.profile.version,
              "archival_code": unit.archival_code, "label": unit.label,
              "items": [{"id": i.id, "level": i.level, "parent": i.parent_id,
                         "fields": i.fields} for i in items],
              "retention": retention.__dict__ if retention else None}
    documents = _documents(items, unit, analysis, item_of, retention)
    return Description(items, item_of, record, retention, documents)


def _year_of(fields: dict[str, object]) -> int | None:
    for key in ("date", "year"):
        value = str(fields.get(key, ""))[:4]
        if value.isdigit():
            return int(value)
    return None


def retention_of(items: list[Item]) -> Retention | None:
    """The AIP's 保管期限: the highest of its items; expiry and open date from the latest year.

    Periods count from 1 January after the year of formation; the record opens 25 years
    after formation (Archives Law 2020, Art. 27) unless a review decides otherwise.
    """
    periods = [RETENTION_CODES.get(str(i.fields.get("retention_period", "")).strip())
               for i in items]
    periods = [p for p in periods if p]
    years = [y for y in (_year_of(i.fields) for i in items) if y]
    if not periods:
        return None
    period = max(periods, key=RETENTION_RANK.__getitem__)
    latest = max(years) if years else None
    expiry = (date(latest + RETENTION_YEARS[period], 12, 31).isoformat()
              if latest and period in RETENTION_YEARS else None)
    open_date = date(latest + OPEN_AFTER_YEARS, 12, 31).isoformat() if latest else None
    return Retention(period, expiry, open_date, "保管期限取卷内文件最高者；开放日期=形成年度+25年")


def _documents(items: list[Item], unit: Unit, analysis: Analysis, item_of: dict[str, str],
               retention: Retention | None) -> list[SearchDocument]:
    files_by_item: dict[str, list[str]] = {}
    for rel, item_id in item_of.items():
        files_by_item.setdefault(item_id, []).append(rel)
    documents = []
    for item in items:
        fields = item.fields
        text_parts = [str(v) if not isinstance(v, list) else " ".join(map(str, v))
                      for k, v in fields.items() if k not in NEVER_INDEXED]
        text_parts += [PurePosixPath(rel).name for rel in files_by_item.get(item.id, [])]
        village = str(fields.get("village_code", ""))
        facets = {
            "level": item.level,
            "category": fields.get("jzfp_category"),
            "year": _year_of(fields),
            "retention": (RETENTION_CODES.get(str(fields.get("retention_period", "")))
                          or (retention.period if retention else None)),
            "county": village[:6] or None, "township": village[:9] or None,
            "village": village or None,
            "household_type": fields.get("household_type"),
            "poverty_causes": fields.get("poverty_causes"),
            "formats": sorted({(analysis.formats[r].puid or "unknown")
                               for r in files_by_item.get(item.id, []) if r in analysis.formats}),
        }
        documents.append(SearchDocument(
            item.id, str(fields.get("archival_code") or unit.archival_code or "") or None,
            item.label, "\n".join(text_parts), {k: v for k, v in facets.items() if v}))
    return documents
