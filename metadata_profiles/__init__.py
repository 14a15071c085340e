"""Descriptive metadata profiles as data (YAML), their loader, the 档号 forms and the record
validator. Imports nothing of Dangan's."""

from metadata_profiles.archival_code import (
    ArchivalCode,
    find_gaps,
    format_numbers,
    normalise_code,
    parse_code,
    render_template,
)
from metadata_profiles.idnumbers import (
    IdNumberMatch,
    find_id_numbers,
    mask_id_numbers,
    normalise_id_number,
)
from metadata_profiles.loader import (
    CodeForm,
    CodeRules,
    CodeTemplate,
    FieldSpec,
    Profile,
    ProfileError,
    Term,
    Vocabulary,
    available_profiles,
    load_profile,
    normalise_heading,
    parse_profile,
)
from metadata_profiles.validate import (
    Finding,
    RecordResult,
    Validator,
    finding,
    mask_id_number,
    mask_value,
    rule_code,
)

__all__ = [
    "ArchivalCode", "CodeForm", "IdNumberMatch", "find_id_numbers", "mask_id_numbers",
    "normalise_id_number", "CodeRules", "CodeTemplate", "FieldSpec", "Finding", "Profile",
    "ProfileError", "RecordResult", "Term", "Validator", "Vocabulary", "available_profiles",
    "find_gaps", "finding", "format_numbers", "load_profile", "mask_id_number", "mask_value",
    "normalise_code", "normalise_heading", "parse_code", "parse_profile", "render_template",
    "rule_code",
]
