"""Real S3 servers on 127.0.0.1 for the storage tests and benchmarks.

- :class:`MotoServer`: ``moto_server`` in a child process (in memory, ready in about 1 s).
- :class:`RadosGateway`: a single-node Ceph cluster (one monitor, one in-memory OSD) and a
  RADOS Gateway, exactly as ``shared/domain/test-services.md`` describes, on free ports, in a
  scratch folder; ready in about 15-60 s. The gateway's ``beast`` frontend gets
  ``tcp_nodelay=1``: without it every small GET waits ~40 ms for a delayed ACK (Nagle), which
  measures the TCP stack rather than the server.

Both are context managers; on exit every process they started is stopped by its own pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

CEPH_BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    """Wait until ``url`` answers HTTP (any status), or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)


class MotoServer:
    """``moto_server`` on a free port; ``endpoint`` is its URL. Any key pair is accepted."""

    access_key, secret_key = "testing", "testing"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "MotoServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"{self.endpoint}/", 30)
        except TimeoutError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


class RadosGateway:
    """A one-node Ceph cluster with a RADOS Gateway, started in a scratch folder.

    Arguments:
        memstore_bytes: the in-memory OSD's capacity.
        root: scratch folder (default: a new temporary one, removed on exit).
    """

    access_key, secret_key = "dangan-test", "dangan-test-secret"

    def __init__(self, memstore_bytes: int = 2 << 30, root: Path | None = None) -> None:
        self.memstore_bytes = memstore_bytes
        self.own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="dangan-ceph-"))
        self.mon_port, self.port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.conf = self.root / "ceph.conf"

    @staticmethod
    def available() -> str | None:
        """None when every Ceph binary is installed, else the name of a missing one."""
        return next((b for b in CEPH_BINARIES if shutil.which(b) is None), None)

    def _config(self, fsid: str) -> str:
        d = self.root
        return f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{self.mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd crush chooseleaf type = 0
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
ms bind ipv6 = false
keyring = {d}/keyring
[osd]
osd crush update on start = false
osd class update on start = false
[mon.a]
mon data = {d}/mon-a
[osd.0]
osd data = {d}/osd-0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1
rgw data = {d}/rgw
"""

    def _run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        return done.stdout

    def __enter__(self) -> "RadosGateway":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        for sub in ("run", "log", "mon-a", "osd-0", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(self._config(fsid))
        conf = str(self.conf)
        self._run("monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{self.mon_port}",
                  "--fsid", fsid, str(self.root / "monmap"))
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(self.root / "monmap"),
                  "-c", conf)
        self._run("ceph-mon", "-i", "a", "-c", conf)
        osd_uuid = str(uuid.uuid4())
        self._run("ceph", "-c", conf, "--connect-timeout", "60", "osd", "new", osd_uuid)
        self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid, "-c", conf)
        self._run("ceph", "-c", conf, "osd", "crush", "add", "osd.0", "1.0", "host=localhost",
                  "root=default")
        self._run("ceph-osd", "-i", "0", "-c", conf)
        self._run("radosgw", "-c", conf, "-n", "client.rgw.a")
        wait_http(f"{self.endpoint}/", 120)
        self._run("radosgw-admin", "-c", conf, "user", "create", "--uid=dangan",
                  "--display-name=dangan", f"--access-key={self.access_key}",
                  f"--secret-key={self.secret_key}")

    def __exit__(self, *_exc) -> None:
        for name in ("client.rgw.a", "osd.0", "mon.a"):
            self._stop(self.root / "run" / f"{name}.pid")
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _stop(pid_file: Path, timeout: float = 20) -> None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def s3_client(endpoint: str, access_key: str, secret_key: str):
    """A plain boto3 client for a test server (path-style, us-east-1)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"mode": "standard", "max_attempts": 3}))
