"""What ingest writes for search inside the catalogue transaction."""
