"""The catalogue tables of fixity auditing: runs, their checkpoints, copy checks, repairs,
auditor API keys and the audit-log anchors written into storage.

A *run* is one ``dangan audit`` (planned copies in ``fixity_run_items``); every file result is
checkpointed in batches (``fixity_progress``) so that an interrupted run resumes without
re-reading what it finished; every finished check of one copy is a ``fixity_checks`` row
(and a PREMIS event). Created by migration 0004.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalogue import Base


class AuditRun(Base):
    """One audit run: what it was asked to check, by whom, and how it ended.

    ``status`` is ``running`` (or interrupted: running with no live process), ``finished``.
    ``scope_key`` identifies runs with the same request so an interrupted one is resumed.
    """

    __tablename__ = "fixity_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)
    depth: Mapped[str] = mapped_column(String(8))            # quick | full
    scope: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scope_key: Mapped[str] = mapped_column(String(255), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditRunItem(Base):
    """One copy (AIP at a location) planned by a run, in the order it is checked."""

    __tablename__ = "fixity_run_items"
    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(String(32), default="")  # due | ahead | requested
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    check_id: Mapped[str | None] = mapped_column(String(36))


class AuditProgress(Base):
    """A checkpoint: results of a batch of files of one copy, committed as they finish.

    ``results`` is a list of ``[path, size, {algorithm: hex}, error]``.
    """

    __tablename__ = "fixity_progress"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    aip_uuid: Mapped[str] = mapped_column(String(36))
    location: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    results: Mapped[list[Any]] = mapped_column(default=list)


class CopyCheck(Base):
    """A finished check of one copy: depth, time span, outcome and what was found.

    ``depth`` is ``quick`` (presence, size, stored checksum; no bytes read) or ``full``
    (every byte re-read and hashed); a quick check never counts as a full one.
    ``outcome`` is ``pass``, ``fail`` or ``error`` (the check could not be completed).
    """

    __tablename__ = "fixity_checks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    aip_uuid: Mapped[str] = mapped_column(String(36))
    location: Mapped[str] = mapped_column(String(64))
    depth: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(16), default="audit")  # audit | api | repair
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(8))
    files: Mapped[int] = mapped_column(Integer, default=0)
    files_read: Mapped[int] = mapped_column(Integer, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    algorithms: Mapped[list[Any]] = mapped_column(default=list)
    tool: Mapped[str] = mapped_column(String(128), default="")
    findings: Mapped[list[Any]] = mapped_column(default=list)
    event_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(128), default="")


class RepairRequest(Base):
    """A bad copy to be replaced from copies that verify.

    ``status``: ``pending`` (waits for approval), ``done``, ``failed``, ``rejected``,
    ``unrepairable`` (no intact source for some file: nothing was overwritten).
    """

    __tablename__ = "fixity_repairs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    location: Mapped[str] = mapped_column(String(64))
    check_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), index=True)
    findings: Mapped[list[Any]] = mapped_column(default=list)
    sources: Mapped[dict[str, Any]] = mapped_column(default=dict)   # path -> source location
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str] = mapped_column(Text, default="")


class ApiKey(Base):
    """An auditor's API key for the Storage-Service-compatible API (read-only).

    Only the SHA-256 of the key is kept; the key itself is shown once, when created.
    """

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="auditor")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditAnchor(Base):
    """A record that the audit-log head (seq, hash) was written into a storage location."""

    __tablename__ = "audit_anchors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Index("ix_fixity_checks_copy", CopyCheck.aip_uuid, CopyCheck.location, CopyCheck.depth,
      CopyCheck.finished_at)
Index("ix_fixity_progress_copy", AuditProgress.run_id, AuditProgress.aip_uuid,
      AuditProgress.location)
Index("ix_fixity_run_items_state", AuditRunItem.run_id, AuditRunItem.state,
      AuditRunItem.position)
