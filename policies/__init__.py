"""Policies as data: configuration, fixity and storage policies (retention, access and
formats follow the same pattern). This package imports nothing else of Dangan's."""

from policies.config import Settings, load_settings
from policies.errors import (
    CatalogueError, ConfigError, DanganError, FixityError, NotFoundError, ObjectLocked,
    ObjectNotFound, RejectedError, StorageError, UsageError,
)
from policies.loader import (
    FixityPolicy, LocationSpec, StoragePolicy, load_fixity_policy, load_storage_policy,
)

__all__ = [
    "CatalogueError", "ConfigError", "DanganError", "FixityError", "FixityPolicy",
    "LocationSpec", "NotFoundError", "ObjectLocked", "ObjectNotFound", "RejectedError",
    "Settings", "StorageError", "StoragePolicy", "UsageError", "load_fixity_policy",
    "load_settings", "load_storage_policy",
]
