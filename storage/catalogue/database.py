"""The catalogue database: SQLAlchemy 2 on SQLite (WAL) by default, PostgreSQL at scale.

The catalogue records what storage holds (AIPs, files, copies), what was done (PREMIS events,
the audit log) and feeds the embedded search index in the same transaction, so an AIP is
never catalogued without being searchable. Every write of an AIP is one transaction: readers
see all of it or none of it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from policies.config import Settings
from policies.errors import CatalogueError, NotFoundError
from storage.catalogue import models as m
from storage.catalogue import reading
from storage.catalogue.journal import (  # noqa: F401 - re-exported
    AUDIT_WRITTEN, GENESIS, _json_default, append_entry, chain_hash, utcnow,
)
from storage.catalogue.reading import MIGRATIONS, head_revision
from storage.index import outbox
from storage.locations import private_dir, private_file, restrict

if TYPE_CHECKING:
    from storage.aip import AipDescription
    from storage.locations import CopyReport, ExpectedFile


def as_utc(value: datetime | None) -> datetime | None:
    """A catalogue timestamp as aware UTC (SQLite hands them back without a zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@dataclass
class SearchDocument:
    """One searchable unit (an item, or the AIP when it has no items).

    Attributes:
        item_key: the item's key inside its AIP, or None for the AIP itself.
        archival_code, title: shown in hits.
        text: all searchable text (title, descriptive fields, extracted full text).
        facets: field -> value(s) for filtering and counts.
    """

    item_key: str | None
    archival_code: str | None
    title: str
    text: str
    facets: dict[str, Any] = field(default_factory=dict)


def _sqlite_pragmas(cache_mib: int):
    """The connect hook of a SQLite catalogue; ``cache_mib``: each connection's page cache (a
    million search documents make a catalogue of 2 GB; SQLite's default 2 MB cache would have
    every index write read its pages from the system again)."""
    def setup(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
        cursor.close()
    return setup


class Catalogue:
    """Access to one catalogue database.

    Arguments:
        url: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://…``).
    """

    def __init__(self, url: str, sqlite_cache_mib: int = 128) -> None:
        self.url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            # created owner-only: SQLite gives its -wal and -shm files the database's mode
            database = Path(url.removeprefix("sqlite:///"))
            private_file(private_dir(database.parent) / database.name)
            for suffix in ("-wal", "-shm"):
                restrict(database.with_name(database.name + suffix))
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise CatalogueError(f"catalogue {url}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas(sqlite_cache_mib))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # True when search runs on an external engine: indexing is then owed through the outbox
        self.outbox = False

    @classmethod
    def open(cls, settings: Settings) -> "Catalogue":
        """Open the catalogue of a Dangan home, bringing its schema up to date."""
        catalogue = cls(settings.get("catalogue", "url"),
                        settings.int("catalogue", "sqlite_cache_mib"))
        catalogue.upgrade()
        catalogue.outbox = settings.get("search", "engine") != "embedded"
        return catalogue

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied.

        The usual case — the schema is already at the newest revision — is told from one query
        of ``alembic_version`` against the revisions on disk, without importing Alembic (half a
        second of every command's start-up otherwise).
        """
        if self.revision() == head_revision():
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise CatalogueError(f"catalogue {self.url}: migration failed: {exc}") from exc

    def revision(self) -> str | None:
        """The schema revision recorded in the database (None: none yet)."""
        try:
            with self.engine.connect() as connection:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None  # no alembic_version table: a new catalogue

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction, committed on success and rolled back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
            if session.info.get("audit_actions"):
                AUDIT_WRITTEN.setdefault(self.url, set()).update(session.info["audit_actions"])
        except SQLAlchemyError as exc:
            session.rollback()
            raise CatalogueError(f"catalogue: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # -- transfers -------------------------------------------------------------------------
    @contextmanager
    def transfer_lock(self, fingerprint: str) -> Iterator[None]:
        """Hold the database-wide lock of one transfer (by content fingerprint) while it is
        ingested, so that workers on several machines ingest it one after the other.

        On PostgreSQL this is a session advisory lock, released by the server if the process
        dies; SQLite has a single writer on one machine, where the ingest's lock file suffices.
        """
        if self.is_sqlite:
            yield
            return
        key = _advisory_key(f"transfer:{fingerprint}")
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    @contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """Hold a database-wide lock by name (PostgreSQL: a session advisory lock, released
        by the server if the process dies; SQLite: nothing, a lock file on its one machine
        is the caller's)."""
        if self.is_sqlite:
            yield
            return
        key = _advisory_key(name)
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()

    @contextmanager
    def try_transfer_lock(self, fingerprint: str) -> Iterator[bool]:
        """Take the lock of :meth:`transfer_lock` if it is free; yield whether it was taken
        (on PostgreSQL False means an ingest of that transfer runs somewhere)."""
        if self.is_sqlite:
            yield True
            return
        key = _advisory_key(f"transfer:{fingerprint}")
        with self.engine.connect() as connection:
            taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                            {"k": key}).scalar())
            connection.commit()
            try:
                yield taken
            finally:
                if taken:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()

    def find_transfer(self, fingerprint: str, status: str | None = None) -> m.Transfer | None:
        """The latest transfer with this content fingerprint (and status, if given)."""
        with self.session() as s:
            query = select(m.Transfer).where(m.Transfer.fingerprint == fingerprint)
            if status:
                query = query.where(m.Transfer.status == status)
            return s.scalars(query.order_by(m.Transfer.received_at.desc())).first()

    def begin_transfer(self, transfer_id: str, fingerprint: str, source: str, profile: str,
                       plan: dict[str, Any]) -> m.Transfer:
        """Record that a transfer is being ingested, with the AIP identifiers planned for it."""
        with self.session() as s:
            row = m.Transfer(id=transfer_id, fingerprint=fingerprint, source=source,
                             profile=profile, status="in-progress", received_at=utcnow(),
                             plan=plan, summary={})
            s.add(row)
        return row

    def finish_transfer(self, transfer_id: str, status: str, report_path: str,
                        summary: dict[str, Any], actor: str = "dangan") -> None:
        """Mark a transfer accepted or rejected and keep where its report is."""
        with self.session() as s:
            row = s.get(m.Transfer, transfer_id)
            if row is None:
                raise NotFoundError(f"no transfer {transfer_id}")
            row.status, row.report_path, row.summary = status, report_path, summary
            row.finished_at = utcnow()
            self.append_audit(s, actor, f"transfer-{status}", transfer_id,
                        {"source": row.source, "report": report_path})

    def record_rejection(self, transfer_id: str, fingerprint: str, source: str, profile: str,
                         report_path: str, summary: dict[str, Any]) -> None:
        """Keep the record (and report) of a transfer that was refused."""
        with self.session() as s:
            s.add(m.Transfer(id=transfer_id, fingerprint=fingerprint, source=source,
                             profile=profile, status="rejected", received_at=utcnow(),
                             finished_at=utcnow(), report_path=report_path, plan={},
                             summary=summary))
            self.append_audit(s, "dangan", "transfer-rejected", transfer_id,
                        {"source": source, "report": report_path})

    # -- AIPs ------------------------------------------------------------------------------
    def add_aip(self, s: Session, desc: AipDescription, *, transfer_id: str, size: int,
                copies: Sequence[CopyReport], documents: Iterable[SearchDocument],
                record: dict[str, Any], other_files: Mapping[str, ExpectedFile] | None = None,
                actor: str = "dangan") -> None:
        """Add one stored AIP with its files, items, copies, events and search documents.

        Called inside :meth:`session` so that several AIPs of one transfer commit together.
        """
        retention = desc.retention
        s.add(m.Aip(
            uuid=desc.uuid, transfer_id=transfer_id, archival_code=desc.archival_code,
            label=desc.label, status="UPLOADED", profile=desc.profile or "",
            created_at=datetime.fromisoformat(desc.created), size=size,
            file_count=len(desc.files), record=record,
            retention_period=retention.period if retention else None,
            expiry_date=date.fromisoformat(retention.expiry) if retention and retention.expiry else None,
            open_date=date.fromisoformat(retention.open_date) if retention and retention.open_date else None,
            control_id=(record.get("access") or {}).get("control_id"),
            pii_level=(record.get("access") or {}).get("pii_level"),
        ))
        s.flush()
        self._insert_items(s, desc)
        files = (dict(aip_uuid=desc.uuid, key=f.id, path=f.path, original_name=f.original_name,
                      size=f.size, sha256=f.digests["sha256"], digests=dict(f.digests),
                      mime=f.mime, puid=f.puid, format_name=f.format_name,
                      format_version=f.format_version, use=f.use, item_key=f.item_id,
                      derived_from=f.derived_from)
                 for f in desc.files)
        tags = (dict(aip_uuid=desc.uuid, key=f"bag-{index:03d}", path=path,
                     original_name=path.rsplit("/", 1)[-1], size=e.size,
                     sha256=e.digests["sha256"], digests=dict(e.digests),
                     mime="application/xml" if path.endswith(".xml") else "text/plain",
                     puid=None, format_name=None, format_version=None,
                     use="mets" if path.endswith("mets.xml") else "tag", item_key=None,
                     derived_from=None)
                for index, (path, e) in enumerate(sorted((other_files or {}).items()), 1))
        # bulk inserts in batches: the rows of an AIP of many files are never all in memory
        for batch in _batches(itertools.chain(files, tags), ROW_BATCH):
            s.execute(insert(m.File), batch)
        s.add_all(m.Copy(aip_uuid=desc.uuid, location=c.location, url=c.url, status="verified",
                         verified_at=datetime.fromisoformat(c.finished), bytes=c.bytes)
                  for c in copies)
        self._insert_events(s, desc, transfer_id, desc.events)
        self.index_documents(s, desc.uuid, documents)
        self.append_audit(s, actor, "ingest", desc.uuid,
                    {"transfer": transfer_id, "archival_code": desc.archival_code,
                     "files": len(desc.files), "bytes": size,
                     "copies": [c.location for c in copies]})

    @staticmethod
    def _insert_items(s: Session, desc: AipDescription) -> None:
        # bulk inserts: an AIP may hold tens of thousands of files
        items = [dict(aip_uuid=desc.uuid, key=i.id, parent_key=i.parent_id, level=i.level,
                      archival_code=_str_or_none(i.fields.get("archival_code")),
                      title=i.label, date=_str_or_none(i.fields.get("date")),
                      fields=dict(i.fields)) for i in desc.items]
        if items:
            s.execute(insert(m.Item), items)

    @staticmethod
    def _insert_events(s: Session, desc: AipDescription, transfer_id: str | None,
                       events: Iterable[Any]) -> None:
        for agent in desc.agents:
            if s.get(m.Agent, agent.id) is None:
                s.add(m.Agent(id=agent.id, name=agent.name, type=agent.type,
                              version=agent.version))
        s.add_all(m.Event(id=e.id, aip_uuid=desc.uuid, transfer_id=transfer_id, type=e.type,
                          at=datetime.fromisoformat(e.datetime), outcome=e.outcome,
                          detail=e.detail, outcome_detail=e.outcome_detail,
                          agents=list(e.agent_ids), files=list(e.file_ids))
                  for e in events)

    def update_aip(self, s: Session, desc: AipDescription, *, record: dict[str, Any],
                   documents: Iterable[SearchDocument], bytes_added: int,
                   file_count: int) -> None:
        """The AIP's row, items, new events and search documents follow a new version
        (``desc`` is its METS); the stored objects are recorded by the version itself."""
        from storage.index import delete_tokens

        aip = s.get(m.Aip, desc.uuid)
        retention = desc.retention
        aip.label, aip.record, aip.file_count = desc.label, record, file_count
        aip.size = aip.size + bytes_added
        if retention is not None:
            aip.retention_period = retention.period
            aip.expiry_date = date.fromisoformat(retention.expiry) if retention.expiry else None
            aip.open_date = (date.fromisoformat(retention.open_date) if retention.open_date
                             else aip.open_date)
        access = record.get("access") or {}
        aip.control_id = access.get("control_id", aip.control_id)
        aip.pii_level = access.get("pii_level", aip.pii_level)
        s.execute(delete(m.Item).where(m.Item.aip_uuid == desc.uuid))
        self._insert_items(s, desc)
        known = set(s.scalars(select(m.Event.id).where(m.Event.aip_uuid == desc.uuid)))
        self._insert_events(s, desc, aip.transfer_id, [e for e in desc.events
                                                       if e.id not in known])
        # only the documents that changed are written again (tokens are the costly part)
        wanted = {}
        for d in documents:
            wanted.setdefault((d.item_key, d.archival_code, _no_nul(d.title), _no_nul(d.text),
                               json.dumps(d.facets, sort_keys=True, ensure_ascii=False,
                                          default=_json_default)), []).append(d)
        stale = []
        for row in s.scalars(select(m.SearchDoc).where(m.SearchDoc.aip_uuid == desc.uuid)):
            key = (row.item_key, row.archival_code, row.title, row.text,
                   json.dumps(row.facets, sort_keys=True, ensure_ascii=False,
                              default=_json_default))
            if wanted.get(key):
                wanted[key].pop()
            else:
                stale.append(row.id)
        delete_tokens(s, stale)
        if stale:
            s.execute(delete(m.SearchDoc).where(m.SearchDoc.id.in_(stale)))
        self.index_documents(s, desc.uuid, [d for docs in wanted.values() for d in docs])

    def index_documents(self, s: Session, aip_uuid: str,
                        documents: Iterable[SearchDocument]) -> int:
        """Write search documents with their embedded-engine tokens and, when search runs on an
        external engine, the outbox entry that owes their indexing; return the count."""
        return self.index_many(s, [(aip_uuid, list(documents))])

    def index_many(self, s: Session,
                   batches: Iterable[tuple[str, Sequence[SearchDocument]]]) -> int:
        """:meth:`index_documents` for several AIPs at once (bulk loads: one INSERT for all
        their documents, one for all their tokens); return the count."""
        batches = list(batches)
        pairs = [(aip_uuid, doc) for aip_uuid, docs in batches for doc in docs]
        aips = list(dict.fromkeys(aip_uuid for aip_uuid, _ in batches))
        if pairs:
            # one multi-row INSERT … RETURNING, ids in the order of the documents
            table = m.SearchDoc.__table__
            ids = s.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                            [{"aip_uuid": aip_uuid, "item_key": d.item_key,
                              "archival_code": d.archival_code, "title": _no_nul(d.title),
                              "text": _no_nul(d.text), "facets": d.facets}
                             for aip_uuid, d in pairs]).all()
            from storage.index import write_tokens_many

            write_tokens_many(s, [(doc_id, f"{d.archival_code or ''} {d.title}\n{d.text}")
                                  for doc_id, (_, d) in zip(ids, pairs)])
        if self.outbox:
            for aip_uuid in aips:
                outbox.enqueue(s, aip_uuid, "index")
        return len(pairs)

    def get_aip(self, uuid: str) -> m.Aip:
        """One AIP row, or NotFoundError."""
        with self.session() as s:
            row = s.get(m.Aip, uuid)
            if row is None:
                matches = s.scalars(select(m.Aip).where(m.Aip.uuid.startswith(uuid))).all()
                if len(matches) == 1:
                    return matches[0]
                raise NotFoundError(f"no AIP {uuid}")
            return row

    def aip_details(self, uuid: str) -> dict[str, Any]:
        """Everything the catalogue knows of an AIP, as plain data (the queries of
        :func:`storage.catalogue.reading.aip_details`, which ``dangan show`` runs too)."""
        with self.session() as s:
            return reading.aip_details(reading.Rows.of_connection(s.connection()), uuid)

    def file_row(self, uuid: str, path: str) -> m.File:
        """The catalogue row of one bag file of an AIP."""
        with self.session() as s:
            row = s.scalars(select(m.File).where(m.File.aip_uuid == uuid,
                                                 m.File.path == path)).first()
        if row is None:
            raise NotFoundError(f"AIP {uuid} has no file {path!r}")
        return row

    def derivatives_of(self, uuid: str) -> dict[str, list[m.File]]:
        """The preservation and access copies of an AIP's files: source path -> their rows."""
        with self.session() as s:
            rows = s.scalars(select(m.File).where(m.File.aip_uuid == uuid,
                                                  m.File.derived_from.is_not(None))
                             .order_by(m.File.use.desc(), m.File.path)).all()
        found: dict[str, list[m.File]] = {}
        for row in rows:
            found.setdefault(row.derived_from, []).append(row)
        return found

    def files_of(self, uuid: str) -> list[m.File]:
        """The catalogue rows of every bag file of an AIP (payload and tag files)."""
        with self.session() as s:
            return list(s.scalars(select(m.File).where(m.File.aip_uuid == uuid)
                                  .order_by(m.File.path)))

    def copies_of(self, uuid: str) -> list[m.Copy]:
        """The stored copies of an AIP, by location name."""
        with self.session() as s:
            return list(s.scalars(select(m.Copy).where(m.Copy.aip_uuid == uuid)
                                  .order_by(m.Copy.location)))

    def list_aips(self, status: str | None = "UPLOADED", limit: int | None = None,
                  offset: int = 0) -> list[m.Aip]:
        """AIPs in creation order."""
        with self.session() as s:
            query = select(m.Aip).order_by(m.Aip.created_at, m.Aip.uuid).offset(offset)
            if status:
                query = query.where(m.Aip.status == status)
            if limit is not None:
                query = query.limit(limit)
            return list(s.scalars(query))

    def count_aips(self, status: str | None = "UPLOADED") -> int:
        """How many AIPs there are (with this status)."""
        with self.session() as s:
            query = select(func.count()).select_from(m.Aip)
            if status:
                query = query.where(m.Aip.status == status)
            return int(s.scalar(query) or 0)

    def aips_of_transfer(self, transfer_id: str) -> list[m.Aip]:
        """The AIPs made from one transfer."""
        with self.session() as s:
            return list(s.scalars(select(m.Aip).where(m.Aip.transfer_id == transfer_id)
                                  .order_by(m.Aip.archival_code, m.Aip.uuid)))

    # -- audit log -------------------------------------------------------------------------
    def audit(self, actor: str, action: str, obj: str, detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the hash-chained audit log."""
        with self.session() as s:
            self.append_audit(s, actor, action, obj, detail or {})

    def append_audit(self, s: Session, actor: str, action: str, obj: str,
                     detail: dict[str, Any]) -> None:
        """Append one entry in the session's transaction, chained to the recorded head.

        The head row (``audit_head``) is updated first: that takes the write lock (SQLite)
        or the row lock (PostgreSQL), so concurrent writers chain one after the other; the
        entry then chains to the hash the head records, which is what was last written even
        if rows were since deleted from the log (the break stays visible).
        """
        s.flush()
        append_entry(s.connection(), actor, action, obj, detail)
        s.info.setdefault("audit_actions", set()).add(action)

    def audit_head(self) -> tuple[int, str, int] | None:
        """The recorded head of the audit log: (seq, hash, entries appended), or None."""
        with self.session() as s:
            row = s.get(m.AuditHead, 1)
            return (row.seq, row.hash, row.entries) if row is not None else None

def _advisory_key(name: str) -> int:
    """The PostgreSQL advisory-lock key of a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value else None


def _no_nul(value: str) -> str:
    """Text without NUL characters (extracted text may hold them; PostgreSQL refuses them)."""
    return value.replace("\x00", "") if "\x00" in value else value


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


ROW_BATCH = 5000
"""Rows a bulk insert of an AIP's files sends at once."""


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
