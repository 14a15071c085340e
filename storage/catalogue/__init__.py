"""OAIS Data Management: the catalogue database and what it keeps.

- :mod:`~storage.catalogue.database` — :class:`Catalogue` (SQLAlchemy 2 on SQLite or
  PostgreSQL, Alembic migrations in ``migrations/``), one transaction per AIP;
- :mod:`~storage.catalogue.models` — the tables;
- :mod:`~storage.catalogue.reading` — the record view's queries in plain SQL (``sqlite3`` on a
  SQLite catalogue: ``dangan show`` and ``dangan search`` answer without the ORM);
  :mod:`~storage.catalogue.journal` — appending to the audit log in plain SQL;
- :mod:`~storage.catalogue.archival_codes` — the 档号 register (件号 assignment, duplicates);
- :mod:`~storage.catalogue.pii` — personal information encrypted at rest, found by keyed hash;
- :mod:`~storage.catalogue.auditlog` — the hash-chained audit log and its anchors in storage;
- :mod:`~storage.catalogue.rebuild` — the catalogue rebuilt from the AIPs in storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

_API = {
    # links
    "FOLLOWS": "links",
    "followers": "links",
    "named_record": "links",
    # database
    "AUDIT_WRITTEN": "database",
    "Catalogue": "database",
    "GENESIS": "database",
    "MIGRATIONS": "database",
    "SearchDocument": "database",
    "chain_hash": "database",
    "as_utc": "database",
    "utcnow": "database",
    # models
    "models": "models",
    "Base": "models",
    # archival_codes
    "ClaimResult": "archival_codes",
    "CodeClaim": "archival_codes",
    "CodeRegistry": "archival_codes",
    "NumberRequest": "archival_codes",
    # pii
    "PiiValue": "pii",
    "PiiVault": "vault",
    "mask_text": "masking",
    "find_items": "pii",
    "protect_description": "pii",
    "reveal": "pii",
    "store_protected": "pii",
    # auditlog
    "auditlog": "auditlog",
    # reading, journal
    "reading": "reading",
    "journal": "journal",
    # rebuild
    "RebuildReport": "rebuild",
    "Rebuilder": "rebuild",
    "compare_catalogues": "rebuild",
    "count_aips": "rebuild",
    "rebuild_catalogue": "rebuild",
    "source_location": "rebuild",
}

__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.catalogue.links import FOLLOWS, followers, named_record
    from storage.catalogue.database import AUDIT_WRITTEN, Catalogue, GENESIS, MIGRATIONS, SearchDocument, as_utc, chain_hash, utcnow
    from storage.catalogue import models
    from storage.catalogue.models import Base
    from storage.catalogue.archival_codes import ClaimResult, CodeClaim, CodeRegistry, NumberRequest
    from storage.catalogue import journal, reading
    from storage.catalogue.masking import mask_text
    from storage.catalogue.vault import PiiVault
    from storage.catalogue.pii import (
        PiiValue, find_items, protect_description, reveal, store_protected,
    )
    from storage.catalogue import auditlog
    from storage.catalogue.rebuild import (
        RebuildReport, Rebuilder, compare_catalogues, count_aips, rebuild_catalogue,
        source_location,
    )
