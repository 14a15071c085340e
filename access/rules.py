"""The access rules: who may see what. Every page, API answer, search result, facet count,
preview, download and DIP asks this module, and nothing else decides.

A record (an item — 件 or 户卷 — of an AIP) has four facts: its open date (formation + 25
years unless a recorded review decision says otherwise, Archives Law 2020 Art. 27), its control
flag (控制标识 开放/控制), its personal-information level (none / personal / sensitive, PIPL
Art. 28) and whether it belongs to a household file (restricted by default whatever its age).

A reader is a role (admin, archivist, auditor, researcher, public) plus the access requests
(查档申请) an archivist granted them. From the two follows one :class:`Tier`:

* ``content`` — every field (ID numbers masked), files, previews, downloads;
* ``masked`` — an open record holding personal information: de-identified fields only;
* ``listed`` — a restricted record: de-identified title, 档号 and non-personal fields;
* ``hidden`` — not even its existence.

ID numbers are masked (6 digits + ******** + 4) for every role; the names and other personal
values of a record are replaced by ``××`` wherever a de-identified view shows text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

from metadata_profiles.idnumbers import mask_id_number as _mask_one
from metadata_profiles.idnumbers import mask_id_numbers, normalise_id_number
from policies import Settings

ROLES = ("admin", "archivist", "auditor", "researcher", "public")
ACCOUNT_ROLES = tuple(r for r in ROLES if r != "public")
"""The roles an account can hold (``public`` is the anonymous visitor)."""
STAFF = frozenset({"admin", "archivist"})

#: what each role may do besides reading records (the record tiers are decided below)
CAPABILITIES: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "manage-users",
            "approve-appraisal",
            "propose-appraisal",
            "view-appraisal",
            "witness-destruction",
            "place-holds",
            "decide-requests",
            "record-decisions",
            "print-labels",
            "view-events",
            "view-audit-log",
            "view-fixity",
            "view-ingest",
            "list-restricted",
            "request-access",
        }
    ),
    "archivist": frozenset(
        {
            "propose-appraisal",
            "view-appraisal",
            "witness-destruction",
            "place-holds",
            "decide-requests",
            "record-decisions",
            "print-labels",
            "view-events",
            "view-fixity",
            "view-ingest",
            "list-restricted",
        }
    ),
    "auditor": frozenset(
        {"view-events", "view-audit-log", "view-fixity", "view-ingest", "list-restricted",
         "witness-destruction", "place-holds", "view-appraisal"}
    ),
    "researcher": frozenset({"list-restricted", "request-access"}),
    "public": frozenset(),
}

MASK = "××"
PHONE = re.compile(r"(?<![0-9])(1[3-9]\d)\d{4}(\d{4})(?![0-9])")
BANK_ACCOUNT = re.compile(r"(?<![0-9])(\d{4})\d{8,11}(\d{4})(?![0-9])")


class Tier(str, Enum):
    """How much of a record a reader sees (see the module docstring)."""

    CONTENT = "content"
    MASKED = "masked"
    LISTED = "listed"
    HIDDEN = "hidden"


# fields a restricted record may show (title and 档号 level); masked views add more
LISTED_FIELDS: tuple[str, ...] = (
    "archival_code",
    "title",
    "year",
    "date",
    "retention_period",
    "jzfp_category",
    "category_code",
    "fonds_code",
    "aggregation_level",
    "page_count",
    "doc_type",
    "document_no",
    "creating_unit",
    "security_class",
    "language",
)


@dataclass(frozen=True)
class Rules:
    """The access policy as the rules use it.

    Attributes:
        policy: the loaded access policy (:func:`policies.access.load_access_policy`): open
            dates, PII levels per field, household records, the control flag and its
            recorded decisions. None: the built-in defaults below decide.
        profile_levels: field -> PII level the metadata profile declares.
        open_after_years: years after formation a record opens (without a policy).
        personal_fields, sensitive_fields: fields of personal / sensitive information; their
            values are removed from de-identified views and masked wherever they appear.
        household_markers: fields whose presence makes a record part of a household file.
        listed_fields: fields a restricted listing shows (de-identified).
        masked_fields: fields an open record with personal information shows (de-identified).
        public_facets: facets a listed or masked record may be counted under.
        public_sees_open: anonymous visitors see open records.
        grant_max_days: the longest an access request may be granted for.
    """

    policy: Any = None
    profile_levels: Mapping[str, str] = field(default_factory=dict)
    open_after_years: int = 25
    personal_fields: frozenset[str] = frozenset(
        {
            "head_name",
            "household_system_id",
            "household_ref",
            "members",
            "member_names",
            "phone",
            "address",
            "bank_name",
            "box_qr_id",
        }
    )
    sensitive_fields: frozenset[str] = frozenset(
        {
            "head_id_number",
            "poverty_causes",
            "monitoring_risks",
            "health",
            "disease",
            "disability",
            "bank_account",
            "minors",
        }
    )
    household_markers: frozenset[str] = frozenset(
        {"head_name", "head_id_number", "household_ref", "household_system_id"}
    )
    listed_fields: tuple[str, ...] = LISTED_FIELDS
    masked_fields: tuple[str, ...] = LISTED_FIELDS + (
        "creator",
        "village_code",
        "household_type",
        "identified_year",
        "exit_year",
        "remarks",
    )
    public_facets: tuple[str, ...] = (
        "category",
        "year",
        "date",
        "retention",
        "level",
        "formats",
        "county",
        "township",
    )
    public_sees_open: bool = True
    grant_max_days: int = 366

    @property
    def version(self) -> str:
        """A digest of the rules and the policy (the search access view is rebuilt when it
        changes, e.g. after a decision is added to the policy file)."""
        body = repr(
            sorted(
                (k, sorted(v) if isinstance(v, (frozenset, dict)) else v)
                for k, v in self.__dict__.items()
                if k != "policy"
            )
        )
        if self.policy is not None:
            body += repr({k: v for k, v in vars(self.policy).items() if k != "path"})
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def load_rules(settings: Settings) -> Rules:
    """The rules from the access policy (``policies/access``) and the profile's PII levels.

    Raises:
        ConfigError: the access policy is invalid (file and line in the message).
    """
    from policies.access import load_access_policy

    policy = load_access_policy(settings)
    try:
        from metadata_profiles import load_profile

        levels = dict(load_profile(settings.get("ingest", "profile"), settings.home).pii_levels())
    except Exception:  # noqa: BLE001 - a profile that does not load declares no PII levels
        levels = {}
    return rules_for(policy, levels)


def rules_for(policy: Any, profile_levels: Mapping[str, str] | None = None) -> Rules:
    """Rules built on a loaded access policy and the profile's field PII levels."""
    base = Rules()
    levels = {**(profile_levels or {})}
    for name, level in dict(getattr(policy, "field_pii", {}) or {}).items():
        levels[name] = level
    personal = {f for f, lv in levels.items() if lv == "personal"}
    sensitive = {f for f, lv in levels.items() if lv not in ("none", "personal")}
    markers = set(getattr(policy, "household_fields", ()) or ()) | set(base.household_markers)
    return Rules(
        policy=policy,
        profile_levels=dict(profile_levels or {}),
        open_after_years=int(getattr(policy, "open_after_years", 25)),
        personal_fields=base.personal_fields | personal,
        sensitive_fields=base.sensitive_fields | sensitive,
        household_markers=frozenset(markers),
    )


# -- readers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Who is asking: a role, a user name (None for anonymous visitors) and the records
    granted to them by 查档申请 — ``(aip_uuid, item_key or None for the whole AIP)``."""

    role: str = "public"
    username: str | None = None
    grants: frozenset[tuple[str, str | None]] = frozenset()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")

    @property
    def staff(self) -> bool:
        return self.role in STAFF

    @property
    def actor(self) -> str:
        """The name recorded in the audit log."""
        return self.username or "anonymous"

    def can(self, capability: str) -> bool:
        """Whether the role has a capability (e.g. ``print-labels``)."""
        return capability in CAPABILITIES[self.role]

    def granted(self, aip_uuid: str, item_key: str | None) -> bool:
        """Whether a live grant covers this record (a grant on the AIP covers its items)."""
        return (aip_uuid, None) in self.grants or (
            item_key is not None and (aip_uuid, item_key) in self.grants
        )


PUBLIC = Reader()


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFacts:
    """What the rules need to know of one record."""

    aip_uuid: str
    item_key: str | None
    open_date: date | None
    control: str  # 开放 | 控制
    pii_level: str  # none | personal | sensitive
    household: bool
    personal_values: tuple[str, ...] = ()

    def is_open(self, today: date) -> bool:
        """Open to the public: flag 开放 and the open date reached."""
        return self.control == "开放" and self.open_date is not None and self.open_date <= today


@dataclass(frozen=True)
class Decision:
    """A recorded review decision (开放审核) on a record: a new open date and/or flag."""

    open_date: date | None = None
    control: str | None = None


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _year(fields: Mapping[str, Any]) -> int | None:
    for key in ("date", "year"):
        text = str(fields.get(key) or "")[:4]
        if text.isdigit():
            return int(text)
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if _present(value) else None
    except ValueError:
        return None


def personal_values(fields: Mapping[str, Any], rules: Rules) -> tuple[str, ...]:
    """The strings that identify a person in this record (names, numbers), longest first."""
    found: set[str] = set()
    for name in rules.personal_fields | rules.sensitive_fields:
        value = fields.get(name)
        for v in value if isinstance(value, list) else [value]:
            text = str(v).strip() if _present(v) and not isinstance(v, dict) else ""
            if len(text) >= 2 and name not in ("poverty_causes", "monitoring_risks"):
                found.add(text)
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def record_facts(
    aip_uuid: str,
    item_key: str | None,
    fields: Mapping[str, Any],
    *,
    level: str | None,
    rules: Rules,
    aip_open_date: Any = None,
    parent_fields: Mapping[str, Any] | None = None,
    decision: Decision | None = None,
) -> RecordFacts:
    """Work out a record's facts from its catalogue fields, its AIP and any decision.

    The access policy assesses the record as if its open date had passed (the date itself is
    compared with today whenever the record is read, so a record opens on the day without any
    recomputation); a decision recorded in the portal overrides the policy's.
    """
    merged = {**(parent_fields or {}), **fields}
    if rules.policy is not None:
        assessed = rules.policy.assess(
            merged,
            level=level,
            profile_levels=rules.profile_levels,
            aip_uuid=aip_uuid,
            today=date.max,
        )
        open_date, control = assessed.open_date, assessed.control_id
        pii, household = assessed.pii_level, assessed.household
    else:
        household = level == "户卷" or any(_present(merged.get(m)) for m in rules.household_markers)
        if any(_present(merged.get(f)) for f in rules.sensitive_fields):
            pii = "sensitive"
        elif any(_present(merged.get(f)) for f in rules.personal_fields):
            pii = "personal"
        else:
            pii = "none"
        open_date = _as_date(fields.get("open_date")) or _as_date(aip_open_date)
        if open_date is None:
            year = _year(fields) or _year(merged)
            open_date = date(year + rules.open_after_years, 12, 31) if year else None
        control = "控制" if household or pii != "none" else "开放"
    if decision is not None:
        open_date = decision.open_date or open_date
        control = decision.control or control
    return RecordFacts(
        aip_uuid, item_key, open_date, control, pii, household, personal_values(merged, rules)
    )


def tier(reader: Reader, facts: RecordFacts, rules: Rules, today: date | None = None) -> Tier:
    """How much of one record a reader sees."""
    today = today or date.today()
    if reader.staff or reader.granted(facts.aip_uuid, facts.item_key):
        return Tier.CONTENT
    if reader.role == "public" and not rules.public_sees_open:
        return Tier.HIDDEN
    if facts.is_open(today):
        return Tier.CONTENT if facts.pii_level == "none" else Tier.MASKED
    return Tier.LISTED if reader.can("list-restricted") else Tier.HIDDEN


def needs_audit(reader: Reader, facts: RecordFacts, shown: Tier, today: date | None = None) -> bool:
    """Whether showing this record to this reader is an access to restricted material."""
    return shown is not Tier.HIDDEN and not facts.is_open(today or date.today())


# -- masking -------------------------------------------------------------------------------


def mask_id_number(value: str) -> str:
    """``630121195402144291`` -> ``630121********4291`` (GB 11643 numbers, 18 or 15 long,
    written in any form :mod:`metadata_profiles.idnumbers` recognises)."""
    return _mask_one(value)


def mask_numbers(text: str) -> str:
    """Mask every ID number in a text (for every reader, everywhere text is shown): written
    together, in 6-8-4 groups with spaces or dashes, in full-width digits, with ``x``."""
    return mask_id_numbers(str(text))


def deidentify(text: str, values: Sequence[str]) -> str:
    """Mask ID numbers, phone and account numbers and the record's personal values."""
    text = mask_numbers(str(text))
    text = PHONE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
    text = BANK_ACCOUNT.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    for value in values:
        text = text.replace(value, MASK)
    return text


def _shown_value(name: str, value: Any, values: Sequence[str], deid: bool) -> Any:
    if name == "head_id_number" or name.endswith("id_number"):
        text = str(value)
        return mask_id_number(text) if normalise_id_number(text) or "*" * 8 in text \
            else "*" * 8
    if isinstance(value, list):
        return [_shown_value(name, v, values, deid) for v in value]
    if isinstance(value, str):
        return deidentify(value, values) if deid else mask_numbers(value)
    return value


def visible_fields(
    fields: Mapping[str, Any], facts: RecordFacts, shown: Tier, rules: Rules
) -> dict[str, Any]:
    """The fields of a record as this tier shows them (empty for hidden)."""
    if shown is Tier.HIDDEN:
        return {}
    if shown is Tier.CONTENT:
        return {k: _shown_value(k, v, facts.personal_values, False) for k, v in fields.items()}
    allowed = rules.listed_fields if shown is Tier.LISTED else rules.masked_fields
    return {
        k: _shown_value(k, fields[k], facts.personal_values, True)
        for k in allowed
        if k in fields and _present(fields[k])
    }


def visible_title(title: str, facts: RecordFacts, shown: Tier) -> str:
    """A record's title for this tier (de-identified unless the reader sees the content)."""
    if shown is Tier.CONTENT:
        return mask_numbers(title)
    return deidentify(title, facts.personal_values) if shown is not Tier.HIDDEN else ""


def file_allowed(shown: Tier) -> bool:
    """Whether the reader may see, preview or download a record's files."""
    return shown is Tier.CONTENT


# -- the search index's access view ---------------------------------------------------------


def public_facets(facets: Mapping[str, Any], rules: Rules) -> dict[str, Any]:
    """The facets a record may be counted under when the reader does not see its content."""
    return {k: v for k, v in facets.items() if k in rules.public_facets}


def public_search_text(
    facts: RecordFacts,
    fields: Mapping[str, Any],
    title: str,
    archival_code: str | None,
    rules: Rules,
) -> tuple[str, str]:
    """De-identified title and text a reader without the content may match and see."""
    public_title = deidentify(title, facts.personal_values)
    shown = visible_fields(fields, facts, Tier.LISTED, rules)
    parts = [archival_code or ""] + [
        " ".join(map(str, v)) if isinstance(v, list) else str(v)
        for k, v in shown.items()
        if k not in ("title", "archival_code")
    ]
    return public_title, "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Scope:
    """What a reader may find in search, in a form every engine can apply.

    A document matches on its full text when the reader may see its content: ``everything``
    (staff), or it is open (开放, open date passed) with no personal information, or its
    record is in ``grants``. Otherwise it may match only on its public (de-identified) text:
    open records with personal information always, restricted ones when ``list_restricted``.
    Facet counts of such documents use their public facets only.
    """

    everything: bool = False
    today: str = ""
    list_restricted: bool = False
    see_open: bool = True
    grants: frozenset[tuple[str, str | None]] = frozenset()

    def content_visible(self, row: Mapping[str, Any]) -> bool:
        """Whether a document (its access row: control, open_date, pii_level) shows content."""
        if self.everything:
            return True
        key = (row["aip_uuid"], row.get("item_key"))
        if (key[0], None) in self.grants or key in self.grants:
            return True
        return self.see_open and self._open(row) and row.get("pii_level") == "none"

    def listed_visible(self, row: Mapping[str, Any]) -> bool:
        """Whether a document may appear with its public view."""
        if self.everything or row.get("control") is None:
            return self.everything
        return (self.see_open and self._open(row)) or self.list_restricted

    def sql(self, kind: str, alias: str = "a") -> tuple[str, dict[str, Any]]:
        """The same test as SQL over an access row (``kind`` content or listed), so that an
        engine can filter before it fetches; the Python tests above still apply after."""
        params: dict[str, Any] = {"scope_today": self.today}
        opened = (
            f"({alias}.control = '开放' AND {alias}.open_date IS NOT NULL "
            f"AND {alias}.open_date <= :scope_today)"
        )
        if self.everything:
            return "1=1", params
        if kind == "listed":
            if self.list_restricted:
                return "1=1", params
            return (opened if self.see_open else "0=1"), params
        parts = [f"({opened} AND {alias}.pii_level = 'none')"] if self.see_open else []
        for n, (aip, item) in enumerate(sorted(self.grants, key=lambda g: (g[0], g[1] or ""))):
            params[f"scope_a{n}"] = aip
            if item is None:
                parts.append(f"{alias}.aip_uuid = :scope_a{n}")
            else:
                params[f"scope_i{n}"] = item
                parts.append(f"({alias}.aip_uuid = :scope_a{n} AND {alias}.item_key = :scope_i{n})")
        return "(" + (" OR ".join(parts) or "0=1") + ")", params

    def _open(self, row: Mapping[str, Any]) -> bool:
        return (
            row.get("control") == "开放"
            and bool(row.get("open_date"))
            and str(row["open_date"]) <= self.today
        )


def scope_for(reader: Reader, rules: Rules, today: date | None = None) -> Scope:
    """The search scope of a reader."""
    return Scope(
        everything=reader.staff,
        today=(today or date.today()).isoformat(),
        list_restricted=reader.can("list-restricted"),
        see_open=reader.role != "public" or rules.public_sees_open,
        grants=reader.grants,
    )


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def live_grants(
    rows: Iterable[Any], now: datetime | None = None
) -> frozenset[tuple[str, str | None]]:
    """The grants still in force among access-request rows (granted and not expired)."""
    now = now or utcnow()
    out = set()
    for row in rows:
        expires = row.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        if row.status == "granted" and (expires is None or expires > now):
            out.add((row.aip_uuid, row.item_key))
    return frozenset(out)


__all__ = [
    "CAPABILITIES",
    "Decision",
    "MASK",
    "PUBLIC",
    "ROLES",
    "Reader",
    "RecordFacts",
    "Rules",
    "Scope",
    "Tier",
    "deidentify",
    "file_allowed",
    "live_grants",
    "load_rules",
    "mask_id_number",
    "mask_numbers",
    "needs_audit",
    "personal_values",
    "public_facets",
    "public_search_text",
    "record_facts",
    "rules_for",
    "scope_for",
    "tier",
    "visible_fields",
    "visible_title",
]
