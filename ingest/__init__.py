"""OAIS Ingest: transfer -> checks -> receipt report -> AIP. May import storage, never access."""
