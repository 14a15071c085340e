"""Copies of AIPs across the storage policy's locations.

- :mod:`~storage.copies.replication` — writing every required copy and verifying it before an
  AIP becomes visible, bringing locations up to the policy, storage status, migration;
- :mod:`~storage.copies.retrieval` — reading a file back from the first copy that verifies;
- :mod:`~storage.copies.worm` — WORM: S3 Object Lock retention and legal holds from the
  record's 保管期限, and the deletion guard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

DEFAULT_OLDER_THAN = "1d"
"""How old a leftover of interrupted work must be before ``dangan storage clean`` takes it."""

_API = {
    # replication
    "CopyAction": "replication",
    "LocationSet": "replication",
    "ReplicationReport": "replication",
    "Replicator": "replication",
    "expected_of_aip": "replication",
    "fetch_copy": "replication",
    "record_class": "replication",
    "record_copy_failure": "replication",
    "storage_status": "replication",
    "write_copies": "replication",
    # leftovers
    "CleanReport": "leftovers",
    "RemnantReport": "leftovers",
    "clean": "leftovers",
    "find_remnants": "leftovers",
    "human_age": "words",
    "human_size": "words",
    "parse_age": "leftovers",
    "transfer_lock_path": "leftovers",
    "transfer_running": "leftovers",
    # retrieval
    "FileRef": "retrieval",
    "NoIntactCopy": "errors",
    "Retriever": "retrieval",
    # worm
    "AppliedLock": "worm",
    "RetentionLockRecord": "worm",
    "WormSettings": "worm",
    "deletion_refusal": "worm",
    "forget_lock": "worm",
    "recorded_locks": "worm",
    "guard_deletion": "worm",
    "lock_for": "worm",
    "lock_for_aip": "worm",
    "apply_lock": "worm",
    "record_locks": "worm",
}

__all__ = sorted([*_API, "DEFAULT_OLDER_THAN"])
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.copies.replication import (
        CopyAction, LocationSet, ReplicationReport, Replicator, expected_of_aip, fetch_copy,
        record_class,
        record_copy_failure, storage_status, write_copies,
    )
    from storage.copies.leftovers import (
        CleanReport, RemnantReport, clean, find_remnants, human_age, human_size, parse_age,
        transfer_lock_path, transfer_running,
    )
    from storage.copies.errors import NoIntactCopy
    from storage.copies.retrieval import FileRef, Retriever
    from storage.copies.worm import (
        AppliedLock, RetentionLockRecord, WormSettings, deletion_refusal, forget_lock,
        apply_lock, guard_deletion, lock_for, lock_for_aip, record_locks, recorded_locks,
    )
