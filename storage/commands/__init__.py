"""The ``dangan`` sub-commands of Archival Storage and Data Management.

``COMMANDS`` maps each command name to ``module:object`` in this package; ``dangan`` imports a
module only to run (or describe) its commands. A command module imports ``click`` and the
standard library at the top, and what it runs inside the command.
"""

COMMANDS = {
    "show": "aip:show_command",
    "get": "aip:get_command",
    "history": "aip:history_command",
    "storage": "copies:storage_group",
    "replicate": "copies:replicate_command",
    "delete": "copies:delete_command",
    "retention": "retention:retention_group",
    "codes": "retention:codes_group",
    "audit": "fixity:audit_command",
    "audit-log": "fixity:audit_log_group",
    "repair": "fixity:repair_group",
    "apikey": "fixity:apikey_group",
    "worker": "jobs:worker_command",
    "jobs": "jobs:jobs_group",
    "rebuild": "jobs:rebuild_command",
}
