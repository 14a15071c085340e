"""How a page of search hits reads for people: a snippet of the record's own text (its
extracted full text), not of the descriptive field values the index also holds, the fields a
word matched in when it matched only there, and the volume (户卷) each hit belongs to.

The engines' snippets (:class:`access.search.Hit`) are left as they are (both engines must
give the same); this rewrites them for the page from the catalogue, one query per page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from access import rules as r
from access.search import SearchResult
from storage.catalogue import models as m
from storage.catalogue import Catalogue


@dataclass
class HitView:
    """What the page shows of one hit besides its title and 档号.

    Attributes:
        snippet: HTML (matches in <mark>) from the full text; empty when the words matched
            only descriptive fields or the reader sees no content.
        matched: names of the fields the words matched in (when not in the full text).
        volume: the 档号 of the household volume the hit belongs to (None: not in one).
    """

    snippet: str = ""
    matched: list[str] = field(default_factory=list)
    volume: str | None = None


def _lines(value: Any) -> set[str]:
    if isinstance(value, list):
        return {" ".join(map(str, value)), *map(str, value)}
    return {str(value)} if value not in (None, "") else set()


def _own_text(text: str, fields: dict[str, Any]) -> str:
    """The document's text without its field-value lines and file names."""
    values: set[str] = set()
    for value in fields.values():
        values |= _lines(value)
        values |= {r.mask_numbers(v) for v in _lines(value)}
    kept = [line for line in text.split("\n")
            if line.strip() and line not in values and not _is_file_name(line)]
    return "\n".join(kept)


def _is_file_name(line: str) -> bool:
    """A file's name as the index lists it (``005-脱贫确认书.pdf``)."""
    stem, dot, ext = line.strip().rpartition(".")
    return bool(stem and dot) and 1 <= len(ext) <= 5 and ext.isalnum() and ext.isascii() \
        and not any(c.isspace() for c in line.strip())


def hit_views(catalogue: Catalogue, result: SearchResult | None, terms: list[str],
              field_name: Any = str) -> list[HitView]:
    """One :class:`HitView` per hit of the page, in order.

    Arguments:
        catalogue: the catalogue the hits come from.
        result: the search's answer (None: no search).
        terms: the query's words (those marked).
        field_name: field name -> the name people read (the profile's Chinese one).
    """
    from access.search.embedded import masked_snippet

    if result is None or not result.hits:
        return []
    uuids = sorted({h.aip_uuid for h in result.hits})
    with catalogue.session() as s:
        items = {(i.aip_uuid, i.key): i.fields or {} for i in s.scalars(
            select(m.Item).where(m.Item.aip_uuid.in_(uuids)))}
        levels = {(a, k): lvl for a, k, lvl in s.execute(
            select(m.Item.aip_uuid, m.Item.key, m.Item.level).where(m.Item.aip_uuid.in_(uuids)))}
        volumes = {a: code for a, code in s.execute(
            select(m.Aip.uuid, m.Aip.archival_code).where(m.Aip.uuid.in_(uuids)))}
        wanted = {(h.aip_uuid, h.item_key) for h in result.hits if h.view == "content"}
        texts = {} if not wanted else {
            (a, k): text for a, k, text in s.execute(
                select(m.SearchDoc.aip_uuid, m.SearchDoc.item_key, m.SearchDoc.text)
                .where(m.SearchDoc.aip_uuid.in_(sorted({a for a, _ in wanted})),
                       m.SearchDoc.item_key.in_(sorted({k for _, k in wanted if k}))))
            if (a, k) in wanted}
    words = [t for t in terms if t.strip()]
    out = []
    for hit in result.hits:
        key = (hit.aip_uuid, hit.item_key)
        fields = items.get(key, {})
        view = HitView()
        household = any(lvl == "户卷" for (a, _), lvl in levels.items() if a == hit.aip_uuid)
        if household and levels.get(key) != "户卷":
            view.volume = volumes.get(hit.aip_uuid)
        own = _own_text(texts.get(key, ""), fields) if hit.view == "content" else ""
        lowered = own.lower()
        if own and (not words or any(w.lower() in lowered for w in words)):
            view.snippet = masked_snippet(own, words)
        else:
            shown = fields if hit.view == "content" else {}
            view.matched = [field_name(k) for k, v in shown.items()
                            if k not in ("title", "archival_code")
                            and any(w.lower() in " ".join(_lines(v)).lower() for w in words)]
        out.append(view)
    return out
