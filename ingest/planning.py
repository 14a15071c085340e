"""Preservation planning on what is already stored: which rule applies to a held file.

:func:`preservation_rule_of` reads the preservation policy (``policies/data/preservation.yaml``
and the bureau's copy) and answers, per (PUID, extension), the rule as plain data for the
risk register (:mod:`ingest.formats_register`) and ``dangan migrate``.
"""

from __future__ import annotations

from typing import Any

from policies import Settings


def _conversion(conv: Any) -> dict[str, Any]:
    return {"action": "convert", "target": conv.target, "tool": conv.tool,
            "puids": sorted(conv.puids), "checks": list(conv.checks),
            **({"without_text": conv.without_text} if conv.without_text else {})}


def rule_as_data(rule: Any) -> dict[str, Any]:
    """A :class:`policies.PreservationRule` as JSON-ready data."""
    preservation = _conversion(rule.preservation) if rule.preservation else {"action": "keep"}
    access = _conversion(rule.access) if rule.access else {"action": rule.access_source}
    return {"name": rule.name, "preservation": preservation, "access": access,
            "on_failure": rule.on_failure}


def preservation_rule_of(settings: Settings):
    """(puid, extension) -> the applying rule as data (:func:`rule_as_data`), or None."""
    from policies import load_preservation_policy

    policy = load_preservation_policy(settings)
    cache: dict[tuple[str | None, str], dict[str, Any] | None] = {}

    def rule_of(puid: str | None, extension: str) -> dict[str, Any] | None:
        key = (puid, extension)
        if key not in cache:
            rule = policy.rule_for(puid, extension)
            cache[key] = rule_as_data(rule) if rule else None
        return cache[key]

    return rule_of
