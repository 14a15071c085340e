"""Descriptive records of an AIP: items from the validated catalogue rows, the household
volume, the retention period and open date each item and the AIP take (from the retention and
access policies), and the documents the search index receives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ingest.analysis import Analysis, Unit
from ingest.contentpii import kinds_in
from ingest.records import RecordSet
from metadata_profiles import mask_id_numbers
from policies import AccessAssessment, AccessPolicy, RetentionPolicy
from storage.catalogue import SearchDocument
from storage.aip import Item, Retention

# fields that describe one 件, never the volume holding it
ITEM_FIELDS = frozenset({
    "seq", "archival_code", "title", "date", "year", "creator", "document_no", "page_count",
    "computer_filename", "file_size", "remarks", "item_no", "retention_period", "jzfp_category",
    "doc_type", "keywords", "abstract", "category_code", "file_combination_type",
})


@dataclass
class Description:
    """The descriptive side of one AIP."""

    items: list[Item]
    item_of: dict[str, str]            # content-relative file path -> item id
    record: dict
    retention: Retention | None
    documents: list[SearchDocument]
    access: AccessAssessment | None = None


@dataclass(frozen=True)
class Policies:
    """The policies descriptions are computed with."""

    retention: RetentionPolicy
    access: AccessPolicy
    today: date


def _year(fields: dict[str, Any]) -> int | None:
    for key in ("date", "year"):
        value = str(fields.get(key, ""))[:4]
        if value.isdigit():
            return int(value)
    return None


def _day(fields: dict[str, Any]) -> str | None:
    """A record's full date as ``YYYY-MM-DD`` (``20161012`` or ``2016-10-12`` in ``date``);
    None when it has only a year or none."""
    digits = str(fields.get("date") or "").replace("-", "")[:8]
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return None


def describe(unit: Unit, analysis: Analysis, transfer_label: str, records: RecordSet,
             policies: Policies, aip_uuid: str, content: Mapping[str, str] | None = None,
             names: frozenset[str] = frozenset()) -> Description:
    """Items, record, retention, access and search documents of one unit (one AIP).

    ``content`` maps content-relative paths to their extracted text and ``names`` holds the
    household heads' names to look for: a record whose content holds personal information
    its catalogue fields do not show is rated from it and marked for review
    (:func:`_content_pii`).
    """
    content = content or {}
    profile_pii = analysis.profile.pii_levels()
    items: list[Item] = []
    assessments: dict[str, AccessAssessment] = {}
    item_of: dict[str, str] = {}
    parent = "item-000" if unit.archival_code else None
    for index, row in enumerate(unit.rows, start=1):
        record = records.rows.get(row.key)
        fields = dict(record.values) if record else {k: v for k, v in row.values.items() if v}
        fields.setdefault("aggregation_level", "文件")
        item_id = f"item-{index:03d}"
        fields.update(_item_retention(fields, policies.retention))
        rel = analysis.row_files.get(row.key)
        fields.update(_content_pii(fields, [rel] if rel else [], content, names, policies,
                                   profile_pii))
        assessment = policies.access.assess(fields, level="件", profile_levels=profile_pii,
                                            aip_uuid=aip_uuid, today=policies.today)
        fields.update(_access_fields(assessment, aip_uuid, item_id))
        assessments[item_id] = assessment
        items.append(Item(item_id, str(fields.get("title", "")) or row.where(), fields, "件", parent))
        if rel:
            item_of[rel] = item_id
    if parent is not None:
        items.insert(0, _volume_item(unit, items, assessments, policies, aip_uuid))
        assessments[parent] = _combine(policies, [assessments[i.id] for i in items[1:]], True)
    if not items:
        fields = {"title": transfer_label, "aggregation_level": "文件"}
        rels = [f.rel[len(analysis.content_prefix):] for f in unit.files]
        fields.update(_content_pii(fields, rels, content, names, policies, profile_pii))
        assessment = policies.access.assess(fields, profile_levels=profile_pii, aip_uuid=aip_uuid,
                                            today=policies.today)
        fields.update(_access_fields(assessment, aip_uuid, "item-001"))
        assessments["item-001"] = assessment
        items.append(Item("item-001", transfer_label, fields, "件", None))
        for staged in unit.files:
            item_of[staged.rel[len(analysis.content_prefix):]] = "item-001"
    access = _combine(policies, list(assessments.values()), parent is not None)
    retention = _aip_retention(items, policies, access)
    record = {"profile": analysis.profile.id, "profile_version": analysis.profile.version,
              "archival_code": unit.archival_code, "label": unit.label,
              "items": [{"id": i.id, "level": i.level, "parent": i.parent_id,
                         "fields": i.fields} for i in items],
              "retention": retention.__dict__ if retention else None,
              "access": {"open_date": _iso(access.open_date), "control_id": access.control_id,
                         "pii_level": access.pii_level, "household": access.household,
                         "basis": access.basis, "policy": str(policies.access.path.name)}}
    never = set(analysis.profile.protected_fields) | set(analysis.profile.masked_fields)
    documents = _documents(items, unit, analysis, item_of, never)
    return Description(items, item_of, record, retention, documents, access)


def _content_pii(fields: Mapping[str, Any], rels: list[str], content: Mapping[str, str],
                 names: frozenset[str], policies: Policies,
                 profile_pii: Mapping[str, str]) -> dict[str, Any]:
    """``content_pii`` (the kinds found) and ``pii_review`` for a record whose extracted
    text, file names or free-text fields hold personal information rating it higher than
    its catalogue fields do; empty otherwise."""
    policy = policies.access
    texts = [content.get(rel, "") for rel in rels] + [rel.rpartition("/")[2] for rel in rels]
    texts += [v for v in fields.values() if isinstance(v, str)]
    kinds = kinds_in(texts, policy.content_pii, names)
    if not kinds:
        return {}
    before = policy.pii_level(fields, profile_pii)
    after = policy.pii_level({**fields, "content_pii": kinds}, profile_pii)
    if policy.rank(after) <= policy.rank(before):
        return {}
    return {"content_pii": kinds, "pii_review": policy.content_pii.review}


def _item_retention(fields: dict[str, Any], policy: RetentionPolicy) -> dict[str, Any]:
    period = policy.period(str(fields.get("retention_period") or ""))
    if period is None:
        return {}
    expiry = policy.expiry(period.code, _year(fields))
    return {"retention_period": period.code, **({"retention_expiry": expiry.strftime("%Y%m%d")}
                                                if expiry else {})}


def _access_fields(assessment: AccessAssessment, aip_uuid: str, item_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"electronic_record_id": f"{aip_uuid}/{item_id}",
                              "control_id": assessment.control_id,
                              "pii_level": assessment.pii_level}
    if assessment.open_date is not None:
        fields["open_date"] = assessment.open_date.strftime("%Y%m%d")
    return fields


def _combine(policies: Policies, parts: list[AccessAssessment], household: bool
             ) -> AccessAssessment:
    return policies.access.combine(parts, household=household, today=policies.today)


def _volume_item(unit: Unit, items: list[Item], assessments: dict[str, AccessAssessment],
                 policies: Policies, aip_uuid: str) -> Item:
    """The 户卷 itself: values shared by all its items, the highest period, 控制."""
    shared: dict[str, Any] = {}
    if items:
        first = items[0].fields
        for name, value in first.items():
            if name in ITEM_FIELDS or name in ("aggregation_level", "electronic_record_id",
                                               "control_id", "pii_level", "open_date",
                                               "retention_expiry"):
                continue
            if all(i.fields.get(name) == value for i in items[1:]):
                shared[name] = value
    fields: dict[str, Any] = {"archival_code": unit.archival_code, "title": unit.label,
                              "aggregation_level": "案卷", **shared}
    period = policies.retention.highest(str(i.fields.get("retention_period") or "") for i in items)
    if period:
        fields["retention_period"] = period
        years = [y for y in (_year(i.fields) for i in items) if y]
        expiry = policies.retention.expiry(period, max(years) if years else None)
        if expiry:
            fields["retention_expiry"] = expiry.strftime("%Y%m%d")
    combined = _combine(policies, [assessments[i.id] for i in items], True)
    fields.update(_access_fields(combined, aip_uuid, "item-000"))
    return Item("item-000", unit.label, fields, "户卷", None)


def _aip_retention(items: list[Item], policies: Policies,
                   access: AccessAssessment) -> Retention | None:
    """The AIP's 保管期限: the highest of its items; expiry from the latest year of formation."""
    policy = policies.retention
    period = policy.highest(str(i.fields.get("retention_period") or "") for i in items)
    if period is None:
        return None
    years = [y for y in (_year(i.fields) for i in items) if y]
    expiry = policy.expiry(period, max(years) if years else None)
    basis = (f"保管期限表 {policy.describe()}：卷内（包内）最高者；期满自形成年度次年起算。"
             f"开放：{access.basis}")
    return Retention(period, _iso(expiry), _iso(access.open_date), basis)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _documents(items: list[Item], unit: Unit, analysis: Analysis, item_of: dict[str, str],
               never: Iterable[str]) -> list[SearchDocument]:
    never = set(never)
    files_by_item: dict[str, list[str]] = {}
    for rel, item_id in item_of.items():
        files_by_item.setdefault(item_id, []).append(rel)
    documents = []
    for item in items:
        fields = item.fields
        text_parts = [str(v) if not isinstance(v, list) else " ".join(map(str, v))
                      for k, v in fields.items() if k not in never]
        text_parts += [rel.rpartition("/")[2] for rel in files_by_item.get(item.id, [])]
        village = str(fields.get("village_code", ""))
        facets = {
            "level": item.level,
            "category": fields.get("jzfp_category"),
            "year": _year(fields),
            "date": _day(fields),     # the 年度 order within a year (not a facet of its own)
            "retention": fields.get("retention_period"),
            "county": village[:6] or None, "township": village[:9] or None,
            "village": village or None,
            "household_type": fields.get("household_type"),
            "poverty_causes": fields.get("poverty_causes"),
            "control": fields.get("control_id"),
            # under 防返贫监测 and following a 建档立卡 household file (checked: DG-1-10)
            "monitored": "yes" if fields.get("jzfp_category") == "06" and fields.get("follows")
            else None,
            "formats": sorted({(analysis.formats[r].puid or "unknown")
                               for r in files_by_item.get(item.id, []) if r in analysis.formats}),
        }
        # an ID number is found by its keyed hash, never as words: masked in every field and
        # file name the document holds
        documents.append(SearchDocument(
            item.id, str(fields.get("archival_code") or unit.archival_code or "") or None,
            mask_id_numbers(item.label), mask_id_numbers("\n".join(text_parts)),
            {k: v for k, v in facets.items() if v}))
    return documents
