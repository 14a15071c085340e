"""Personal information in the catalogue: ID numbers encrypted at rest, found by keyed hash.

The AIP keeps the record as it was transferred (it is the archival original, and access to it
is controlled); the catalogue, which every command and the portal read, never holds an ID
number in clear. For each protected field (the profile marks them ``protect: encrypt``) the
catalogue stores the masked form (``630121********4291``) in the item's fields, and in
``pii_values`` the value encrypted with AES-256-GCM plus an HMAC-SHA256 lookup hash, so a
person can be found by their ID number without the number being searchable text.

The key comes from ``[security] pii_key`` (32 bytes, base64 or hex). When it is empty a key is
generated once into ``$DANGAN_HOME/pii.key`` (mode 0600); losing it loses the catalogue's
copies of the numbers, not the AIPs'.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import os
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from metadata_profiles import find_id_numbers, mask_id_number, mask_id_numbers, normalise_id_number
from policies.config import Settings
from policies.errors import ConfigError
from storage.catalogue.models import Base
from storage.locations import private_dir

if TYPE_CHECKING:
    from storage.aip import AipDescription

KEY_FILE = "pii.key"
TOKEN_PREFIX = "v1:"


class PiiValue(Base):
    """One protected value of one item: ciphertext and lookup hash."""

    __tablename__ = "pii_values"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64))
    lookup: Mapped[str] = mapped_column(String(64), index=True)
    ciphertext: Mapped[str] = mapped_column(Text)


def _normalise(value: str) -> str:
    # an ID number is hashed in its canonical form, however it was written or asked for
    number = normalise_id_number(str(value))
    return number or unicodedata.normalize("NFKC", str(value)).strip().upper()


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True),
                   base64.urlsafe_b64decode):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise ConfigError(f"{where}: the PII key must be 32 bytes, written as base64 or hex")


def _key_from_file(path: Path) -> bytes:
    if not path.exists():
        private_dir(path.parent)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # atomic: a concurrent first use keeps the other's key
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the PII key file must be readable by its owner only (0600)")
    return _parse_key(path.read_text(encoding="ascii"), str(path))


class PiiVault:
    """Encrypts, decrypts and hashes personal identifiers with one key.

    Arguments:
        key: 32 bytes; separate encryption and lookup keys are derived from it.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the PII key must be 32 bytes")
        self._sealing_key = _derive(key, b"dangan pii encryption v1")
        self._lookup_key = _derive(key, b"dangan pii lookup v1")
        self._text_key = _derive(key, b"dangan audited text v1")

    @cached_property
    def _aead(self) -> Any:
        """AES-256-GCM, made at the first encryption or decryption (searching and masking
        need only the keyed hashes, so the cipher library stays unloaded for them)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._sealing_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiVault:
        """The vault of a Dangan home: ``[security] pii_key``, else ``$DANGAN_HOME/pii.key``.

        Raises:
            ConfigError: a key that is not 32 bytes, or a key file others can read.
        """
        configured = str(settings.get("security", "pii_key") or "")
        if configured:
            where = settings.source.get("security.pii_key", "[security] pii_key")
            return cls(_parse_key(configured, where))
        return cls(_key_from_file(settings.home / KEY_FILE))

    def encrypt(self, value: str, context: str = "") -> str:
        """An opaque token for ``value`` (``context``, e.g. the field name, is authenticated)."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, str(value).encode("utf-8"), context.encode("utf-8"))
        return TOKEN_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, context: str = "") -> str:
        """The value sealed in ``token``.

        Raises:
            ConfigError: the token was not made with this key (or was altered).
        """
        from cryptography.exceptions import InvalidTag

        raw = base64.b64decode(token.removeprefix(TOKEN_PREFIX))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")
        except InvalidTag as exc:
            raise ConfigError("a protected value does not decrypt with the configured "
                              "PII key") from exc

    def lookup_hash(self, value: str) -> str:
        """The keyed hash a value is found by (HMAC-SHA256, hex)."""
        return hmac.new(self._lookup_key, _normalise(value).encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def text_hash(self, text: str) -> str:
        """The keyed hash under which a text typed by staff (a search) is audited
        (HMAC-SHA256, hex): equal texts give equal hashes, so the entries of one search can
        be found again by whoever holds the key, but the text is not in the log. Its key is
        not the lookup key: an audited search cannot be joined to ``pii_values`` without it.
        """
        normal = " ".join(_normalise(text).split())
        return hmac.new(self._text_key, normal.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ProtectedValue:
    """One value taken out of a record for the catalogue."""

    item_key: str
    field: str
    lookup: str
    ciphertext: str


def mask(value: Any) -> str:
    """How a protected value is shown: the ID-number mask (6 + ******** + 4)."""
    return mask_id_number(str(value))


FILE_NAME_FIELD = "file_name"
"""The ``pii_values`` field of an ID number found in a file's name (item key: the file's)."""


def mask_text(value: Any) -> Any:
    """A value (a string, or lists and dicts of them) with every ID number masked."""
    if isinstance(value, str):
        return mask_id_numbers(value)
    if isinstance(value, list):
        return [mask_text(v) for v in value]
    if isinstance(value, dict):
        return {mask_text(k): mask_text(v) for k, v in value.items()}
    return value


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _found(vault: PiiVault, key: str, field: str, value: Any) -> list[ProtectedValue]:
    """The ID numbers written anywhere in ``value``, each encrypted and hashed."""
    return [ProtectedValue(key, field, vault.lookup_hash(m.number), vault.encrypt(m.number, field))
            for text in _strings(value) for m in find_id_numbers(text)]


def protect_description(desc: AipDescription, record: Mapping[str, Any],
                        fields: Iterable[str], vault: PiiVault
                        ) -> tuple[AipDescription, dict[str, Any], list[ProtectedValue]]:
    """The catalogue's copy of an AIP's description and record: no ID number in clear.

    The profile's protected fields (``head_id_number``) are encrypted and masked whole. An
    ID number written anywhere else — 备注, a member column, a title, a file name, an event's
    detail — is treated alike: each number is encrypted in ``pii_values`` (under the field
    it was found in; ``file_name`` for a file's name, keyed by the file) so it is found by
    its keyed hash, and every copy the catalogue keeps of the text holds it masked (item
    fields and titles, the AIP's label and record, files' original names, event details).
    A file's bag path stays as submitted: it is the name of the stored object in every copy
    and in the bag's manifests, so audits and retrieval address it; it is masked wherever it
    is shown (:func:`mask_text`).

    Arguments:
        desc: the AIP description (as written to METS; it is not changed).
        record: the AIP's profile record (record.json; not changed).
        fields: names of the fields to protect.
        vault: the key holder.

    Returns:
        (masked description, masked record, the values to store encrypted).
    """
    fields = tuple(fields)
    protected: list[ProtectedValue] = []
    items = []
    for item in desc.items:
        masked = dict(item.fields)
        for name in fields:
            value = masked.get(name)
            if value in (None, ""):
                continue
            protected.append(ProtectedValue(item.id, name, vault.lookup_hash(str(value)),
                                            vault.encrypt(str(value), name)))
            masked[name] = mask(value)
        for name, value in list(masked.items()):
            if name not in fields:
                protected += _found(vault, item.id, name, value)
                masked[name] = mask_text(value)
        items.append(replace(item, fields=masked, label=mask_id_numbers(item.label)))
    files = []
    for entry in desc.files:
        protected += _found(vault, entry.id, FILE_NAME_FIELD, entry.path)
        files.append(replace(entry, original_name=mask_id_numbers(entry.original_name)))
    events = tuple(replace(e, detail=mask_id_numbers(e.detail),
                           outcome_detail=mask_id_numbers(e.outcome_detail)) for e in desc.events)
    record = copy.deepcopy(dict(record))
    for entry in record.get("items", []):
        entry_fields = entry.get("fields", {})
        for name in fields:
            if entry_fields.get(name) not in (None, ""):
                entry_fields[name] = mask(entry_fields[name])
    record = mask_text(record)
    return replace(desc, items=tuple(items), files=tuple(files), events=events,
                   label=mask_id_numbers(desc.label)), record, protected


def store_protected(s: Session, aip_uuid: str, values: Iterable[ProtectedValue]) -> None:
    """Add the encrypted values of one AIP (inside the catalogue transaction of its ingest)."""
    s.add_all(PiiValue(aip_uuid=aip_uuid, item_key=v.item_key, field=v.field, lookup=v.lookup,
                       ciphertext=v.ciphertext) for v in values)


def find_items(s: Session, vault: PiiVault, value: str,
               field: str | None = None) -> list[tuple[str, str, str]]:
    """(aip_uuid, item_key, field) of every item holding ``value`` in a protected field."""
    query = select(PiiValue.aip_uuid, PiiValue.item_key, PiiValue.field).where(
        PiiValue.lookup == vault.lookup_hash(value))
    if field is not None:
        query = query.where(PiiValue.field == field)
    return [tuple(row) for row in s.execute(query.order_by(PiiValue.aip_uuid, PiiValue.item_key))]


def reveal(s: Session, vault: PiiVault, aip_uuid: str, item_key: str, field: str) -> str | None:
    """The clear value of one protected field (for an authorised, logged use only)."""
    token = s.scalars(select(PiiValue.ciphertext).where(
        PiiValue.aip_uuid == aip_uuid, PiiValue.item_key == item_key,
        PiiValue.field == field)).first()
    return vault.decrypt(token, field) if token else None
