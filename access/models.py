"""Access's own catalogue tables: portal accounts and sessions, login attempts, 查档申请
(access requests), open-review decisions, QR label tokens and boxes, and the access view of
every search document.

They share the catalogue's declarative ``Base``; the schema is created by migration 0005
(sessions and box references by 0009).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalogue import Base


class User(Base):
    """A portal account. ``session_version`` is bumped to end every open session of the user."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """One login attempt, kept for throttling (by user name and by client address)."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)


class PortalSession(Base):
    """A signed-in portal session. The session cookie carries a random id; the catalogue
    keeps only its SHA-256 (a copy of the database opens no session). Every request checks
    the row, so logging out (``ended_at``) ends the session for any copy of its cookie."""

    __tablename__ = "portal_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    remote: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccessRequest(Base):
    """查档申请: a researcher asks to see a restricted record; an archivist grants it until
    ``expires_at`` or refuses it. ``item_key`` None means the whole AIP."""

    __tablename__ = "access_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # pending | granted | refused | revoked | withdrawn
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")


class OpenDecision(Base):
    """开放审核决定: a recorded review decision that changes a record's open date or control
    flag (控制标识). The latest decision for a record wins."""

    __tablename__ = "open_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str | None] = mapped_column(String(32))
    open_date: Mapped[date | None] = mapped_column(Date)
    control: Mapped[str | None] = mapped_column(String(8))  # 开放 | 控制
    basis: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Box(Base):
    """An archive box (档案盒) holding household volumes; its QR label opens the box page.

    ``ref`` is the box's public identifier (random, in its page's address): the sequential
    ``id`` stays inside the catalogue, so box addresses cannot be counted through."""

    __tablename__ = "boxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    code: Mapped[str] = mapped_column(String(128), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BoxMember(Base):
    """One AIP (household volume) in a box; a volume is in one box at most."""

    __tablename__ = "box_members"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("boxes.id"), index=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    position: Mapped[int] = mapped_column(Integer)


class LabelToken(Base):
    """The opaque token printed in a QR code (档案盒二维码标识): it names a volume or a box and
    nothing else — never a name or an ID number."""

    __tablename__ = "label_tokens"
    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # volume | box
    aip_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    box_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SearchAccess(Base):
    """The access view of one search document, derived from the catalogue by the access rules.

    ``public_text`` is what a reader without the right to the content may match and see:
    the de-identified title, 档号 and non-personal fields. A document without a row here is
    found by staff only (fail closed).
    """

    __tablename__ = "search_access"
    doc_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str | None] = mapped_column(String(32))
    open_date: Mapped[str | None] = mapped_column(String(10))
    control: Mapped[str] = mapped_column(String(8))
    pii_level: Mapped[str] = mapped_column(String(16))
    household: Mapped[bool] = mapped_column(Boolean)
    public_title: Mapped[str] = mapped_column(Text)
    public_text: Mapped[str] = mapped_column(Text)
    public_facets: Mapped[str] = mapped_column(
        Text
    )  # JSON: the facets a restricted listing may count
    policy_version: Mapped[str] = mapped_column(String(16))


Index("ix_access_requests_user_status", AccessRequest.username, AccessRequest.status)
Index("ix_open_decisions_target", OpenDecision.aip_uuid, OpenDecision.item_key)
Index("ix_search_access_open", SearchAccess.control, SearchAccess.open_date)
