"""Copies and their locations on the command line.

``dangan storage status``           per location: AIPs, bytes, unverified and missing copies;
                                    what interrupted work left
``dangan storage clean``            remove those leftovers when nothing claims them
``dangan storage migrate FROM TO``  move copies, each verified at TO before FROM's is deleted
``dangan replicate``                bring a new or lagging location up to the storage policy
``dangan delete AIP --reason``      delete an AIP whose retention has ended (refused otherwise)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from policies import Settings
from storage.copies import DEFAULT_OLDER_THAN

if TYPE_CHECKING:
    from storage.copies import ReplicationReport


def _printer(as_json: bool):
    from storage.copies import CopyAction

    def show(action: CopyAction) -> None:
        if not as_json:
            source = f" <- {action.source}" if action.source else ""
            click.echo(f"  {action.action:9} {action.location:12} {action.aip}{source}"
                       + (f"  {action.detail}" if action.detail else ""))
    return show


def _finish(report: ReplicationReport, as_json: bool) -> int:
    summary = report.to_dict()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(summary["counts"].items())) or "nothing"
        click.echo(f"done: {counts}")
    return 1 if report.failed else 0


@click.group("storage")
def storage_group() -> None:
    """Archival storage: where the copies are, and moving them."""


@storage_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--no-check", is_flag=True,
              help="Only the catalogue's view; do not list the copies in storage.")
@click.pass_obj
def status_command(settings: Settings, as_json: bool, no_check: bool) -> int:
    """Per location: AIPs, bytes, unverified and missing copies; then what interrupted work
    left (half-written or uncatalogued copies, staging runs, interrupted transfers). Exit 1
    if anything is wrong or left over."""
    from storage.catalogue import Catalogue
    from storage.copies import find_remnants, human_size, storage_status

    catalogue = Catalogue.open(settings)
    rows = storage_status(settings, catalogue, check=not no_check)
    remnants = find_remnants(settings, catalogue) if not no_check else None
    if as_json:
        click.echo(json.dumps({"locations": [r.to_dict() for r in rows],
                               "leftovers": remnants.to_dict() if remnants else None},
                              ensure_ascii=False, indent=2))
    else:
        click.echo(f"{'location':12} {'AIPs':>6} {'bytes':>10} {'unverified':>10} "
                   f"{'missing':>7} {'locked':>6}  classes / url")
        for r in rows:
            click.echo(f"{r.name:12} {r.aips:6d} {human_size(r.bytes):>10} {r.unverified:10d} "
                       f"{r.missing:7d} {r.locked:6d}  {','.join(r.classes) or '-'}  {r.url}")
            if r.error:
                click.echo(f"  error: {r.error}")
            for line in r.problems:
                click.echo(f"  {line}")
        if remnants and remnants.remnants:
            click.echo(f"\nleft by interrupted work ({len(remnants.problems)} to clean up: "
                       "dangan storage clean --dry-run):")
            for remnant in remnants.remnants:
                click.echo(f"  {remnant.describe()}")
    healthy = all(r.healthy for r in rows) and not (remnants and remnants.problems)
    return 0 if healthy else 1


@storage_group.command("clean")
@click.option("--older-than", default=DEFAULT_OLDER_THAN, show_default=True,
              help="Only what was last written longer ago than this (90s, 30m, 12h, 7d, 0).")
@click.option("--abandon-interrupted", is_flag=True,
              help="Also give up interrupted transfers: remove their complete uncatalogued "
                   "copies (a re-run would adopt them) and mark them abandoned.")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--by", help="Who cleans (default: the login name).")
@click.pass_obj
def clean_command(settings: Settings, older_than: str, abandon_interrupted: bool,
                  dry_run: bool, as_json: bool, by: str | None) -> int:
    """Remove what interrupted ingests, replications and repairs left and nothing claims.

    Never touched: what a running ingest holds, anything younger than --older-than, and a
    complete copy no transfer claims (it may be the only record of an AIP: dangan rebuild).
    """
    from storage.catalogue import Catalogue
    from storage.copies import clean, human_size, parse_age

    report = clean(settings, Catalogue.open(settings), older_than=parse_age(older_than),
                   abandon=abandon_interrupted, dry_run=dry_run, actor=_login(by))
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for outcome in report.outcomes:
            click.echo(f"  {outcome.action:12} {outcome.remnant.describe()}"
                       + (f"\n               {outcome.reason}" if outcome.reason else ""))
        for name, error in report.errors.items():
            click.echo(f"  error: {name}: {error}")
        data = report.to_dict()
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {data['removed']} ({human_size(data['removed_bytes'])}), kept "
                   f"{data['kept']}, failed {data['failed']}")
    return 1 if report.failed or report.errors else 0


def _login(by: str | None) -> str:
    import getpass

    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "dangan"


@storage_group.command("migrate")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--aip", "aips", multiple=True, help="Only this AIP (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be done.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def migrate_command(settings: Settings, source: str, target: str, aips: tuple[str, ...],
                    dry_run: bool, as_json: bool) -> int:
    """Move the copies at location FROM to location TO (both named in the policy).

    Every copy is written and read back at TO first; only then are FROM's copies deleted,
    except those a server lock still protects (reported as kept).
    """
    from storage.catalogue import Catalogue
    from storage.copies import Replicator

    replicator = Replicator(settings, Catalogue.open(settings), progress=_printer(as_json))
    return _finish(replicator.migrate(source, target, aips, dry_run=dry_run), as_json)


@click.command("replicate")
@click.option("--location", "locations", multiple=True,
              help="Only this location (repeatable; default: every location).")
@click.option("--aip", "aips", multiple=True, help="Only this AIP (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be done.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def replicate_command(settings: Settings, locations: tuple[str, ...], aips: tuple[str, ...],
                      dry_run: bool, as_json: bool) -> int:
    """Give every AIP the verified copies the storage policy requires (exit 1 if one fails)."""
    from storage.catalogue import Catalogue
    from storage.copies import Replicator

    replicator = Replicator(settings, Catalogue.open(settings), progress=_printer(as_json))
    return _finish(replicator.replicate(locations, aips, dry_run=dry_run), as_json)


@click.command("delete")
@click.argument("aip")
@click.option("--reason", required=True, help="The appraisal (鉴定) decision, recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def delete_command(settings: Settings, aip: str, reason: str, as_json: bool) -> int:
    """Delete an AIP and all its copies: refused while its retention runs or a lock holds."""
    from storage.catalogue import Catalogue
    from storage.copies import Replicator

    replicator = Replicator(settings, Catalogue.open(settings), progress=_printer(as_json))
    return _finish(replicator.delete(aip, reason), as_json)
