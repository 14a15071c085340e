"""Preservation planning's sub-commands: ``dangan formats report`` (the risk register of the
holdings) and ``dangan migrate`` (a newer rule applied to stored AIPs)."""

from __future__ import annotations

import json
from typing import Any

import click

from policies import Settings


@click.group("formats")
def formats_group() -> None:
    """保存规划：馆藏格式 (preservation planning: the formats of the holdings)."""


@formats_group.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (for scripts).")
@click.pass_obj
def formats_report_command(settings: Settings, as_json: bool) -> int:
    """格式风险登记：每种格式的文件数与字节数、保存副本、适用规则、未识别文件。

    The risk register of the holdings, from the catalogue: count and bytes per PUID, which
    have a preservation (or access) copy, which rule applies, which files are unidentified.
    """
    from ingest.formats_register import register
    from ingest.planning import preservation_rule_of
    from policies import load_format_policy
    from storage.catalogue import Catalogue

    catalogue = Catalogue.open(settings)
    with catalogue.session() as s:
        data = register(s, load_format_policy(settings), preservation_rule_of(settings))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    _print_register(data)
    return 0


def _print_register(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich import box
    from rich.table import Table

    from ingest.formats_register import describe_rule
    from storage.copies import human_size

    console = Console()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  show_edge=False, title=f"馆藏格式风险登记：{data['aips']} 个 AIP，{data['files']} 个原件，"
                        f"{human_size(data['bytes'])}")
    table.add_column("PUID", no_wrap=True)
    table.add_column("格式", no_wrap=True, overflow="ellipsis", max_width=12)
    for name, width in (("文件数", 6), ("字节", 9), ("AIP", 3), ("保存副本", 8),
                        ("利用副本", 8), ("待迁移", 6)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    actions = {"allow": "允许", "warn": "警告", "reject": "拒绝"}
    rules_text = []
    for row in data["formats"]:
        waiting = (row["without_preservation_copy_the_rule_asks_for"]
                   + row["without_access_copy_the_rule_asks_for"])
        table.add_row(row["puid"] or "未识别", row["format_name"], str(row["files"]),
                      human_size(row["bytes"]), str(row["aips"]),
                      str(row["with_preservation_copy"]), str(row["with_access_copy"]),
                      f"[bold red]{waiting}[/]" if waiting else "0")
        policy = row["ingest_policy"]
        ingest = actions.get(policy["action"], policy["action"]) + (
            f"（{policy['reason']}）" if policy.get("reason") else "")
        rules = "；".join(describe_rule(r) for r in row["preservation_rules"]) or \
            describe_rule(None)
        rules_text.append(f"[bold]{row['puid'] or '未识别'}[/]  接收：{ingest}\n    保存规则：{rules}")
    console.print(table)
    console.print("适用规则（待迁移：规则要求派生文件而尚未生成的原件数，dangan migrate --puid 处理）")
    for line in rules_text:
        console.print("  " + line)
    if data["derivatives"]:
        made = Table(title="已有派生文件")
        for name in ("用途", "PUID", "格式", "文件数", "字节"):
            made.add_column(name)
        for d in data["derivatives"]:
            made.add_row({"preservation": "保存副本", "access": "利用副本"}[d["role"]],
                         d["puid"] or "未识别", d["format_name"], str(d["files"]),
                         human_size(d["bytes"]))
        console.print(made)
    if data["unidentified"]:
        console.print(f"[bold]未识别格式的文件 {len(data['unidentified'])} 个：[/]")
        for f in data["unidentified"]:
            console.print(f"  {f['archival_code'] or f['aip']}  {f['path']}  "
                          f"{human_size(f['size'])}")
    else:
        console.print("未识别格式的文件：无")


@click.command("migrate")
@click.option("--puid", required=True, help="The format (PRONOM PUID) to migrate, e.g. fmt/40.")
@click.option("--to", "target", help="Only the conversions to this target (e.g. PDF/A-2b).")
@click.option("--aip", "aips", multiple=True, help="Only this AIP (UUID or 档号); repeatable.")
@click.option("--dry-run", is_flag=True, help="List what would be done; write nothing.")
@click.option("--reason", default="", help="Why (recorded in PREMIS and the history).")
@click.option("--agent", default="dangan", show_default=True, help="Who runs the migration.")
@click.option("--queue", "queue", is_flag=True, help="Queue it as a job for dangan worker.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def migrate_command(settings: Settings, puid: str, target: str | None, aips: tuple[str, ...],
                    dry_run: bool, reason: str, agent: str, queue: bool, as_json: bool) -> int:
    """格式迁移：按保存规则为已保存的 AIP 生成派生文件，每个受影响的 AIP 形成新版本。

    Apply the preservation rule for PUID to the stored AIPs: each affected AIP gets a new
    version holding the derivatives (PREMIS migration events, derivation relationships).
    Killed part-way, the same command finishes the work; run again, it changes nothing.
    """
    from ingest.migrate import MigrateRequest, migrate

    if queue:
        if dry_run:
            from policies import UsageError

            raise UsageError("--queue 与 --dry-run 不能同时使用")
        from storage.catalogue import Catalogue
        from storage.jobs import JobQueue

        payload = {"puid": puid, "target": target, "aips": list(aips), "reason": reason,
                   "agent": agent}
        job = JobQueue(Catalogue.open(settings)).add(
            "migrate", payload, dedupe_key=f"migrate:{puid}:{target or ''}:{','.join(aips)}")
        click.echo(json.dumps({"job": job}) if as_json else
                   f"已排队 queued: 迁移作业 {job}（dangan worker 运行）")
        return 0
    result = migrate(MigrateRequest(puid, target, list(aips), dry_run, agent, reason),
                     settings)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return result.exit_code
    _print_migration(result)
    return result.exit_code


def _print_migration(result: Any) -> None:
    states = {"to-do": "待转换", "present": "已有", "passed": "已转换并通过检验",
              "failed": "失败（保留原件）", "not-checked": "未转换"}
    statuses = {"planned": "将迁移", "migrated": "已迁移", "already-migrated": "已完成（此前中断）",
                "unchanged": "无需迁移", "failed": "有失败"}
    head = "演练（不写入任何内容）" if result.dry_run else "迁移"
    click.echo(f"{head} {result.puid}" + (f" → {result.target}" if result.target else "")
               + f"：{len(result.aips)} 个 AIP")
    for a in result.aips:
        version = f" 第 {a.version} 版" if a.version else ""
        click.echo(f"  {a.archival_code or a.aip}  [{statuses.get(a.status, a.status)}]{version}")
        for f in a.files:
            line = (f"    {f.source} → {f.derivative}  {f.target}（{f.tool}）  "
                    f"{states.get(f.state, f.state)}")
            click.echo(line + (f"：{f.message[:200]}" if f.message and f.state != "passed"
                               else ""))
    if not result.aips:
        click.echo("  没有该格式的馆藏文件")
