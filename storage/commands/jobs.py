"""Sub-commands for running at scale: ``dangan worker``, ``dangan jobs`` and ``dangan rebuild``."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import click

from policies import Settings, UsageError
from storage.jobs import STATUSES


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.command("worker")
@click.option("--kind", "kinds", multiple=True,
              help="Only take jobs of this kind (repeatable; default: every installed kind).")
@click.option("--once", is_flag=True, help="Stop when nothing is due.")
@click.option("--max-jobs", type=int, help="Stop after this many jobs.")
@click.option("--max-seconds", type=float, help="Stop after this long (checked between jobs).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_obj
def worker_command(settings: Settings, kinds: tuple[str, ...], once: bool,
                   max_jobs: int | None, max_seconds: float | None, as_json: bool) -> int:
    """Take ingest, audit and indexing jobs from the catalogue and run them.

    Several workers may run at once against a PostgreSQL catalogue (each job goes to one of
    them); against SQLite, one. A job whose worker dies is taken again by another once its
    lease ([workers] lease_seconds) runs out. SIGTERM stops the worker after the current job.
    """
    from storage.jobs import Worker

    worker = Worker(settings, kinds or None)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    if not as_json:
        click.echo(f"worker {worker.id}: kinds {', '.join(worker.kinds)}", err=True)
    stats = worker.run(max_jobs=max_jobs, until_idle=once, max_seconds=max_seconds)
    summary = {"worker": worker.id, "done": stats.done, "failed": stats.failed,
               "retried": stats.retried, "lost": stats.lost, "indexed": stats.indexed,
               "jobs": stats.jobs}
    if as_json:
        _echo_json(summary)
    else:
        for job in stats.jobs:
            click.echo(f"job {job['id']} {job['kind']} (attempt {job['attempt']}): "
                       f"{job['status']}{': ' + job['error'] if job.get('error') else ''}")
        click.echo(f"{stats.done} done, {stats.retried} to retry, {stats.failed} failed, "
                   f"{stats.indexed} AIPs indexed", err=True)
    return 0 if not stats.failed else 1


@click.group("jobs", invoke_without_command=True)
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs with this status.")
@click.option("--kind", help="Only jobs of this kind.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def jobs_group(ctx: click.Context, status: str | None, kind: str | None, limit: int,
               as_json: bool) -> int:
    """List the jobs in the catalogue (newest first); sub-commands add and retry jobs."""
    if ctx.invoked_subcommand is not None:
        return 0
    from storage.catalogue import Catalogue
    from storage.jobs import JobQueue

    queue = JobQueue(Catalogue.open(ctx.obj))
    jobs = queue.list(status, kind, limit)
    if as_json:
        _echo_json({"counts": queue.counts(), "jobs": jobs})
        return 0
    click.echo("  ".join(f"{k}: {v}" for k, v in sorted(queue.counts().items())) or "no jobs")
    for job in jobs:
        outcome = job["error"].splitlines()[0] if job["error"] else _result_line(job["result"])
        click.echo(f"{job['id']:>6}  {job['kind']:8} {job['status']:8} "
                   f"try {job['attempts']}/{job['max_attempts']}  {job['created']}  "
                   f"{job['worker'] or '-'}  {_payload_line(job['payload'])}  {outcome}")
    return 0


def _payload_line(payload: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(payload.items()))


def _result_line(result: dict | None) -> str:
    if not result:
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(result.items())
                    if isinstance(v, (str, int, float)))[:120]


@jobs_group.command("add")
@click.argument("kind", type=click.Choice(["ingest", "audit", "index", "reindex"]))
@click.argument("target", required=False)
@click.option("--profile", help="ingest: the metadata profile.")
@click.option("--depth", type=click.Choice(["full", "quick"]), default="full", show_default=True,
              help="audit: how deep.")
@click.option("--location", help="audit: only copies at this location.")
@click.option("--max-attempts", default=3, show_default=True)
@click.pass_obj
def jobs_add_command(settings: Settings, kind: str, target: str | None, profile: str | None,
                     depth: str, location: str | None, max_attempts: int) -> int:
    """Queue a job: ``ingest PATH``, ``audit [AIP]``, ``index`` or ``reindex``."""
    from storage.catalogue import Catalogue
    from storage.jobs import JobQueue

    payload: dict = {}
    key = None
    if kind == "ingest":
        if not target:
            raise UsageError("jobs add ingest needs the transfer's PATH")
        source = Path(target).absolute()
        if not source.exists():
            raise UsageError(f"{source}: no such file or folder")
        payload = {"source": str(source), **({"profile": profile} if profile else {})}
        key = f"ingest:{source}"
    elif kind == "audit":
        payload = {"depth": depth, **({"aip": target} if target else {}),
                   **({"location": location} if location else {})}
        key = f"audit:{target or '*'}:{location or '*'}:{depth}"
    else:
        key = kind
    job_id = JobQueue(Catalogue.open(settings)).add(kind, payload, dedupe_key=key,
                                                   max_attempts=max_attempts)
    click.echo(f"job {job_id} queued: {kind} {_payload_line(payload)}")
    return 0


@jobs_group.command("retry")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_retry_command(settings: Settings, job_id: int) -> int:
    """Queue a failed job again."""
    from storage.catalogue import Catalogue
    from storage.jobs import JobQueue

    JobQueue(Catalogue.open(settings)).retry(job_id)
    click.echo(f"job {job_id} queued again")
    return 0


@jobs_group.command("show")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_show_command(settings: Settings, job_id: int) -> int:
    """Show one job with its attempts, as JSON."""
    from storage.catalogue import Catalogue
    from storage.jobs import JobQueue

    _echo_json(JobQueue(Catalogue.open(settings)).get(job_id))
    return 0


@click.command("rebuild")
@click.option("--from", "source", required=True, metavar="LOCATION",
              help="The storage location to read: its policy name, or a file:// or s3:// URL.")
@click.option("--into", "into", metavar="URL",
              help="Rebuild into this catalogue database (SQLAlchemy URL) and compare it with "
                   "the configured one.")
@click.option("--verify", is_flag=True, help="Re-read and hash every byte of every AIP.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def rebuild_command(settings: Settings, source: str, into: str | None, verify: bool,
                    as_json: bool) -> int:
    """Rebuild the catalogue and the search index from the AIPs in a storage location.

    When the configured catalogue is empty (say, its database was lost) it is rebuilt in
    place. Otherwise the rebuild goes into --into URL, or into a scratch SQLite database that
    is removed afterwards, and every difference with the configured catalogue is reported.
    Exits 1 when an AIP could not be read, was damaged, or anything differs.
    """
    from storage.catalogue import Catalogue
    from storage.catalogue import count_aips, rebuild_catalogue, source_location

    location = source_location(settings, source)
    existing = Catalogue.open(settings)
    scratch: Path | None = None
    if into:
        target = Catalogue(into)
        target.upgrade()
        target.outbox = existing.outbox
    elif count_aips(existing) == 0:
        target, existing = existing, None
    else:
        scratch = settings.home / "tmp" / f"rebuild-{os.getpid()}.db"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        target = Catalogue(f"sqlite:///{scratch}")
        target.upgrade()

    def progress(uuid: str, index: int, total: int) -> None:
        if not as_json:
            click.echo(f"\r{index}/{total} {uuid}", nl=False, err=True)

    try:
        report = rebuild_catalogue(settings, location, target, existing, verify=verify, progress=progress)
    finally:
        if scratch is not None:
            target.engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    if not as_json:
        click.echo("", err=True)
    data = report.to_dict()
    if scratch is not None:
        data["target"] = "(scratch database, removed)"
    if as_json:
        _echo_json(data)
        return report.exit_code
    click.echo(f"{report.found} AIPs at {report.location}: {report.rebuilt} catalogued, "
               f"{report.skipped} already there, {len(report.failed)} unreadable, "
               f"{len(report.damaged)} damaged -> {data['target']}")
    for uuid, error in sorted(report.failed.items()):
        click.echo(f"  unreadable {uuid}: {error}")
    for uuid, problems in sorted(report.damaged.items()):
        click.echo(f"  damaged    {uuid}: {'; '.join(problems[:3])}")
    if report.compared_with:
        click.echo(f"compared with {report.compared_with}: {len(report.differences)} "
                   f"differences; {report.later_events} events recorded after ingest are kept "
                   "only by the catalogue")
        for difference in report.differences[:200]:
            click.echo(f"  {difference.kind:17} {difference.aip}  {difference.detail}")
    if target.outbox and report.rebuilt:
        click.echo("the search engine is external: its indexing is queued (dangan index status)")
    return report.exit_code
