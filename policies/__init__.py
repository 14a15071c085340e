"""Policies as data: configuration and the fixity, storage, retention, access and format
policies, each YAML checked at start-up. This package imports nothing else of Dangan's."""

from policies.config import Settings, load_settings
from policies.errors import (
    CatalogueError, ConfigError, DanganError, FixityError, NotFoundError, ObjectLocked,
    ObjectNotFound, RejectedError, StorageError, UsageError,
)
from policies.access import AccessAssessment, AccessDecision, AccessPolicy, load_access_policy
from policies.formats import FormatDecision, FormatPolicy, load_format_policy
from policies.loader import (
    FixityPolicy, LocationSpec, StoragePolicy, load_fixity_policy, load_storage_policy,
)
from policies.retention import (
    RetentionDecision, RetentionPeriod, RetentionPolicy, load_retention_policy,
)

__all__ = [
    "AccessAssessment", "AccessDecision", "AccessPolicy", "FormatDecision", "FormatPolicy",
    "RetentionDecision", "RetentionPeriod", "RetentionPolicy", "load_access_policy",
    "load_format_policy", "load_retention_policy",
    "CatalogueError", "ConfigError", "DanganError", "FixityError", "FixityPolicy",
    "LocationSpec", "NotFoundError", "ObjectLocked", "ObjectNotFound", "RejectedError",
    "Settings", "StorageError", "StoragePolicy", "UsageError", "load_fixity_policy",
    "load_settings", "load_storage_policy",
]
