"""Descriptive metadata profiles as data: one YAML file per profile.

A profile names its fields (our English name, the Chinese column heading, whether it is
mandatory, its type, vocabulary, pattern and conditions), the synonyms county offices use
for the same column, the 档号 forms and templates, and cross-field plausibility rules, so
that a bureau adapts Dangan to its catalogue sheets by editing YAML, never code. Profiles are
looked up in ``$DANGAN_HOME/profiles/`` first, then among the ones shipped here. Every
profile is checked against ``schema/profile.schema.json`` and then for consistency
(vocabularies, conditions, regex groups); a broken one raises :class:`ProfileError` naming
the file and line.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metadata_profiles.yamldoc import MarkedDoc, YamlDocError, load_marked, schema_errors

SHIPPED = Path(__file__).with_name("profiles")
SCHEMA = Path(__file__).with_name("schema") / "profile.schema.json"
DEFAULT_INTERPUNCTS = "\u2022\u30fb\uff0e\u2027\u22c5\uff65"
DEFAULT_HYPHENS = "\u2010\u2011\u2012\u2013\u2014\uff0d\u2212"


class ProfileError(ValueError):
    """A profile file is missing or malformed (the message names file and line)."""


@dataclass(frozen=True)
class Term:
    """One value of a controlled vocabulary.

    Attributes:
        code: the canonical code (``Y``, ``02``, ``YB``).
        zh, en: names in Chinese and English.
        aliases: other spellings accepted in sheets.
        ingest: ``reject`` when a record with this value may not be ingested (state secrets).
    """

    code: str
    zh: str = ""
    en: str = ""
    aliases: tuple[str, ...] = ()
    ingest: str = "allowed"

    def spellings(self) -> tuple[str, ...]:
        """Every accepted way to write this term."""
        return tuple(s for s in (self.code, self.zh, *self.aliases) if s)


@dataclass(frozen=True)
class Vocabulary:
    """A named controlled vocabulary (值域)."""

    name: str
    terms: tuple[Term, ...]

    def lookup(self, value: str) -> Term | None:
        """The term written as ``value`` (code, Chinese name or alias; codes case-blind)."""
        wanted = _fold(value)
        for term in self.terms:
            if any(_fold(s) == wanted for s in term.spellings()):
                return term
        return None

    def listing(self, limit: int = 12) -> str:
        """A short human list of the accepted values, for messages."""
        names = [t.zh or t.code for t in self.terms]
        more = f" …（共 {len(names)} 项）" if len(names) > limit else ""
        return "、".join(names[:limit]) + more


@dataclass(frozen=True)
class FieldSpec:
    """One field of a profile (see ``schema/profile.schema.json`` for every key)."""

    name: str
    zh: str
    req: str = "O"
    synonyms: tuple[str, ...] = ()
    is_list: bool = False
    pii: str = "none"
    en: str = ""
    type: str = "string"
    vocabulary: str | None = None
    separators: tuple[str, ...] = ("、", ",", "，", ";", "；")
    regex: re.Pattern[str] | None = None
    regex_severity: str = "error"
    max_len: int | None = None
    min: int | str | None = None
    max: int | str | None = None
    not_future: bool = False
    expected_prefix: tuple[str, ...] = ()
    default: str | None = None
    protect: str | None = None
    mask: str | None = None
    condition: dict[str, Any] | None = None
    condition_text: str = ""
    source: str = "sheet"
    store: str = "code"
    reject_values: tuple[str, ...] = ()
    fill_from: str | None = None


@dataclass(frozen=True)
class CodeForm:
    """One accepted form of 档号 (a regex with named groups).

    Attributes:
        name: stable id (``daT22-item``).
        level: ``件`` (a file-level code) or ``户卷`` (a household volume's own code).
        regex: compiled, matched with ``fullmatch`` after normalisation.
        sequence: regex groups holding the running number, most specific first; the first
            one that matched is the 件号 (or 案卷号) and everything before it is its bucket.
        volume_group: group holding the code of the volume an item belongs to.
        agree: group -> field whose (normalised) value must equal the group.
        fills: field -> group (or quoted constant) filling an empty field.
    """

    name: str
    zh: str
    level: str
    regex: re.Pattern[str]
    sequence: tuple[str, ...]
    volume_group: str | None = None
    agree: dict[str, str] = field(default_factory=dict)
    fills: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CodeTemplate:
    """A fonds' template for generating an empty 档号 (``{item_no}`` is the next free 件号)."""

    template: str
    fonds: str = "*"
    when: dict[str, Any] | None = None

    def placeholders(self) -> tuple[str, ...]:
        """Field names the template uses (besides ``item_no``)."""
        return tuple(n for _, n, _, _ in string.Formatter().parse(self.template)
                     if n and n != "item_no")


@dataclass(frozen=True)
class CodeRules:
    """How a profile writes, checks and generates 档号."""

    field: str
    forms: tuple[CodeForm, ...]
    item_no_width: int = 4
    when_empty: str = "reject"
    templates: tuple[CodeTemplate, ...] = ()
    gaps: str = "warning"


@dataclass(frozen=True)
class Rule:
    """A cross-field plausibility rule (GD-1-5)."""

    id: str
    kind: str
    fields: tuple[str, str]
    severity: str = "error"


@dataclass(frozen=True)
class Normalisation:
    """Look-alike characters folded before codes are checked."""

    interpuncts: str = DEFAULT_INTERPUNCTS
    interpunct: str = "\u00b7"
    hyphens: str = DEFAULT_HYPHENS
    hyphen: str = "-"
    trim_ideographic_space: bool = True


@dataclass(frozen=True)
class Profile:
    """A descriptive metadata profile.

    Attributes:
        id: short name (``jzfp``).
        title: Chinese name.
        version: the profile's own version.
        aggregation: ``户卷`` when household volumes form one AIP each, else ``件``.
        fields: the fields in sheet order.
        path: the YAML file it was read from.
        vocabularies: name -> vocabulary.
        conditions: named conditions fields refer to with ``{ref: name}``.
        codes: 档号 forms, templates and numbering rules (None: the profile has none).
        rules: cross-field plausibility rules.
        normalise: look-alike characters to fold.
        header_markers: headings that identify the header row of a sheet.
        status: free text (``DRAFT …``).
    """

    id: str
    title: str
    version: str
    aggregation: str
    fields: tuple[FieldSpec, ...]
    path: Path
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict, compare=False)
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    codes: CodeRules | None = None
    rules: tuple[Rule, ...] = ()
    normalise: Normalisation = Normalisation()
    header_markers: tuple[str, ...] = ("题名",)
    status: str = ""

    def headings(self) -> dict[str, str]:
        """Every accepted column heading (names, synonyms) -> field name."""
        table = {}
        for spec in self.fields:
            if spec.source != "sheet":
                continue
            for heading in (spec.zh, spec.name, *spec.synonyms):
                table[normalise_heading(heading)] = spec.name
        return table

    def field(self, name: str) -> FieldSpec:
        """The field called ``name`` (KeyError if there is none)."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def has_field(self, name: str) -> bool:
        """Whether the profile defines ``name``."""
        return any(spec.name == name for spec in self.fields)

    @property
    def sheet_fields(self) -> tuple[FieldSpec, ...]:
        """Fields read from the catalogue sheet (not computed by the system)."""
        return tuple(f for f in self.fields if f.source == "sheet")

    @property
    def mandatory(self) -> tuple[FieldSpec, ...]:
        """Mandatory sheet fields."""
        return tuple(f for f in self.sheet_fields if f.req == "M")

    @property
    def protected_fields(self) -> tuple[str, ...]:
        """Fields stored encrypted in the catalogue (ID numbers)."""
        return tuple(f.name for f in self.fields if f.protect == "encrypt")

    @property
    def masked_fields(self) -> dict[str, str]:
        """Field -> masking rule, for every field never printed in full."""
        return {f.name: f.mask for f in self.fields if f.mask}

    def pii_levels(self) -> dict[str, str]:
        """Field -> personal-information level declared by the profile."""
        return {f.name: f.pii for f in self.fields if f.pii != "none"}


def normalise_heading(text: str) -> str:
    """Headings compare without spaces, line breaks and full-width forms."""
    return "".join(unicodedata.normalize("NFKC", str(text)).split())


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip().casefold()


def profile_dirs(home: Path | None = None) -> list[Path]:
    """Folders searched for profiles, the bureau's own first."""
    home = home or Path(os.environ.get("DANGAN_HOME", "dangan-home"))
    return [home / "profiles", SHIPPED]


def available_profiles(home: Path | None = None) -> list[str]:
    """Names of every profile found (the bureau's and the shipped ones)."""
    return sorted({p.stem for d in profile_dirs(home) if d.is_dir() for p in d.glob("*.yaml")})


def load_profile(name: str, home: Path | None = None) -> Profile:
    """Load profile ``name``.

    Arguments:
        name: the profile id (file stem).
        home: the Dangan home whose ``profiles/`` folder is searched first.

    Returns:
        The checked :class:`Profile`.

    Raises:
        ProfileError: unknown profile, YAML error, schema violation or inconsistency, each
            with the file and line.
    """
    for folder in profile_dirs(home):
        path = folder / f"{name}.yaml"
        if path.exists():
            return parse_profile(path)
    known = ", ".join(available_profiles(home))
    raise ProfileError(f"unknown metadata profile {name!r}; known: {known}")


def parse_profile(path: Path) -> Profile:
    """Read and check one profile file.

    Raises:
        ProfileError: every problem found, each with file and line.
    """
    try:
        doc = load_marked(path)
    except YamlDocError as exc:
        raise ProfileError(str(exc)) from exc
    # a shipped profile is checked by the tests (schema, regular expressions); a bureau's own
    # is checked whole at every start
    shipped = path.parent == SHIPPED
    problems = [] if shipped else schema_errors(doc, SCHEMA)
    if problems:
        raise ProfileError("invalid metadata profile:\n  " + "\n  ".join(problems))
    return _Builder(doc, defer_regex=shipped).build()


class DeferredPattern:
    """A regular expression compiled at its first use, standing in for ``re.Pattern``.

    The field patterns of a shipped profile are compiled by the tests; compiling the twenty of
    them at every start cost 30 ms of each command. (Code-form patterns are compiled at load
    either way: their named groups are checked then.)
    """

    __slots__ = ("pattern", "_compiled")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_compiled":  # copy/pickle probing an empty object
            raise AttributeError(name)
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return getattr(self._compiled, name)

    def __eq__(self, other: object) -> bool:
        return getattr(other, "pattern", None) == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"DeferredPattern({self.pattern!r})"


class _Builder:
    """Turns a schema-valid document into a Profile, collecting consistency errors."""

    def __init__(self, doc: MarkedDoc, defer_regex: bool = False) -> None:
        self.doc = doc
        self.defer_regex = defer_regex
        self.data: dict[str, Any] = doc.data
        self.problems: list[tuple[int, str]] = []

    def fail(self, where: tuple, message: str) -> None:
        self.problems.append((self.doc.line(where), f"{self.doc.at(where)}: {message}"))

    def build(self) -> Profile:
        data = self.data
        vocabularies = {name: Vocabulary(name, tuple(_term(t) for t in terms))
                        for name, terms in (data.get("vocabularies") or {}).items()}
        fields = tuple(self._field(i, f, vocabularies) for i, f in enumerate(data["fields"]))
        names = [f.name for f in fields]
        self._check_unique(names, fields)
        conditions = dict(data.get("conditions") or {})
        for name, cond in conditions.items():
            self._check_condition(cond, ("conditions", name), set(names), conditions)
        for index, spec in enumerate(fields):
            source = (spec.fill_from or "").partition(":")[0]
            if source and source not in names:
                self.fail(("fields", index, "fill_from"), f"unknown field {source!r}")
            if spec.condition:
                self._check_condition(spec.condition, ("fields", index, "condition"),
                                      set(names), conditions)
        codes = self._codes(set(names), conditions)
        rules = tuple(self._rule(i, r, set(names)) for i, r in enumerate(data.get("rules") or []))
        if self.problems:
            lines = [m for _, m in sorted(self.problems)]
            raise ProfileError("inconsistent metadata profile:\n  " + "\n  ".join(lines))
        norm = data.get("normalise") or {}
        normalise = Normalisation(
            interpuncts="".join(norm.get("interpunct", {}).get("from", DEFAULT_INTERPUNCTS)),
            interpunct=norm.get("interpunct", {}).get("to", "\u00b7"),
            hyphens="".join(norm.get("hyphen", {}).get("from", DEFAULT_HYPHENS)),
            hyphen=norm.get("hyphen", {}).get("to", "-"),
            trim_ideographic_space=bool(norm.get("trim_ideographic_space", True)))
        return Profile(
            id=data["id"], title=data["title"], version=str(data["version"]),
            aggregation=data["aggregation"], fields=fields, path=self.doc.path,
            vocabularies=vocabularies, conditions=conditions, codes=codes, rules=rules,
            normalise=normalise, header_markers=tuple(data.get("header_markers") or ("题名",)),
            status=str(data.get("status", "")))

    def _field(self, index: int, entry: dict[str, Any],
               vocabularies: dict[str, Vocabulary]) -> FieldSpec:
        where = ("fields", index)
        vocabulary = entry.get("vocabulary")
        if vocabulary is not None and vocabulary not in vocabularies:
            self.fail((*where, "vocabulary"), f"unknown vocabulary {vocabulary!r}")
        kind = entry.get("type", "string")
        return FieldSpec(
            name=entry["name"], zh=entry["zh"], req=entry.get("req", "O"),
            synonyms=tuple(str(s) for s in entry.get("synonyms", [])),
            is_list=kind == "list", pii=entry.get("pii", "none"), en=entry.get("en", ""),
            type=kind, vocabulary=vocabulary,
            separators=tuple(entry.get("separators", FieldSpec.separators)),
            regex=self._regex(entry.get("regex"), (*where, "regex"), deferred=self.defer_regex),
            regex_severity=entry.get("regex_severity", "error"),
            max_len=entry.get("max_len"), min=entry.get("min"), max=entry.get("max"),
            not_future=bool(entry.get("not_future", False)),
            expected_prefix=tuple(entry.get("expected_prefix", [])),
            default=None if entry.get("default") is None else str(entry["default"]),
            protect=entry.get("protect"), mask=entry.get("mask"),
            condition=entry.get("condition"), condition_text=entry.get("condition_text", ""),
            source=entry.get("source", "sheet"), store=entry.get("store", "code"),
            reject_values=tuple(entry.get("reject_values", [])),
            fill_from=entry.get("fill_from"))

    def _regex(self, pattern: str | None, where: tuple,
               deferred: bool = False) -> re.Pattern[str] | None:
        if pattern is None:
            return None
        if deferred:
            return DeferredPattern(pattern)  # type: ignore[return-value]
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.fail(where, f"regular expression does not compile: {exc}")
            return None

    def _check_unique(self, names: list[str], fields: tuple[FieldSpec, ...]) -> None:
        seen: dict[str, str] = {}
        for index, spec in enumerate(fields):
            if names.count(spec.name) > 1 and names.index(spec.name) != index:
                self.fail(("fields", index, "name"), f"field {spec.name!r} is defined twice")
            if spec.source != "sheet":
                continue
            for heading in (spec.zh, *spec.synonyms):
                key = normalise_heading(heading)
                if key in seen and seen[key] != spec.name:
                    self.fail(("fields", index), f"heading {heading!r} is already used by "
                                                 f"field {seen[key]!r}")
                seen.setdefault(key, spec.name)

    def _check_condition(self, cond: dict[str, Any], where: tuple, names: set[str],
                         named: dict[str, Any]) -> None:
        if "field" in cond and cond["field"] not in names:
            self.fail((*where, "field"), f"condition names unknown field {cond['field']!r}")
        if "ref" in cond and cond["ref"] not in named:
            self.fail((*where, "ref"), f"unknown named condition {cond['ref']!r}")
        for key in ("all", "any"):
            for index, sub in enumerate(cond.get(key, [])):
                self._check_condition(sub, (*where, key, index), names, named)
        if "not" in cond:
            self._check_condition(cond["not"], (*where, "not"), names, named)

    def _codes(self, names: set[str], conditions: dict[str, Any]) -> CodeRules | None:
        spec = self.data.get("archival_code")
        if not spec:
            return None
        if spec["field"] not in names:
            self.fail(("archival_code", "field"), f"unknown field {spec['field']!r}")
        forms = tuple(self._form(i, f, names) for i, f in enumerate(spec["forms"]))
        templates = []
        for index, entry in enumerate(spec.get("templates", [])):
            template = CodeTemplate(entry["template"], str(entry.get("fonds", "*")),
                                    entry.get("when"))
            where = ("archival_code", "templates", index)
            try:
                unknown = [p for p in template.placeholders() if p not in names]
            except ValueError as exc:
                self.fail((*where, "template"), f"template does not parse: {exc}")
                continue
            if unknown:
                self.fail((*where, "template"), f"template names unknown fields {unknown}")
            if template.when:
                self._check_condition(template.when, (*where, "when"), names, conditions)
            templates.append(template)
        return CodeRules(spec["field"], forms, int(spec.get("item_no_width", 4)),
                         spec.get("when_empty", "reject"), tuple(templates),
                         spec.get("gaps", "warning"))

    def _form(self, index: int, entry: dict[str, Any], names: set[str]) -> CodeForm:
        where = ("archival_code", "forms", index)
        regex = self._regex(entry["regex"], (*where, "regex")) or re.compile(r"(?!)")
        groups = set(regex.groupindex)
        wanted = [(g, (*where, "sequence")) for g in entry["sequence"]]
        wanted += [(g, (*where, "agree", g)) for g in entry.get("agree", {})]
        wanted += [(g, (*where, "fills", f)) for f, g in entry.get("fills", {}).items()
                   if not g.startswith("'")]
        if entry.get("volume_group"):
            wanted.append((entry["volume_group"], (*where, "volume_group")))
        for group, place in wanted:
            if group not in groups:
                self.fail(place, f"the regex has no group named {group!r}")
        for field_name in [*entry.get("agree", {}).values(), *entry.get("fills", {})]:
            if field_name not in names:
                self.fail(where, f"form {entry['name']!r} names unknown field {field_name!r}")
        return CodeForm(entry["name"], entry.get("zh", ""), entry["level"], regex,
                        tuple(entry["sequence"]), entry.get("volume_group"),
                        dict(entry.get("agree", {})), dict(entry.get("fills", {})))

    def _rule(self, index: int, entry: dict[str, Any], names: set[str]) -> Rule:
        for field_name in entry["fields"]:
            if field_name not in names:
                self.fail(("rules", index, "fields"), f"rule names unknown field {field_name!r}")
        return Rule(entry["id"], entry["kind"], tuple(entry["fields"]),
                    entry.get("severity", "error"))


def _term(entry: Any) -> Term:
    if not isinstance(entry, dict):
        return Term(str(entry))
    return Term(str(entry["code"]), entry.get("zh", ""), entry.get("en", ""),
                tuple(str(a) for a in entry.get("aliases", [])), entry.get("ingest", "allowed"))
