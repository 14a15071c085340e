"""ID numbers masked in what the catalogue shows (without the cipher or the ORM, which
:mod:`storage.catalogue.pii` needs for what it keeps encrypted)."""

from __future__ import annotations

from typing import Any

from metadata_profiles import mask_id_numbers


def mask_text(value: Any) -> Any:
    """A value (a string, or lists and dicts of them) with every ID number masked."""
    if isinstance(value, str):
        return mask_id_numbers(value)
    if isinstance(value, list):
        return [mask_text(v) for v in value]
    if isinstance(value, dict):
        return {mask_text(k): mask_text(v) for k, v in value.items()}
    return value
