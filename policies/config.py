"""Configuration: ``DANGAN_HOME``, its ``dangan.toml`` and ``DANGAN_*`` overrides.

Zero configuration works: everything then lives inside ``./dangan-home`` (filesystem storage,
SQLite catalogue, embedded search). A key ``[section] name`` in ``dangan.toml`` is overridden
by the environment variable ``DANGAN_SECTION_NAME``; values from the environment are parsed as
TOML scalars when they look like one (``8``, ``true``), otherwise taken as strings.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.errors import ConfigError

GiB = 1 << 30

DEFAULTS: dict[str, dict[str, Any]] = {
    "catalogue": {"url": "sqlite:///{home}/catalogue.db", "sqlite_cache_mib": 128},
    "ingest": {
        "profile": "jzfp",
        "workers": 2,
        "max_unpacked_bytes": 256 * GiB,
        "max_files": 2_000_000,
        "max_compression_ratio": 200,
        "source_organization": "",
    },
    # storage: copy_attempts = writes of one copy before it is reported failed; worm_mode =
    # S3 Object Lock mode (COMPLIANCE or GOVERNANCE); permanent_lock = how 永久 records are
    # locked ("legal-hold", or "far-future": retain-until now + 100 years); s3_* = defaults
    # of every s3:// location (its URL query overrides them)
    "storage": {"fsync": True, "copy_attempts": 3, "worm_mode": "COMPLIANCE",
                "permanent_lock": "legal-hold", "s3_workers": 8, "s3_part_mib": 16},
    "search": {"engine": "embedded", "elasticsearch_url": "",
               "elasticsearch_index": "dangan-search", "elasticsearch_shards": 1,
               "elasticsearch_replicas": 0, "elasticsearch_timeout": 30,
               "elasticsearch_bulk_docs": 500, "elasticsearch_retries": 5,
               "outbox_max_attempts": 10, "term_cache_mib": 256},
    "workers": {"lease_seconds": 300, "poll_seconds": 5, "retry_delay_seconds": 30},
    "portal": {"host": "127.0.0.1", "port": 5000, "secret_key": "", "public_url": "",
               "session_hours": 8, "secure_cookies": False, "login_max_failures": 5,
               "login_window_seconds": 900, "login_account_max_failures": 100,
               "default_locale": "zh", "search_cache": 512, "workers": 2,
               # how many restricted records match a search is told to those who cannot
               # see them, from this many on (0: never told); fewer are not, so that a
               # person's name does not tell that their file exists
               "restricted_count_min": 10},
    # OAI-PMH provider (/oai): page_size = records per ListRecords/ListIdentifiers answer;
    # repository_id = the namespace of oai: identifiers; admin_email is required by Identify
    "oai": {"repository_name": "Dangan 档案馆", "repository_id": "dangan",
            "admin_email": "archives@dangan.invalid", "page_size": 100},
    # preservation planning: at_ingest "" follows policies/preservation.yaml, true/false overrides
    "normalise": {"at_ingest": "", "timeout": 600},
    "fulltext": {"enabled": True, "ocr": True, "ocr_languages": "chi_sim", "ocr_dpi": 300,
                 "ocr_workers": 2, "ocr_timeout": 300, "min_chars_per_page": 10,
                 "max_chars": 2_000_000, "defer_ocr": True},
    "security": {"pii_key": ""},
    # fixity audits: worker processes (one per core); cold_read drops cached pages of local
    # files before reading them, so an audit reads the disk, not memory;
    # anchor_interval_seconds: how often entries written by reading (searches, logins) are
    # anchored in storage (every other entry is anchored when its command or request ends)
    "audit": {"workers": 2, "cold_read": True, "anchor_interval_seconds": 300},
    # virus scanning (GD-4-1/4-2): scanner "" (none: not checked), "clamscan" or "clamd";
    # database: a signature file or folder for clamscan (default: ClamAV's own);
    # clamd_socket: a unix socket path or tcp://host:port
    "antivirus": {"scanner": "", "clamscan": "clamscan", "database": "", "clamd_socket": "",
                  "timeout": 3600},
}


@dataclass
class Settings:
    """The effective configuration of one Dangan home.

    Attributes:
        home: the DANGAN_HOME folder (created on first use).
        values: section -> key -> value, defaults merged with dangan.toml and environment.
        source: where non-default values came from, for error messages.
    """

    home: Path
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        """Return one value, with ``{home}`` expanded in strings."""
        try:
            value = self.values[section][key]
        except KeyError as exc:
            raise ConfigError(f"unknown configuration key [{section}] {key}") from exc
        if isinstance(value, str):
            return value.replace("{home}", str(self.home))
        return value

    def int(self, section: str, key: str) -> int:
        """Return one value as an integer, or raise :class:`ConfigError` naming its source."""
        value = self.get(section, key)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            where = self.source.get(f"{section}.{key}", "defaults")
            raise ConfigError(f"[{section}] {key} = {value!r} ({where}): not an integer") from exc

    @property
    def staging(self) -> Path:
        """Folder for transfers being processed; on the same disk as the home."""
        return self.home / "staging"

    @property
    def reports(self) -> Path:
        """Folder where receipt reports of every transfer (accepted or rejected) are kept."""
        return self.home / "reports"


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def load_settings(home: str | os.PathLike[str] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Load the settings of a Dangan home.

    Arguments:
        home: the home folder; default ``$DANGAN_HOME`` or ``./dangan-home``.
        environ: the environment to read overrides from (default ``os.environ``).

    Returns:
        The merged :class:`Settings`.

    Raises:
        ConfigError: ``dangan.toml`` does not parse or names an unknown section or key.
    """
    env = os.environ if environ is None else environ
    home_path = Path(home or env.get("DANGAN_HOME") or "dangan-home").absolute()
    values = copy.deepcopy(DEFAULTS)
    source: dict[str, str] = {}
    toml_path = home_path / "dangan.toml"
    if toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: {exc}") from exc
        for section, table in data.items():
            if section not in values or not isinstance(table, dict):
                raise ConfigError(f"{toml_path}: unknown section [{section}]")
            for key, value in table.items():
                if key not in values[section]:
                    raise ConfigError(f"{toml_path}: unknown key [{section}] {key}")
                values[section][key] = value
                source[f"{section}.{key}"] = str(toml_path)
    for section, table in values.items():
        for key in table:
            name = f"DANGAN_{section.upper()}_{key.upper()}"
            if name in env:
                table[key] = _parse_env_value(env[name])
                source[f"{section}.{key}"] = f"environment {name}"
    return Settings(home=home_path, values=values, source=source)


def dangan_version() -> str:
    """The installed Dangan version (from the package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dangan")
    except PackageNotFoundError:
        return "0.1.0+src"
