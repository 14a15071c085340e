"""The access policy: open dates, personal-information levels and the control flag (控制标识).

``access.yaml`` says how long records stay closed (Archives Law 2020 Art. 27: 25 years after
formation unless a recorded decision says otherwise), which fields hold personal information
and at what level (PIPL Art. 28), which records are household records (restricted by
default whatever their age) and when a record may be 开放. Ingest computes these values for
every item and AIP; the portal enforces them. This module only decides, it never enforces.

>>> from datetime import date
>>> from policies import load_settings
>>> policy = load_access_policy(load_settings("/nonexistent-home"))
>>> a = policy.assess({"date": "20160224", "title": "会议纪要"}, today=date(2030, 1, 1))
>>> a.open_date.isoformat(), a.control_id, a.pii_level
('2041-12-31', '控制', 'none')
>>> h = policy.assess({"date": "19900105", "head_name": "扎西"}, today=date(2030, 1, 1))
>>> h.open_date.isoformat(), h.control_id, h.pii_level, h.household
('2015-12-31', '控制', 'personal', True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from policies.config import Settings
from policies.errors import ConfigError
from policies.yamldoc import load_checked_policy


@dataclass(frozen=True)
class AccessDecision:
    """A recorded review decision (开放审查) that overrides the computed open date or flag.

    Attributes:
        id: the decision's reference.
        match: what it applies to: ``archival_code_prefix``, ``jzfp_category``,
            ``category_code`` or ``aip`` (an AIP UUID).
        open_date: the decided open date, if it sets one.
        open_after_years: years after formation instead of the default, if it sets that.
        control: the decided control flag (开放/控制), if it sets one.
        basis: the decision's text or document reference (recorded with every record).
    """

    id: str
    match: Mapping[str, str]
    basis: str
    open_date: date | None = None
    open_after_years: int | None = None
    control: str | None = None

    def applies(self, fields: Mapping[str, Any], aip_uuid: str | None = None) -> bool:
        """Whether the decision covers a record with these fields (in this AIP)."""
        for key, wanted in self.match.items():
            if key == "archival_code_prefix":
                if not str(fields.get("archival_code") or "").startswith(wanted):
                    return False
            elif key == "aip":
                if aip_uuid != wanted:
                    return False
            elif str(fields.get(key) or "") != wanted:
                return False
        return True


@dataclass(frozen=True)
class ContentPii:
    """How personal information found in a record's content rates it (``content_pii``).

    Ingest looks for the kinds below in a record's extracted text, file names and free-text
    fields and writes the kinds found into its ``content_pii`` field; this policy says what
    level each kind means and how the record is marked for review.

    Attributes:
        id_numbers: level of a record whose content holds an ID number.
        household_names: level when it names a household head held in the repository.
        names_with_words: level when it names one together with a word of ``words``
            (illness, disability, 低保, 危房 … next to a name is sensitive information).
        min_name_chars: shorter names are not looked for.
        words: the sensitive words.
        review: the ``pii_review`` value a record so rated gets (``待审查``).
    """

    id_numbers: str = "sensitive"
    household_names: str = "personal"
    names_with_words: str = "sensitive"
    min_name_chars: int = 2
    words: tuple[str, ...] = ()
    review: str = "待审查"

    KINDS = ("id_number", "household_name", "household_name_with_words")

    def level_of(self, kind: str) -> str | None:
        """The level a kind found in content gives (None for an unknown kind)."""
        return {"id_number": self.id_numbers, "household_name": self.household_names,
                "household_name_with_words": self.names_with_words}.get(kind)


CONTENT_PII_ZH = {"id_number": "公民身份号码", "household_name": "建档立卡户户主姓名",
                  "household_name_with_words": "户主姓名及健康、救助或住房状况"}


@dataclass(frozen=True)
class AccessAssessment:
    """What the policy says about one record (or an AIP, aggregated).

    Attributes:
        open_date: 开放日期, or None when the formation date is unknown.
        control_id: 控制标识 (``开放`` or ``控制``).
        pii_level: highest personal-information level present (``none`` …).
        household: whether it is a household record (restricted by default).
        basis: how the open date and flag were reached (rule or decision ids).
    """

    open_date: date | None
    control_id: str
    pii_level: str
    household: bool
    basis: str


@dataclass(frozen=True)
class AccessPolicy:
    """The access policy in force.

    Attributes:
        open_after_years: years after formation a record opens (25 by law).
        open_date_from: ``end_of_formation_year`` (31 December of year + N) or
            ``formation_date`` (the same day N years later).
        pii_levels: the levels, lowest first (``none``, ``personal``, ``sensitive``).
        field_pii: field name -> level this policy assigns (the profile's own level counts
            too: the higher one wins).
        household_fields: fields whose presence makes a record a household record.
        household_levels: aggregation levels that are household records (``户卷``).
        household_control: the flag household records get (``控制``).
        control_values: the flags, the first meaning open (``开放``, ``控制``).
        default_control: the flag when nothing opens a record.
        open_when: conditions under which a record is computed ``开放``
            (``open_date_passed``, ``max_pii_level``, ``household``).
        masking: field -> masking rule for fields never printed in full.
        decisions: recorded review decisions, first match wins.
        path: the file it was read from.
    """

    open_after_years: int
    open_date_from: str
    pii_levels: tuple[str, ...]
    field_pii: Mapping[str, str]
    household_fields: tuple[str, ...]
    household_levels: tuple[str, ...]
    household_control: str
    control_values: tuple[str, ...]
    default_control: str
    open_when: Mapping[str, Any]
    masking: Mapping[str, str]
    decisions: tuple[AccessDecision, ...] = ()
    path: Path = field(default=Path("access.yaml"))
    content_pii: ContentPii = field(default_factory=ContentPii)

    @property
    def open_value(self) -> str:
        """The flag meaning open (``开放``)."""
        return self.control_values[0]

    def rank(self, level: str) -> int:
        """Position of a PII level (unknown levels count as the highest)."""
        return self.pii_levels.index(level) if level in self.pii_levels else len(self.pii_levels)

    def highest_pii(self, levels: Iterable[str]) -> str:
        """The highest of several PII levels (``none`` when empty)."""
        levels = list(levels)
        return max(levels, key=self.rank) if levels else self.pii_levels[0]

    def pii_level(self, fields: Mapping[str, Any],
                  profile_levels: Mapping[str, str] | None = None) -> str:
        """The PII level of a record: the highest level of the fields it fills in."""
        found = []
        for name, value in fields.items():
            if value in (None, "", []):
                continue
            for level in ((profile_levels or {}).get(name), self.field_pii.get(name)):
                if level:
                    found.append(level)
        for kind in content_kinds(fields):
            found.append(self.content_pii.level_of(kind) or self.pii_levels[-1])
        return self.highest_pii(found)

    def is_household(self, fields: Mapping[str, Any], level: str | None = None) -> bool:
        """Whether a record is a household record (by its level or its fields)."""
        if level is not None and level in self.household_levels:
            return True
        return any(fields.get(name) not in (None, "", []) for name in self.household_fields)

    def decision_for(self, fields: Mapping[str, Any],
                     aip_uuid: str | None = None) -> AccessDecision | None:
        """The first recorded decision covering a record, or None."""
        return next((d for d in self.decisions if d.applies(fields, aip_uuid)), None)

    def open_date(self, formation: date | None, decision: AccessDecision | None = None
                  ) -> date | None:
        """开放日期 from the formation date (or a decision)."""
        if decision is not None and decision.open_date is not None:
            return decision.open_date
        if formation is None:
            return None
        years = self.open_after_years
        if decision is not None and decision.open_after_years is not None:
            years = decision.open_after_years
        if self.open_date_from == "formation_date":
            try:
                return formation.replace(year=formation.year + years)
            except ValueError:  # 29 February
                return formation.replace(year=formation.year + years, day=28)
        return date(formation.year + years, 12, 31)

    def assess(self, fields: Mapping[str, Any], *, level: str | None = None,
               profile_levels: Mapping[str, str] | None = None, aip_uuid: str | None = None,
               today: date | None = None) -> AccessAssessment:
        """Open date, control flag and PII level of one record.

        Arguments:
            fields: the record's descriptive fields (``date`` YYYYMMDD or ``year`` give its
                formation date).
            level: its aggregation level (``件``, ``户卷``).
            profile_levels: the profile's own field PII levels.
            aip_uuid: the AIP it belongs to, for decisions that name one.
            today: the date "passed" is measured against.
        """
        today = today or date.today()
        decision = self.decision_for(fields, aip_uuid)
        opened = self.open_date(formation_date(fields), decision)
        pii = self.pii_level(fields, profile_levels)
        household = self.is_household(fields, level)
        if decision is not None and decision.control is not None:
            return AccessAssessment(opened, decision.control, pii, household,
                                    f"决定 {decision.id}: {decision.basis}")
        control, basis = self._control(opened, pii, household, today)
        kinds = content_kinds(fields)
        if kinds and control != self.open_value:
            basis = (f"内容含个人信息（{'、'.join(CONTENT_PII_ZH.get(k, k) for k in kinds)}），"
                     f"{self.content_pii.review}；{basis}")
        if decision is not None:
            basis = f"决定 {decision.id}: {decision.basis}; {basis}"
        return AccessAssessment(opened, control, pii, household, basis)

    def _control(self, opened: date | None, pii: str, household: bool,
                 today: date) -> tuple[str, str]:
        if household:
            return self.household_control, "建档立卡户档案默认控制"
        rules = self.open_when
        if rules.get("open_date_passed", True) and (opened is None or opened > today):
            return self.default_control, f"未到开放日期（形成后 {self.open_after_years} 年）"
        limit = rules.get("max_pii_level")
        if limit is not None and self.rank(pii) > self.rank(limit):
            return self.default_control, f"含个人信息（{pii}）"
        return self.open_value, "已到开放日期且不含个人信息"

    def combine(self, parts: Iterable[AccessAssessment], *, household: bool = False,
                today: date | None = None) -> AccessAssessment:
        """The assessment of an AIP or volume from those of its items.

        The latest open date, the highest PII level, 控制 if any part is 控制 (or the whole
        is a household volume).
        """
        parts = list(parts)
        dates = [p.open_date for p in parts if p.open_date is not None]
        opened = max(dates) if dates else None
        pii = self.highest_pii(p.pii_level for p in parts)
        household = household or any(p.household for p in parts)
        closed = [p for p in parts if p.control_id != self.open_value]
        if household:
            return AccessAssessment(opened, self.household_control, pii, True, "建档立卡户档案默认控制")
        if closed or not parts:
            return AccessAssessment(opened, self.default_control, pii, False,
                                    closed[0].basis if closed else "无著录条目")
        return AccessAssessment(opened, self.open_value, pii, False, "全部条目已开放")


def content_kinds(fields: Mapping[str, Any]) -> list[str]:
    """The kinds of personal information ingest found in a record's content."""
    value = fields.get("content_pii")
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value or []]


def formation_date(fields: Mapping[str, Any]) -> date | None:
    """A record's formation date: its 日期 (YYYYMMDD), else 31 December of its 年度."""
    written = str(fields.get("date") or "")
    if len(written) == 8 and written.isdigit():
        try:
            return date(int(written[:4]), int(written[4:6]), int(written[6:]))
        except ValueError:
            pass
    year = str(fields.get("year") or "")[:4]
    return date(int(year), 12, 31) if len(year) == 4 and year.isdigit() else None


def load_access_policy(settings: Settings) -> AccessPolicy:
    """Load and check the access policy.

    Raises:
        ConfigError: schema violation, or a level or flag used but not declared (file, line).
    """
    doc = load_checked_policy("access", settings)
    data = doc.data
    levels = tuple(data["pii_levels"])
    control = data["control"]
    values = tuple(control["values"])
    household = data.get("household") or {}
    problems = []
    for name, level in (data.get("field_pii") or {}).items():
        if level not in levels:
            problems.append(f"{doc.at(('field_pii', name))}: unknown PII level {level!r}")
    for key, flag in (("default", control["default"]),):
        if flag not in values:
            problems.append(f"{doc.at(('control', key))}: {flag!r} is not one of {list(values)}")
    if household.get("control", values[-1]) not in values:
        problems.append(f"{doc.at(('household', 'control'))}: not one of {list(values)}")
    limit = (control.get("open_when") or {}).get("max_pii_level")
    if limit is not None and limit not in levels:
        problems.append(f"{doc.at(('control', 'open_when', 'max_pii_level'))}: "
                        f"unknown PII level {limit!r}")
    decisions = []
    for index, entry in enumerate(data.get("decisions") or []):
        if entry.get("control") is not None and entry["control"] not in values:
            problems.append(f"{doc.at(('decisions', index, 'control'))}: not one of {list(values)}")
        try:
            opened = date.fromisoformat(str(entry["open_date"])) if "open_date" in entry else None
        except ValueError:
            problems.append(f"{doc.at(('decisions', index, 'open_date'))}: not a date (YYYY-MM-DD)")
            opened = None
        decisions.append(AccessDecision(entry["id"], dict(entry["match"]), entry["basis"],
                                        opened, entry.get("open_after_years"),
                                        entry.get("control")))
    content = _content_pii(data.get("content_pii") or {}, levels, doc, problems)
    if problems:
        raise ConfigError("invalid access policy:\n  " + "\n  ".join(problems))
    return AccessPolicy(
        open_after_years=int(data["open_after_years"]),
        open_date_from=data.get("open_date_from", "end_of_formation_year"),
        pii_levels=levels, field_pii=dict(data.get("field_pii") or {}),
        household_fields=tuple(household.get("fields", [])),
        household_levels=tuple(household.get("levels", [])),
        household_control=household.get("control", values[-1]),
        control_values=values, default_control=control["default"],
        open_when=dict(control.get("open_when") or {}),
        masking=dict(data.get("masking") or {}), decisions=tuple(decisions), path=doc.path,
        content_pii=content)


def _content_pii(data: Mapping[str, Any], levels: tuple[str, ...], doc: Any,
                 problems: list[str]) -> ContentPii:
    for key in ("id_numbers", "household_names", "names_with_words"):
        if key in data and data[key] not in levels:
            problems.append(f"{doc.at(('content_pii', key))}: unknown PII level {data[key]!r}")
    defaults = ContentPii()
    return ContentPii(
        id_numbers=data.get("id_numbers", defaults.id_numbers),
        household_names=data.get("household_names", defaults.household_names),
        names_with_words=data.get("names_with_words", defaults.names_with_words),
        min_name_chars=int(data.get("min_name_chars", defaults.min_name_chars)),
        words=tuple(data.get("words") or ()), review=data.get("review", defaults.review))
