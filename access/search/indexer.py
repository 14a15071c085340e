"""The indexer: drains the indexing outbox into the configured external search engine.

Each round claims a batch of due outbox entries, keeps the last operation per AIP, sends the
AIPs' documents to the engine (or deletes them) and marks each entry done or failed. A failed
entry keeps its error and is retried with back-off until ``[search] outbox_max_attempts``; it
then shows as failed in ``dangan index status`` until ``dangan index retry``.

On PostgreSQL the batch stays locked (``SKIP LOCKED``) while the engine works, so several
indexers (workers) share the outbox without doing the same work; on SQLite, a single writer,
the claim and the outcome are two short transactions so that ingests are never held up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from access.search.base import SearchEngine, SearchError, open_engine
from policies import Settings
from storage.index import outbox
from storage.catalogue import Catalogue
from storage.index import OutboxEntry
from storage.index import rebuild_tokens

_ENGINES: dict[tuple[str, str, str], tuple[Catalogue, SearchEngine]] = {}


@dataclass
class DrainResult:
    """What one drain did: AIP operations done and failed, entries still due."""

    indexed: int = 0
    failed: int = 0
    rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "failed": self.failed, "rounds": self.rounds}


def engine_for(settings: Settings) -> tuple[Catalogue, SearchEngine]:
    """The catalogue and engine of a home, opened once per process (workers drain often)."""
    key = (str(settings.home), settings.get("catalogue", "url"),
           settings.get("search", "elasticsearch_url"))
    if key not in _ENGINES:
        catalogue = Catalogue.open(settings)
        _ENGINES[key] = (catalogue, open_engine(settings, catalogue))
    return _ENGINES[key]


def _plan(entries: list[OutboxEntry]) -> dict[str, str]:
    """The operation owed per AIP: the latest entry wins."""
    plan: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        plan[entry.aip_uuid] = entry.op
    return plan


def _apply(engine: SearchEngine, plan: dict[str, str]) -> dict[str, str]:
    try:
        failures = engine.index_aips([a for a, op in plan.items() if op == "index"])
        failures.update(engine.delete_aips([a for a, op in plan.items() if op == "delete"]))
    except SearchError as exc:
        return {aip: str(exc) for aip in plan}
    return failures


def drain_round(catalogue: Catalogue, engine: SearchEngine, limit: int,
                max_attempts: int) -> tuple[int, int]:
    """Claim and process one batch; return (AIP operations done, failed)."""
    if catalogue.is_sqlite:
        with catalogue.session() as s:
            ids = [e.id for e in outbox.claim_due(s, limit)]
            plan = _plan(s.query(OutboxEntry).filter(OutboxEntry.id.in_(ids)).all()) if ids else {}
        if not ids:
            return 0, 0
        failures = _apply(engine, plan)
        with catalogue.session() as s:
            entries = [e for e in s.query(OutboxEntry).filter(OutboxEntry.id.in_(ids))
                       if e.status == "pending"]
            _settle(entries, failures, max_attempts)
    else:
        with catalogue.session() as s:
            entries = outbox.claim_due(s, limit)
            if not entries:
                return 0, 0
            plan = _plan(entries)
            failures = _apply(engine, plan)
            _settle(entries, failures, max_attempts)
    return len(plan) - len(failures), len(failures)


def _settle(entries: list[OutboxEntry], failures: dict[str, str], max_attempts: int) -> None:
    outbox.mark_done([e for e in entries if e.aip_uuid not in failures])
    for aip, error in failures.items():
        outbox.mark_failed([e for e in entries if e.aip_uuid == aip], error, max_attempts)


def drain(settings: Settings, *, limit: int = 500, once: bool = False,
          max_seconds: float | None = None, catalogue: Catalogue | None = None,
          engine: SearchEngine | None = None) -> DrainResult:
    """Process due outbox entries until none is due (or one round with ``once``).

    Returns:
        Counts of AIP operations done and failed.
    """
    if catalogue is None or engine is None:
        catalogue, engine = engine_for(settings)
    result = DrainResult()
    if not engine.external:
        return result
    max_attempts = settings.int("search", "outbox_max_attempts")
    deadline = time.monotonic() + max_seconds if max_seconds else None
    while True:
        done, failed = drain_round(catalogue, engine, limit, max_attempts)
        result.indexed += done
        result.failed += failed
        result.rounds += 1 if done or failed else 0
        # failed entries wait for their back-off, so this ends when nothing is due
        if once or not (done or failed):
            break
        if deadline and time.monotonic() > deadline:
            break
    return result


# -- job handlers (entry points of the dangan.jobs group) ---------------------------------

def run_index_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker handler ``index``: drain the outbox (one round with ``once``)."""
    result = drain(settings, limit=int(payload.get("limit", 500)),
                   once=bool(payload.get("once", False)),
                   max_seconds=payload.get("max_seconds"))
    return result.to_dict()


def run_reindex_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker handler ``reindex``: build the next index version and swap the alias."""
    catalogue, engine = engine_for(settings)
    if not engine.external:
        with catalogue.session() as s:
            return {"engine": "embedded", "documents": rebuild_tokens(s)}
    return engine.reindex(fresh=bool(payload.get("fresh", False)),  # type: ignore[attr-defined]
                          keep_old=bool(payload.get("keep_old", False)))
