"""``dangan retention due`` (what reaches the end of its 保管期限, for appraisal) and
``dangan codes gaps`` (件号 missing from the repository's numbering)."""

from __future__ import annotations

import json
from datetime import date, datetime

import click

from policies import Settings


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


@click.group("retention")
def retention_group() -> None:
    """Retention (保管期限): what is due for appraisal."""


@retention_group.command("due")
@click.option("--before", callback=_parse_date, metavar="YYYY-MM-DD",
              help="List AIPs whose period ends on or before this date (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def due_command(settings: Settings, before: date, as_json: bool) -> int:
    """List AIPs whose retention period has ended (or will by --before), for appraisal."""
    from storage.appraisal import retention_due
    from storage.catalogue import Catalogue

    due = retention_due(Catalogue.open(settings), before)
    if as_json:
        click.echo(json.dumps({"before": before.isoformat(), "count": len(due),
                               "aips": [d.to_dict() for d in due]}, ensure_ascii=False, indent=2))
        return 0
    if not due:
        click.echo(f"no AIP reaches the end of its retention period by {before.isoformat()}")
        return 0
    click.echo(f"{len(due)} AIP(s) due for appraisal (鉴定) by {before.isoformat()}:")
    for entry in due:
        click.echo(f"  {entry.expiry_date}  {entry.retention_period:4}  {entry.uuid}  "
                   f"{entry.archival_code or '-'}  {entry.label}")
    return 0


@click.group("codes")
def codes_group() -> None:
    """档号 register: gaps in the numbering of what the repository holds."""


@codes_group.command("gaps")
@click.option("--prefix", default="", help="Only buckets starting with this (e.g. a 全宗号).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def gaps_command(settings: Settings, prefix: str, as_json: bool) -> int:
    """List 件号 missing from each numbering bucket (GD-2-6), across every stored AIP."""
    from metadata_profiles import format_numbers
    from storage.catalogue import Catalogue
    from storage.catalogue import CodeRegistry

    registry = CodeRegistry(Catalogue.open(settings))
    gaps = registry.gaps(prefix)
    widths = registry.widths(gaps)
    if as_json:
        click.echo(json.dumps({"prefix": prefix, "gaps": gaps}, ensure_ascii=False, indent=2))
        return 0
    if not gaps:
        click.echo("no gaps: every 件号 sequence runs from 1 without a break")
        return 0
    for bucket, numbers in gaps.items():
        click.echo(f"{bucket}  断号 {format_numbers(numbers, widths.get(bucket) or 4)}")
    return 0
