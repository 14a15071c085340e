"""The AIP itself: its METS + PREMIS document, its digests and its layout."""
