"""``dangan serve --workers N``: several processes answer on one port and all of them stop
with the parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def test_workers_share_the_port_and_stop_with_the_parent(home) -> None:
    port = _free_port()
    env = {**os.environ, "DANGAN_HOME": str(home.home)}
    server = subprocess.Popen([sys.executable, "-m", "dangan", "serve", "--port", str(port),
                               "--workers", "3"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        workers = _children(server.pid)
        assert len(workers) == 3

        def fetch(_n: int) -> int:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/v1/search?q=%E5%9B%A0", timeout=30) as answer:
                    return answer.status
            except urllib.error.HTTPError as error:
                return error.code

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(fetch, range(60)))
        assert set(statuses) == {200}
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        time.sleep(0.5)
        assert not [w for w in workers if Path(f"/proc/{w}").exists()
                    and "Z" not in (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1][:3])]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            listening = True
        except OSError:
            listening = False
        assert not listening
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        print(server.stderr.read().decode(errors="replace")[-3000:])
