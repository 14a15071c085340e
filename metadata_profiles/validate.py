"""The profile validator: one catalogue row in, normalised values and findings out.

Findings are not exceptions: each carries the stable code of the rule it breaks (DA/T 70's
GD-x-y, or Dangan's DG-x-y where the standard is silent), a severity, and its message in
Chinese and English, rendered from ``messages.yaml``. ID numbers are masked in every message.

>>> from metadata_profiles import load_profile
>>> check = Validator(load_profile("jzfp"))
>>> result = check.record({"archival_code": "Q001-WS·2016-Y-FPB-0001", "title": "会议纪要",
...     "creator": "扶贫开发局", "date": "20160230", "security_class": "公开", "page_count": "2",
...     "retention_period": "永久", "jzfp_category": "01"})
>>> [(f.code, f.field) for f in result.findings]
[('GD-1-3', 'date')]
>>> result.values["retention_period"], result.values["year"], result.values["fonds_code"]
('Y', '2016', 'Q001')
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

from metadata_profiles.archival_code import ArchivalCode, normalise_code, parse_code
from metadata_profiles.idnumbers import mask_id_number
from metadata_profiles.loader import CodeTemplate, FieldSpec, Profile
from metadata_profiles.text import shown_text

MESSAGES = Path(__file__).with_name("messages.yaml")
IDEOGRAPHIC_SPACE = "\u3000"
ILLEGAL_CATEGORIES = {"Cc": "控制字符", "Co": "私用区字符", "Cs": "代理项", "Cn": "未分配码位"}


@dataclass(frozen=True)
class Finding:
    """One problem a rule found in a record.

    Attributes:
        rule: the rule's id in ``messages.yaml`` (``vocabulary``, ``code-form`` …).
        code: DA/T 70 code (``GD-1-4``) or Dangan's own (``DG-4-9``).
        severity: ``error`` (the record cannot be accepted) or ``warning``.
        message_zh, message_en: the finding in Chinese and in English.
        field: the profile field concerned, if any.
        heading: its Chinese column heading.
        value: the value as written (masked for ID numbers).
    """

    rule: str
    code: str
    severity: str
    message_zh: str
    message_en: str
    field: str | None = None
    heading: str | None = None
    value: str | None = None


@dataclass
class RecordResult:
    """A validated record.

    Attributes:
        values: field -> normalised value (vocabulary codes, ``int`` for whole numbers,
            ``list[str]`` for lists); empty fields are absent.
        code: the parsed 档号, or None.
        findings: every problem found.
        needs_code: the 档号 is empty and a template applies: the caller may generate one.
        template: that template.
    """

    values: dict[str, Any] = field(default_factory=dict)
    code: ArchivalCode | None = None
    findings: list[Finding] = field(default_factory=list)
    needs_code: bool = False
    template: CodeTemplate | None = None


@lru_cache(maxsize=1)
def _messages() -> dict[str, dict[str, str]]:
    return yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))


def rule_code(rule: str) -> str:
    """The code a rule reports under (``vocabulary`` -> ``GD-1-4``)."""
    return _messages()[rule]["code"]


def finding(rule: str, spec: FieldSpec | None = None, *, value: str | None = None,
            expected: object = "", detail: object = "", severity: str | None = None) -> Finding:
    """Build the finding of ``rule`` about ``spec`` with its Chinese and English messages."""
    text = _messages()[rule]
    # a value is quoted escaped: an illegal character is shown for what it is, never acts
    shown = shown_text(mask_value(spec, value)) if value is not None else None
    names = {"heading": spec.zh if spec else "", "field": spec.name if spec else "",
             "value": shown if shown is not None else "", "expected": expected, "detail": detail}
    return Finding(rule, text["code"], severity or text.get("severity", "error"),
                   text["zh"].format(**names), text["en"].format(**names),
                   spec.name if spec else None, spec.zh if spec else None, shown)




def mask_value(spec: FieldSpec | None, value: Any) -> str:
    """A value as it may be printed: masked when the field says so."""
    if spec is not None and spec.mask == "id_number" and value not in (None, ""):
        return mask_id_number(str(value))
    return str(value)


class Validator:
    """Validates catalogue records against a profile.

    Arguments:
        profile: the metadata profile.
        today: the date "future" is measured against (default: today).
    """

    def __init__(self, profile: Profile, today: date | None = None) -> None:
        self.profile = profile
        self.today = today or date.today()

    # -- columns ---------------------------------------------------------------------------
    def columns(self, present: Iterable[str]) -> list[Finding]:
        """GD-2-3: every mandatory element has a column (unless a 档号 or default fills it)."""
        present = set(present)
        filled = self._fillable_fields()
        return [finding("missing-column", spec) for spec in self.profile.mandatory
                if spec.name not in present and spec.name not in filled
                and spec.default is None]

    def _fillable_fields(self) -> set[str]:
        names = {s.name for s in self.profile.fields if s.default is not None}
        if self.profile.codes is not None:
            if self.profile.codes.when_empty == "generate":
                names.add(self.profile.codes.field)
            for form in self.profile.codes.forms:
                names.update(form.fills)
        return names | {s.name for s in self.profile.fields if s.fill_from}

    # -- one record ------------------------------------------------------------------------
    def record(self, raw: Mapping[str, Any]) -> RecordResult:
        """Validate and normalise one record given as field name -> cell text."""
        result = RecordResult()
        values: dict[str, str] = {}
        for spec in self.profile.sheet_fields:
            text = self._clean(spec, raw.get(spec.name), result.findings)
            if text:
                values[spec.name] = text
        self._archival_code(values, result)
        self._fill_derived(values, result)
        for spec in self.profile.sheet_fields:
            if spec.name in values:
                self._check_value(spec, values, result)
        self._check_presence(values, result)
        self._cross_rules(result)
        return result

    def _clean(self, spec: FieldSpec, raw: Any, findings: list[Finding]) -> str:
        if raw is None:
            return ""
        text = str(raw)
        stripped = text.strip(" \t\r\n")
        if self.profile.normalise.trim_ideographic_space and (
                stripped.startswith(IDEOGRAPHIC_SPACE) or stripped.endswith(IDEOGRAPHIC_SPACE)):
            findings.append(finding("ideographic-space", spec, value=stripped))
            stripped = stripped.strip(IDEOGRAPHIC_SPACE + " ")
        bad = _illegal_characters(stripped, allow_newline=spec.type == "text")
        if bad:
            findings.append(finding("illegal-character", spec, value=stripped, detail=bad))
        return stripped

    def _archival_code(self, values: dict[str, str], result: RecordResult) -> None:
        rules = self.profile.codes
        if rules is None or rules.field not in {s.name for s in self.profile.sheet_fields}:
            return
        spec = self.profile.field(rules.field)
        written = values.get(rules.field, "")
        if not written:
            template = self.template_for(values)
            if rules.when_empty == "generate" and template is not None:
                result.needs_code, result.template = True, template
            return
        normalised = normalise_code(written, self.profile.normalise)
        if normalised != written:
            result.findings.append(finding("code-normalised", spec, value=written,
                                           expected=normalised))
        values[rules.field] = normalised
        code = parse_code(normalised, rules, self.profile.normalise)
        if code is None:
            result.findings.append(finding("code-form", spec, value=normalised))
            return
        result.code = code
        for target, source in code.form.fills.items():
            if not values.get(target):
                filled = source.strip("'") if source.startswith("'") else code.parts.get(source)
                if filled:
                    values[target] = filled
        for group, target in code.form.agree.items():
            part, written_part = code.parts.get(group), values.get(target)
            if part and written_part and self._canonical(target, written_part) != part:
                other = self.profile.field(target)
                result.findings.append(finding("code-part", other, value=normalised,
                                               expected=written_part,
                                               detail=f"{other.zh}部分“{part}”"))

    def template_for(self, values: Mapping[str, Any]) -> CodeTemplate | None:
        """The fonds' template that applies to a record with these values, if any."""
        rules = self.profile.codes
        if rules is None:
            return None
        fonds = str(values.get("fonds_code", ""))
        for wanted in (fonds, "*"):
            for template in rules.templates:
                if template.fonds == wanted and (
                        template.when is None or self.holds(template.when, values, None)):
                    return template
        return None

    def _fill_derived(self, values: dict[str, str], result: RecordResult) -> None:
        for spec in self.profile.sheet_fields:
            if spec.name not in values and spec.default is not None:
                values[spec.name] = spec.default
        for spec in self.profile.sheet_fields:
            if spec.name in values or not spec.fill_from:
                continue
            source, _, part = spec.fill_from.partition(":")
            written = values.get(source, "")
            if part == "year" and len(written) >= 4 and written[:4].isdigit():
                values[spec.name] = written[:4]
            elif part == "value" and written:
                values[spec.name] = written

    def _check_value(self, spec: FieldSpec, values: dict[str, str], result: RecordResult) -> None:
        text = values[spec.name]
        findings = result.findings
        if spec.max_len is not None and len(text) > spec.max_len:
            findings.append(finding("too-long", spec, value=text, detail=len(text),
                                    expected=spec.max_len))
        if spec.name == (self.profile.codes.field if self.profile.codes else None):
            result.values[spec.name] = text
            return
        if spec.regex is not None and not spec.regex.fullmatch(text):
            findings.append(finding("regex", spec, value=text, expected=spec.regex.pattern,
                                    severity=spec.regex_severity))
            if spec.regex_severity == "error":
                return
        value = self._typed(spec, text, findings)
        if value is None:
            return
        if text in spec.reject_values:
            findings.append(finding("state-secret", spec, value=text))
        self._range(spec, value, findings)
        result.values[spec.name] = value

    def _typed(self, spec: FieldSpec, text: str, findings: list[Finding]) -> Any:
        kind = spec.type
        if kind == "int":
            number = _as_int(text)
            if number is None:
                findings.append(finding("not-integer", spec, value=text))
            return number
        if kind == "year":
            if not (len(text) == 4 and text.isdigit()):
                findings.append(finding("not-year", spec, value=text))
                return None
            return text
        if kind == "date":
            if _as_date(text) is None:
                findings.append(finding("not-date", spec, value=text))
                return None
            return text
        if kind == "id_number":
            return self._id_number(spec, text, findings)
        if kind in ("enum", "list") and spec.vocabulary:
            return self._vocabulary(spec, text, findings)
        if kind == "list":
            return _split(text, spec.separators)
        return text

    def _id_number(self, spec: FieldSpec, text: str, findings: list[Finding]) -> str | None:
        value = text.upper()
        try:
            ric.validate(value)
            birth = ric.get_birth_date(value)
        except stdnum_errors.ValidationError as exc:
            findings.append(finding("id-number", spec, value=value, detail=_id_reason(exc)))
            return None
        if birth > self.today:
            findings.append(finding("id-number", spec, value=value, detail="出生日期晚于今天"))
            return None
        if spec.expected_prefix and not value.startswith(tuple(spec.expected_prefix)):
            findings.append(finding("id-prefix", spec, value=value,
                                    expected="、".join(spec.expected_prefix)))
        return value

    def _vocabulary(self, spec: FieldSpec, text: str, findings: list[Finding]) -> Any:
        vocabulary = self.profile.vocabularies[spec.vocabulary or ""]
        parts = _split(text, spec.separators) if spec.type == "list" else [text]
        out = []
        for part in parts:
            term = vocabulary.lookup(part)
            if term is None:
                findings.append(finding("vocabulary", spec, value=part,
                                        expected=vocabulary.listing()))
                continue
            if term.ingest == "reject":
                findings.append(finding("state-secret", spec, value=part))
            out.append(term.zh if spec.store == "label" and term.zh else term.code)
        if spec.type == "list":
            return out
        return out[0] if out else None

    def _range(self, spec: FieldSpec, value: Any, findings: list[Finding]) -> None:
        if spec.type == "date":
            when = _as_date(str(value))
            if spec.not_future and when and when > self.today:
                findings.append(finding("future-date", spec, value=str(value),
                                        expected=self.today.strftime("%Y%m%d")))
            return
        if spec.type not in ("int", "year"):
            return
        number = int(value)
        low, high = self._bound(spec.min), self._bound(spec.max)
        if low is not None and number < low:
            findings.append(finding("below-min", spec, value=str(value), expected=low))
        if high is not None and number > high:
            findings.append(finding("above-max", spec, value=str(value), expected=high))

    def _bound(self, bound: int | str | None) -> int | None:
        if bound == "current_year":
            return self.today.year
        return None if bound is None else int(bound)

    def _check_presence(self, values: dict[str, str], result: RecordResult) -> None:
        code_field = self.profile.codes.field if self.profile.codes else None
        for spec in self.profile.sheet_fields:
            if values.get(spec.name):
                continue
            if spec.name == code_field:
                if result.needs_code:
                    continue
                if spec.req == "M" and self.profile.codes.when_empty == "generate":
                    result.findings.append(finding("code-empty-no-template", spec))
                    continue
            if spec.req == "M":
                result.findings.append(finding("empty-mandatory", spec))
            elif spec.req == "C" and spec.condition and self.holds(spec.condition, values,
                                                                    result.code):
                result.findings.append(finding("empty-conditional", spec,
                                               detail=spec.condition_text
                                               or self.describe(spec.condition)))

    def _cross_rules(self, result: RecordResult) -> None:
        values = result.values
        for rule in self.profile.rules:
            first, second = rule.fields
            if first not in values or second not in values:
                continue
            a, b = str(values[first]), str(values[second])
            spec, other = self.profile.field(first), self.profile.field(second)
            if rule.kind == "not_before" and _comparable(a, b) < _comparable(b, a):
                result.findings.append(finding("not_before", spec, value=a, expected=b,
                                               detail=other.zh, severity=rule.severity))
            elif rule.kind == "same_year" and a[:4] != b[:4]:
                result.findings.append(finding("same_year", spec, value=a, expected=b[:4],
                                               detail=other.zh, severity=rule.severity))

    # -- conditions ------------------------------------------------------------------------
    def holds(self, cond: Mapping[str, Any], values: Mapping[str, Any],
              code: ArchivalCode | None) -> bool:
        """Whether a profile condition holds for a record."""
        if "ref" in cond:
            return self.holds(self.profile.conditions[cond["ref"]], values, code)
        if "all" in cond:
            return all(self.holds(c, values, code) for c in cond["all"])
        if "any" in cond:
            return any(self.holds(c, values, code) for c in cond["any"])
        if "not" in cond:
            return not self.holds(cond["not"], values, code)
        if "code_form" in cond:
            return code is not None and code.form.name in cond["code_form"]
        value = values.get(cond["field"])
        present = value not in (None, "", [])
        if "present" in cond:
            return present == bool(cond["present"])
        if "in" in cond:
            return present and self._canonical(cond["field"], value) in {str(v) for v in cond["in"]}
        if "equals" in cond:
            return present and self._canonical(cond["field"], value) == str(cond["equals"])
        return present

    def _canonical(self, name: str, value: Any) -> str:
        spec = self.profile.field(name)
        if spec.vocabulary:
            term = self.profile.vocabularies[spec.vocabulary].lookup(str(value))
            if term is not None:
                return term.code
        return str(value)

    def describe(self, cond: Mapping[str, Any]) -> str:
        """A short Chinese rendering of a condition, for messages."""
        if "ref" in cond:
            return cond["ref"]
        if "all" in cond:
            return "且".join(self.describe(c) for c in cond["all"])
        if "any" in cond:
            return "或".join(self.describe(c) for c in cond["any"])
        if "not" in cond:
            return f"非（{self.describe(cond['not'])}）"
        if "code_form" in cond:
            return "档号为" + "、".join(cond["code_form"]) + "形式"
        heading = self.profile.field(cond["field"]).zh
        if "in" in cond:
            return f"“{heading}”为 {'/'.join(str(v) for v in cond['in'])}"
        if "equals" in cond:
            return f"“{heading}”为 {cond['equals']}"
        return f"“{heading}”已填写" if cond.get("present", True) else f"“{heading}”未填写"


def _illegal_characters(text: str, allow_newline: bool) -> str:
    found = []
    for ch in text:
        if ch in "\n\t" and allow_newline:
            continue
        kind = ILLEGAL_CATEGORIES.get(unicodedata.category(ch))
        if kind is None and ch == "\ufffd":
            kind = "替换字符（编码损坏）"
        if kind:
            found.append(f"{kind} U+{ord(ch):04X}")
    return "、".join(dict.fromkeys(found))


def _split(text: str, separators: Iterable[str]) -> list[str]:
    for sep in separators:
        text = text.replace(sep, "\x00")
    return [p.strip() for p in text.split("\x00") if p.strip()]


def _as_int(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _as_date(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _comparable(value: str, other: str) -> str:
    """Compare a year with a date by their years, two dates or two years as written."""
    return value[:4] if len(value) != len(other) else value


def _id_reason(exc: Exception) -> str:
    if isinstance(exc, stdnum_errors.InvalidChecksum):
        return "校验码错误"
    if isinstance(exc, stdnum_errors.InvalidLength):
        return "长度不是 18 位"
    if isinstance(exc, stdnum_errors.InvalidComponent):
        return "出生日期或地区码无效"
    return "格式错误"
