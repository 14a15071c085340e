"""Storage locations by URL scheme: ``file://`` (filesystem); S3 joins the same interface."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from policies.errors import ConfigError
from policies.loader import LocationSpec
from storage.locations.base import (
    CopyReport, ExpectedFile, Location, Mismatch, ObjectInfo, raise_first,
)
from storage.locations.filesystem import FilesystemLocation


def open_location(spec: LocationSpec, *, fsync: bool = True) -> Location:
    """Return the location a storage-policy entry describes."""
    parsed = urlparse(spec.url)
    if parsed.scheme == "file":
        return FilesystemLocation(spec.name, Path(unquote(parsed.path)), fsync=fsync)
    raise ConfigError(f"location {spec.name}: unsupported URL {spec.url!r}")


__all__ = ["CopyReport", "ExpectedFile", "FilesystemLocation", "Location", "Mismatch",
           "ObjectInfo", "open_location", "raise_first"]
