"""Storage locations by URL scheme: ``file://`` (filesystem) and ``s3://`` (S3-compatible).

A location stores bags exploded (one object per file), publishes a copy only once it has been
read back against its digests, and reports each object's size, digests and WORM lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    "CopyReport": "base", "ExpectedFile": "base", "Leftover": "base", "Location": "base",
    "Mismatch": "base",
    "ObjectInfo": "base", "RetentionLock": "base", "crash_point": "base", "raise_first": "base",
    "read_manifest": "base", "verify_stored_bag": "base",
    "FilesystemLocation": "filesystem", "tree_size": "filesystem",
    "S3Location": "s3", "S3Options": "s3",
    "open_location": "urls",
    "DIR_MODE": "permissions", "FILE_MODE": "permissions", "UMASK": "permissions",
    "private_dir": "permissions", "private_file": "permissions", "restrict": "permissions",
    "restrict_tree": "permissions",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.locations.base import (
        CopyReport, ExpectedFile, Leftover, Location, Mismatch, ObjectInfo, RetentionLock,
        crash_point, raise_first, read_manifest, verify_stored_bag,
    )
    from storage.locations.filesystem import FilesystemLocation, tree_size
    from storage.locations.permissions import (
        DIR_MODE, FILE_MODE, UMASK, private_dir, private_file, restrict, restrict_tree,
    )
    from storage.locations.s3 import S3Location, S3Options
    from storage.locations.urls import open_location
