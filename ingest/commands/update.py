"""``dangan update``: the next version of an AIP (added, replaced, withdrawn files; records)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from policies import Settings


@click.command("update")
@click.argument("aip")
@click.option("--add", "adds", multiple=True, metavar="PATH[:DEST]",
              help="Add a file (DEST: its path in the AIP, under data/objects/; default its name).")
@click.option("--replace", "replaces", multiple=True, metavar="DEST:PATH",
              help="Replace the file DEST of the AIP with PATH.")
@click.option("--withdraw", "withdraws", multiple=True, metavar="DEST",
              help="Withdraw the file DEST (it stays in the earlier versions).")
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False),
              help="A catalogue sheet whose rows correct (same 档号) or add records.")
@click.option("--reason", required=True, help="Why (recorded in PREMIS and the history).")
@click.option("--agent", default="dangan", show_default=True, help="Who makes the update.")
@click.option("--profile", help="Metadata profile (default from dangan.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def update_command(settings: Settings, aip: str, adds: tuple[str, ...],
                   replaces: tuple[str, ...], withdraws: tuple[str, ...], record: Path | None,
                   reason: str, agent: str, profile: str | None, as_json: bool) -> int:
    """Make the next version of an AIP; every new file is checked as at ingest."""
    from ingest.update import UpdateRequest, logical, parse_add, parse_replace, update

    request = UpdateRequest(aip, reason, [parse_add(a) for a in adds],
                            [parse_replace(r) for r in replaces],
                            [logical(w) for w in withdraws], record, agent)
    result = update(request, settings, profile)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return result.exit_code
    if result.status == "rejected":
        from ingest.commands.ingest import _echo_failures

        click.echo(f"拒绝更新 rejected: AIP {result.aip}（未做任何改动）", err=True)
        _echo_failures(result)   # type: ignore[arg-type]
        click.echo(f"report: {result.report_html}", err=True)
        return result.exit_code
    verb = "已完成（此前中断的同一更新）" if result.status == "already-updated" else "已更新"
    click.echo(f"{verb} updated: AIP {result.aip} 第 {result.version} 版")
    for kind, label in (("added", "新增"), ("replaced", "替换"), ("withdrawn", "撤回")):
        for path in result.changes.get(kind, []):
            click.echo(f"  {label} {path}")
    for change in result.changes.get("records", []):
        click.echo(f"  著录 {change['archival_code']}: {', '.join(change['fields'])}")
    if result.report_html:
        click.echo(f"report: {result.report_html}")
    return 0
