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

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from metadata_profiles import find_id_numbers, mask_id_number, mask_id_numbers
from storage.catalogue.masking import mask_text
from storage.catalogue.vault import (  # noqa: F401 - re-exported
    KEY_FILE, TOKEN_PREFIX, PiiVault, _normalise,
)
from storage.catalogue.models import Base

if TYPE_CHECKING:
    from storage.aip import AipDescription



class PiiValue(Base):
    """One protected value of one item: ciphertext and lookup hash."""

    __tablename__ = "pii_values"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_uuid: Mapped[str] = mapped_column(String(36), index=True)
    item_key: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64))
    lookup: Mapped[str] = mapped_column(String(64), index=True)
    ciphertext: Mapped[str] = mapped_column(Text)


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
