"""The ``dangan`` sub-commands of Archival Storage and Data Management."""
