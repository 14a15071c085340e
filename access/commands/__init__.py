"""The ``dangan`` sub-commands of Access (see :mod:`storage.commands` for the shape)."""

COMMANDS = {
    "search": "search:search_command",
    "index": "search:index_group",
    "reindex": "search:reindex_command",
    "serve": "portal:serve_command",
    "user": "portal:user_group",
    "access": "portal:access_group",
    "labels": "portal:labels_command",
    "appraisal": "appraisal:appraisal_group",
    "hold": "appraisal:hold_group",
    "export": "export:export_group",
}
