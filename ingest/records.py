"""Catalogue rows validated against the profile, with their 档号 claimed and retention decided.

Each row of the sheet becomes a :class:`RowRecord`: its normalised values, the profile
validator's findings, its parsed 档号 (or the one generated from the fonds' template), and the
retention period the policy gives it. The 档号 of the whole transfer are claimed in the
repository-wide register in one transaction, so duplicates against stored AIPs (or another
transfer being ingested) are found, and generated numbers never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ingest.analysis import Analysis
from ingest.sheet import SheetRow
from metadata_profiles import (
    ArchivalCode,
    Finding,
    Profile,
    RecordResult,
    Validator,
    finding,
    parse_code,
    render_template,
)
from policies import RetentionDecision, RetentionPolicy
from storage.catalogue import ClaimResult, CodeClaim, CodeRegistry, NumberRequest


@dataclass
class RowRecord:
    """One catalogue row, understood.

    Attributes:
        row: the sheet row.
        result: the validator's result (normalised values, parsed 档号, findings).
        generated: the 档号 generated for an empty cell, if any.
        retention: the retention decision (period and why).
    """

    row: SheetRow
    result: RecordResult
    generated: str | None = None
    retention: RetentionDecision | None = None

    @property
    def values(self) -> dict:
        """Normalised values by field name."""
        return self.result.values

    @property
    def code(self) -> ArchivalCode | None:
        """The parsed 档号 (written or generated)."""
        return self.result.code

    @property
    def findings(self) -> list[Finding]:
        """Every finding about this row."""
        return self.result.findings


@dataclass
class RecordSet:
    """Every row record of a transfer and what the register said.

    Attributes:
        rows: sheet row key -> record, in sheet order.
        claims: conflicts with the register and generated codes.
        held: bucket -> 件号 already held in the repository (for gap reports).
        columns: sheet-level findings (missing columns, GD-2-3).
    """

    rows: dict[str, RowRecord] = field(default_factory=dict)
    claims: ClaimResult = field(default_factory=ClaimResult)
    held: dict[str, set[int]] = field(default_factory=dict)
    columns: list[Finding] = field(default_factory=list)


def build_records(analysis: Analysis, profile: Profile, retention: RetentionPolicy,
                  today: date | None = None) -> RecordSet:
    """Validate every row and decide its retention (no database access)."""
    records = RecordSet()
    if analysis.sheet is None:
        return records
    validator = Validator(profile, today)
    records.columns = validator.columns(analysis.sheet.fields_present())
    for row in analysis.sheet.rows:
        result = validator.record(row.values)
        record = RowRecord(row, result)
        _decide_retention(record, profile, retention)
        records.rows[row.key] = record
    return records


def _decide_retention(record: RowRecord, profile: Profile, policy: RetentionPolicy) -> None:
    values = record.values
    written = record.row.values.get("retention_period", "")
    decision = policy.decide(str(values.get("jzfp_category") or ""), str(values.get("title", "")),
                             written if policy.period(written) else "")
    record.retention = decision
    if decision.period is None:
        return
    if not written.strip():
        # the schedule fills an empty 保管期限: the mandatory-field finding no longer holds
        record.result.findings = [f for f in record.findings if not (
            f.rule == "empty-mandatory" and f.field == "retention_period")]
        values["retention_period"] = decision.period


def claim_codes(records: RecordSet, profile: Profile, registry: CodeRegistry,
                transfer: str) -> None:
    """Claim the transfer's 档号 in the register and generate the empty ones.

    Generated codes are written into the records (values and parsed code), each with a
    GD-2-4 warning saying so; a row needing a code whose template lacks a value gets the
    GD-2-4 error instead.
    """
    rules = profile.codes
    if rules is None or not records.rows:
        return
    claims: dict[str, CodeClaim] = {}
    requests: list[NumberRequest] = []
    for record in records.rows.values():
        code = record.code
        if code is not None:
            claims[code.text] = CodeClaim(code.text, code.bucket, code.number, code.width,
                                          code.level)
            if code.volume and code.volume != code.text:
                volume = parse_code(code.volume, rules, profile.normalise)
                if volume is not None:
                    claims.setdefault(volume.text, CodeClaim(volume.text, volume.bucket,
                                                             volume.number, volume.width, "户卷"))
        elif record.result.needs_code:
            request = _number_request(record, profile)
            if request is None:
                record.findings.append(finding("code-empty-no-template",
                                               profile.field(rules.field)))
            else:
                requests.append(request)
    records.claims = registry.claim(transfer, claims.values(), requests)
    for record in records.rows.values():
        generated = records.claims.generated.get(record.row.key)
        if generated is None:
            continue
        record.generated = generated
        record.values[rules.field] = generated
        record.result.code = parse_code(generated, rules, profile.normalise)
        record.findings.append(finding("code-empty-generated", profile.field(rules.field),
                                       value=generated))
    buckets = {r.code.bucket for r in records.rows.values() if r.code is not None}
    records.held = registry.numbers(buckets)


def _number_request(record: RowRecord, profile: Profile) -> NumberRequest | None:
    rules = profile.codes
    template = record.result.template
    values = {k: str(v) for k, v in record.values.items()}
    width = rules.item_no_width
    try:
        sample = render_template(template.template, values, 1, width)
    except KeyError:
        return None
    code = parse_code(sample, rules, profile.normalise)
    if code is None:
        return None

    def render(number: int) -> str:
        return render_template(template.template, values, number, width)

    return NumberRequest(record.row.key, code.bucket, render, width)
