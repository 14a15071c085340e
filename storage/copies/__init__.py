"""Copies of AIPs across the storage policy's locations."""
