"""Descriptive metadata profiles as data (YAML) and their loader. Imports nothing of Dangan's."""

from metadata_profiles.loader import FieldSpec, Profile, ProfileError, load_profile, normalise_heading

__all__ = ["FieldSpec", "Profile", "ProfileError", "load_profile", "normalise_heading"]
