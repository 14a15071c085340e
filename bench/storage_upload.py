"""Uploading AIPs to S3 through Dangan against a plain boto3 loop, in one run.

Data sets:
  large  one file of ``--large-mib`` MiB (default 1 GiB)
  small  ``--small`` files of 4 KiB (default 20,000)
Servers (started here on 127.0.0.1, stopped at the end):
  moto      moto_server (in memory)
  radosgw   a single-node Ceph RADOS Gateway (memstore OSD), as in domain/test-services.md
Contenders, on the same files, the same server and bucket:
  plain   a sequential loop of ``client.upload_file(path, bucket, key)`` with a default boto3
          client: it verifies nothing (boto3's own multipart for the large file)
  dangan  ``S3Location.put_aip``: concurrent uploads with SHA-256 checksum headers, every
          object read back and hashed, the listing checked, then the publication marker.
          The expected digests are computed before the clock starts, as ingest has them
          from staging.
Each contender runs ``--repeat`` times, interleaved, objects deleted between runs; the
median is compared. Targets: dangan/plain <= 1.7 for the large file, < 1 for small files.

Reproduce:  python -m bench.storage_upload [--large-mib 1024] [--small 20000] [--repeat 1]
            [--servers moto,radosgw] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from contextlib import ExitStack
from pathlib import Path

import boto3

from bench.common import machine, make_big_file, make_small_files, save, table
from storage.locations import ExpectedFile
from storage.locations import S3Location

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "storage"))
from s3_servers import MotoServer, RadosGateway  # noqa: E402

MiB = 1 << 20
TARGETS = {"large": 1.7, "small": 1.0}


def expected_of(folder: Path) -> dict[str, ExpectedFile]:
    """Size and SHA-256 of every file under ``folder`` (computed before timing)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while block := handle.read(MiB):
                    digest.update(block)
            result[path.relative_to(folder).as_posix()] = ExpectedFile(
                path.stat().st_size, {"sha256": digest.hexdigest()})
    return result


def plain_loop(client, bucket: str, folder: Path, files: list[str], prefix: str) -> None:
    """The baseline: one upload_file after the other, nothing verified."""
    for rel in files:
        client.upload_file(str(folder / rel), bucket, f"{prefix}/{rel}")


def empty_bucket(client, bucket: str) -> None:
    """Delete every object (keeps the server's memory for the next run)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def run_server(name: str, server, sets: dict[str, Path], repeat: int) -> list[dict]:
    """Both contenders on every set against one server; one result per set."""
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id=server.access_key,
                          aws_secret_access_key=server.secret_key)
    bucket = f"bench-{uuidlib.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    # Dangan reaches the server through the standard AWS environment, as in production
    os.environ.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_ENDPOINT_URL=server.endpoint,
                      AWS_SECRET_ACCESS_KEY=server.secret_key, AWS_DEFAULT_REGION="us-east-1")
    location = S3Location("bench", f"s3://{bucket}/dangan")
    results = []
    for label, folder in sets.items():
        expected = expected_of(folder)
        files = sorted(expected)
        size = sum(e.size for e in expected.values())
        times: dict[str, list[float]] = {"plain": [], "dangan": []}
        for round_ in range(repeat):
            prefix = f"plain-{round_}"
            start = time.perf_counter()
            plain_loop(client, bucket, folder, files, prefix)
            times["plain"].append(time.perf_counter() - start)
            empty_bucket(client, bucket)
            start = time.perf_counter()
            report = location.put_aip(str(uuidlib.uuid4()), folder, expected)
            times["dangan"].append(time.perf_counter() - start)
            assert report.files == len(files) and not report.reused
            empty_bucket(client, bucket)
        plain, dangan = statistics.median(times["plain"]), statistics.median(times["dangan"])
        results.append({
            "server": name, "set": label, "files": len(files), "bytes": size,
            "plain_s": round(plain, 2), "dangan_s": round(dangan, 2),
            "ratio": round(dangan / plain, 3), "target": TARGETS[label.split()[0]],
            "runs": {k: [round(t, 2) for t in v] for k, v in times.items()},
            "dangan_MiB_s": round(size / MiB / dangan, 1),
            "plain_MiB_s": round(size / MiB / plain, 1),
        })
        print(f"  {name:8} {label:22} plain {plain:8.2f} s  dangan {dangan:8.2f} s  "
              f"ratio {dangan / plain:.2f}", flush=True)
    client.delete_bucket(Bucket=bucket)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--servers", default="moto,radosgw")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-", dir=args.workdir))
    sets = {f"large 1 x {args.large_mib} MiB": work / "large",
            f"small {args.small} x 4 KiB": work / "small"}
    try:
        make_big_file(sets[f"large 1 x {args.large_mib} MiB"], args.large_mib * MiB)
        make_small_files(sets[f"small {args.small} x 4 KiB"], args.small)
        results = []
        with ExitStack() as stack:
            for name in args.servers.split(","):
                if name == "moto":
                    server = stack.enter_context(MotoServer())
                elif name == "radosgw":
                    missing = RadosGateway.available()
                    if missing:
                        print(f"  radosgw skipped: {missing} is not installed")
                        continue
                    memory = 2 * args.large_mib * MiB + 2 * args.small * 64 * 1024 + (1 << 30)
                    server = stack.enter_context(RadosGateway(memstore_bytes=memory))
                else:
                    parser.error(f"unknown server {name!r}")
                results += run_server(name, server, sets, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python -m bench.storage_upload " + " ".join(argv or sys.argv[1:])
    path = save("storage_upload", {"command": command.strip(), "machine": machine(),
                                   "results": results})
    rows = [["server", "set", "plain s", "dangan s", "ratio", "target", "met"]]
    rows += [[r["server"], r["set"], f"{r['plain_s']:.2f}", f"{r['dangan_s']:.2f}",
              f"{r['ratio']:.2f}", f"<= {r['target']}" if r["target"] > 1 else "< 1",
              "yes" if (r["ratio"] <= r["target"] if r["target"] > 1 else r["ratio"] < 1)
              else "NO"] for r in results]
    print(table(rows))
    print(f"results: {path}\nreproduce: {command.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
