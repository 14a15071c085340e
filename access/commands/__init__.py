"""The ``dangan`` sub-commands of Access (see :mod:`storage.commands` for the shape)."""
