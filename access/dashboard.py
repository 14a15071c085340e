"""Figures for the dashboard: holdings by category, year and county, ingest volume over
time, formats, and fixity coverage. Holdings are aggregate counts (no record is named), so
every signed-in reader sees them; ingest, formats and fixity are for staff and auditors."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, or_, select

from policies import Settings, load_fixity_policy
from storage.catalogue import models as m
from storage.catalogue import Catalogue

CATEGORY_NAMES = {
    "01": "综合",
    "02": "精准识别",
    "03": "精准施策",
    "04": "精准脱贫",
    "05": "特殊载体",
    "06": "防返贫监测",
}


def _facet_counts(s, name: str) -> list[tuple[str, int]]:
    value = m.SearchDoc.facets[name].as_string()
    level = m.SearchDoc.facets["level"].as_string()
    # items (件) only, as the totals count them: a household volume's own record is not one
    rows = s.execute(
        select(value, func.count())
        .where(m.SearchDoc.item_key.is_not(None), or_(level.is_(None), level != "户卷"))
        .group_by(value)
    ).all()
    return sorted(((str(v), n) for v, n in rows if v not in (None, "")), key=lambda e: e[0])


def holdings(catalogue: Catalogue) -> dict[str, Any]:
    """Counts of described records by category, year and county, and the totals."""
    with catalogue.session() as s:
        categories = _facet_counts(s, "category")
        by_category = [(CATEGORY_NAMES.get(c, c), n) for c, n in categories]
        by_year = _facet_counts(s, "year")
        by_county = sorted(_facet_counts(s, "county"), key=lambda e: -e[1])
        totals = {
            "aips": s.scalar(
                select(func.count()).select_from(m.Aip).where(m.Aip.status == "UPLOADED")
            )
            or 0,
            "items": s.scalar(
                select(func.count()).select_from(m.Item).where(m.Item.level != "户卷")
            )
            or 0,
            "volumes": s.scalar(
                select(func.count()).select_from(m.Item).where(m.Item.level == "户卷")
            )
            or 0,
            "bytes": s.scalar(select(func.coalesce(func.sum(m.Aip.size), 0))) or 0,
        }
    return {
        "totals": totals,
        "by_category": by_category,
        "category_codes": [c for c, _ in categories],
        "by_year": by_year,
        "by_county": by_county,
    }


def ingest_volume(catalogue: Catalogue) -> list[dict[str, Any]]:
    """AIPs and bytes ingested per month."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    with catalogue.session() as s:
        for created, size in s.execute(select(m.Aip.created_at, m.Aip.size)):
            month = created.strftime("%Y-%m")
            counts[month] += 1
            sizes[month] += size or 0
    return [{"month": k, "aips": counts[k], "bytes": sizes[k]} for k in sorted(counts)]


def formats(catalogue: Catalogue, limit: int = 15) -> list[dict[str, Any]]:
    """Submitted files by identified format (PRONOM PUID and name)."""
    with catalogue.session() as s:
        rows = s.execute(
            select(
                m.File.puid,
                m.File.format_name,
                func.count(),
                func.coalesce(func.sum(m.File.size), 0),
            )
            .where(m.File.use == "original")
            .group_by(m.File.puid, m.File.format_name)
        ).all()
    out = [
        {"puid": p or "unidentified", "name": n or "", "label": n or p or "未识别格式",
         "files": c, "bytes": b}
        for p, n, c, b in rows
    ]
    return sorted(out, key=lambda e: -e["files"])[:limit]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def fixity_coverage(
    catalogue: Catalogue, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """How many stored copies had a full check (read back at ingest, or a passing fixity
    check event) within the fixity policy's interval, and which did not."""
    now = now or datetime.now(timezone.utc)
    interval = load_fixity_policy(settings).full_interval_days
    since = now - timedelta(days=interval)
    with catalogue.session() as s:
        copies = s.execute(
            select(m.Copy.aip_uuid, m.Copy.location, m.Copy.status, m.Copy.verified_at)
        ).all()
        checks = s.execute(
            select(m.Event.aip_uuid, m.Event.location, func.max(m.Event.at))
            .where(m.Event.type == "fixity check", m.Event.outcome == "pass")
            .group_by(m.Event.aip_uuid, m.Event.location)
        ).all()
        failed = (
            s.scalar(
                select(func.count())
                .select_from(m.Event)
                .where(m.Event.type == "fixity check", m.Event.outcome == "fail")
            )
            or 0
        )
    last = {(a, loc): _aware(at) for a, loc, at in checks}
    covered, stale, damaged = 0, [], 0
    for aip, location, status, verified in copies:
        latest = max(filter(None, [_aware(verified), last.get((aip, location))]), default=None)
        if status != "verified":
            damaged += 1
        if latest and latest >= since and status == "verified":
            covered += 1
        else:
            stale.append(
                {"aip": aip, "location": location, "last": latest.isoformat() if latest else None}
            )
    total = len(copies)
    return {
        "interval_days": interval,
        "copies": total,
        "covered": covered,
        "fraction": covered / total if total else 1.0,
        "not_covered": stale[:50],
        "damaged_copies": damaged,
        "failed_checks": failed,
    }
