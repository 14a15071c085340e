"""The access view of the search index: one ``search_access`` row per search document (its
open date, control flag, PII level and de-identified title, text and facets) and, on SQLite,
the public text's tokens in ``search_fts_public``.

The view is derived from the catalogue by :mod:`access.rules`; it is brought up to date before
every search (new documents since the last sync), rebuilt whole when the rules change, and
refreshed for an AIP when a review decision is recorded. A document without a row is found by
staff only, so a lagging view hides records rather than showing them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, literal_column, select, text
from sqlalchemy.orm import Session

from access.facts import decisions_for, facts_of_items
from access.models import OpenDecision, SearchAccess
from access.rules import Rules, public_facets, public_search_text
from storage.catalogue import models as m
from storage.index import outbox
from storage.catalogue import Catalogue
from storage.index import delete_tokens, write_tokens_many

# bumped by a trigger at every deletion from search_docs, whichever process deletes
DELETIONS = literal_column("(SELECT deletions FROM search_generation WHERE id = 1)")
BATCH = 500
ACCESS_LOCK = 0x5EA4C4A5  # the advisory lock key of search_access writes (PostgreSQL)


class AccessIndex:
    """Keeps ``search_access`` in step with ``search_docs`` for one catalogue.

    Arguments:
        catalogue: the catalogue holding the search documents.
        rules: the access rules in force.
    """

    def __init__(self, catalogue: Catalogue, rules: Rules) -> None:
        self.catalogue = catalogue
        self.rules = rules
        self._lock = threading.Lock()
        self._synced_to = -1
        self._checked_version = False
        self._changes = 0
        self._last_decision = 0
        self._deletions = 0

    @property
    def generation(self) -> tuple[int, int]:
        """Changes whenever documents or their access view change (search caches key on it):
        documents added, or deleted by any process, decisions recorded, rows recomputed here."""
        return (self._synced_to, self._changes, self._last_decision, self._deletions)

    def sync(self) -> int:
        """Add access rows for documents that have none; return how many were added."""
        with self._lock:
            if self._checked_version:   # the common case, before every search: one statement
                with self.catalogue.engine.connect() as connection:
                    if self._catch_up(connection) <= self._synced_to:
                        return 0
            with self.catalogue.session() as s:
                # other portal processes sync too: decide what is missing under the lock
                self._write_lock(s)
                if not self._checked_version:
                    stale = s.scalar(
                        select(func.count())
                        .select_from(SearchAccess)
                        .where(SearchAccess.policy_version != self.rules.version)
                    )
                    if stale:
                        self._clear(s, None)
                    self._checked_version = True
                    self._synced_to = -1
                newest = self._catch_up(s)
                if newest <= self._synced_to:
                    return 0
                missing = list(
                    s.execute(
                        select(m.SearchDoc.id, m.SearchDoc.aip_uuid)
                        .outerjoin(SearchAccess, SearchAccess.doc_id == m.SearchDoc.id)
                        .where(SearchAccess.doc_id.is_(None), m.SearchDoc.id > self._synced_to)
                    )
                )
                added = self._add(
                    s, sorted({uuid for _, uuid in missing}), {doc_id for doc_id, _ in missing}
                )
                self._synced_to = newest
                self._changes += 1
                return added

    def _write_lock(self, s: Session) -> None:
        """Hold the catalogue-wide lock of the access view until this transaction ends, so
        that processes syncing at once add each document's row once (the first of them;
        the others then find nothing missing). The first statement of the transaction:
        SQLite's write lock (a read snapshot taken before would be stale), a transaction
        advisory lock on PostgreSQL."""
        if self.catalogue.is_sqlite:
            s.execute(text("UPDATE search_access SET doc_id = doc_id WHERE 0"))
        else:
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ACCESS_LOCK})

    def _catch_up(self, connection: Any) -> int:
        """Note what other processes changed (decisions recorded, documents deleted: both
        change what searches answer) and return the newest document id."""
        decision, newest, deletions = connection.execute(
            select(
                select(func.max(OpenDecision.id)).scalar_subquery(),
                select(func.max(m.SearchDoc.id)).scalar_subquery(),
                DELETIONS,
            )
        ).one()
        self._last_decision, self._deletions = decision or 0, deletions or 0
        return newest or 0

    def refresh(self, aip_uuids: Iterable[str]) -> int:
        """Recompute the rows of these AIPs' documents (after a review decision)."""
        uuids = sorted(set(aip_uuids))
        with self._lock, self.catalogue.session() as s:
            self._write_lock(s)
            for start in range(0, len(uuids), BATCH):
                self._clear(s, uuids[start : start + BATCH])
            self._changes += 1
            if self.catalogue.outbox:  # an external engine holds the access view too
                for uuid in uuids:
                    outbox.enqueue(s, uuid, "index")
            return self._add(s, uuids, None)

    def rebuild(self) -> int:
        """Recompute every row."""
        with self._lock, self.catalogue.session() as s:
            self._write_lock(s)
            self._clear(s, None)
            self._changes += 1
            uuids = sorted(s.scalars(select(m.SearchDoc.aip_uuid).distinct()))
            self._synced_to = s.scalar(select(func.max(m.SearchDoc.id))) or 0
            return self._add(s, uuids, None)

    def _clear(self, s: Session, uuids: list[str] | None) -> None:
        if uuids is None:
            s.execute(
                text(
                    "DELETE FROM search_fts_public"
                    if self.catalogue.is_sqlite
                    else "DELETE FROM search_tokens WHERE part = 'public'"
                )
            )
            if self.catalogue.is_sqlite:
                from storage.index import postings  # numpy: only when the view is rebuilt

                postings.clear_part(s, "public")
        else:
            ids = s.scalars(select(SearchAccess.doc_id).where(SearchAccess.aip_uuid.in_(uuids)))
            delete_tokens(s, list(ids), "public")
        query = delete(SearchAccess)
        if uuids is not None:
            query = query.where(SearchAccess.aip_uuid.in_(uuids))
        s.execute(query)

    def _add(self, s: Session, uuids: list[str], only: set[int] | None) -> int:
        added = 0
        for start in range(0, len(uuids), BATCH):
            batch = uuids[start : start + BATCH]
            aips = {a.uuid: a for a in s.scalars(select(m.Aip).where(m.Aip.uuid.in_(batch)))}
            items: dict[str, list[m.Item]] = {}
            for item in s.scalars(
                select(m.Item).where(m.Item.aip_uuid.in_(batch)).order_by(m.Item.id)
            ):
                items.setdefault(item.aip_uuid, []).append(item)
            decisions = decisions_for(s, batch)
            docs = s.scalars(select(m.SearchDoc).where(m.SearchDoc.aip_uuid.in_(batch)))
            facts = {
                u: facts_of_items(a, items.get(u, []), self.rules, decisions)
                for u, a in aips.items()
            }
            texts: list[tuple[int, str]] = []
            for doc in docs:
                if only is not None and doc.id not in only or doc.aip_uuid not in facts:
                    continue
                fields = {i.key: i.fields or {} for i in items.get(doc.aip_uuid, [])}
                texts.append(self._write(s, doc, facts[doc.aip_uuid], fields))
                added += 1
            # the public text's tokens of the whole batch at once
            write_tokens_many(s, texts, "public")
        return added

    def _write(
        self, s: Session, doc: m.SearchDoc, facts: dict, fields: dict[str, Any]
    ) -> tuple[int, str]:
        """Add a document's access row; return its public text to index (id, text)."""
        record = facts.get(doc.item_key) or facts[None]
        title, body = public_search_text(
            record, fields.get(doc.item_key or "", {}), doc.title, doc.archival_code, self.rules
        )
        s.add(
            SearchAccess(
                doc_id=doc.id,
                aip_uuid=doc.aip_uuid,
                item_key=doc.item_key,
                open_date=record.open_date.isoformat() if record.open_date else None,
                control=record.control,
                pii_level=record.pii_level,
                household=record.household,
                public_title=title,
                public_text=body,
                public_facets=json.dumps(
                    public_facets(doc.facets or {}, self.rules), ensure_ascii=False
                ),
                policy_version=self.rules.version,
            )
        )
        return doc.id, f"{doc.archival_code or ''} {title}\n{body}"
