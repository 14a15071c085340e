"""OAIS Archival Storage and Data Management. Imports only ``policies`` and ``metadata_profiles``.

One sub-package per function; each ``__init__`` lists what the others may use:

- :mod:`storage.aip` — the AIP itself: METS + PREMIS, digests, the bag's layout (and versions).
- :mod:`storage.catalogue` — Data Management: the database, its models and migrations, the 档号
  register, personal-information protection, the tamper-evident audit log, rebuilding the
  catalogue from storage.
- :mod:`storage.locations` — where bytes live: filesystem and S3-compatible locations.
- :mod:`storage.copies` — copies of AIPs across locations: replication, verified retrieval,
  WORM locks (S3 Object Lock).
- :mod:`storage.fixity` — fixity audits, repair from good copies, auditors' evidence.
- :mod:`storage.appraisal` — appraisal and disposition (鉴定与销毁): retention due.
- :mod:`storage.index` — what ingest writes for search inside the catalogue transaction:
  Chinese text segmentation, search tokens and term postings, the indexing outbox.
- :mod:`storage.jobs` — the job queue in the catalogue and the worker that runs it.
- :mod:`storage.commands` — the ``dangan`` sub-commands of this package.
"""
