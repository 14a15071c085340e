"""OAIS Access: search engines, the portal, DIPs. May import storage, never ingest."""
