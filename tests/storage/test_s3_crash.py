"""An ingest killed during a multipart upload to S3 leaves no visible partial AIP; the re-run
completes it once and aborts the multipart upload the killed run started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import bagit
import pytest
from transfers import small_transfer

from storage.catalogue.database import Catalogue
from storage.locations.s3 import S3Location
from storage.copies import expected_of_aip

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]


def _environment(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(home.home), DANGAN_STORAGE_FSYNC="false")
    return env


def _kill_during_multipart(command: list[str], env: dict[str, str], client, bucket: str,
                           timeout: float = 120) -> subprocess.Popen:
    """Start ``command``; SIGKILL it once a multipart upload to ``bucket`` has a part."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError("the ingest finished before a multipart upload was seen: "
                                     + process.stderr.read().decode()[-2000:])
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                parts = client.list_parts(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"]).get("Parts", [])
                if parts:
                    process.send_signal(signal.SIGKILL)
                    process.wait(30)
                    return process
            time.sleep(0.02)
        raise AssertionError(f"no multipart upload within {timeout} s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("order", [["local", "s3a"], ["s3a", "local"]],
                         ids=["s3-second", "s3-first"])
def test_killed_during_multipart_upload_then_rerun(home, s3_env, new_bucket, moto_client,
                                                   tmp_path, order):
    """s3-second: the local copy was published before the kill, and becomes the source of
    the S3 copy on the re-run; s3-first: nothing was published anywhere."""
    bucket = new_bucket()
    urls = {"local": "file://{home}/aips", "s3a": f"s3://{bucket}/dangan?part_mib=5&workers=2"}
    (home.home / "policies").mkdir()
    (home.home / "policies" / "storage.yaml").write_text(
        "locations:\n" + "".join(f"  - {{name: {n}, url: '{urls[n]}'}}\n" for n in order)
        + f"copies:\n  default: [{', '.join(order)}]\n", encoding="utf-8")
    transfer = small_transfer(tmp_path / "t", rows=2)
    with open(transfer / "户卷" / "002-申请书.txt", "ab") as handle:
        handle.write(os.urandom(64 << 20))
    env = _environment(home)
    ingest = [*DANGAN, "ingest", str(transfer), "--json"]

    killed = _kill_during_multipart(ingest, env, moto_client, bucket)
    assert killed.returncode == -signal.SIGKILL
    location = S3Location("s3a", f"s3://{bucket}/dangan")
    assert list(location.list_aips()) == [], "no visible AIP at S3"
    assert Catalogue.open(home).list_aips(status=None) == [], "nothing catalogued"
    (orphan,) = moto_client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    uuid = orphan["Key"].split("/")[1]
    assert not location.has_aip(uuid)

    finished = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["status"] == "accepted" and [a["uuid"] for a in result["aips"]] == [uuid]

    assert moto_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    catalogue = Catalogue.open(home)
    assert [a.uuid for a in catalogue.list_aips(status=None)] == [uuid]
    expected = expected_of_aip(catalogue, uuid)
    pages = moto_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
    assert keys == {f"dangan/{uuid}/{p}" for p in expected} | {
        f"dangan/.dangan/published/{uuid}",
        "dangan/.dangan/admin/audit-log-anchor.json"}       # the ingest anchored the log
    assert location.verify_aip(uuid, expected) == [], "the S3 copy is the catalogued AIP"
    bagit.Bag(str(home.home / "aips" / uuid)).validate()
    assert {c.location: c.status for c in catalogue.copies_of(uuid)} == {
        "local": "verified", "s3a": "verified"}

    again = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["status"] == "already-ingested"
