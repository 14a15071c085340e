"""Auditor API keys for the Storage-Service-compatible API.

A key is 32 random bytes (URL-safe text) shown once, when it is created; the catalogue keeps
only its SHA-256, so a copy of the database does not give access. Keys are read-only: the
API they open only lists AIPs and checks their fixity. Creating and revoking a key is
written to the audit log (with the key's public id, never the key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from policies.errors import UsageError
from storage.catalogue import Catalogue, utcnow
from storage.fixity.models import ApiKey
from storage.fixity.records import as_utc


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the key itself."""

    id: str
    username: str
    role: str
    note: str
    created_at: str
    created_by: str
    revoked_at: str | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        revoked = as_utc(row.revoked_at)
        return cls(row.id, row.username, row.role, row.note, as_utc(row.created_at).isoformat(),
                   row.created_by, revoked.isoformat() if revoked else None)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(catalogue: Catalogue, username: str, *, actor: str, note: str = "") -> tuple[str, KeyInfo]:
    """Create an auditor key for ``username``; return (the key, its record).

    Raises:
        UsageError: the user name is empty or has characters a query string would mangle.
    """
    if not username or not all(c.isalnum() or c in "._-@" for c in username):
        raise UsageError(f"user name {username!r}: use letters, digits and . _ - @")
    key = secrets.token_urlsafe(32)
    row = ApiKey(id=secrets.token_hex(6), username=username, key_hash=_digest(key),
                 role="auditor", note=note, created_at=utcnow(), created_by=actor)
    with catalogue.session() as s:
        s.add(row)
        catalogue.append_audit(s, actor, "apikey-create", f"apikey:{row.id}",
                               {"username": username, "role": row.role, "note": note})
    return key, KeyInfo.of(row)


def revoke_key(catalogue: Catalogue, key_id_or_user: str, *, actor: str) -> list[KeyInfo]:
    """Revoke one key (by id) or every active key of a user; return what was revoked.

    Raises:
        UsageError: nothing active matched.
    """
    with catalogue.session() as s:
        rows = s.scalars(select(ApiKey).where(
            ApiKey.revoked_at.is_(None),
            (ApiKey.id == key_id_or_user) | (ApiKey.username == key_id_or_user))).all()
        if not rows:
            raise UsageError(f"no active API key with id or user {key_id_or_user!r}")
        for row in rows:
            row.revoked_at = utcnow()
            catalogue.append_audit(s, actor, "apikey-revoke", f"apikey:{row.id}",
                                   {"username": row.username})
        return [KeyInfo.of(r) for r in rows]


def list_keys(catalogue: Catalogue) -> list[KeyInfo]:
    """Every key, active and revoked, oldest first."""
    with catalogue.session() as s:
        return [KeyInfo.of(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.created_at))]


def authenticate(catalogue: Catalogue, username: str | None, key: str | None) -> KeyInfo | None:
    """The active key matching this user and key, or None."""
    if not username or not key:
        return None
    digest = _digest(key)
    with catalogue.session() as s:
        rows = s.scalars(select(ApiKey).where(ApiKey.username == username,
                                              ApiKey.revoked_at.is_(None))).all()
    for row in rows:
        if hmac.compare_digest(row.key_hash, digest):
            return KeyInfo.of(row)
    return None
