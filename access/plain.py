"""``dangan search`` answered in plain SQL, without the ORM (a third of a second of every
call otherwise): the same engine statements (:meth:`EmbeddedSearch.search_on`), the same
access scope, and the same audit entry, appended by :func:`storage.catalogue.journal.append_entry`
as :class:`access.services.AccessService` appends it (whose audit of a search is
:func:`audit_entry` on its session's connection: one way to audit a search).

It answers when the catalogue is a SQLite file at the newest schema, search is embedded,
and the access view is up to date for the policy in force (the common case: every document
has its access row). Otherwise :func:`search` returns :data:`NOT_HERE`, and the command asks
:class:`~access.services.AccessService`, which brings the access view up to date first.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from access import rules as r
from access.facts import decisions_for, facts_of_items
from access.search.base import SearchResult
from access.search.query import parse_query
from policies import Settings

NOT_HERE = object()
"""What :func:`search` returns when it cannot answer (see the module's doc)."""


def search(settings: Settings, reader: r.Reader, text: str, *, page: int = 1,
           per_page: int = 20) -> SearchResult | None | object:
    """As :meth:`access.services.AccessService.search` (None for an empty query), or
    :data:`NOT_HERE`."""
    from storage.catalogue import journal, reading

    if settings.get("search", "engine") != "embedded":
        return NOT_HERE
    path = reading.sqlite_path(settings.get("catalogue", "url"))
    if path is None or not path.is_file():
        return NOT_HERE
    rules = r.load_rules(settings)
    with reading.reading(settings) as rows:
        if rows.dialect != "sqlite" or rows.connection is not None or not _in_sync(rows, rules):
            return NOT_HERE
        query = parse_query(text, None)
        if query.empty:
            return None
        query.scope = r.scope_for(reader, rules)
        from access.search.embedded import EmbeddedSearch

        engine = EmbeddedSearch(None, columnar=False)  # type: ignore[arg-type]
        result = engine.search_on(rows, query, page=max(1, page), per_page=per_page)
        entry = None
        if reader.staff or reader.grants:
            from storage.catalogue import PiiVault

            entry = audit_entry(rows, rules, PiiVault.from_settings(settings), reader, text,
                                result)
    if entry is not None:
        with reading.writing(settings) as connection:
            journal.append_entry(connection, *entry)
        journal.AUDIT_WRITTEN.setdefault(settings.get("catalogue", "url"), set()).add(entry[1])
    return result


def _in_sync(rows: Any, rules: r.Rules) -> bool:
    """Whether every search document has its access row, made under the policy in force."""
    stale = rows.scalar("SELECT count(*) FROM search_access WHERE policy_version != :v",
                        v=rules.version)
    missing = rows.scalar("SELECT count(*) FROM search_docs d LEFT JOIN search_access a "
                          "ON a.doc_id = d.id WHERE a.doc_id IS NULL")
    return not stale and not missing


def audit_entry(rows: Any, rules: r.Rules, vault: Any, reader: r.Reader, text: str,
                result: SearchResult) -> tuple[str, str, str, dict[str, Any]] | None:
    """The audit entry (actor, action, object, detail) of a search whose page shows
    restricted material in full (to staff, or to a researcher through a grant), or None:
    open records and public views are not audited. ``rows``: the catalogue being read
    (:class:`storage.catalogue.reading.Rows`); ``vault``: the home's PII key holder."""
    keys = {(h.aip_uuid, h.item_key) for h in result.hits if h.view == "content"}
    if not keys:
        return None
    if result.restricted is not None:
        shown = result.restricted & keys
    else:
        scope = r.scope_for(reader, rules)
        uuids = sorted({k[0] for k in keys})
        named = sorted(k[1] for k in keys if k[1] is not None)
        marks = ", ".join(f":u{n}" for n in range(len(uuids)))
        items = ", ".join(f":k{n}" for n in range(len(named)))
        condition = f"item_key IN ({items})" if named else "0=1"
        if None in {k[1] for k in keys}:
            condition = f"({condition} OR item_key IS NULL)"
        found = rows.all("SELECT aip_uuid, item_key, control, open_date FROM search_access "
                         f"WHERE aip_uuid IN ({marks}) AND {condition}",
                         **{f"u{n}": u for n, u in enumerate(uuids)},
                         **{f"k{n}": k for n, k in enumerate(named)})
        opened = {(a["aip_uuid"], a["item_key"]) for a in found if scope._open(a)}
        shown = keys - opened      # without an access row: restricted (fail closed)
    restricted = sorted(f"{aip}/{item or ''}" for aip, item in shown)
    if not restricted:
        return None
    masked, keyed = audited_text(rows, rules, vault, text, {aip for aip, _ in shown})
    return (reader.actor, "search-restricted", masked,
            {"role": reader.role, "hits": restricted, "query_hmac": keyed})


def audited_text(rows: Any, rules: r.Rules, vault: Any, text: str,
                 aip_uuids: set[str]) -> tuple[str, str]:
    """How a staff search is written to the non-erasable audit log: the text with ID,
    phone and account numbers and the personal values of the records it showed masked,
    and its keyed hash (:meth:`storage.catalogue.PiiVault.text_hash`) to find equal
    searches. The page's AIPs in three queries."""
    from storage.catalogue import reading

    uuids = sorted(aip_uuids)
    marks = ", ".join(f":u{n}" for n in range(len(uuids)))
    params = {f"u{n}": u for n, u in enumerate(uuids)}
    items: dict[str, list[Any]] = {}
    for row in rows.all("SELECT aip_uuid, key, parent_key, level, fields FROM items "
                        f"WHERE aip_uuid IN ({marks}) ORDER BY id", **params):
        row["fields"] = reading.as_json(row["fields"])
        items.setdefault(row["aip_uuid"], []).append(SimpleNamespace(**row))
    decisions = decisions_for(rows, uuids)
    values: set[str] = set()
    for row in rows.all(f"SELECT uuid, open_date, record FROM aips WHERE uuid IN ({marks})",
                        **params):
        aip = SimpleNamespace(uuid=row["uuid"], open_date=reading.day(row["open_date"]),
                              record=reading.as_json(row["record"]))
        facts = facts_of_items(aip, items.get(aip.uuid, []), rules, decisions)
        values.update(facts[None].personal_values)
    ordered = sorted(values, key=lambda v: (-len(v), v))
    return r.deidentify(text, ordered)[:200], vault.text_hash(text)
