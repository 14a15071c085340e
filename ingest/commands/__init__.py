"""The ``dangan`` sub-commands of Ingest (see :mod:`storage.commands` for the shape)."""

COMMANDS = {
    "ingest": "ingest:ingest_command",
    "sample-transfer": "ingest:sample_transfer_command",
    "update": "update:update_command",
    "formats": "planning:formats_group",
    "migrate": "planning:migrate_command",
}
