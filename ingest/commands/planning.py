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
    from rich.table import Table

    from ingest.formats_register import describe_rule
    from storage.copies import human_size

    console = Console()
    table = Table(title=f"馆藏格式风险登记：{data['aips']} 个 AIP，{data['files']} 个原件，"
                        f"{human_size(data['bytes'])}")
    for name, justify in (("PUID", "left"), ("格式", "left"), ("文件数", "right"),
                          ("字节", "right"), ("AIP", "right"), ("有保存副本", "right"),
                          ("有利用副本", "right"), ("待迁移", "right"), ("接收规则", "left"),
                          ("保存规则", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    actions = {"allow": "允许", "warn": "警告", "reject": "拒绝"}
    for row in data["formats"]:
        policy = row["ingest_policy"]
        ingest = actions.get(policy["action"], policy["action"])
        if policy.get("reason"):
            ingest += f"：{policy['reason']}"
        rules = "；".join(describe_rule(r) for r in row["preservation_rules"]) or (
            describe_rule(None) if data["preservation_policy"] else "-")
        waiting = (row["without_preservation_copy_the_rule_asks_for"]
                   + row["without_access_copy_the_rule_asks_for"])
        table.add_row(row["puid"] or "未识别", row["format_name"], str(row["files"]),
                      human_size(row["bytes"]), str(row["aips"]),
                      str(row["with_preservation_copy"]), str(row["with_access_copy"]),
                      f"[bold red]{waiting}[/]" if waiting else "0", ingest, rules)
    console.print(table)
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
