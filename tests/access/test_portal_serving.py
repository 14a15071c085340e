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
        # the parent listens before it forks: the workers may appear a moment later
        workers = _children(server.pid)
        while len(workers) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
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


def _serve_in_thread(app):
    """A worker's admitting server on a fresh loopback socket, in a thread of this process."""
    import threading

    from access.portal.serving import _admitting_server

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _admitting_server("127.0.0.1", port, app, listener)
    listener.close()                    # the server listens on its own duplicate
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, port


def _get(port: int, path: str) -> tuple[float, bytes]:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        body = answer.read()
    return time.monotonic() - started, body


def test_a_worker_streams_a_download_while_it_answers_others(monkeypatch) -> None:
    """A request counts as computing until the app returns, not while its body streams
    (were it held back, every other request would wait the whole admission wait)."""
    monkeypatch.setattr("access.portal.serving.ADMIT_WAIT", 2.0)
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/slow":
            def body():
                for _ in range(4):
                    time.sleep(0.5)
                    yield b"chunk\n"
            return body()
        return [b"quick"]

    server, port = _serve_in_thread(app)
    try:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_get, port, "/slow")
            time.sleep(0.3)                       # the download is streaming by now
            quick = [_get(port, "/quick") for _ in range(5)]
            assert slow.result()[1] == b"chunk\n" * 4
        assert all(body == b"quick" for _, body in quick)
        assert max(seconds for seconds, _ in quick) < 1.0
    finally:
        server.shutdown()
        server.server_close()


def test_a_silent_connection_does_not_hold_a_worker(monkeypatch) -> None:
    """A client that connects and sends nothing delays the next connection by the admission
    wait at most, and stops counting after :data:`STALE` seconds."""
    monkeypatch.setattr("access.portal.serving.ADMIT_WAIT", 0.6)
    monkeypatch.setattr("access.portal.serving.STALE", 1.5)
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server, port = _serve_in_thread(app)
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        time.sleep(0.5)                           # taken by the worker, no request in it
        seconds, body = _get(port, "/")           # waits for the worker to be free, in vain
        assert body == b"ok" and 0.5 < seconds < 1.4
        time.sleep(1.5)
        seconds, body = _get(port, "/")           # the silent connection no longer counts
        assert body == b"ok" and seconds < 0.4
    finally:
        silent.close()
        server.shutdown()
        server.server_close()


def _wait_for(predicate, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_serve_logs_errors_with_tracebacks_in_the_home_from_every_worker(home) -> None:
    """``dangan serve`` makes ``$DANGAN_HOME/logs``; each worker writes there, an unexpected
    error goes there with its traceback under the incident id the answer names, and the
    request lines on standard error keep no searched words."""
    import json

    from sqlalchemy import text

    from storage.catalogue.database import Catalogue

    log = home.home / "logs" / "dangan.log"
    assert not log.parent.exists()
    port = _free_port()
    env = {**os.environ, "DANGAN_HOME": str(home.home)}
    server = subprocess.Popen([sys.executable, "-m", "dangan", "serve", "--port", str(port),
                               "--workers", "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        def started() -> list[str]:
            text = log.read_text(encoding="utf-8") if log.exists() else ""
            return [line for line in text.splitlines() if "portal worker" in line]

        assert _wait_for(lambda: len(started()) == 2), log.read_text() if log.exists() else ""
        workers = {int(line.split()[2]) for line in started()}
        assert workers == set(_children(server.pid))          # written by the workers
        assert log.stat().st_mode & 0o077 == 0
        catalogue = Catalogue(home.get("catalogue", "url"))
        with catalogue.engine.begin() as connection:         # every search fails from now on
            connection.execute(text("DROP TABLE search_access"))
        catalogue.engine.dispose()
        searched = "630121195402144291 张三"
        query = urllib.request.quote(searched)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/search?q={query}", timeout=30)
            raise AssertionError("the search should have failed")
        except urllib.error.HTTPError as error:
            assert error.code == 503
            answer = json.loads(error.read())
        assert "search_access" not in json.dumps(answer)
        incident = answer["incident"]
        assert _wait_for(lambda: incident in log.read_text(encoding="utf-8"))
        text = log.read_text(encoding="utf-8")
        after = text[text.index(incident):]
        assert "Traceback (most recent call last)" in after and "search_access" in after
        assert {int(line.split()[2]) for line in text.splitlines() if incident in line} <= workers
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        stderr = server.stderr.read().decode(errors="replace")
        assert "/api/v1/search?q=[redacted]" in stderr
        assert query not in stderr and "630121195402144291" not in stderr
        assert "630121195402144291" not in text and query not in text
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def test_request_lines_keep_paths_and_names_not_searched_values() -> None:
    from access.portal.logs import redact

    line = ('"GET /search?q=%E5%BC%A0%E4%B8%89&village=%E4%B8%89%E6%9D%91&page=2&sort=date'
            '&api_key=0123abcd HTTP/1.1" 200 -')
    assert redact(line) == ('"GET /search?q=[redacted]&village=[redacted]&page=2&sort=date'
                            '&api_key=[redacted] HTTP/1.1" 200 -')
    nested = '"GET /login?next=/search%3Fq%3D630121195402144291 HTTP/1.1" 200 -'
    assert "630121" not in redact(nested) and "/login?next=[redacted]" in redact(nested)
    assert redact('"GET /aip/x/file/data/objects/a.pdf HTTP/1.1" 200 -').endswith("200 -")
