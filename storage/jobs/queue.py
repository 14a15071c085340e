"""The job queue in the catalogue database: ingest, audit and indexing work for ``dangan worker``.

A job is claimed with a lease: the worker's heartbeat extends it while the job runs, and a job
whose lease ran out (its worker died or lost the database) is claimed again by another worker,
up to ``max_attempts``. Every change a worker makes to its job names the attempt it claimed, so
a worker that lost its lease cannot overwrite the outcome of the attempt that replaced it.

On PostgreSQL several workers claim with ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite has one
writer at a time, so only one worker runs against it (see :mod:`storage.jobs.worker`). A partial
unique index allows one active (queued or running) job per ``dedupe_key``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    String,
    Text,
    and_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from policies.errors import CatalogueError, NotFoundError, UsageError
from storage.catalogue import Catalogue
from storage.catalogue import Base
from storage.index import outbox

ACTIVE = ("queued", "running")


class Job(Base):
    """One unit of work for a worker.

    Attributes:
        kind: ``ingest``, ``audit``, ``index``, ``reindex`` (handlers are plug-ins, see
            :mod:`storage.jobs.worker`).
        payload: the handler's arguments.
        dedupe_key: at most one queued or running job has a given key.
        status: ``queued`` | ``running`` | ``done`` | ``failed``.
        attempts: claims so far (the current attempt's number while running).
        worker, lease_until: who runs it and until when the claim holds without a heartbeat.
        history: one entry per attempt (worker, start, end, outcome).
    """

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[Any]] = mapped_column(default=list)


Index("ix_jobs_due", Job.status, Job.run_after)


@dataclass(frozen=True)
class Claim:
    """A job as claimed by one worker for one attempt."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    worker: str


def worker_id() -> str:
    """``host:pid:suffix`` — unique per worker process; the host and pid let a worker on the
    same machine see at once that another one died."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_here(worker: str | None) -> bool:
    """Whether a worker id names a process of this host that no longer exists."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def job_dict(job: Job) -> dict[str, Any]:
    """A job as plain data (ISO timestamps)."""
    def iso(value: datetime | None) -> str | None:
        return outbox.as_utc(value).isoformat() if value else None

    return {"id": job.id, "kind": job.kind, "payload": job.payload, "status": job.status,
            "attempts": job.attempts, "max_attempts": job.max_attempts,
            "dedupe_key": job.dedupe_key, "created": iso(job.created_at),
            "started": iso(job.started_at), "finished": iso(job.finished_at),
            "worker": job.worker, "lease_until": iso(job.lease_until), "result": job.result,
            "error": job.error, "history": job.history}


class JobQueue:
    """The jobs of one catalogue.

    Arguments:
        catalogue: the catalogue database holding the ``jobs`` table.
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    # -- producers -----------------------------------------------------------------------
    def add(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
            max_attempts: int = 3, delay: float = 0.0) -> int:
        """Queue a job and return its id.

        Raises:
            UsageError: an active job with the same ``dedupe_key`` exists (its id is named).
        """
        now = outbox.utcnow()
        try:
            with self.catalogue.session() as s:
                job = Job(kind=kind, payload=payload, dedupe_key=dedupe_key, status="queued",
                          attempts=0, max_attempts=max_attempts, created_at=now,
                          run_after=now + timedelta(seconds=delay), history=[])
                s.add(job)
                s.flush()
                return job.id
        except CatalogueError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            with self.catalogue.session() as s:
                other = s.scalars(select(Job.id).where(Job.dedupe_key == dedupe_key,
                                                       Job.status.in_(ACTIVE))).first()
            raise UsageError(f"job {other} for {dedupe_key} is already queued or running") from exc

    def retry(self, job_id: int) -> None:
        """Queue a failed job again with fresh attempts.

        Raises:
            NotFoundError: no such job.
            UsageError: the job is not failed.
        """
        with self.catalogue.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            if job.status != "failed":
                raise UsageError(f"job {job_id} is {job.status}, only failed jobs are retried")
            job.status, job.attempts, job.run_after, job.error = "queued", 0, outbox.utcnow(), None
            job.worker = job.lease_until = None

    # -- workers -------------------------------------------------------------------------
    def claim(self, worker: str, kinds: tuple[str, ...], lease: float) -> Claim | None:
        """Take the oldest due job of these kinds (queued, or running with an expired lease).

        Returns:
            The claim, or None when nothing is due.
        """
        now = outbox.utcnow()
        self.reap(now)
        due = or_(and_(Job.status == "queued", Job.run_after <= now),
                  and_(Job.status == "running", Job.lease_until < now,
                       Job.attempts < Job.max_attempts))
        query = select(Job).where(due, Job.kind.in_(kinds)).order_by(Job.id).limit(1)
        postgres = not self.catalogue.is_sqlite
        if postgres:
            query = query.with_for_update(skip_locked=True)
        with self.catalogue.session() as s:
            job = s.scalars(query).first()
            if job is None:
                return None
            attempt = job.attempts + 1
            history = list(job.history)
            if job.status == "running" and history and "ended" not in history[-1]:
                history[-1] = {**history[-1], "ended": now.isoformat(),
                               "outcome": "worker lost (lease expired)"}
            values = {"status": "running", "attempts": attempt, "worker": worker,
                      "started_at": now, "lease_until": now + timedelta(seconds=lease),
                      "history": [*history, {"attempt": attempt, "worker": worker,
                                             "started": now.isoformat()}]}
            # conditional on what we read: on SQLite another writer may have claimed it since
            claimed = s.execute(update(Job).where(Job.id == job.id, Job.status == job.status,
                                                  Job.attempts == job.attempts)
                                .values(**values).execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                return None
            return Claim(job.id, job.kind, dict(job.payload), attempt, worker)

    def heartbeat(self, claim: Claim, lease: float) -> bool:
        """Extend the lease; False when the claim was lost (another attempt replaced it)."""
        with self.catalogue.session() as s:
            result = s.execute(update(Job).where(*self._mine(claim))
                               .values(lease_until=outbox.utcnow() + timedelta(seconds=lease)))
            return result.rowcount == 1

    def finish(self, claim: Claim, result: dict[str, Any]) -> bool:
        """Record success; False when the claim was lost (the outcome is then not recorded)."""
        return self._end(claim, "done", result=result, error=None)

    def fail(self, claim: Claim, error: str, *, retry: bool, delay: float) -> bool:
        """Record a failure: queued again after ``delay`` seconds while attempts remain and
        ``retry`` holds, otherwise failed for good."""
        with self.catalogue.session() as s:
            job = s.get(Job, claim.id)
            again = retry and job is not None and job.attempts < job.max_attempts
        if again:
            return self._end(claim, "queued", error=error, result=None,
                             run_after=outbox.utcnow() + timedelta(seconds=delay))
        return self._end(claim, "failed", error=error, result=None)

    def reap(self, now: datetime | None = None) -> int:
        """Settle jobs whose worker is gone: expire the lease of a dead worker of this host,
        and fail jobs whose lease ran out on their last attempt. Returns jobs touched."""
        now = now or outbox.utcnow()
        touched = 0
        with self.catalogue.session() as s:
            running = s.scalars(select(Job).where(Job.status == "running")).all()
            for job in running:
                lease = outbox.as_utc(job.lease_until)
                if _dead_here(job.worker) and (lease is None or lease > now):
                    job.lease_until = now - timedelta(seconds=1)
                    lease = outbox.as_utc(job.lease_until)
                    touched += 1
                if lease is not None and lease < now and job.attempts >= job.max_attempts:
                    job.status, job.finished_at = "failed", now
                    job.error = (f"worker {job.worker} stopped answering during attempt "
                                 f"{job.attempts} of {job.max_attempts}")
                    job.history = [*job.history[:-1], {**(job.history[-1] if job.history else {}),
                                                        "ended": now.isoformat(),
                                                        "outcome": "worker lost"}]
                    touched += 1
        return touched

    # -- readers -------------------------------------------------------------------------
    def list(self, status: str | None = None, kind: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """The latest jobs, newest first."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        if kind:
            query = query.where(Job.kind == kind)
        with self.catalogue.session() as s:
            return [job_dict(j) for j in s.scalars(query)]

    def get(self, job_id: int) -> dict[str, Any]:
        """One job as plain data.

        Raises:
            NotFoundError: no such job.
        """
        with self.catalogue.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            return job_dict(job)

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        with self.catalogue.session() as s:
            rows = s.execute(text("SELECT status, count(*) FROM jobs GROUP BY status"))
            return {status: int(n) for status, n in rows}

    # -- internals -----------------------------------------------------------------------
    @staticmethod
    def _mine(claim: Claim) -> tuple:
        return (Job.id == claim.id, Job.status == "running", Job.worker == claim.worker,
                Job.attempts == claim.attempt)

    def _end(self, claim: Claim, status: str, *, result: dict[str, Any] | None,
             error: str | None, run_after: datetime | None = None) -> bool:
        now = outbox.utcnow()
        with self.catalogue.session() as s:
            job = s.scalars(select(Job).where(*self._mine(claim))).first()
            if job is None:
                return False
            outcome = {"done": "done", "queued": "failed, will retry"}.get(status, "failed")
            history = list(job.history)
            if history:
                history[-1] = {**history[-1], "ended": now.isoformat(), "outcome": outcome,
                               **({"error": error[:500]} if error else {})}
            job.status, job.result, job.error, job.history = status, result, error, history
            job.lease_until = None
            if status == "queued":
                job.run_after, job.worker = run_after or now, None
            else:
                job.finished_at = now
            return True
