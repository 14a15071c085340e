"""Workers take jobs from the catalogue: a job whose worker was killed is finished by another,
two workers never ingest the same transfer twice, SQLite runs one worker, PostgreSQL many."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from policies import UsageError, load_settings
from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.jobs import Job, JobQueue
from storage.index.outbox import utcnow
from storage.jobs import Worker, single_worker_lock

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]
FAST = {"DANGAN_WORKERS_LEASE_SECONDS": "3", "DANGAN_WORKERS_POLL_SECONDS": "0.2",
        "DANGAN_WORKERS_RETRY_DELAY_SECONDS": "0", "DANGAN_FULLTEXT_OCR": "false"}


@pytest.fixture(scope="module")
def transfer(tmp_path_factory) -> Path:
    from ingest.sample_transfer import generate

    out = tmp_path_factory.mktemp("worker-transfer") / "transfer"
    generate(out, households=2, seed=5)
    return out


def start_worker(home: Path, *args: str, catalogue: str | None = None,
                 **extra: str) -> subprocess.Popen:
    """``dangan worker`` as its own process (as an operator would run it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(FAST, DANGAN_HOME=str(home), **extra)
    if catalogue:
        env["DANGAN_CATALOGUE_URL"] = catalogue
    return subprocess.Popen([*DANGAN, "worker", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def _stored(folder: Path) -> list[str]:
    """The AIPs published in a filesystem location (not its hidden work folders)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def catalogued(catalogue: Catalogue) -> tuple[int, int]:
    """(AIPs, accepted transfers) in a catalogue."""
    with catalogue.session() as s:
        aips = s.scalar(select(func.count()).select_from(m.Aip))
        accepted = s.scalar(select(func.count()).select_from(m.Transfer)
                            .where(m.Transfer.status == "accepted"))
    return int(aips), int(accepted)


def test_a_killed_worker_leaves_its_job_to_another(home, cli, transfer) -> None:
    added = cli("jobs", "add", "ingest", transfer)
    assert added.code == 0 and "job 1 queued" in added.out
    killed = start_worker(home.home, "--once", DANGAN_CRASH_AT="stored")
    code, _out, _err = finish(killed)
    assert code == -signal.SIGKILL
    queue = JobQueue(Catalogue.open(home))
    job = queue.get(1)
    assert job["status"] == "running" and job["attempts"] == 1
    stored = _stored(home.home / "aips")
    assert stored and catalogued(Catalogue.open(home)) == (0, 0)   # stored, not yet visible
    survivor = start_worker(home.home, "--once", "--json")
    code, out, err = finish(survivor)
    assert code == 0, err
    summary = json.loads(out)
    assert [j["status"] for j in summary["jobs"]] == ["done"]
    job = queue.get(1)
    assert job["status"] == "done" and job["attempts"] == 2
    assert job["history"][0]["outcome"].startswith("worker lost")
    assert job["result"]["status"] == "accepted"
    aips, accepted = catalogued(Catalogue.open(home))
    assert accepted == 1 and aips == len(job["result"]["aips"]) == len(stored)
    assert _stored(home.home / "aips") == stored   # nothing twice
    listed = cli("jobs")
    assert "done: 1" in listed.out and "ingest" in listed.out


def _shared_home(root: Path, storage: Path, key: str) -> Path:
    """A home of one machine: its own folder, storage shared with the others."""
    home = root
    (home / "policies").mkdir(parents=True)
    (home / "policies" / "storage.yaml").write_text(
        f"locations:\n  - name: shared\n    url: \"file://{storage}\"\n"
        "copies:\n  default: [shared]\n")
    (home / "dangan.toml").write_text(f'[security]\npii_key = "{key}"\n')
    return home


def test_two_workers_on_two_machines_never_ingest_the_same_transfer_twice(
        tmp_path, transfer, pg_catalogue_url) -> None:
    """Each worker has its own home (its own staging and lock files, as on two machines):
    only the database stands between them."""
    import shutil

    storage = tmp_path / "shared-aips"
    key = base64.b64encode(os.urandom(32)).decode()
    homes = [_shared_home(tmp_path / f"machine-{n}", storage, key) for n in (1, 2)]
    copies = []
    for n in (1, 2):    # the same transfer delivered twice (e.g. on a disc and by upload)
        shutil.copytree(transfer, tmp_path / f"delivery-{n}")
        copies.append(tmp_path / f"delivery-{n}")
    settings = load_settings(homes[0], environ={"DANGAN_CATALOGUE_URL": pg_catalogue_url})
    catalogue = Catalogue.open(settings)
    queue = JobQueue(catalogue)
    for path in copies:
        queue.add("ingest", {"source": str(path)}, dedupe_key=f"ingest:{path}")
    with pytest.raises(UsageError, match="already queued"):
        queue.add("ingest", {"source": str(copies[0])}, dedupe_key=f"ingest:{copies[0]}")
    workers = [start_worker(h, "--max-jobs", "1", "--json", catalogue=pg_catalogue_url)
               for h in homes]
    results = [finish(w) for w in workers]
    assert all(code == 0 for code, _, _ in results), results
    jobs = {j["id"]: j for j in queue.list()}
    assert {j["status"] for j in jobs.values()} == {"done"}
    assert len({j["worker"] for j in jobs.values()}) == 2           # one job each
    outcomes = sorted(j["result"]["status"] for j in jobs.values())
    assert outcomes == ["accepted", "already-ingested"]
    aips, accepted = catalogued(catalogue)
    assert accepted == 1 and aips == len(_stored(storage))


def test_sqlite_runs_one_worker(home, cli) -> None:
    if not Catalogue.open(home).is_sqlite:
        pytest.skip("the single-worker rule is SQLite's")
    with single_worker_lock(home):
        refused = cli("worker", "--once")
    assert refused.code == 2 and "PostgreSQL" in refused.err


def _claim_all(catalogue: Catalogue, threads: int) -> list[int]:
    queue = JobQueue(catalogue)
    claimed: list[int] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        while True:
            claim = queue.claim(f"test:{n}", ("probe",), 60)
            if claim is None:
                return
            with lock:
                claimed.append(claim.id)
            queue.finish(claim, {})

    pool = [threading.Thread(target=take, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    return claimed


def test_concurrent_claims_take_each_job_once_on_postgresql(pg_catalogue_url) -> None:
    catalogue = Catalogue(pg_catalogue_url)
    queue = JobQueue(catalogue)
    ids = [queue.add("probe", {"n": n}) for n in range(60)]
    claimed = _claim_all(catalogue, 8)
    assert sorted(claimed) == ids                                   # each exactly once
    assert queue.counts() == {"done": 60}


def test_claims_are_exclusive_on_the_home_catalogue(home) -> None:
    catalogue = Catalogue.open(home)
    queue = JobQueue(catalogue)
    ids = [queue.add("probe", {"n": n}) for n in range(20)]
    assert sorted(_claim_all(catalogue, 3)) == ids


def test_a_lease_that_runs_out_hands_the_job_over(home) -> None:
    catalogue = Catalogue.open(home)
    queue = JobQueue(catalogue)
    job_id = queue.add("probe", {}, max_attempts=2)
    first = queue.claim("elsewhere:1:aaaa", ("probe",), 60)   # a worker on another machine
    assert first is not None and queue.claim("here", ("probe",), 60) is None
    with catalogue.session() as s:
        s.get(Job, job_id).lease_until = utcnow() - timedelta(seconds=1)
    second = queue.claim("here:2:bbbb", ("probe",), 60)
    assert second is not None and second.attempt == 2
    assert not queue.finish(first, {"late": True})              # the old attempt lost its claim
    with catalogue.session() as s:
        s.get(Job, job_id).lease_until = utcnow() - timedelta(seconds=1)
    assert queue.claim("here:3:cccc", ("probe",), 60) is None   # attempts exhausted
    job = queue.get(job_id)
    assert job["status"] == "failed" and "stopped answering" in job["error"]


def test_failures_are_retried_then_kept(home, monkeypatch) -> None:
    calls = {"flaky": 0}

    def flaky(settings, payload):
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("disk full")
        return {"ok": True}

    def refuses(settings, payload):
        raise UsageError("no such transfer")

    monkeypatch.setattr("storage.jobs.worker.handlers", lambda: {"flaky": flaky, "refuses": refuses})
    monkeypatch.setenv("DANGAN_WORKERS_RETRY_DELAY_SECONDS", "0")
    settings = load_settings(home.home)
    queue = JobQueue(Catalogue.open(settings))
    flaky_id = queue.add("flaky", {})
    refused_id = queue.add("refuses", {})
    stats = Worker(settings).run(until_idle=True)
    assert (stats.done, stats.retried, stats.failed) == (1, 1, 1)
    flaky_job, refused_job = queue.get(flaky_id), queue.get(refused_id)
    assert flaky_job["status"] == "done" and flaky_job["attempts"] == 2
    assert "disk full" in flaky_job["history"][0]["error"]
    assert refused_job["status"] == "failed" and refused_job["attempts"] == 1
    queue.retry(refused_id)
    assert queue.get(refused_id)["status"] == "queued"


def test_jobs_command_line(home, cli, transfer) -> None:
    missing = cli("jobs", "add", "ingest", home.home / "nowhere")
    assert missing.code == 2 and "no such file" in missing.err
    assert cli("jobs", "add", "ingest", transfer).code == 0
    again = cli("jobs", "add", "ingest", transfer)
    assert again.code == 2 and "already queued" in again.err
    assert cli("jobs", "add", "audit", "--depth", "quick").code == 0
    listed = json.loads(cli("jobs", "--json").out)
    assert listed["counts"] == {"queued": 2}
    assert [j["kind"] for j in listed["jobs"]] == ["audit", "ingest"]
    shown = json.loads(cli("jobs", "show", "1").out)
    assert shown["payload"]["source"] == str(transfer)
    assert cli("jobs", "retry", "1").code == 2                  # only failed jobs are retried


def test_a_transfer_is_accepted_once_by_the_database_itself(home) -> None:
    catalogue = Catalogue.open(home)
    now = utcnow()
    with catalogue.session() as s:
        s.add(m.Transfer(id="t-1", fingerprint="f" * 64, source="a", profile="jzfp",
                         status="accepted", received_at=now, plan={}, summary={}))
    from policies import CatalogueError

    with pytest.raises(CatalogueError):
        with catalogue.session() as s:
            s.add(m.Transfer(id="t-2", fingerprint="f" * 64, source="b", profile="jzfp",
                             status="in-progress", received_at=now, plan={}, summary={}))
    with catalogue.session() as s:   # a rejected delivery of the same bytes is recorded
        s.add(m.Transfer(id="t-3", fingerprint="f" * 64, source="c", profile="jzfp",
                         status="rejected", received_at=now, plan={}, summary={}))
