"""Descriptive metadata profiles as data (YAML), their loader, the 档号 forms and the record
validator. Imports nothing of Dangan's.

The names below are loaded at first use (the YAML loader and the validator cost a tenth of a
second that masking an ID number on the search path does not need)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_API = {
    **dict.fromkeys(("ArchivalCode", "find_gaps", "format_numbers", "normalise_code",
                     "parse_code", "render_template"), "archival_code"),
    **dict.fromkeys(("IdNumberMatch", "find_id_numbers", "mask_id_number", "mask_id_numbers",
                     "normalise_id_number"), "idnumbers"),
    **dict.fromkeys(("CodeForm", "CodeRules", "CodeTemplate", "FieldSpec", "Profile",
                     "ProfileError", "Term", "Vocabulary", "available_profiles",
                     "load_profile", "normalise_heading", "parse_profile"), "loader"),
    **dict.fromkeys(("PlacesError", "add_places", "load_places", "place_name"), "places"),
    **dict.fromkeys(("Finding", "RecordResult", "Validator", "finding", "mask_value",
                     "rule_code"), "validate"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from metadata_profiles.archival_code import (
        ArchivalCode, find_gaps, format_numbers, normalise_code, parse_code, render_template,
    )
    from metadata_profiles.idnumbers import (
        IdNumberMatch, find_id_numbers, mask_id_number, mask_id_numbers, normalise_id_number,
    )
    from metadata_profiles.loader import (
        CodeForm, CodeRules, CodeTemplate, FieldSpec, Profile, ProfileError, Term, Vocabulary,
        available_profiles, load_profile, normalise_heading, parse_profile,
    )
    from metadata_profiles.validate import (
        Finding, RecordResult, Validator, finding, mask_value, rule_code,
    )
