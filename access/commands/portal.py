"""The portal and its people on the command line: ``dangan serve``, ``dangan user …``,
``dangan access …`` (review decisions, the search access view) and ``dangan labels``."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path

import click

from access.rules import ACCOUNT_ROLES
from policies import Settings, UsageError


def _service(settings: Settings):
    from access.services import AccessService

    return AccessService(settings)


def _operator() -> str:
    """The audit-log actor for a command run by the local operator."""
    return f"cli:{os.environ.get('USER', 'operator')}"


@click.command("serve")
@click.option("--host", help="Address to bind (default 127.0.0.1 from dangan.toml).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.option("--workers", type=int,
              help="Worker processes sharing the port (default [portal] workers).")
@click.option("--text-jobs/--no-text-jobs", default=True, show_default=True,
              help="Run the text jobs (OCR queued by ingest) in a background thread.")
@click.pass_obj
def serve_command(settings: Settings, host: str | None, port: int | None,
                  workers: int | None, text_jobs: bool) -> int:
    """Serve the portal (binds 127.0.0.1 unless told otherwise).

    The text jobs that ingest queued (OCR of scans and images) run in a background thread
    unless --no-text-jobs is given or another worker already serves this home."""
    from access.portal.serving import serve

    host = host or settings.get("portal", "host")
    port = port or settings.int("portal", "port")
    workers = workers if workers is not None else settings.int("portal", "workers")
    if workers < 1:
        raise UsageError(f"--workers {workers}: at least 1")
    click.echo(f"Dangan portal: http://{host}:{port}/   (try: http://{host}:{port}/search?q=因病)"
               + (f"   {workers} workers" if workers > 1 else ""))
    if text_jobs:
        _text_job_thread(settings, host, port)
    serve(settings, host, port, workers)
    return 0


TEXT_JOB_KIND = "fulltext"


def _text_job_thread(settings: Settings, host: str, port: int) -> None:
    """Start a daemon thread taking text jobs (the ``fulltext`` handler, an entry point of
    ``dangan.jobs``) until the process ends, once the portal answers on ``host:port`` (OCR
    would slow its start on a small machine); it stops quietly when another worker holds the
    home's SQLite worker lock (that worker runs them) or no handler is installed."""
    import logging
    import socket
    import threading
    import time

    from storage.jobs import Worker

    log = logging.getLogger("dangan.portal")

    def portal_up(wait: float = 120.0) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)

    def run() -> None:
        portal_up()
        try:
            Worker(settings, kinds=(TEXT_JOB_KIND,)).run()
        except UsageError as exc:
            log.info("text jobs not run by the portal: %s", exc)
        except Exception:  # noqa: BLE001 - the portal keeps serving; the jobs stay queued
            log.exception("text-job thread stopped")

    threading.Thread(target=run, name="dangan-text-jobs", daemon=True).start()


# -- accounts ------------------------------------------------------------------------------


def _password(env_name: str | None, confirm: bool = True) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise UsageError(f"environment variable {env_name} is empty or unset")
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        return click.prompt("password", hide_input=True, confirmation_prompt=confirm)
    line = sys.stdin.readline() if sys.stdin else ""
    if not line.strip():
        raise UsageError("give the password on standard input or with --password-env VAR")
    return line.rstrip("\n")


@click.group("user")
def user_group() -> None:
    """Portal accounts: add, disable, enable, change role, list."""


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ACCOUNT_ROLES), required=True)
@click.option("--name", "display_name", default="", help="Display name.")
@click.option(
    "--password-env",
    metavar="VAR",
    help="Read the password from this environment variable (else prompt/stdin).",
)
@click.pass_obj
def user_add(
    settings: Settings, username: str, role: str, display_name: str, password_env: str | None
) -> int:
    """Create an account (the password is never taken from the command line)."""
    from access import accounts
    from storage.catalogue import Catalogue

    user = accounts.add_user(
        Catalogue.open(settings),
        username,
        _password(password_env),
        role,
        display_name,
        actor=_operator(),
    )
    click.echo(f"user {user.username} ({user.role}) added")
    return 0


@user_group.command("disable")
@click.argument("username")
@click.pass_obj
def user_disable(settings: Settings, username: str) -> int:
    """Disable an account: it can no longer log in and its sessions end."""
    from access import accounts
    from storage.catalogue import Catalogue

    accounts.set_disabled(
        Catalogue.open(settings), username, True, actor=_operator()
    )
    click.echo(f"user {username} disabled")
    return 0


@user_group.command("enable")
@click.argument("username")
@click.pass_obj
def user_enable(settings: Settings, username: str) -> int:
    """Enable a disabled account again."""
    from access import accounts
    from storage.catalogue import Catalogue

    accounts.set_disabled(
        Catalogue.open(settings), username, False, actor=_operator()
    )
    click.echo(f"user {username} enabled")
    return 0


@user_group.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(ACCOUNT_ROLES))
@click.pass_obj
def user_role(settings: Settings, username: str, role: str) -> int:
    """Change an account's role (its sessions end)."""
    from access import accounts
    from storage.catalogue import Catalogue

    accounts.set_role(
        Catalogue.open(settings), username, role, actor=_operator()
    )
    click.echo(f"user {username} is now {role}")
    return 0


@user_group.command("password")
@click.argument("username")
@click.option("--password-env", metavar="VAR")
@click.pass_obj
def user_password(settings: Settings, username: str, password_env: str | None) -> int:
    """Set a new password (the user's sessions end)."""
    from access import accounts
    from storage.catalogue import Catalogue

    accounts.set_password(
        Catalogue.open(settings),
        username,
        _password(password_env),
        actor=_operator(),
    )
    click.echo(f"password of {username} changed")
    return 0


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def user_list(settings: Settings, as_json: bool) -> int:
    """List accounts."""
    from access import accounts
    from storage.catalogue import Catalogue

    rows = [
        {
            "username": u.username,
            "role": u.role,
            "disabled": u.disabled,
            "display_name": u.display_name,
            "last_login": u.last_login_at.isoformat() if u.last_login_at else None,
        }
        for u in accounts.list_users(Catalogue.open(settings))
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    for row in [] if as_json else rows:
        state = "disabled" if row["disabled"] else "active"
        click.echo(f"{row['username']:20} {row['role']:11} {state:9} {row['last_login'] or '-'}")
    return 0


# -- access decisions and the search access view ---------------------------------------------


@click.group("access")
def access_group() -> None:
    """Open-review decisions (开放审核) and the search index's access view."""


@access_group.command("decide")
@click.argument("aip")
@click.option("--item", help="One item of the AIP (default: the whole AIP).")
@click.option("--open-date", help="The decided open date, YYYY-MM-DD.")
@click.option("--control", type=click.Choice(["开放", "控制"]), help="The decided control flag.")
@click.option("--basis", required=True, help="The decision's basis (document, meeting).")
@click.pass_obj
def access_decide(
    settings: Settings,
    aip: str,
    item: str | None,
    open_date: str | None,
    control: str | None,
    basis: str,
) -> int:
    """Record a review decision changing a record's open date and/or control flag."""
    try:
        decided = date.fromisoformat(open_date) if open_date else None
    except ValueError as exc:
        raise UsageError(f"--open-date {open_date!r}: not YYYY-MM-DD") from exc
    service = _service(settings)
    from access.rules import Reader

    reader = Reader("archivist", _operator())
    result = service.record_decision(
        reader, aip, item, open_date=decided, control=control, basis=basis
    )
    click.echo(json.dumps(result, ensure_ascii=False))
    return 0


@access_group.command("reindex")
@click.pass_obj
def access_reindex(settings: Settings) -> int:
    """Rebuild the access view of every search document (after a policy change)."""
    count = _service(settings).index.rebuild()
    click.echo(f"{count} search documents given their access view")
    return 0


@access_group.command("searched")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_obj
def access_searched(settings: Settings, text: str, as_json: bool) -> int:
    """Audit-log entries of staff searches for TEXT (found by its keyed hash: the log keeps
    searches masked). Exit 1 when there are none."""
    from sqlalchemy import select

    from storage.catalogue import models
    from storage.catalogue import Catalogue, PiiVault

    keyed = PiiVault.from_settings(settings).text_hash(text)
    with Catalogue.open(settings).session() as s:
        rows = s.scalars(
            select(models.AuditEntry)
            .where(models.AuditEntry.action == "search-restricted")
            .order_by(models.AuditEntry.seq)
        )
        found = [
            {"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "query": e.object,
             "hits": e.detail.get("hits", [])}
            for e in rows
            if (e.detail or {}).get("query_hmac") == keyed
        ]
    if as_json:
        click.echo(json.dumps({"query_hmac": keyed, "entries": found}, ensure_ascii=False))
    else:
        for entry in found:
            click.echo(f"{entry['seq']}  {entry['at']}  {entry['actor']}  {entry['query']}  "
                       f"{len(entry['hits'])} restricted hits")
        click.echo(f"{len(found)} searches (query_hmac {keyed})")
    return 0 if found else 1


@click.command("labels")
@click.argument("aips", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The PDF label sheet to write.",
)
@click.option(
    "--base-url", help="The portal address printed in the QR codes (default [portal] public_url)."
)
@click.pass_obj
def labels_command(
    settings: Settings, aips: tuple[str, ...], out: Path, base_url: str | None
) -> int:
    """Print QR labels for household volumes (AIP uuids) to a PDF sheet."""
    from storage.catalogue import Catalogue
    from access.labels import label_sheet_pdf, public_base_url, volume_labels

    base = public_base_url(base_url or settings.get("portal", "public_url"))
    catalogue = Catalogue.open(settings)
    uuids = [catalogue.get_aip(a).uuid for a in aips]
    labels = volume_labels(catalogue, uuids, base, _operator())
    out.write_bytes(label_sheet_pdf(labels))
    click.echo(f"{len(labels)} labels written to {out}")
    return 0


