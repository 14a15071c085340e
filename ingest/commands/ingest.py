"""Ingest's sub-commands: ``dangan ingest`` and ``dangan sample-transfer``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from policies import Settings

if TYPE_CHECKING:
    from ingest.pipeline import IngestResult


#: phases counted in bytes; the others count files or AIPs
_BYTE_PHASES = {"stage", "verify"}
_PHASE_NAMES = {"stage": "暂存并计算摘要 staging", "identify": "识别格式 identifying",
                "check": "检测 checked (files)", "build": "封装 AIP built",
                "verify": "写入存储并回读校验 storing", "store": "已存储 AIP stored",
                "pending": "全文待识别 text pending (AIPs)", "text": "全文识别 OCR text jobs"}
#: phases whose total is one AIP's, not the whole ingest's: only the amount done is shown
_OPEN_PHASES = {"verify"}


def _progress_bar(enabled: bool):
    """A rich progress display on stderr (one line per phase, with its count), or a no-op
    when stderr is not a terminal."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.filesize import decimal
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.fields[amount]}"), TimeElapsedColumn(),
                        console=Console(stderr=True))
    tasks: dict[str, int] = {}

    def amount(phase: str, done: float, total: float | None) -> str:
        if phase in _BYTE_PHASES:
            return decimal(int(done)) + (f" / {decimal(int(total))}" if total else "")
        return f"{int(done)}" + (f" / {int(total)}" if total else "")

    def update(phase: str, done: int, total: int | None) -> None:
        total = None if phase in _OPEN_PHASES else total
        if phase not in tasks:
            tasks[phase] = progress.add_task(_PHASE_NAMES.get(phase, phase), total=total,
                                             amount="")
        task = progress.tasks[tasks[phase]]
        completed = task.completed + done
        progress.update(tasks[phase], completed=completed, total=total,
                        amount=amount(phase, completed, total))

    return progress, update


@click.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--profile", help="Metadata profile (default from dangan.toml: jzfp).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--accept-valid", is_flag=True,
              help="Accept the units (household volumes) that pass every check and list the "
                   "rest for resubmission, instead of refusing the whole transfer.")
@click.option("--as-update", is_flag=True,
              help="Household volumes already held (same 档号) get a new version with the new "
                   "or changed files and their corrected rows; the others become new AIPs.")
@click.option("--reason", help="With --as-update: the reason recorded for each new version.")
@click.option("--wait-for-text", is_flag=True,
              help="Run the text jobs (OCR of scans and images) before returning, instead of "
                   "leaving them to dangan worker or dangan serve.")
@click.pass_obj
def ingest_command(settings: Settings, path: Path, profile: str | None, as_json: bool,
                   accept_valid: bool, as_update: bool, reason: str | None,
                   wait_for_text: bool) -> int:
    """Ingest a transfer: a folder, a BagIt bag, or a .zip / .tar / .tar.gz file.

    The AIPs are stored, verified and catalogued before this returns; OCR of pages without a
    text layer and of images is queued as text jobs (records show 全文待识别 until they ran)
    unless --wait-for-text is given."""
    from ingest.pipeline import ingest

    if as_update:
        return _as_update(settings, path, profile, as_json, reason)

    progress, update = _progress_bar(not as_json and sys.stderr.isatty())
    text: dict[str, int] | None = None
    if progress:
        with progress:
            result = ingest(path, settings, profile, update, accept_valid=accept_valid)
            if result.text_jobs and wait_for_text:
                update("text", 0, len(result.text_jobs))
                text = _wait(settings, result.text_jobs, update)
            elif result.text_jobs:
                update("pending", len(result.text_jobs), len(result.text_jobs))
    else:
        result = ingest(path, settings, profile, accept_valid=accept_valid)
        text = _wait(settings, result.text_jobs, None) if wait_for_text else None
    if as_json:
        if wait_for_text:
            result_dict = result.to_dict()
            result_dict["text"] = text
            click.echo(json.dumps(result_dict, ensure_ascii=False, indent=2))
            return result.exit_code
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return result.exit_code
    if result.mapping:
        unmapped = [line.strip() for line in result.mapping.splitlines() if "未映射" in line
                    or "无著录" in line]
        click.echo(f"E-ARK SIP: 著录映射见 AIP 的 data/metadata/submission/eark-sip/映射说明.txt"
                   + (f"；未映射 {len(unmapped)} 项:" if unmapped else ""), err=True)
        for line in unmapped[:20]:
            click.echo(f"  {line}", err=True)
    if result.status == "rejected":
        click.echo(f"拒收 rejected: transfer {result.transfer_id}", err=True)
        _echo_failures(result)
        click.echo(f"report: {result.report_html}", err=True)
        return result.exit_code
    verb = {"already-ingested": "already ingested",
            "partially-accepted": "部分接收 partially accepted"}.get(result.status, "accepted")
    click.echo(f"{verb}: transfer {result.transfer_id}, {len(result.aips)} AIP(s)")
    for aip in result.aips:
        click.echo(f"  {aip['uuid']}  {aip['archival_code'] or '-'}  {aip['label']}")
    if result.rejected_units:
        click.echo(f"退回重新移交 to resubmit: {len(result.rejected_units)} unit(s)", err=True)
        for unit in result.rejected_units:
            click.echo(f"  {unit['archival_code'] or '-'}  {unit['label']}", err=True)
            for problem in unit["problems"][:10]:
                click.echo(f"    - {problem['code']} {problem.get('message', problem['name'])}",
                           err=True)
    if result.text_jobs and text is None:
        click.echo(f"全文待识别 text pending: {len(result.text_jobs)} AIP(s), OCR queued as jobs "
                   f"{', '.join(map(str, result.text_jobs))} (dangan worker or dangan serve "
                   "runs them)")
    elif text is not None and result.text_jobs:
        click.echo(f"全文识别 text jobs: {text['done']} done, {text['failed']} failed")
    click.echo(f"report: {result.report_html}")
    return result.exit_code


def _as_update(settings: Settings, path: Path, profile: str | None, as_json: bool,
               reason: str | None) -> int:
    from ingest.update import ingest_as_update

    result = ingest_as_update(path, settings, profile, reason)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return result.exit_code
    for update in result.updates:
        if update.status == "rejected":
            click.echo(f"拒绝更新 rejected: AIP {update.aip}", err=True)
            _echo_failures(update)   # type: ignore[arg-type]
        else:
            click.echo(f"第 {update.version} 版: AIP {update.aip}  新增 "
                       f"{len(update.changes.get('added', []))}，替换 "
                       f"{len(update.changes.get('replaced', []))}，更正著录 "
                       f"{len(update.changes.get('records', []))}")
    for uuid in result.unchanged:
        click.echo(f"无变化 unchanged: AIP {uuid}")
    if result.ingested is not None:
        new = [a for a in result.ingested.aips]
        click.echo(f"新 AIP new: {len(new)}")
        for aip in new:
            click.echo(f"  {aip['uuid']}  {aip['archival_code'] or '-'}  {aip['label']}")
    return result.exit_code


def _wait(settings: Settings, job_ids: list[int], update) -> dict[str, int] | None:
    """Run (or wait for) the text jobs of an ingest, reporting jobs finished."""
    if not job_ids:
        return None
    from ingest.textjobs import wait_for_text

    seen = [0]

    def advance(done: int, total: int) -> None:
        if update:
            update("text", done - seen[0], total)
        seen[0] = done

    return wait_for_text(settings, job_ids, advance)


def _echo_failures(result: IngestResult) -> None:
    """The rejecting checks and their problems, on stderr."""
    for failure in result.failures:
        click.echo(f"  {failure['code']} {failure['name']}: {failure['message']}", err=True)
        errors = [p for p in failure["problems"] if p.get("severity") != "warning"]
        for problem in errors[:20]:
            where = ", ".join(f"{label}{problem[k]}" for k, label in (
                ("path", ""), ("sheet", "sheet "), ("row", "row "), ("column", "column "))
                if problem.get(k) is not None)
            click.echo(f"    - {problem['message']}" + (f" [{where}]" if where else ""),
                       err=True)
        if len(failure["problems"]) > min(len(errors), 20):
            more = len(failure["problems"]) - min(len(errors), 20)
            click.echo(f"    … {more} more (warnings included) in the report", err=True)


@click.command("sample-transfer")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--households", default=5, show_default=True, help="Household volumes to make.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same bytes.")
@click.option("--defects", multiple=True, metavar="KIND",
              help="Add a realistic mistake (repeatable); see --list-defects.")
@click.option("--csv", "as_csv", is_flag=True, help="Write the catalogue sheet as CSV.")
@click.option("--county", default="630121", show_default=True, metavar="CODE",
              help="The county (GB/T 2260 code) the transfer comes from; see --list-counties.")
@click.option("--fonds", metavar="QNNN", help="全宗号 (default: the county's own).")
@click.option("--list-defects", is_flag=True, help="List the defect kinds and exit.")
@click.option("--list-counties", is_flag=True, help="List the counties and exit.")
def sample_transfer_command(out: Path, households: int, seed: int, defects: tuple[str, ...],
                            as_csv: bool, county: str, fonds: str | None, list_defects: bool,
                            list_counties: bool) -> int:
    """Generate a realistic (fictional) 精准扶贫 transfer from a county office.

    Besides the household volumes' PDFs, photos and DOCX plans, its 综合 folder holds a
    Word 97 DOC, a DOCX, an Excel 97 XLS, a PDF 1.7 without PDF/A and a bilevel TIFF scan:
    the formats the preservation plan normalises.
    """
    from ingest import sample_transfer

    if list_defects:
        for kind, what in sample_transfer.DEFECT_KINDS.items():
            click.echo(f"{kind:14} {what}")
        return 0
    if list_counties:
        for c in sample_transfer.COUNTIES.values():
            click.echo(f"{c.code}  {c.fonds}  {c.name}")
        return 0
    try:
        summary = sample_transfer.generate(out, households=households, seed=seed,
                                           defects=defects, county=county, fonds=fonds,
                                           sheet_format="csv" if as_csv else "xlsx")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"{summary.out}: {summary.households} households, {summary.file_count} files, "
               f"{summary.total_bytes} bytes")
    for kind, what in summary.defects:
        click.echo(f"  defect {kind}: {what}")
    settings = click.get_current_context().find_root().obj
    home = getattr(settings, "home", None)
    if home is not None and Path(home).is_dir() and summary.places:
        from metadata_profiles import add_places

        path = add_places(home, summary.places)
        click.echo(f"  place names of its county, townships and villages ({len(summary.places)}) "
                   f"added to {path}")
    return 0
