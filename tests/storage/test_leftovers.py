"""What a killed ingest that is never re-run leaves — a complete uncatalogued copy at one
location, a half-written one at another, a staging run, an interrupted transfer — is reported
by ``dangan storage status`` (exit 1) and removed by ``dangan storage clean`` when nothing
claims it; what a running ingest holds or a re-run would adopt is kept."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select
from transfers import small_transfer

from storage.catalogue import models
from storage.catalogue.database import Catalogue
from storage.copies import parse_age, transfer_lock_path
from storage.locations.s3 import S3Location

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]

TWO_FOLDERS = """\
locations:
  - {name: a, url: "file://{home}/store-a"}
  - {name: b, url: "file://{home}/store-b"}
copies:
  default: [a, b]
"""


def _run(home, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(home.home), DANGAN_STORAGE_FSYNC="false",
               DANGAN_FULLTEXT_OCR="false")
    if crash_at:
        env["DANGAN_CRASH_AT"] = crash_at
    return subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _policy(home, text: str) -> None:
    (home.home / "policies").mkdir(exist_ok=True)
    (home.home / "policies" / "storage.yaml").write_text(text, encoding="utf-8")


def _killed_ingest(home, tmp_path) -> tuple[str, str]:
    """An ingest killed while its second copy is half-written: (transfer folder, AIP uuid)."""
    transfer = small_transfer(tmp_path / "t", rows=2)
    killed = _run(home, "ingest", str(transfer), crash_at="pending-written:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Catalogue.open(home).session() as s:
        (row,) = s.scalars(select(models.Transfer)).all()
    (uuid,) = row.plan.values()
    return str(transfer), uuid


def _leftovers(cli) -> tuple[int, dict[tuple[str, str], dict]]:
    result = cli("storage", "status", "--json")
    data = json.loads(result.out)["leftovers"]
    return result.code, {(r["where"], r["kind"]): r for r in data["remnants"]}


def _clean(cli, *args: str) -> tuple[int, dict[tuple[str, str], dict]]:
    result = cli("storage", "clean", "--json", *args)
    data = json.loads(result.out)
    return result.code, {(o["where"], o["kind"]): o for o in data["outcomes"]}


def test_the_leftovers_of_a_killed_ingest_are_reported_and_cleaned(home, cli, tmp_path):
    _policy(home, TWO_FOLDERS)
    transfer, uuid = _killed_ingest(home, tmp_path)
    assert (home.home / "store-a" / uuid / "bagit.txt").is_file()
    assert (home.home / "store-b" / ".pending" / uuid).is_dir()

    code, found = _leftovers(cli)
    assert code == 1
    assert set(found) == {("a", "uncatalogued"), ("b", "half-written"),
                          ("staging", "staging-run"), ("catalogue", "interrupted-transfer")}
    for key in [("a", "uncatalogued"), ("b", "half-written"), ("staging", "staging-run")]:
        assert found[key]["bytes"] > 0 and found[key]["age_seconds"] is not None
        assert found[key]["problem"] and not found[key]["running"]
    assert found[("a", "uncatalogued")]["uuid"] == uuid
    assert found[("a", "uncatalogued")]["source"] == transfer
    text = cli("storage", "status")
    assert text.code == 1 and "half-written .pending/" + uuid in text.out
    assert "uncatalogued " + uuid in text.out and "KiB" in text.out

    code, planned = _clean(cli, "--older-than", "0", "--dry-run")
    assert code == 0 and planned[("b", "half-written")]["action"] == "would-remove"
    assert (home.home / "store-b" / ".pending" / uuid).is_dir()
    code, young = _clean(cli)                                     # default: a day old at least
    assert code == 0 and {o["action"] for o in young.values()} == {"kept"}

    code, done = _clean(cli, "--older-than", "0")
    assert code == 0
    assert done[("b", "half-written")]["action"] == "removed"
    assert done[("staging", "staging-run")]["action"] == "removed"
    # the complete copy is what a re-run adopts: kept unless the transfer is abandoned
    assert done[("a", "uncatalogued")]["action"] == "kept"
    assert "re-run" in done[("a", "uncatalogued")]["reason"]
    assert not any((home.home / "store-b" / ".pending").iterdir())
    assert not list((home.home / "staging").glob("run-*"))

    finished = _run(home, "ingest", transfer, "--json")
    assert finished.returncode == 0, finished.stderr
    assert [a["uuid"] for a in json.loads(finished.stdout)["aips"]] == [uuid]
    assert _leftovers(cli) == (0, {})
    log = json.loads(cli("audit-log", "show", "-n", "50", "--json").out)
    assert "storage-clean" in [e["action"] for e in log]
    assert cli("audit-log", "verify").code == 0


def test_an_interrupted_transfer_can_be_abandoned(home, cli, tmp_path):
    _policy(home, TWO_FOLDERS)
    transfer, uuid = _killed_ingest(home, tmp_path)
    code, done = _clean(cli, "--older-than", "0", "--abandon-interrupted")
    assert code == 0 and {o["action"] for o in done.values()} == {"removed"}
    assert not (home.home / "store-a" / uuid).exists()
    assert _leftovers(cli) == (0, {})
    with Catalogue.open(home).session() as s:
        assert [t.status for t in s.scalars(select(models.Transfer))] == ["abandoned"]
    assert cli("audit-log", "verify").code == 0          # the abandonment is accounted for
    again = _run(home, "ingest", transfer, "--json")
    assert again.returncode == 0, again.stderr
    assert [a["uuid"] for a in json.loads(again.stdout)["aips"]] != [uuid]


def test_what_a_running_ingest_holds_is_never_removed(home, cli, tmp_path):
    _policy(home, TWO_FOLDERS)
    _transfer, uuid = _killed_ingest(home, tmp_path)
    with Catalogue.open(home).session() as s:
        fingerprint = s.scalars(select(models.Transfer.fingerprint)).one()
    lock = transfer_lock_path(home, fingerprint)
    with open(lock, "a+") as handle:                 # as the re-run holds it while it works
        fcntl.flock(handle, fcntl.LOCK_EX)
        code, found = _leftovers(cli)
        assert found[("b", "half-written")]["running"]
        assert not found[("b", "half-written")]["problem"]
        code, done = _clean(cli, "--older-than", "0", "--abandon-interrupted")
        assert done[("b", "half-written")]["action"] == "kept"
        assert done[("a", "uncatalogued")]["reason"] == "in use by a running ingest"
        assert ("catalogue", "interrupted-transfer") not in done
    assert (home.home / "store-b" / ".pending" / uuid).is_dir()


def test_a_complete_copy_no_transfer_claims_is_kept(home, cli, tmp_path):
    _policy(home, TWO_FOLDERS)
    stray = home.home / "store-a" / "0c9f6c1e-7d6b-4c1a-9f1e-3b0d2a6f5e44"
    stray.mkdir(parents=True)
    (stray / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    code, found = _leftovers(cli)
    assert code == 1 and set(found) == {("a", "uncatalogued")}
    code, done = _clean(cli, "--older-than", "0", "--abandon-interrupted")
    assert done[("a", "uncatalogued")]["action"] == "kept"
    assert "dangan rebuild" in done[("a", "uncatalogued")]["reason"]
    assert stray.is_dir()


@pytest.mark.parametrize("order", [["local", "s3a"], ["s3a", "local"]],
                         ids=["half-written-at-s3", "uncatalogued-at-s3"])
def test_s3_leftovers_are_reported_and_cleaned(home, cli, s3_env, new_bucket, moto_client,
                                               tmp_path, order):
    bucket = new_bucket()
    urls = {"local": "file://{home}/aips", "s3a": f"s3://{bucket}/dangan"}
    _policy(home, "locations:\n" + "".join(f"  - {{name: {n}, url: '{urls[n]}'}}\n"
                                           for n in order)
            + f"copies:\n  default: [{', '.join(order)}]\n")
    _transfer, uuid = _killed_ingest(home, tmp_path)
    location = S3Location("s3a", f"s3://{bucket}/dangan")
    s3_kind = "half-written" if order[-1] == "s3a" else "uncatalogued"
    local_kind = "uncatalogued" if s3_kind == "half-written" else "half-written"
    code, found = _leftovers(cli)
    assert code == 1
    assert {("s3a", s3_kind), ("local", local_kind)} <= set(found)
    assert found[("s3a", s3_kind)]["uuid"] == uuid and found[("s3a", s3_kind)]["bytes"] > 0

    code, done = _clean(cli, "--older-than", "0", "--abandon-interrupted")
    assert code == 0, done
    assert {o["action"] for o in done.values()} == {"removed"}
    pages = moto_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
    assert not [k for k in keys if uuid in k], keys
    assert list(location.list_aips()) == [] and location.leftovers() == []
    assert _leftovers(cli) == (0, {})


def test_ages_are_read_as_people_write_them():
    assert parse_age("0") == 0 and parse_age("90s") == 90 and parse_age("30m") == 1800
    assert parse_age("12h") == 43200 and parse_age("7d") == 604800
    from policies import UsageError

    with pytest.raises(UsageError):
        parse_age("a week")
