"""The catalogue's tables (SQLAlchemy 2 declarative models).

The catalogue is a cache of what storage holds plus the history of what was done: it can be
rebuilt from the AIPs (storage is the system of record). Schema changes go through Alembic
migrations in ``storage/migrations``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every catalogue table."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Transfer(Base):
    """One submission from a producer: accepted (with its AIPs) or rejected, never lost."""

    __tablename__ = "transfers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(Text)
    profile: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # in-progress | accepted | rejected
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    report_path: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)      # units -> planned AIP uuids
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Aip(Base):
    """An archival information package; visible only once every required copy is verified."""

    __tablename__ = "aips"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"), index=True)
    archival_code: Mapped[str | None] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # UPLOADED | DELETED | ...
    profile: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    size: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int] = mapped_column(Integer)
    retention_period: Mapped[str | None] = mapped_column(String(8))
    expiry_date: Mapped[date | None] = mapped_column(Date)
    open_date: Mapped[date | None] = mapped_column(Date)
    control_id: Mapped[str | None] = mapped_column(String(8))     # 控制标识: 开放 | 控制
    pii_level: Mapped[str | None] = mapped_column(String(16))     # none | personal | sensitive
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    supersedes: Mapped[str | None] = mapped_column(String(36))


class Item(Base):
    """A descriptive record (a 件 or a 户卷) inside an AIP."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(ForeignKey("aips.uuid"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    parent_key: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))
    archival_code: Mapped[str | None] = mapped_column(String(128), index=True)
    title: Mapped[str] = mapped_column(Text)
    date: Mapped[str | None] = mapped_column(String(8))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __table_args__ = (UniqueConstraint("aip_uuid", "key"),)


class File(Base):
    """One bag file of an AIP, with its digests and identified format."""

    __tablename__ = "files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(ForeignKey("aips.uuid"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    original_name: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    digests: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mime: Mapped[str | None] = mapped_column(String(128))
    puid: Mapped[str | None] = mapped_column(String(32))
    format_name: Mapped[str | None] = mapped_column(Text)
    format_version: Mapped[str | None] = mapped_column(String(64))
    use: Mapped[str] = mapped_column(String(32), default="original")
    item_key: Mapped[str | None] = mapped_column(String(32))
    # a derivative (use preservation | access): the bag path of the file it was made from
    derived_from: Mapped[str | None] = mapped_column(Text, default=None)
    __table_args__ = (UniqueConstraint("aip_uuid", "path"),)


class Copy(Base):
    """One stored copy of an AIP at a location."""

    __tablename__ = "copies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(ForeignKey("aips.uuid"), index=True)
    location: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # verified | missing | damaged
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (UniqueConstraint("aip_uuid", "location"),)


class Event(Base):
    """A PREMIS event (ingestion, digest calculation, format identification, fixity check…)."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    aip_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # pass | fail | not-checked
    detail: Mapped[str] = mapped_column(Text, default="")
    outcome_detail: Mapped[str] = mapped_column(Text, default="")
    agents: Mapped[list[Any]] = mapped_column(default=list)
    files: Mapped[list[Any]] = mapped_column(default=list)
    location: Mapped[str | None] = mapped_column(String(64))


class Agent(Base):
    """A PREMIS agent: software with its version, an organisation or a person."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One entry of the tamper-evident audit log; ``hash`` chains it to the previous one."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The head of the audit log (its last entry's sequence number and hash, and how many
    entries were ever appended), updated in the transaction of every entry: a row deleted
    from the end of the log leaves the head pointing at an entry the log no longer has."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger)


class SearchDoc(Base):
    """What the embedded search engine shows for one hit (the FTS table holds the tokens)."""

    __tablename__ = "search_docs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str | None] = mapped_column(String(32))
    archival_code: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    facets: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AipVersion(Base):
    """One version of an AIP after the first (``storage/aip/versions.py``); an AIP without
    rows here is version 1, as ingested."""

    __tablename__ = "aip_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(ForeignKey("aips.uuid"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agent: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))   # ingestion | modification | replacement | withdrawal
    supersedes: Mapped[int | None] = mapped_column(Integer)
    inventory: Mapped[str | None] = mapped_column(Text)      # stored path of inventory.json
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    file_count: Mapped[int] = mapped_column(Integer)
    bytes_added: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("aip_uuid", "number"),)


class AipVersionFile(Base):
    """A logical file of one AIP version and the stored object holding its bytes."""

    __tablename__ = "aip_version_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    change: Mapped[str] = mapped_column(String(16))  # added | replaced | unchanged
    __table_args__ = (UniqueConstraint("aip_uuid", "version", "path"),)


Index("ix_aip_version_files_aip_version", AipVersionFile.aip_uuid, AipVersionFile.version)


class DerivedText(Base):
    """Text derived from an AIP's file after ingest (OCR run by a text job), kept beside the
    AIP rather than in it: a stored AIP object is never rewritten, and the text can be made
    again from the file. ``ocr_pages`` lists the 1-based pages read by OCR (1 for an image)."""

    __tablename__ = "derived_texts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    path: Mapped[str] = mapped_column(Text)             # under data/objects
    method: Mapped[str] = mapped_column(String(32))     # ocr
    engine: Mapped[str] = mapped_column(String(128))    # tesseract version line
    languages: Mapped[str] = mapped_column(String(64))  # tesseract models (chi_sim)
    ocr_pages: Mapped[list[Any]] = mapped_column(default=list)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Index("ix_events_aip_at", Event.aip_uuid, Event.at)
Index("ix_audit_log_action_object", AuditEntry.action, AuditEntry.object)
