"""Appraisal and disposition on the command line: ``dangan appraisal …`` and ``dangan hold …``.

Every step is taken by a signed-in account: ``--as USER`` with that account's password (from
the environment variable ``--password-env`` names, else asked at the terminal). The workflow's
rules (no self-approval, holds, revisions, the witness) are enforced by
:mod:`storage.appraisal`; the capabilities of the account's role are checked here.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from policies import Settings, UsageError


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def _password(user: str, env: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        return click.prompt(f"{user} 的密码", hide_input=True)
    raise UsageError(f"the password of {user} is needed: set ${env} or run at a terminal")


def _signed_in(settings: Settings, user: str, env: str, capability: str) -> str:
    """The account's name once its password is checked and its role may do ``capability``."""
    from access.accounts import LoginRefused, authenticate
    from access.rules import CAPABILITIES
    from storage.catalogue import Catalogue

    catalogue = Catalogue.open(settings)
    try:
        account = authenticate(catalogue, user, _password(user, env), remote="cli")
    except LoginRefused as exc:
        raise UsageError(f"{user}: sign-in refused ({exc})") from exc
    if capability not in CAPABILITIES.get(account.role, frozenset()):
        raise click.ClickException(f"{user} ({account.role}) may not {capability}")
    return account.username


def _as_options(func: Any) -> Any:
    func = click.option("--password-env", default="DANGAN_PASSWORD", show_default=True,
                        metavar="VAR", help="Environment variable holding the password.")(func)
    return click.option("--as", "user", required=True, metavar="USER",
                        help="The account taking this step.")(func)


@click.group("appraisal")
def appraisal_group() -> None:
    """Appraisal (鉴定): batches, decisions, approval by another person, destruction."""


@appraisal_group.command("propose")
@click.option("--title", required=True, help="The batch's title (鉴定批次名称).")
@click.option("--due-before", callback=_date, metavar="YYYY-MM-DD",
              help="Take every AIP whose 保管期限 (open review: 开放 date) ends by then.")
@click.option("--aip", "aips", multiple=True, help="An AIP to include (repeatable).")
@click.option("--open-review", is_flag=True, help="An open review (开放审核) batch.")
@click.option("--json", "as_json", is_flag=True)
@_as_options
@click.pass_obj
def propose_command(settings: Settings, title: str, due_before: date | None,
                    aips: tuple[str, ...], open_review: bool, as_json: bool, user: str,
                    password_env: str) -> int:
    """Make a batch (鉴定批次) of AIPs for the committee, each with a suggested decision."""
    from storage.appraisal import batch_summary, propose
    from storage.catalogue import Catalogue

    actor = _signed_in(settings, user, password_env, "propose-appraisal")
    catalogue = Catalogue.open(settings)
    batch_id, skipped = propose(catalogue, title=title, proposer=actor, aips=aips,
                                due_before=due_before,
                                kind="open-review" if open_review else "disposal")
    summary = batch_summary(catalogue, batch_id)
    if as_json:
        _echo_json({**summary, "skipped": skipped})
        return 0
    click.echo(f"{batch_id}: {len(summary['entries'])} AIP(s), proposed by {actor}")
    for line in skipped:
        click.echo(f"  left out: {line}")
    return 0


@appraisal_group.command("decide")
@click.argument("batch")
@click.option("--aip", help="The AIP decided on.")
@click.option("--decision", help="destroy | extend:D10 | extend:D30 | permanent | review "
                                  "(open review: open | control | review).")
@click.option("--reason", help="鉴定意见.")
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An XLSX with the columns AIP (or 档号), 鉴定意见/decision and 理由/reason.")
@_as_options
@click.pass_obj
def decide_command(settings: Settings, batch: str, aip: str | None, decision: str | None,
                   reason: str | None, sheet: Path | None, user: str, password_env: str) -> int:
    """Record the committee's decision on one AIP, or on many from a sheet."""
    from storage.appraisal import batch_summary, decide
    from storage.catalogue import Catalogue

    actor = _signed_in(settings, user, password_env, "propose-appraisal")
    catalogue = Catalogue.open(settings)
    if sheet is not None:
        rows = _sheet_decisions(sheet, batch_summary(catalogue, batch)["entries"])
    elif aip and decision and reason:
        rows = [(aip, decision, reason)]
    else:
        raise UsageError("appraisal decide: give --aip, --decision and --reason, or --sheet")
    reopened = False
    for uuid, chosen, why in rows:
        reopened = decide(catalogue, batch, uuid, chosen, why, actor) or reopened
    click.echo(f"{batch}: {len(rows)} decision(s) recorded"
               + ("; the batch went back to draft and needs a new approval" if reopened else ""))
    return 0


_AIP_HEADINGS = ("aip", "AIP")
_CODE_HEADINGS = ("档号",)
_DECISION_HEADINGS = ("decision", "鉴定意见", "处置")
_REASON_HEADINGS = ("reason", "理由", "依据")
_DECISION_WORDS = {"销毁": "destroy", "延长至定期10年": "extend:D10", "延长至定期30年": "extend:D30",
                   "延长": "extend:D30", "转为永久": "permanent", "永久": "permanent",
                   "继续审查": "review", "开放": "open", "控制": "control"}


def _sheet_decisions(path: Path, entries: list[dict]) -> list[tuple[str, str, str]]:
    """(aip, decision, reason) of each row; a bad row is named, and nothing is recorded."""
    import openpyxl

    by_code = {e["archival_code"]: e["aip"] for e in entries if e["archival_code"]}
    sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    if not rows:
        raise UsageError(f"{path.name}: the sheet is empty")
    head = [str(h or "").strip() for h in rows[0]]

    def column(names: tuple[str, ...]) -> int | None:
        return next((i for i, h in enumerate(head) if h in names), None)

    aip_col, code_col = column(_AIP_HEADINGS), column(_CODE_HEADINGS)
    dec_col, why_col = column(_DECISION_HEADINGS), column(_REASON_HEADINGS)
    if (aip_col is None and code_col is None) or dec_col is None or why_col is None:
        raise UsageError(f"{path.name}: row 1 must name AIP or 档号, 鉴定意见 and 理由 "
                         f"(found: {', '.join(h for h in head if h) or 'nothing'})")
    out, problems = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        uuid = str(row[aip_col] or "").strip() if aip_col is not None else ""
        if not uuid and code_col is not None:
            uuid = by_code.get(str(row[code_col] or "").strip(), "")
        word = str(row[dec_col] or "").strip()
        why = str(row[why_col] or "").strip()
        if not uuid:
            problems.append(f"row {number}: no AIP of the batch")
        elif not why:
            problems.append(f"row {number}: no reason (理由)")
        else:
            out.append((uuid, _DECISION_WORDS.get(word, word), why))
    if problems:
        raise UsageError(f"{path.name}: " + "; ".join(problems))
    return out


@appraisal_group.command("show")
@click.argument("batch")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_command(settings: Settings, batch: str, as_json: bool) -> int:
    """A batch: its state, approvals and each AIP's decision and outcome."""
    from storage.appraisal import batch_summary
    from storage.catalogue import Catalogue

    summary = batch_summary(Catalogue.open(settings), batch)
    if as_json:
        _echo_json(summary)
        return 0
    click.echo(f"{summary['id']}  {summary['title']}  [{summary['status_label']}] "
               f"revision {summary['revision']}")
    click.echo(f"  proposed by {summary['proposer']} at {summary['created_at']}"
               + (f"; approved by {summary['approver']} (revision "
                  f"{summary['approved_revision']})" if summary["approver"] else "")
               + (f"; rejected by {summary['rejected_by']}: {summary['rejection_reason']}"
                  if summary["status"] == "rejected" else "")
               + (f"; witness {summary['witness']}" if summary["witness"] else ""))
    for e in summary["entries"]:
        decided = e["decision_label"] or "(undecided)"
        click.echo(f"  {e['archival_code'] or e['aip']}  {e['title'][:40]}  "
                   f"{e['retention_period'] or '-'} to {e['expiry_date'] or '-'}  "
                   f"suggested {e['suggested']}  decided {decided}  {e['outcome']}"
                   + (f" ({e['outcome_detail']})" if e["outcome_detail"] else "")
                   + ("  HELD" if e["held"] else ""))
    return 0


@appraisal_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(settings: Settings, as_json: bool) -> int:
    """Every batch, newest first."""
    from storage.appraisal import list_batches
    from storage.catalogue import Catalogue

    batches = list_batches(Catalogue.open(settings))
    if as_json:
        _echo_json(batches)
    for b in [] if as_json else batches:
        click.echo(f"{b['id']}  [{b['status_label']}]  {b['entries']} AIP(s)  {b['title']}")
    if not batches and not as_json:
        click.echo("no appraisal batch yet")
    return 0


def _step(name: str, capability: str, doc: str, with_reason: bool = False) -> click.Command:
    @click.argument("batch")
    @_as_options
    @click.pass_obj
    def command(settings: Settings, batch: str, user: str, password_env: str,
                reason: str | None = None) -> int:
        from storage import appraisal
        from storage.catalogue import Catalogue

        actor = _signed_in(settings, user, password_env, capability)
        catalogue = Catalogue.open(settings)
        if with_reason:
            appraisal.reject(catalogue, batch, actor, reason or "")
        else:
            getattr(appraisal, name)(catalogue, batch, actor)
        summary = appraisal.batch_summary(catalogue, batch)
        click.echo(f"{batch}: {summary['status_label']} (revision {summary['revision']}) "
                   f"by {actor}")
        return 0

    command.__doc__ = doc
    if with_reason:
        command = click.option("--reason", required=True, help="Why (退回理由).")(command)
    return appraisal_group.command(name)(command)


submit_command = _step("submit", "propose-appraisal",
                       "Put a batch before its approver (every AIP must have a decision).")
approve_command = _step("approve", "approve-appraisal",
                        "Approve a submitted batch (never by its proposer).")
reject_command = _step("reject", "approve-appraisal",
                       "Send a submitted batch back with the reason.", with_reason=True)


@appraisal_group.command("execute")
@click.argument("batch")
@click.option("--witness", required=True, metavar="USER", help="The witness (监销人).")
@click.option("--password-env", default="DANGAN_WITNESS_PASSWORD", show_default=True,
              metavar="VAR", help="Environment variable holding the witness's password.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def execute_command(settings: Settings, batch: str, witness: str, password_env: str,
                    as_json: bool) -> int:
    """Carry out an approved batch before the witness; run again to finish what a lock or a
    retention period deferred. Exits 1 while anything is deferred or held."""
    from access.rules import Reader
    from access.services import AccessService
    from storage.appraisal import execute
    from storage.catalogue import Catalogue

    actor = _signed_in(settings, witness, password_env, "witness-destruction")
    catalogue = Catalogue.open(settings)

    def decide_open(aip: str, decision: str, reason: str, batch_id: str) -> None:
        # opened by the committee: from today on, unless its open date came already
        from datetime import date

        today = date.today()
        current = catalogue.get_aip(aip).open_date
        opens = decision == "open" and (current is None or current > today)
        AccessService(settings, catalogue).record_decision(
            Reader("archivist", actor), aip, None, control="开放" if decision == "open" else "控制",
            open_date=today if opens else None, basis=f"开放审核 {batch_id}: {reason}")

    report = execute(settings, catalogue, batch, actor, decide_open=decide_open)
    if as_json:
        _echo_json(report.to_dict())
    else:
        for line in report.done:
            click.echo(f"done      {line['aip']}  {line['decision']}: {line['detail']}")
        for line in report.deferred:
            click.echo(f"deferred  {line['aip']}  {line['detail']}"
                       + (f" (possible from {line['possible_from']})"
                          if line["possible_from"] else ""))
        for line in report.held:
            click.echo(f"held      {line['aip']}  {line['detail']}")
        click.echo(f"{batch}: {report.status}")
    return 1 if report.deferred or report.held else 0


@appraisal_group.command("documents")
@click.argument("batch")
@click.option("-o", "--out", "out", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for the documents.")
@click.pass_obj
def documents_command(settings: Settings, batch: str, out: Path) -> int:
    """Write the 销毁清册 and the 鉴定报告 (XLSX and PDF); their SHA-256 go to the audit log."""
    from access.appraisal_documents import write_documents
    from storage.catalogue import Catalogue

    for path, digest in write_documents(settings, Catalogue.open(settings), batch, out).items():
        click.echo(f"{path}  sha256 {digest}")
    return 0


@click.group("hold")
def hold_group() -> None:
    """Holds (冻结): an AIP that cannot be appraised or destroyed, for litigation or audit."""


def _hold_step(name: str, function: str, done: str, doc: str) -> click.Command:
    @click.argument("aip")
    @click.option("--reason", required=True)
    @_as_options
    @click.pass_obj
    def command(settings: Settings, aip: str, reason: str, user: str, password_env: str) -> int:
        from storage import appraisal
        from storage.catalogue import Catalogue

        actor = _signed_in(settings, user, password_env, "place-holds")
        getattr(appraisal, function)(Catalogue.open(settings), aip, reason, actor)
        click.echo(f"{aip}: {done} by {actor}")
        return 0

    command.__doc__ = doc
    return hold_group.command(name)(command)


hold_add_command = _hold_step("add", "add_hold", "held (冻结)", "Place a hold on an AIP.")
hold_remove_command = _hold_step("remove", "remove_hold", "hold lifted",
                                 "Lift the hold on an AIP.")


@hold_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def hold_list_command(settings: Settings, as_json: bool) -> int:
    """The holds in force."""
    from storage.appraisal import list_holds
    from storage.catalogue import Catalogue

    holds = list_holds(Catalogue.open(settings))
    if as_json:
        _echo_json(holds)
        return 0
    for h in holds:
        click.echo(f"{h['aip']}  by {h['placed_by']} at {h['placed_at']}: {h['reason']}")
    if not holds:
        click.echo("no hold in force")
    return 0
