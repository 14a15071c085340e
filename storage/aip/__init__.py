"""The AIP itself: its METS + PREMIS document, its digests, its layout and its versions.

An AIP is a BagIt bag stored exploded (one object per file): ``bagit.txt``, ``bag-info.txt``,
manifests, ``data/objects/…`` (the submitted files), ``data/metadata/mets.xml`` (METS 1.12 +
PREMIS 3), ``data/metadata/record.json`` and ``data/logs/``. :mod:`~storage.aip.mets` builds,
parses and validates the METS; :mod:`~storage.aip.digest` computes every digest the fixity
policy names in one read, and copies files while hashing and reading them back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    # mets
    "Agent": "mets",
    "AipDescription": "mets",
    "Event": "mets",
    "FileEntry": "mets",
    "Item": "mets",
    "METS_PATH": "mets",
    "Retention": "mets",
    "SCHEMA_PATH": "mets",
    "build_mets": "mets",
    "build_premis": "mets",
    "href_to_path": "mets",
    "mets": "mets",
    "parse_mets": "mets",
    "path_to_href": "mets",
    "validate_mets": "mets",
    "write_mets": "mets",
    # eark
    "eark": "eark",
    # digest
    "CHUNK": "digest",
    "PIPELINE_MIN": "digest",
    "ReadBack": "digest",
    "copy_and_hash": "digest",
    "copy_hash_read_back": "digest",
    "digest": "digest",
    "digest_stream": "digest",
    "file_digests": "digest",
    "fsync_dir": "digest",
    "hash_file": "digest",
    "map_files": "digest",
    "new_hashers": "digest",
    "read_chunks": "digest",
    # versions
    "INVENTORY": "versions",
    "VERSIONS": "versions",
    "Inventory": "versions",
    "PublishedVersion": "versions",
    "VersionInfo": "versions",
    "catalogue_version": "versions",
    "committed_inventories": "versions",
    "derived_source": "versions",
    "discard_uncommitted": "versions",
    "object_use": "versions",
    "current_version": "versions",
    "first_version": "versions",
    "inventory_of": "versions",
    "is_version_object": "versions",
    "materialise": "versions",
    "new_attempt": "versions",
    "publish_version": "versions",
    "record_version": "versions",
    "request_fingerprint": "versions",
    "stored_by_digest": "versions",
    "version_changes": "versions",
    "version_files": "versions",
    "version_folder": "versions",
    "version_objects": "versions",
    "versions_of": "versions",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.aip import mets
    from storage.aip import eark
    from storage.aip.mets import (
        Agent, AipDescription, Event, FileEntry, Item, METS_PATH, Retention, SCHEMA_PATH,
        build_mets, href_to_path, parse_mets, path_to_href, validate_mets, write_mets,
    )
    from storage.aip import digest
    from storage.aip.digest import (
        CHUNK, PIPELINE_MIN, ReadBack, copy_and_hash, copy_hash_read_back, digest_stream,
        file_digests, fsync_dir, hash_file, map_files, new_hashers, read_chunks,
    )
    from storage.aip.versions import (
        INVENTORY, VERSIONS, Inventory, catalogue_version, object_use, PublishedVersion,
        VersionInfo, committed_inventories, derived_source, discard_uncommitted, current_version,
        first_version, inventory_of, is_version_object, materialise, new_attempt,
        publish_version, record_version, request_fingerprint, stored_by_digest,
        version_changes, version_files, version_folder, version_objects, versions_of,
    )
