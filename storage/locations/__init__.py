"""Storage locations by URL scheme: ``file://`` (filesystem) and ``s3://`` (S3-compatible)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from policies.errors import ConfigError
from policies.loader import LocationSpec
from storage.locations.base import (
    CopyReport, ExpectedFile, Leftover, Location, Mismatch, ObjectInfo, RetentionLock,
    raise_first,
)
from storage.locations.filesystem import FilesystemLocation

if TYPE_CHECKING:
    from policies.config import Settings


def open_location(spec: LocationSpec, *, fsync: bool = True,
                  settings: "Settings | None" = None) -> Location:
    """Return the location a storage-policy entry describes.

    Arguments:
        spec: the policy's entry (name and URL).
        fsync: filesystem locations flush data before verifying.
        settings: when given, ``[storage] s3_*`` keys are the defaults of S3 locations.

    Raises:
        ConfigError: an unsupported URL scheme or bad S3 options.
    """
    parsed = urlparse(spec.url)
    if parsed.scheme == "file":
        return FilesystemLocation(spec.name, Path(unquote(parsed.path)), fsync=fsync)
    if parsed.scheme == "s3":
        from storage.locations.s3 import S3Location, S3Options

        defaults = S3Options()
        if settings is not None:
            defaults = S3Options(workers=settings.int("storage", "s3_workers"),
                                 part_mib=settings.int("storage", "s3_part_mib"),
                                 attempts=settings.int("storage", "copy_attempts"))
        return S3Location(spec.name, spec.url, options=defaults)
    raise ConfigError(f"location {spec.name}: unsupported URL {spec.url!r}")


__all__ = ["CopyReport", "ExpectedFile", "FilesystemLocation", "Leftover", "Location", "Mismatch",
           "ObjectInfo", "RetentionLock", "open_location", "raise_first"]
