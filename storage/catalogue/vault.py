"""The key that protects personal information in the catalogue: :class:`PiiVault` encrypts,
decrypts and hashes with it (see :mod:`storage.catalogue.pii` for what is kept encrypted).
Imports neither the cipher (loaded at the first encryption) nor the ORM: searching needs
only the keyed hashes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import unicodedata
from functools import cached_property
from pathlib import Path
from typing import Any

from metadata_profiles import normalise_id_number
from policies.config import Settings
from policies.errors import ConfigError
from storage.locations import private_dir

KEY_FILE = "pii.key"
TOKEN_PREFIX = "v1:"


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
