"""Loading the facts the access rules need from the catalogue: items, their AIP's open date
and the latest recorded review decision (开放审核决定) for each record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typing import TYPE_CHECKING

from access.rules import Decision, RecordFacts, Rules, record_facts
from storage.catalogue import reading

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage.catalogue import models as m


def decisions_for(s: Any, aip_uuids: Iterable[str]) -> dict[tuple[str, str | None], Decision]:
    """The latest decision per (aip, item) for these AIPs (later decisions win).

    ``s``: an ORM session, or a :class:`storage.catalogue.reading.Rows`."""
    rows_of = s if isinstance(s, reading.Rows) else reading.Rows.of_connection(s.connection())
    uuids = sorted(set(aip_uuids))
    out: dict[tuple[str, str | None], Decision] = {}
    for start in range(0, len(uuids), 500):
        batch = uuids[start : start + 500]
        marks = ", ".join(f":u{n}" for n in range(len(batch)))
        rows = rows_of.all(
            "SELECT aip_uuid, item_key, open_date, control FROM open_decisions "
            f"WHERE aip_uuid IN ({marks}) ORDER BY decided_at, id",
            **{f"u{n}": u for n, u in enumerate(batch)})
        for row in rows:
            key = (row["aip_uuid"], row["item_key"])
            before = out.get(key, Decision())
            out[key] = Decision(reading.day(row["open_date"]) or before.open_date,
                                row["control"] or before.control)
    return out


def _decision(
    decisions: dict[tuple[str, str | None], Decision], aip: str, key: str | None
) -> Decision | None:
    whole, own = decisions.get((aip, None)), decisions.get((aip, key)) if key else None
    if whole and own:
        return Decision(own.open_date or whole.open_date, own.control or whole.control)
    return own or whole


def facts_of_items(
    aip: m.Aip, items: list[m.Item], rules: Rules, decisions: dict[tuple[str, str | None], Decision]
) -> dict[str | None, RecordFacts]:
    """Facts of every item of one AIP, and of the AIP itself under the key None.

    The AIP's own facts are those of its volume (户卷) item when it has one, otherwise the
    most restricted of its items: an AIP is open only when all its items are.
    """
    by_key = {i.key: i for i in items}
    out: dict[str | None, RecordFacts] = {}
    for item in items:
        parent = by_key.get(item.parent_key) if item.parent_key else None
        out[item.key] = record_facts(
            aip.uuid,
            item.key,
            item.fields or {},
            level=item.level,
            rules=rules,
            aip_open_date=aip.open_date,
            parent_fields=parent.fields if parent else None,
            decision=_decision(decisions, aip.uuid, item.key),
        )
    out[None] = _aip_facts(aip, items, out, rules, decisions)
    return out


def _aip_facts(
    aip: m.Aip,
    items: list[m.Item],
    facts: dict[str | None, RecordFacts],
    rules: Rules,
    decisions: dict[tuple[str, str | None], Decision],
) -> RecordFacts:
    volume = next((i for i in items if i.level == "户卷"), None)
    if not items:
        return record_facts(
            aip.uuid,
            None,
            aip.record or {},
            level=None,
            rules=rules,
            aip_open_date=aip.open_date,
            decision=_decision(decisions, aip.uuid, None),
        )
    members = [facts[i.key] for i in items]
    values = tuple(
        sorted({v for f in members for v in f.personal_values}, key=lambda s: (-len(s), s))
    )
    order = {"none": 0, "personal": 1, "sensitive": 2}
    pii = max((f.pii_level for f in members), key=lambda p: order.get(p, 2))
    base = facts[volume.key] if volume else members[0]
    dates = [f.open_date for f in members if f.open_date is not None]
    open_date = max(dates) if dates else None
    control = "开放" if all(f.control == "开放" for f in members) else "控制"
    whole = decisions.get((aip.uuid, None))
    if whole is not None:
        open_date = whole.open_date or open_date
        control = whole.control or control
    return RecordFacts(
        aip.uuid,
        None,
        open_date,
        control,
        pii,
        any(f.household for f in members) or base.household,
        values,
    )


def load_aip_facts(
    s: Session, uuid: str, rules: Rules
) -> tuple[m.Aip, list[m.Item], dict[str | None, RecordFacts]]:
    """One AIP row, its items and their facts (the AIP's own under the key None)."""
    from sqlalchemy import select

    from storage.catalogue import models as m

    aip = s.get(m.Aip, uuid)
    if aip is None:
        raise KeyError(uuid)
    items = list(s.scalars(select(m.Item).where(m.Item.aip_uuid == uuid).order_by(m.Item.id)))
    return aip, items, facts_of_items(aip, items, rules, decisions_for(s, [uuid]))


def item_fields_index(items: list[m.Item]) -> dict[str, dict[str, Any]]:
    """Item key -> fields."""
    return {i.key: i.fields or {} for i in items}
