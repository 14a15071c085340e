"""Background work: the job queue kept in the catalogue and the worker that runs it.

Jobs (ingest, audit, index, reindex; handlers are entry points of the ``dangan.jobs`` group)
are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL and by one worker on
SQLite; a running job's lease is kept alive by a heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.lazy import lazy_exports

STATUSES = ("queued", "running", "done", "failed")
"""A job's possible states, in the order a job passes through them."""

_API = {
    # queue
    "Claim": "queue",
    "Job": "queue",
    "JobQueue": "queue",
    "worker_id": "queue",
    # worker
    "Worker": "worker",
    "single_worker_lock": "worker",
    # handlers
    "run_audit_job": "handlers",
}

__all__ = sorted([*_API, "STATUSES"])
__getattr__, __dir__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:  # what static tools see; nothing is imported at run time
    from storage.jobs.queue import Claim, Job, JobQueue, worker_id
    from storage.jobs.worker import Worker, single_worker_lock
    from storage.jobs.handlers import run_audit_job
