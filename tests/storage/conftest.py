"""Fixtures of the storage tests: real S3 servers (moto, Ceph RADOS Gateway), buckets, bags.

The servers are started once per session on 127.0.0.1 (free ports) and stopped at the end;
each test gets its own bucket(s). ``radosgw`` skips (with the reason) only when the Ceph
binaries are not installed.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))

from bag_support import make_bag  # noqa: E402
from s3_servers import MotoServer, RadosGateway, s3_client  # noqa: E402

from storage.locations import ExpectedFile  # noqa: E402

_names = itertools.count(1)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto_server child process for the whole session."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGateway]:
    """A single-node Ceph cluster with a RADOS Gateway (about 20 s to start)."""
    missing = RadosGateway.available()
    if missing:
        pytest.skip(f"Ceph is not installed ({missing} not found): apt-get install radosgw "
                    "ceph-mon ceph-osd")
    with RadosGateway(root=tmp_path_factory.mktemp("ceph")) as gateway:
        yield gateway


@pytest.fixture
def s3_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The standard AWS environment pointing at moto (AWS_ENDPOINT_URL and keys)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return moto


@pytest.fixture
def new_bucket(moto: MotoServer) -> Callable[..., str]:
    """Create a fresh bucket on moto: ``new_bucket(lock=False) -> name``."""
    client = s3_client(moto.endpoint, moto.access_key, moto.secret_key)

    def make(lock: bool = False) -> str:
        name = f"test-{os.getpid()}-{next(_names)}"
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name

    return make


@pytest.fixture
def moto_client(moto: MotoServer):
    """A plain boto3 client of the moto server (for looking behind Dangan's back)."""
    return s3_client(moto.endpoint, moto.access_key, moto.secret_key)


@pytest.fixture
def bag(tmp_path: Path) -> tuple[Path, dict[str, ExpectedFile]]:
    """A small bag with Chinese file names, an empty file and a 1 MiB file."""
    folder = tmp_path / "bag"
    files = {
        "objects/户卷/001-申请书.txt": "第1件 贫困户申请书 因病致贫\n".encode() * 20,
        "objects/户卷/002-照片.jpg": os.urandom(1 << 20),
        "objects/空文件.txt": b"",
        "metadata/record.json": b'{"a": 1}',
    }
    return folder, make_bag(folder, files)
