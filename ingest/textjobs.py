"""Text jobs: OCR off the ingest's critical path.

An ingest reads every text layer at once (PDFs, DOCX, XLSX, plain text: fast, and what the
content's personal information is rated from), but OCR of scanned pages and images is left to a
``fulltext`` job queued in the same catalogue transaction that commits the AIP. Until the job
has run, the AIP's search documents carry ``facets["fulltext"] = "pending"``, which search
shows as 全文待识别.

The job (``dangan worker``; ``dangan ingest --wait-for-text`` and ``dangan serve`` run it in
the same process) reads each file from storage, verified, OCRs the pages that were queued,
and commits in one transaction:

* the texts as :class:`~storage.catalogue.models.DerivedText` rows, beside the AIP: a stored
  AIP object is never rewritten (the AIP keeps the text layers it was built with, in
  ``data/metadata/text``), and a retried job replaces its own rows;
* the AIP's search documents with the OCR text added and the pending marker removed;
* a PREMIS ``metadata extraction`` event naming the pages, tesseract's version and language,
  and an audit-log entry.
"""

from __future__ import annotations

import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ingest import fulltext
from policies import ConfigError, Settings, UsageError
from storage.catalogue import Catalogue, SearchDocument
from storage.catalogue import models

KIND = "fulltext"
PENDING = "pending"
"""``facets["fulltext"]`` of a search document whose OCR is still queued."""


def pending_files(results: Mapping[str, fulltext.TextResult],
                  item_of: Mapping[str, str]) -> list[dict[str, Any]]:
    """What a text job must OCR: each pending file with its pages, kind and item."""
    return [{"path": rel, "kind": "pdf" if r.reader else "image", "pages": r.pending_pages,
             "item": item_of.get(rel)}
            for rel, r in sorted(results.items()) if r.status == "pending"]


def queue(s: Any, aip_uuid: str, files: list[dict[str, Any]]) -> Any:
    """Add the text job of one AIP in the session ``s`` (the ingest's catalogue transaction,
    so that an AIP is never catalogued without the job that completes its text); returns the
    job row (its id once flushed), or None when nothing is pending."""
    if not files:
        return None
    from storage.jobs import Job

    now = datetime.now(timezone.utc)
    job = Job(kind=KIND, payload={"aip": aip_uuid, "files": files},
              dedupe_key=f"{KIND}:{aip_uuid}", status="queued", attempts=0, max_attempts=3,
              created_at=now, run_after=now, history=[])
    s.add(job)
    return job


def _ocr_all(locals_: Mapping[str, Path], files: list[dict[str, Any]],
             options: fulltext.Options) -> dict[str, str]:
    """OCR every queued page of every file, ``options.workers`` pages at once (an AIP's scans
    and photographs are few pages each: pages, not files, are what keeps the cores busy)."""
    tasks = [(entry["path"], int(page)) for entry in files
             for page in (entry["pages"] if entry["kind"] == "pdf" else [0])]

    def one(task: tuple[str, int]) -> str:
        path, page = task
        local = locals_[path]
        return fulltext.ocr_image(local, options) if page == 0 else \
            fulltext.ocr_pdf_page(local, page, options)

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        found = list(pool.map(one, tasks))
    texts: dict[str, list[str]] = {}
    for (path, _page), text in zip(tasks, found):
        texts.setdefault(path, []).append(text)
    return {path: "\n\f".join(parts)[: options.max_chars] for path, parts in texts.items()}


def run_text_job(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker handler ``fulltext``: OCR one AIP's pending files and index their text.

    Returns:
        The AIP, files and pages read, characters found and seconds taken.

    Raises:
        UsageError: the payload names no AIP.
        ConfigError: tesseract, its language model or pdftoppm is missing (the job fails
            with the reason; the records stay marked pending).
    """
    aip_uuid = payload.get("aip")
    if not aip_uuid:
        raise UsageError("fulltext job without an AIP")
    files: list[dict[str, Any]] = list(payload.get("files") or [])
    options = fulltext.Options.from_settings(settings).inline()
    missing = fulltext.ocr_available(options.languages)
    if not missing and any(f["kind"] == "pdf" for f in files):
        missing = fulltext._renderer_missing()
    if missing:
        raise ConfigError(f"OCR of AIP {aip_uuid} not possible: {missing}")
    from storage.copies import Retriever

    started = time.perf_counter()
    catalogue = Catalogue.open(settings)
    retriever = Retriever(settings, catalogue)
    with tempfile.TemporaryDirectory(prefix="dangan-text-") as tmp:
        locals_ = {}
        for n, entry in enumerate(files):
            local = Path(tmp) / f"f{n}{Path(entry['path']).suffix}"
            retriever.save(retriever.file(aip_uuid, f"data/objects/{entry['path']}"), local)
            locals_[entry["path"]] = local
        texts = _ocr_all(locals_, files, options)
    engine = fulltext.tesseract_version()
    pages = sum(len(f["pages"]) for f in files)
    with catalogue.session() as s:
        _record(s, aip_uuid, files, texts, engine, options.languages)
        documents = _reindex(catalogue, s, aip_uuid, files, texts)
        s.add(models.Event(
            id=str(uuidlib.uuid4()), aip_uuid=aip_uuid, type="metadata extraction",
            at=datetime.now(timezone.utc), outcome="pass",
            detail=f"OCR of {pages} page(s) in {len(files)} file(s) by {engine}, "
                   f"model {options.languages}; texts kept in the catalogue (derived_texts)",
            outcome_detail="; ".join(f"{f['path']}: pages {','.join(map(str, f['pages']))}"
                                     for f in files)[:2000],
            agents=[], files=[]))
        catalogue.append_audit(s, "dangan", "fulltext", aip_uuid,
                               {"files": len(files), "pages": pages, "engine": engine,
                                "languages": options.languages, "documents": documents})
    return {"aip": aip_uuid, "files": len(files), "pages": pages,
            "chars": sum(len(t) for t in texts.values()),
            "seconds": round(time.perf_counter() - started, 3)}


def _record(s: Any, aip_uuid: str, files: list[dict[str, Any]], texts: Mapping[str, str],
            engine: str, languages: str) -> None:
    from sqlalchemy import delete

    table = models.DerivedText
    s.execute(delete(table).where(table.aip_uuid == aip_uuid, table.path.in_(list(texts))))
    now = datetime.now(timezone.utc)
    s.add_all(table(aip_uuid=aip_uuid, path=f["path"], method="ocr", engine=engine,
                    languages=languages, ocr_pages=list(f["pages"]),
                    chars=len(texts[f["path"]]), text=texts[f["path"]], created_at=now)
              for f in files)


def _reindex(catalogue: Catalogue, s: Any, aip_uuid: str, files: list[dict[str, Any]],
             texts: Mapping[str, str]) -> int:
    """Replace the AIP's search documents by the same ones with the OCR text added and the
    pending marker removed (new rows: searches and the access view see the change)."""
    from sqlalchemy import delete, select

    from storage.index import delete_tokens

    rows = s.scalars(select(models.SearchDoc).where(models.SearchDoc.aip_uuid == aip_uuid)
                     .order_by(models.SearchDoc.id)).all()
    if not rows:        # the AIP left the index meanwhile (deleted): nothing to complete
        return 0
    by_item: dict[str, list[str]] = {}
    for entry in files:
        if entry.get("item") and texts.get(entry["path"], "").strip():
            by_item.setdefault(entry["item"], []).append(fulltext.index_text(texts[entry["path"]]))
    documents = [SearchDocument(row.item_key, row.archival_code, row.title,
                                "\n".join([row.text, *by_item.get(row.item_key or "", [])]),
                                {k: v for k, v in (row.facets or {}).items() if k != KIND})
                 for row in rows]
    delete_tokens(s, [row.id for row in rows])
    s.execute(delete(models.SearchDoc).where(models.SearchDoc.aip_uuid == aip_uuid))
    return catalogue.index_documents(s, aip_uuid, documents)


def pending_count(catalogue: Catalogue, job_ids: list[int] | None = None) -> int:
    """Text jobs still queued or running (of ``job_ids``, or all)."""
    from sqlalchemy import func, select

    from storage.jobs import Job

    query = select(func.count()).select_from(Job).where(
        Job.kind == KIND, Job.status.in_(("queued", "running")))
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    with catalogue.session() as s:
        return int(s.scalar(query) or 0)


def wait_for_text(settings: Settings, job_ids: list[int],
                  progress: Callable[[int, int], None] | None = None,
                  poll: float = 1.0) -> dict[str, int]:
    """Run the text jobs in this process until those of ``job_ids`` are finished; when
    another worker holds the home's SQLite worker lock (``dangan serve``), wait for it to
    run them. ``progress`` is called with (jobs finished, jobs) as they finish.

    Returns:
        Counts of the jobs done and failed.
    """
    from storage.jobs import JobQueue, Worker

    catalogue = Catalogue.open(settings)
    total = len(job_ids)
    if total:
        worker = Worker(settings, kinds=(KIND,), catalogue=catalogue)
        try:
            while pending_count(catalogue, job_ids):
                ran = worker.run(max_jobs=1, until_idle=True).jobs
                if progress:
                    progress(total - pending_count(catalogue, job_ids), total)
                if not ran:     # a failed attempt waits for its retry delay
                    time.sleep(poll)
        except UsageError:
            while (left := pending_count(catalogue, job_ids)):
                if progress:
                    progress(total - left, total)
                time.sleep(poll)
    jobs = JobQueue(catalogue)
    statuses = [jobs.get(job_id)["status"] for job_id in job_ids]
    return {"done": statuses.count("done"), "failed": statuses.count("failed")}
