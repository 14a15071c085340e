"""The format policy (GD-3-3, GD-3-8): allow, allow with a warning, or reject, by PRONOM PUID.

``formats.yaml`` lists formats by PUID (optionally with the file extensions they must carry:
OFD has no PUID of its own and is identified as ZIP), each with its action; a rule may also
name extensions alone (``.rar`` archives that no signature identifies). The first rule that
matches a file wins. Unidentified formats and formats not listed get their own
decisions. ``content_checks`` says what happens to encrypted, macro-enabled and unreadable
files whatever their format.

>>> from policies import load_settings
>>> policy = load_format_policy(load_settings("/nonexistent-home"))
>>> policy.decide("fmt/17", "pdf").action, policy.decide("fmt/43", "jpg").action
('warn', 'allow')
>>> policy.decide("x-fmt/263", "ofd").name, policy.decide("x-fmt/263", "zip").action
('OFD', 'reject')
>>> policy.decide(None, "rar").action, policy.decide(None, "bin").action
('reject', 'warn')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.config import Settings
from policies.yamldoc import load_checked_policy

ACTIONS = ("allow", "warn", "reject")


@dataclass(frozen=True)
class FormatRule:
    """One line of the policy: these PUIDs (with these extensions) get this action."""

    name: str
    puids: frozenset[str]
    action: str
    reason: str = ""
    family: str = ""
    extensions: frozenset[str] = frozenset()

    def matches(self, puid: str | None, extension: str) -> bool:
        """Whether a file identified as ``puid`` with this extension falls under the rule.

        A rule listing PUIDs needs one of them (and, if it lists extensions, one of those
        too); a rule listing only extensions applies whatever the file was identified as.
        """
        if self.puids and puid not in self.puids:
            return False
        return not self.extensions or extension.lower() in self.extensions


@dataclass(frozen=True)
class FormatDecision:
    """What the policy decides for one file."""

    action: str
    name: str
    reason: str = ""
    rule: FormatRule | None = None


@dataclass(frozen=True)
class FormatPolicy:
    """The format policy in force.

    Attributes:
        rules: the listed formats, first match wins.
        default: decision for an identified format that no rule lists.
        unidentified: decision for a file without a PUID.
        content_checks: ``encrypted`` / ``macro`` / ``unreadable`` -> action.
        path: the file it was read from.
    """

    rules: tuple[FormatRule, ...]
    default: FormatDecision
    unidentified: FormatDecision
    content_checks: dict[str, str]
    path: Path

    def decide(self, puid: str | None, extension: str = "") -> FormatDecision:
        """The decision for a file identified as ``puid`` whose name ends in ``extension``."""
        extension = extension.lower().lstrip(".")
        for rule in self.rules:
            if rule.matches(puid or None, extension):
                return FormatDecision(rule.action, rule.name, rule.reason, rule)
        return self.default if puid else self.unidentified

    def content_action(self, kind: str) -> str:
        """Action for a content finding (``encrypted``, ``macro``, ``unreadable``)."""
        return self.content_checks.get(kind, "reject")


def load_format_policy(settings: Settings) -> FormatPolicy:
    """Load and check the format policy.

    Raises:
        ConfigError: schema violation (file and line).
    """
    doc = load_checked_policy("formats", settings)
    data = doc.data
    rules = tuple(FormatRule(r["name"], frozenset(r.get("puid", [])), r["action"], r.get("reason", ""),
                             r.get("family", ""), frozenset(r.get("extensions", [])))
                  for r in data["formats"])
    default = FormatDecision(data["default"]["action"], "未列入清单的格式",
                             data["default"].get("reason", ""))
    unidentified = FormatDecision(data["unidentified"]["action"], "无法识别的格式",
                                  data["unidentified"].get("reason", ""))
    checks = {"encrypted": "reject", "macro": "reject", "unreadable": "reject",
              **(data.get("content_checks") or {})}
    return FormatPolicy(rules, default, unidentified, checks, doc.path)
