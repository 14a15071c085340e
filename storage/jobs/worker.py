"""``dangan worker``: a process that takes jobs from the catalogue database and runs them.

Handlers are plug-ins named by the ``dangan.jobs`` entry-point group (``kind = module:function``,
declared in setup.cfg), so that the worker, which lives in storage, runs ingest and access work
without importing those packages itself. A handler is called as ``handler(settings, payload)``
and returns a JSON-able result; a :class:`DanganError` with exit code 1 or 2 (a rejected input,
bad usage or configuration) fails the job at once, any other error is retried.

While a job runs, a heartbeat thread extends its lease. When the search engine is external, an
idle worker drains the indexing outbox (the ``index`` handler), so indexing needs no separate
process. Against SQLite only one worker may run (a lock file in the home says so); PostgreSQL
takes any number.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from policies.config import Settings
from policies.errors import ConfigError, DanganError, UsageError
from storage.catalogue import Catalogue
from storage.jobs.queue import Claim, JobQueue, worker_id

Handler = Callable[[Settings, dict[str, Any]], dict[str, Any]]
log = logging.getLogger("dangan.worker")


def handlers() -> dict[str, Handler]:
    """The job handlers installed (entry-point group ``dangan.jobs``), by kind."""
    return {ep.name: ep.load() for ep in entry_points(group="dangan.jobs")}


@dataclass
class WorkerStats:
    """What one run of a worker did."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0
    indexed: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def single_worker_lock(settings: Settings) -> Iterator[None]:
    """Hold the home's worker lock (SQLite allows one writer: one worker).

    Raises:
        UsageError: another worker of this home holds it.
    """
    path = settings.home / "locks" / "worker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UsageError("another worker already runs against this SQLite catalogue; "
                             "several workers need the catalogue on PostgreSQL") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Worker:
    """Runs jobs of the given kinds until told to stop.

    Arguments:
        settings: the home's settings (``[workers]`` lease, poll and retry settings).
        kinds: job kinds to take (default: every installed handler).
        catalogue: an open catalogue (default: opened from the settings).
    """

    def __init__(self, settings: Settings, kinds: tuple[str, ...] | None = None,
                 catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        self.catalogue = catalogue or Catalogue.open(settings)
        self.queue = JobQueue(self.catalogue)
        self.handlers = handlers()
        unknown = sorted(set(kinds or ()) - set(self.handlers))
        if unknown:
            raise UsageError(f"no handler for job kind(s) {', '.join(unknown)}; "
                             f"installed: {', '.join(sorted(self.handlers))}")
        self.kinds = tuple(kinds or sorted(self.handlers))
        self.id = worker_id()
        self.lease = float(settings.get("workers", "lease_seconds"))
        self.poll = float(settings.get("workers", "poll_seconds"))
        self.retry_delay = float(settings.get("workers", "retry_delay_seconds"))
        self.drain_outbox = (settings.get("search", "engine") != "embedded"
                             and "index" in self.handlers)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to end after the current job."""
        self._stop.set()

    def run(self, *, max_jobs: int | None = None, until_idle: bool = False,
            max_seconds: float | None = None) -> WorkerStats:
        """Take and run jobs.

        Arguments:
            max_jobs: stop after this many jobs.
            until_idle: stop when nothing is due (and the outbox is drained).
            max_seconds: stop after this long (checked between jobs).

        Raises:
            UsageError: another worker runs against the same SQLite catalogue.
        """
        if self.catalogue.is_sqlite:
            with single_worker_lock(self.settings):
                return self._loop(max_jobs, until_idle, max_seconds)
        return self._loop(max_jobs, until_idle, max_seconds)

    def _loop(self, max_jobs: int | None, until_idle: bool,
              max_seconds: float | None) -> WorkerStats:
        stats = WorkerStats()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while not self._stop.is_set():
            if deadline and time.monotonic() > deadline:
                break
            if max_jobs is not None and len(stats.jobs) >= max_jobs:
                break
            claim = self.queue.claim(self.id, self.kinds, self.lease)
            if claim is not None:
                stats.jobs.append(self.execute(claim, stats))
                continue
            indexed = self._drain() if self.drain_outbox else 0
            stats.indexed += indexed
            if indexed:
                continue
            if until_idle:
                break
            self._stop.wait(self.poll)
        return stats

    def _drain(self) -> int:
        try:
            result = self.handlers["index"](self.settings, {"limit": 500, "once": True})
        except DanganError as exc:
            log.warning("indexing outbox: %s", exc)
            return 0
        return int(result.get("indexed", 0))

    def execute(self, claim: Claim, stats: WorkerStats) -> dict[str, Any]:
        """Run one claimed job with a heartbeat; record its outcome; return a summary.

        The audit log is anchored in storage after each job that appended entries."""
        try:
            return self._execute(claim, stats)
        finally:
            self._anchor()

    def _anchor(self) -> None:
        from storage.catalogue import auditlog

        try:
            auditlog.anchor_written(self.settings, self.catalogue, actor="worker")
        except DanganError as exc:
            log.warning("audit log not anchored in storage: %s", exc)

    def _execute(self, claim: Claim, stats: WorkerStats) -> dict[str, Any]:
        beat = _Heartbeat(self.queue, claim, self.lease)
        beat.start()
        outcome: dict[str, Any] = {"id": claim.id, "kind": claim.kind, "attempt": claim.attempt}
        try:
            result = self.handlers[claim.kind](self.settings, claim.payload)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            beat.stop()
            final = isinstance(exc, (ConfigError, UsageError)) or (
                isinstance(exc, DanganError) and exc.exit_code in (1, 2))
            message = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, DanganError):
                message += "\n" + traceback.format_exc(limit=8)
            kept = self.queue.fail(claim, message, retry=not final,
                                   delay=self.retry_delay * 2 ** (claim.attempt - 1))
            stats.failed += 1 if final else 0
            stats.retried += 0 if final else 1
            stats.lost += 0 if kept else 1
            return {**outcome, "status": "failed" if final else "retry", "error": str(exc)}
        beat.stop()
        if not self.queue.finish(claim, result if isinstance(result, dict) else {}):
            stats.lost += 1
            return {**outcome, "status": "lost"}
        stats.done += 1
        return {**outcome, "status": "done", "result": result}


class _Heartbeat(threading.Thread):
    """Extends a claim's lease every third of its length until stopped."""

    def __init__(self, queue: JobQueue, claim: Claim, lease: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{claim.id}")
        self.queue, self.claim, self.lease = queue, claim, lease
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(max(self.lease / 3, 0.2)):
            try:
                if not self.queue.heartbeat(self.claim, self.lease):
                    log.warning("job %s: lease lost to another worker", self.claim.id)
                    return
            except DanganError as exc:
                log.warning("job %s: heartbeat failed: %s", self.claim.id, exc)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)
