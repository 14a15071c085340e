"""The retention policy (保管期限表): periods, the schedule's rules, expiry.

``retention.yaml`` lists the 保管期限 classes (highest first) and rules mapping a record's
精准扶贫 category and record type (recognised by words of its title) to a period. The period
written in the catalogue sheet stands; an empty one is assigned by the first matching rule;
a written period that disagrees with a matching rule is reported for the archivist. A volume
takes the highest period of its contents. Expiry starts appraisal, never deletion.

>>> from policies import load_settings
>>> policy = load_retention_policy(load_settings("/nonexistent-home"))
>>> decision = policy.decide("02", "扎西户建档立卡入户调查表", "")
>>> decision.period, decision.rule.id, decision.source
('Y', '02-household', 'schedule')
>>> policy.expiry("D10", 2016).isoformat(), policy.expiry("Y", 2016)
('2026-12-31', None)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from policies.config import Settings
from policies.errors import ConfigError
from policies.yamldoc import load_checked_policy


@dataclass(frozen=True)
class RetentionPeriod:
    """One 保管期限 class.

    Attributes:
        code: ``Y``, ``D30``, ``D10``.
        zh: Chinese name (永久 …).
        years: length in years, None for permanent.
        rank: higher is longer (a volume takes the highest rank of its contents).
        aliases: other spellings accepted in sheets.
    """

    code: str
    zh: str
    years: int | None
    rank: int
    aliases: tuple[str, ...] = ()
    en: str = ""


@dataclass(frozen=True)
class RetentionRule:
    """One line of the schedule: category + record type -> period."""

    id: str
    period: str
    category: str | None = None
    record_type: str = ""
    title_any: tuple[str, ...] = ()

    def matches(self, category: str | None, title: str) -> bool:
        """Whether a record of this category with this title falls under the rule."""
        if self.category is not None and self.category != (category or ""):
            return False
        return not self.title_any or any(word in title for word in self.title_any)


@dataclass(frozen=True)
class RetentionDecision:
    """The period one record gets, and why.

    Attributes:
        period: the period code, or None when neither the sheet nor a rule gives one.
        source: ``sheet`` (written in the catalogue) or ``schedule`` (assigned by a rule).
        rule: the schedule rule that matched, if any.
        conflict: the rule's period when it differs from the one written in the sheet.
    """

    period: str | None
    source: str
    rule: RetentionRule | None = None
    conflict: str | None = None

    @property
    def basis(self) -> str:
        """A one-line account for METS and the report."""
        where = "目录著录" if self.source == "sheet" else "保管期限表"
        return f"{where}" + (f"（规则 {self.rule.id}）" if self.rule else "")


@dataclass(frozen=True)
class RetentionPolicy:
    """The retention policy in force.

    Attributes:
        schedule_id, version, status: identify the schedule (recorded with each decision).
        periods: the classes, highest first.
        rules: the schedule, first match wins.
        path: the file it was read from.
    """

    schedule_id: str
    version: str
    status: str
    periods: tuple[RetentionPeriod, ...]
    rules: tuple[RetentionRule, ...]
    path: Path

    def period(self, written: str | None) -> RetentionPeriod | None:
        """The class written as ``written`` (code, Chinese name or alias), or None."""
        wanted = _fold(written or "")
        if not wanted:
            return None
        for period in self.periods:
            if wanted in {_fold(s) for s in (period.code, period.zh, *period.aliases)}:
                return period
        return None

    def rule_for(self, category: str | None, title: str) -> RetentionRule | None:
        """The first schedule rule matching a record, or None."""
        return next((r for r in self.rules if r.matches(category, title or "")), None)

    def decide(self, category: str | None, title: str, written: str | None) -> RetentionDecision:
        """The period of one record: the sheet's, else the schedule's."""
        rule = self.rule_for(category, title)
        period = self.period(written)
        if period is not None:
            conflict = rule.period if rule is not None and rule.period != period.code else None
            return RetentionDecision(period.code, "sheet", rule, conflict)
        return RetentionDecision(rule.period if rule else None, "schedule", rule)

    def highest(self, codes: Iterable[str | None]) -> str | None:
        """The highest period among ``codes`` (unknown codes ignored), or None."""
        known = [p for p in (self.period(c) for c in codes if c) if p is not None]
        return max(known, key=lambda p: p.rank).code if known else None

    def expiry(self, code: str | None, formation_year: int | None) -> date | None:
        """When a period that began with records of ``formation_year`` ends (None: never).

        Periods count from 1 January after the year of formation, so a D10 record of 2016
        reaches the end of its period on 2026-12-31.
        """
        period = self.period(code)
        if period is None or period.years is None or formation_year is None:
            return None
        return date(formation_year + period.years, 12, 31)

    def describe(self) -> str:
        """``qh-jzfp-retention 0.1-draft`` for bases and reports."""
        return f"{self.schedule_id} {self.version}"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", str(text)).strip().casefold()


def load_retention_policy(settings: Settings) -> RetentionPolicy:
    """Load and check the retention policy.

    Raises:
        ConfigError: schema violation, a rule naming an unknown period, or duplicate codes,
            with file and line.
    """
    doc = load_checked_policy("retention", settings)
    data = doc.data
    count = len(data["periods"])
    periods = tuple(RetentionPeriod(p["code"], p["zh"], p["years"], count - index,
                                    tuple(p.get("aliases", [])), p.get("en", ""))
                    for index, p in enumerate(data["periods"]))
    problems = []
    codes = [p.code for p in periods]
    for index, code in enumerate(codes):
        if codes.index(code) != index:
            problems.append(f"{doc.at(('periods', index, 'code'))}: period {code!r} listed twice")
    rules = []
    for index, entry in enumerate(data["rules"]):
        if entry["period"] not in codes:
            problems.append(f"{doc.at(('rules', index, 'period'))}: rule {entry['id']!r} names "
                            f"unknown period {entry['period']!r} (known: {', '.join(codes)})")
        rules.append(RetentionRule(entry["id"], entry["period"], entry.get("category"),
                                   entry.get("record_type", ""), tuple(entry.get("title_any", []))))
    if problems:
        raise ConfigError("invalid retention policy:\n  " + "\n  ".join(problems))
    schedule = data["schedule"]
    return RetentionPolicy(schedule["id"], str(schedule["version"]), schedule.get("status", ""),
                           periods, tuple(rules), doc.path)
