"""Load policies (YAML data files) with the file and line of every problem.

A policy is looked up first in ``$DANGAN_HOME/policies/<name>.yaml`` (the bureau's own),
then in the defaults shipped in ``policies/data/``. Policies are read once at start-up and a
broken one stops the program with a :class:`ConfigError` naming the file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.config import Settings
from policies.errors import ConfigError

DATA = Path(__file__).with_name("data")


def policy_path(name: str, settings: Settings) -> Path:
    """Return the file a policy is read from: the home's own copy, else the shipped default."""
    own = settings.home / "policies" / f"{name}.yaml"
    return own if own.exists() else DATA / f"{name}.yaml"


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely; a syntax error becomes ConfigError with file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{path}: {where}: {exc.problem}") from exc


def load_policy(name: str, settings: Settings) -> tuple[dict[str, Any], Path]:
    """Return a policy document (a mapping) and the path it came from."""
    path = policy_path(name, settings)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a policy must be a mapping at the top level")
    return data, path


@dataclass(frozen=True)
class FixityPolicy:
    """Digest algorithms every file gets, and the audit schedule.

    Attributes:
        algorithms: hashlib names, sha256 first.
        full_interval_days: each copy is fully re-read at least this often.
        daily_byte_budget: bytes a scheduled audit may read per day (0 = unlimited).
        location_intervals: location name -> its own full_interval_days.
        repair: ``auto`` (a bad copy is repaired at once from a verified one) or ``approve``
            (the repair waits for an archivist's ``dangan repair approve``).
        api_max_full_bytes: AIPs larger than this are answered by the Storage-Service API
            from their latest full audit unless ``force_local`` asks for a fresh read.
        checkpoint_files: files per checkpoint of a running audit.
        checkpoint_seconds: and at most one checkpoint in this many seconds (results read in
            the meantime go into the next one; 0: a checkpoint for every batch of files).
    """

    algorithms: tuple[str, ...]
    full_interval_days: int = 90
    daily_byte_budget: int = 0
    location_intervals: Mapping[str, int] = field(default_factory=dict)
    repair: str = "auto"
    api_max_full_bytes: int = 10 << 30
    checkpoint_files: int = 256
    checkpoint_seconds: float = 1.0

    def interval_for(self, location: str) -> int:
        """Days within which a copy at ``location`` must have been fully re-read."""
        return self.location_intervals.get(location, self.full_interval_days)


def load_fixity_policy(settings: Settings) -> FixityPolicy:
    """Load and check the fixity policy (every algorithm must exist in hashlib)."""
    data, path = load_policy("fixity", settings)
    algorithms = [str(a).lower() for a in data.get("algorithms") or ["sha256"]]
    for algorithm in algorithms:
        if algorithm not in hashlib.algorithms_available:
            raise ConfigError(f"{path}: algorithms: {algorithm!r} is not available in hashlib")
    if "sha256" in algorithms:
        algorithms.remove("sha256")
    audit = data.get("audit") or {}
    try:
        return FixityPolicy(
            algorithms=("sha256", *algorithms),
            full_interval_days=int(audit.get("full_interval_days", 90)),
            daily_byte_budget=int(audit.get("daily_byte_budget", 0)),
            location_intervals={str(name): int((entry or {}).get("full_interval_days"))
                                for name, entry in (audit.get("locations") or {}).items()},
            repair=_choice(audit.get("repair", "auto"), ("auto", "approve"), path, "audit.repair"),
            api_max_full_bytes=int(audit.get("api_max_full_bytes", 10 << 30)),
            checkpoint_files=max(1, int(audit.get("checkpoint_files", 256))),
            checkpoint_seconds=max(0.0, float(audit.get("checkpoint_seconds", 1.0))),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: audit: {exc}") from exc


def _choice(value: Any, allowed: tuple[str, ...], path: Path, key: str) -> str:
    if str(value) not in allowed:
        raise ConfigError(f"{path}: {key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


@dataclass(frozen=True)
class LocationSpec:
    """One storage location named by the storage policy."""

    name: str
    url: str
    description: str = ""


@dataclass(frozen=True)
class StoragePolicy:
    """Locations and the copies each class of record needs (class -> location names)."""

    locations: tuple[LocationSpec, ...]
    copies: dict[str, tuple[str, ...]]

    def location(self, name: str) -> LocationSpec:
        """Return the location called ``name``."""
        for spec in self.locations:
            if spec.name == name:
                return spec
        raise ConfigError(f"storage policy: no location named {name!r}")

    def required(self, record_class: str = "default") -> tuple[str, ...]:
        """Names of the locations that must hold a verified copy of a record of this class."""
        return self.copies.get(record_class) or self.copies["default"]


def load_storage_policy(settings: Settings) -> StoragePolicy:
    """Load and check the storage policy; ``{home}`` in URLs is the DANGAN_HOME."""
    data, path = load_policy("storage", settings)
    specs = []
    for index, entry in enumerate(data.get("locations") or []):
        if not isinstance(entry, dict) or "name" not in entry or "url" not in entry:
            raise ConfigError(f"{path}: locations[{index}] needs a name and a url")
        url = str(entry["url"]).replace("{home}", str(settings.home))
        specs.append(LocationSpec(str(entry["name"]), url, str(entry.get("description", ""))))
    if not specs:
        raise ConfigError(f"{path}: no storage locations")
    names = {s.name for s in specs}
    copies = {str(k): tuple(str(n) for n in v) for k, v in (data.get("copies") or {}).items()}
    copies.setdefault("default", (specs[0].name,))
    for record_class, wanted in copies.items():
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ConfigError(f"{path}: copies.{record_class} names unknown locations {unknown}")
    return StoragePolicy(tuple(specs), copies)
