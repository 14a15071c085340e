"""Fixity sub-commands: ``dangan audit`` (+ ``report``, ``premis``), ``dangan audit-log``,
``dangan repair`` and ``dangan apikey``.

Exit codes: ``audit`` 0 when every copy checked is intact at the end (repaired ones
included), 1 when a copy is still bad (unrepaired, awaiting approval, unrepairable) or could
not be checked; ``audit-log verify`` 1 when the log was tampered with; ``audit report`` 1
when coverage is incomplete.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import click

from policies import Settings

if TYPE_CHECKING:
    from storage.fixity import CheckOutcome


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "dangan"


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


class _Progress:
    """Progress on stderr: a bar on a terminal, one line per copy otherwise."""

    def __init__(self, enabled: bool, bar: bool) -> None:
        self.enabled, self.bar = enabled, bar
        self.rich: Any = None
        self.task: Any = None
        self.base = 0

    def __enter__(self) -> Self:
        if self.enabled and self.bar:
            from rich.console import Console
            from rich.progress import (

                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.rich = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self.rich.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.rich is not None:
            self.rich.__exit__(*exc)

    def __call__(self, kind: str, **info: Any) -> None:
        if not self.enabled:
            return
        if kind == "plan":
            what = "继续被中断的审计" if info["resumed"] else "审计"
            depth = ("全量校验，逐字节读取" if info["depth"] == "full"
                     else "快速校验，不读取内容")
            message = (f"{what} {info['run']}: {info['copies']} 个副本待校验（{depth}），"
                       f"{_human(info['bytes'])}" + (f"（已完成 {info['done']} 个）"
                                                     if info["done"] else ""))
            if self.rich is not None:
                self.task = self.rich.add_task("固定性校验", total=info["bytes"] or None)
                self.rich.console.print(message)
            else:
                click.echo(message, err=True)
        elif kind == "copy-start":
            self.base = 0
        elif kind == "bytes" and self.rich is not None and self.task is not None:
            self.rich.update(self.task, advance=info["done"] - self.base)
            self.base = info["done"]
        elif kind == "copy-done":
            from storage.fixity import summarise_kinds

            outcome: CheckOutcome = info["outcome"]
            # a quick result in words that cannot be taken for a fixity pass
            word = f"{outcome.outcome.upper():5}" if outcome.depth == "full" else outcome.label
            line = (f"  {word} {outcome.depth} {outcome.aip_uuid} @ "
                    f"{outcome.location}: {outcome.files_read} files read"
                    + (f", {outcome.files_resumed} from checkpoint" if outcome.files_resumed
                       else "")
                    + (f" — {summarise_kinds(outcome.findings)}" if outcome.findings else "")
                    + (f" — {outcome.note}" if outcome.outcome == "error" else ""))
            if self.rich is not None:
                self.rich.console.print(line)
            else:
                click.echo(line, err=True)


@click.group("audit", invoke_without_command=True)
@click.option("--aip", help="Check every copy of this AIP (UUID or unique prefix).")
@click.option("--location", help="Only copies at this storage location.")
@click.option("--all", "everything", is_flag=True,
              help="Every copy in scope, not only those due by the fixity policy.")
@click.option("--quick", is_flag=True,
              help="Quick check: presence, size, stored checksum; no bytes read.")
@click.option("--no-repair", is_flag=True, help="Only check; do not repair or request repairs.")
@click.option("--dry-run", is_flag=True, help="Show which copies are due, check nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--by", help="Who runs the audit (default: the login name).")
@click.pass_context
def audit_command(ctx: click.Context, aip: str | None, location: str | None, everything: bool,
                  quick: bool, no_repair: bool, dry_run: bool, as_json: bool,
                  by: str | None) -> int:
    """Check the fixity of stored copies (those due, --all, one --aip or one --location),
    repair bad copies as the fixity policy says, and resume an interrupted audit."""
    if ctx.invoked_subcommand is not None:
        return 0
    settings: Settings = ctx.obj
    if aip and not quick and not dry_run:
        # one AIP's large files are read while the rest of the audit loads
        from storage.fixity import readahead

        readahead.start(settings, aip, location)
    try:
        return _audit(ctx, settings, aip, location, everything, quick, no_repair, dry_run,
                      as_json, by)
    finally:
        if aip and not quick and not dry_run:
            readahead.finish()


def _audit(ctx: click.Context, settings: Settings, aip: str | None, location: str | None,
           everything: bool, quick: bool, no_repair: bool, dry_run: bool, as_json: bool,
           by: str | None) -> int:
    from storage.fixity import Auditor, AuditRequest

    request = AuditRequest("quick" if quick else "full", aip, location, everything,
                           not no_repair, _actor(by))
    with _Progress(not as_json, sys.stderr.isatty()) as progress, \
            Auditor(settings, progress=progress) as auditor:
        if dry_run:
            return _show_plan(auditor, request, as_json)
        try:
            result = auditor.run(request)
        except KeyboardInterrupt:
            click.echo("审计已中断；再次运行同一命令即从中断处继续 (interrupted: run the same "
                       "command again to resume)", err=True)
            return 130
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_result(result)
    ctx.exit(result.exit_code)
    return result.exit_code


def _show_plan(auditor: Any, request: Any, as_json: bool) -> int:
    plan = auditor.plan(request)
    data = {"copies": [{"aip": c.aip_uuid, "location": c.location, "bytes": c.bytes,
                        "reason": c.reason, "last_full": c.last_full.isoformat()
                        if c.last_full else None} for c in plan.copies],
            "deferred": [{"aip": c.aip_uuid, "location": c.location, "bytes": c.bytes}
                         for c in plan.deferred],
            "bytes": plan.bytes, "budget": plan.budget, "read_today": plan.read_today}
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    click.echo(f"{len(plan.copies)} copies due, {_human(plan.bytes)}"
               + (f"; {len(plan.deferred)} more left for later by the daily budget"
                  if plan.deferred else ""))
    for c in plan.copies:
        click.echo(f"  {c.reason:9} {c.aip_uuid} @ {c.location}  {_human(c.bytes)}  "
                   f"last full {c.last_full.isoformat() if c.last_full else 'never'}")
    return 0


def _print_result(result: Any) -> None:
    from storage.fixity import describe_findings
    from storage.fixity import summarise_kinds

    summary = result.summary()
    found = (f"{summary['passed']} passed" if result.depth == "full" else
             f"{summary['present']} quick check: present and sized (no bytes read: not a "
             "fixity result)")
    click.echo(f"audit {result.run_id} ({result.depth}{', resumed' if result.resumed else ''}): "
               f"{summary['copies']} copies, {found}, {summary['failed']} "
               f"failed, {summary['errors']} not completed; {summary['files_read']} files / "
               f"{_human(summary['bytes_read'])} read in {summary['seconds']:.1f} s"
               + (f"; {summary['files_resumed']} files taken from the checkpoint"
                  if summary["files_resumed"] else ""))
    for check in result.checks:
        if not check.found_nothing:
            click.echo(f"\n{check.label} {check.aip_uuid} @ {check.location} "
                       f"({check.depth}): {summarise_kinds(check.findings) or check.note}")
            if check.findings:
                click.echo("  " + describe_findings(check.findings, 20).replace("\n", "\n  "))
    for repair in result.repairs:
        if repair.status == "done":
            click.echo(f"\n已修复 repaired {repair.aip_uuid} @ {repair.location}: {repair.detail}; "
                       "re-checked: pass")
        elif repair.status == "pending":
            click.echo(f"\n待批准 awaiting approval: {repair.aip_uuid} @ {repair.location}: "
                       f"dangan repair approve {repair.id}")
        elif repair.status == "unrepairable":
            click.secho(f"\n严重 CRITICAL: AIP {repair.aip_uuid} has no intact copy to repair "
                        f"{repair.location} from — {repair.detail}", err=True, fg="red", bold=True)
        else:
            click.secho(f"\n修复失败 repair failed: {repair.aip_uuid} @ {repair.location}: "
                        f"{repair.detail}", err=True, fg="red")
    if summary["deferred_by_budget"]:
        click.echo(f"\n{summary['deferred_by_budget']} due copies are left for the next days by "
                   "the daily byte budget")


@audit_command.command("report")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for fixity-report.html/.csv/.json "
                   "(default $DANGAN_HOME/reports/fixity/<date>).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout.")
@click.pass_obj
def report_command(settings: Settings, out: Path | None, as_json: bool) -> None:
    """Write the auditors' report: last full check per copy, coverage yes/no and gaps."""
    from storage.catalogue import Catalogue
    from storage.catalogue import utcnow
    from storage.fixity import build_report, write_reports

    report = build_report(Catalogue.open(settings), settings)
    folder = out or settings.home / "reports" / "fixity" / utcnow().strftime("%Y%m%dT%H%M%SZ")
    paths = write_reports(report, folder)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"所有副本均在周期内完成全量校验：{'是' if report.covered else '否'} "
                   f"({len(report.copies) - len(report.not_covered)}/{len(report.copies)} copies)")
        for row in report.not_covered[:50]:
            click.echo(f"  {row.aip_uuid} @ {row.location}: {row.reason}")
        for kind, path in paths.items():
            click.echo(f"{kind}: {path}", err=True)
    click.get_current_context().exit(0 if report.covered else 1)


@audit_command.command("premis")
@click.argument("aip")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
@click.pass_obj
def premis_command(settings: Settings, aip: str, out: Path | None) -> None:
    """Export an AIP's PREMIS record (files, every event incl. each fixity check, agents)."""
    from storage.catalogue import Catalogue
    from storage.fixity import premis_xml

    xml = premis_xml(Catalogue.open(settings), aip)
    if out is None:
        sys.stdout.buffer.write(xml)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(xml)
        click.echo(f"{out}: {len(xml)} bytes", err=True)


@click.group("audit-log")
def audit_log_group() -> None:
    """The tamper-evident audit log: verify, anchor, show."""


@audit_log_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def verify_command(settings: Settings, as_json: bool) -> None:
    """Verify the hash chain, the recorded head, the catalogue's facts the log must account
    for, and the anchors kept in storage (exit 1 on any finding)."""
    from storage.catalogue import Catalogue
    from storage.catalogue import auditlog

    result = auditlog.verify(Catalogue.open(settings), settings)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        state = "intact" if result.intact else "TAMPERED"
        click.echo(f"audit log {state}: {result.entries} entries, head {result.head_seq} "
                   f"{result.head_hash[:16]}…")
        for problem in result.problems:
            click.echo(f"  {problem.kind}: {problem.message}")
        for anchor in result.anchors:
            note = {"ok": "agrees", "mismatch": "DISAGREES", "unreadable": "DISAGREES",
                    "missing": "MISSING", "none": "not-checked",
                    "unavailable": "not-checked"}[anchor.status]
            click.echo(f"  anchor at {anchor.location}: {note}"
                       + (f" (entry {anchor.seq}, written {anchor.written_at})"
                          if anchor.seq and anchor.status != "missing" else "")
                       + (f" — {anchor.message}" if anchor.message and anchor.status != "ok"
                          else ""))
        if not result.anchored:
            click.echo("  not-checked: no anchor in storage could be compared; a rewrite of the "
                       "whole database would not be detected yet (dangan audit-log anchor)")
    click.get_current_context().exit(0 if result.intact else 1)


@audit_log_group.command("anchor")
@click.option("--replace-damaged", is_flag=True,
              help="Write over anchors that are unreadable or gone (recorded in the log); "
                   "never over one the database contradicts.")
@click.option("--by", help="Who decides (default: the login name).")
@click.pass_obj
def anchor_command(settings: Settings, replace_damaged: bool, by: str | None) -> None:
    """Write the chain head into every storage location now (after verifying the log and
    cross-checking it with the catalogue)."""
    from storage.catalogue import Catalogue
    from storage.catalogue import auditlog

    result = auditlog.write_anchors(Catalogue.open(settings), settings, cross_check=True,
                                    replace_damaged=replace_damaged, actor=_actor(by))
    if not result.intact:
        for problem in result.problems:
            click.echo(f"  {problem.kind}: {problem.message}", err=True)
        click.echo("the audit log does not verify: no anchor written"
                   + ("" if replace_damaged or not all(
                       p.kind in ("unreadable-anchor", "missing-anchor")
                       for p in result.problems)
                      else " (--replace-damaged writes over damaged anchors, and says so in "
                           "the log)"), err=True)
        click.get_current_context().exit(1)
    for anchor in result.anchors:
        click.echo(f"{anchor.location}: {anchor.message or 'up to date'} (entry {anchor.seq})")


@audit_log_group.command("show")
@click.option("-n", "--last", default=20, show_default=True, help="How many entries.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_log_command(settings: Settings, last: int, as_json: bool) -> None:
    """Show the latest audit-log entries."""
    from storage.catalogue import Catalogue
    from storage.catalogue import auditlog

    entries = auditlog.recent_entries(Catalogue.open(settings), last)
    if as_json:
        click.echo(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    for e in entries:
        click.echo(f"{e['seq']:6} {e['at']} {e['actor']:12} {e['action']:18} {e['object']}")


@click.group("repair")
def repair_group() -> None:
    """Repairs of bad copies: list, approve, reject."""


@repair_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def repair_list_command(settings: Settings, as_json: bool) -> None:
    """Repairs waiting for approval."""
    from storage.fixity import Auditor
    from storage.fixity import Repairer

    with Auditor(settings) as auditor:
        rows = Repairer(auditor).pending()
    data = [{"repair": r.id, "aip": r.aip_uuid, "location": r.location,
             "created_at": r.created_at.isoformat(), "findings": len(r.findings)} for r in rows]
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for r in data:
        click.echo(f"{r['repair']}  {r['aip']} @ {r['location']}  {r['findings']} findings  "
                   f"{r['created_at']}")
    if not data:
        click.echo("no repair waits for approval")


@repair_group.command("approve")
@click.argument("repair_id")
@click.option("--by", help="The approving archivist (default: the login name).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def repair_approve_command(settings: Settings, repair_id: str, by: str | None,
                           as_json: bool) -> None:
    """Approve a repair and carry it out now."""
    from storage.fixity import Auditor
    from storage.fixity import Repairer

    actor = _actor(by)
    with Auditor(settings) as auditor, auditor.exclusive():
        result = Repairer(auditor).execute(repair_id, actor=actor, approved_by=actor)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"{result.status}: {result.aip_uuid} @ {result.location}: {result.detail}")
    click.get_current_context().exit(0 if result.status == "done" else 1)


@repair_group.command("reject")
@click.argument("repair_id")
@click.option("--by", help="The deciding archivist (default: the login name).")
@click.option("--reason", default="", help="Why the repair is not done.")
@click.pass_obj
def repair_reject_command(settings: Settings, repair_id: str, by: str | None, reason: str) -> None:
    """Close a repair request without repairing (the copy stays damaged)."""
    from storage.fixity import Auditor
    from storage.fixity import Repairer

    with Auditor(settings) as auditor:
        Repairer(auditor).reject(repair_id, actor=_actor(by), reason=reason)
    click.echo(f"rejected {repair_id}")


@click.group("apikey")
def apikey_group() -> None:
    """Auditor API keys for the Storage-Service-compatible API (read-only)."""


@apikey_group.command("create")
@click.argument("username")
@click.option("--note", default="", help="What the key is for.")
@click.option("--by", help="Who creates it (default: the login name).")
@click.pass_obj
def apikey_create_command(settings: Settings, username: str, note: str, by: str | None) -> None:
    """Create a key; it is printed once on stdout and never stored or logged."""
    from storage.catalogue import Catalogue
    from storage.fixity import apikeys

    key, info = apikeys.create_key(Catalogue.open(settings), username, actor=_actor(by),
                                   note=note)
    click.echo(key)
    click.echo(f"key {info.id} for {info.username} (read-only auditor); shown only now",
               err=True)


@apikey_group.command("revoke")
@click.argument("key_id_or_user")
@click.option("--by", help="Who revokes it (default: the login name).")
@click.pass_obj
def apikey_revoke_command(settings: Settings, key_id_or_user: str, by: str | None) -> None:
    """Revoke one key (by its id) or every key of a user."""
    from storage.catalogue import Catalogue
    from storage.fixity import apikeys

    for info in apikeys.revoke_key(Catalogue.open(settings), key_id_or_user, actor=_actor(by)):
        click.echo(f"revoked {info.id} ({info.username})")


@apikey_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def apikey_list_command(settings: Settings, as_json: bool) -> None:
    """List keys (ids, users, dates; never the keys)."""
    from storage.catalogue import Catalogue
    from storage.fixity import apikeys

    keys = apikeys.list_keys(Catalogue.open(settings))
    if as_json:
        click.echo(json.dumps([k.__dict__ for k in keys], ensure_ascii=False, indent=2))
        return
    for k in keys:
        click.echo(f"{k.id}  {k.username:16} {k.role:8} created {k.created_at} by {k.created_by}"
                   f"  {'revoked ' + k.revoked_at if k.revoked_at else 'active'}  {k.note}")
