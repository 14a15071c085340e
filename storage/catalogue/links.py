"""Links between records: a 防返贫监测 (return-to-poverty monitoring) record names the 建档立卡
household file it follows in its profile field ``follows`` (关联档号), by 档号 or AIP UUID."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.catalogue import models as m

FOLLOWS = "follows"


def named_record(session: Any, named: str) -> tuple[str, str | None] | None:
    """(AIP UUID, 档号) of the record a ``follows`` value names: an AIP by its UUID or its
    档号, or the AIP holding a record (户卷 or 件) with that 档号; None when nothing does."""
    named = (named or "").strip()
    if not named:
        return None
    aip = session.get(m.Aip, named)
    if aip is None:
        aip = session.scalars(select(m.Aip).where(m.Aip.archival_code == named)).first()
    if aip is not None:
        return aip.uuid, aip.archival_code
    item = session.scalars(select(m.Item).where(m.Item.archival_code == named)).first()
    return (item.aip_uuid, item.archival_code) if item is not None else None


def followers(session: Any, names: set[str], exclude: str | None = None) -> list[m.Item]:
    """The records (items) whose ``follows`` names one of ``names``, outside AIP ``exclude``."""
    query = select(m.Item).where(m.Item.fields[FOLLOWS].as_string().in_(sorted(names)))
    if exclude:
        query = query.where(m.Item.aip_uuid != exclude)
    return list(session.scalars(query.order_by(m.Item.aip_uuid, m.Item.id)))
