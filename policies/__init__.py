"""Policies as data: configuration and the fixity, storage, retention, access and format
policies, each YAML checked at start-up. This package imports nothing else of Dangan's.

The names below are imported at first use (:mod:`policies.lazy`): ``load_settings`` needs only
the TOML reader, the policies need YAML."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    "Settings": "config", "load_settings": "config",
    "CatalogueError": "errors", "ConfigError": "errors", "DanganError": "errors",
    "FixityError": "errors", "NotFoundError": "errors", "ObjectLocked": "errors",
    "ObjectNotFound": "errors", "RejectedError": "errors", "StorageError": "errors",
    "UsageError": "errors",
    "AccessAssessment": "access", "AccessDecision": "access", "AccessPolicy": "access",
    "load_access_policy": "access",
    "FormatDecision": "formats", "FormatPolicy": "formats", "load_format_policy": "formats",
    "FixityPolicy": "loader", "LocationSpec": "loader", "StoragePolicy": "loader",
    "load_fixity_policy": "loader", "load_storage_policy": "loader",
    "Conversion": "preservation", "PreservationPolicy": "preservation",
    "PreservationRule": "preservation", "Tool": "preservation",
    "load_preservation_policy": "preservation",
    "RetentionDecision": "retention", "RetentionPeriod": "retention",
    "RetentionPolicy": "retention", "load_retention_policy": "retention",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from policies.access import AccessAssessment, AccessDecision, AccessPolicy, load_access_policy
    from policies.config import Settings, load_settings
    from policies.errors import (
        CatalogueError, ConfigError, DanganError, FixityError, NotFoundError, ObjectLocked,
        ObjectNotFound, RejectedError, StorageError, UsageError,
    )
    from policies.formats import FormatDecision, FormatPolicy, load_format_policy
    from policies.loader import (
        FixityPolicy, LocationSpec, StoragePolicy, load_fixity_policy, load_storage_policy,
    )
    from policies.preservation import (
        Conversion, PreservationPolicy, PreservationRule, Tool, load_preservation_policy,
    )
    from policies.retention import (
        RetentionDecision, RetentionPeriod, RetentionPolicy, load_retention_policy,
    )
