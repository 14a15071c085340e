"""The worker's ``ingest`` job: ingest one transfer (see :mod:`storage.jobs.worker`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.pipeline import ingest
from policies import Settings, UsageError


def run_ingest_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Ingest ``payload["source"]`` (with ``payload["profile"]`` if given).

    A transfer that is rejected is a finished job (its report says why); a crash of the worker
    part-way is finished by the next attempt, which the ingest pipeline makes safe.

    Returns:
        The ingest result as plain data (transfer, status, AIPs, report paths).

    Raises:
        UsageError: the payload names no source, or the source does not exist.
    """
    source = payload.get("source")
    if not source:
        raise UsageError("ingest job without a source")
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    return ingest(path, settings, payload.get("profile")).to_dict()
