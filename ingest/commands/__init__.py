"""The ``dangan`` sub-commands of Ingest (see :mod:`storage.commands` for the shape)."""
