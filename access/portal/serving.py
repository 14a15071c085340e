"""Serving the portal: one process with a thread per request, or several worker processes
sharing one listening socket so that searches use every core.

Each worker builds its own app (its own database connections and in-memory search columns)
after the fork; the parent only holds the socket, forwards SIGTERM / SIGINT to its workers and
waits. A worker whose parent dies (the pipe between them closes) exits too.

A worker takes a new connection only when none of its requests is computing (or after
:data:`ADMIT_WAIT` at most), leaving it to an idle worker. Searches are CPU work under one
interpreter lock per process: a worker that took every connection offered would run them side
by side, each slower, while another worker idles, and the slowest answers would take twice the
mean. A request stops counting as computing when the portal has answered it, so a long
download streams on its own thread without holding new connections back.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any, NoReturn

from policies import Settings

log = logging.getLogger("dangan.portal")


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted.

    Arguments:
        settings: the home to serve.
        host, port: where to listen.
        workers: processes; 1 serves from this process.
    """
    from werkzeug.serving import run_simple

    from access.portal import create_app, logs

    logs.configure(settings)
    app = create_app(settings)   # migrations, secret key: done once, before any fork
    log.info("portal on %s:%s: process %d, %d worker(s)", host, port, os.getpid(), workers)
    if workers <= 1:
        run_simple(host, port, app, threaded=True, use_reloader=False)
        return
    app.extensions["dangan"]["catalogue"].engine.dispose()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=256)
    alive_read, alive_write = os.pipe()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(alive_write)
            _worker(settings, host, port, listener, alive_read)
        children.append(pid)
    os.close(alive_read)
    listener.close()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for child in children:
            os.waitpid(child, 0)
    finally:
        os.close(alive_write)


ADMIT_WAIT = 0.1     # seconds a busy worker leaves a waiting connection to the others
STALE = 1.0          # seconds after which a connection that sent no request stops counting


def _worker(settings: Settings, host: str, port: int, listener: socket.socket,
            alive: int) -> NoReturn:
    """One worker process: its own app on the shared socket, until told to stop."""
    from access.portal import create_app, logs

    code = 0
    try:
        logs.configure(settings)    # this process's own handler on the home's log file
        log.info("portal worker %d serving on %s:%s", os.getpid(), host, port)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        threading.Thread(target=lambda: (os.read(alive, 1), os._exit(0)), daemon=True).start()
        server = _admitting_server(host, port, create_app(settings), listener)
        server.serve_forever(poll_interval=0.5)
    except BaseException:   # noqa: BLE001 - a worker reports and leaves, never returns
        log.exception("portal worker %d failed", os.getpid())
        code = 1
    os._exit(code)


def _admitting_server(host: str, port: int, app: Any, listener: socket.socket) -> Any:
    """A threaded WSGI server on ``listener`` that takes a connection only when idle."""
    from werkzeug.serving import ThreadedWSGIServer

    class AdmittingServer(ThreadedWSGIServer):
        def __init__(self) -> None:
            super().__init__(host, port, self._answer, fd=listener.fileno())
            # another worker may take a connection this one was woken for: accept() must
            # then fail at once instead of waiting for the next connection
            self.socket.setblocking(False)
            self.inner = app
            self.changed = threading.Condition()
            self.computing: dict[int, float] = {}   # connection -> when it was taken

        def _answer(self, environ: dict, start_response: Any) -> Any:
            try:
                return self.inner(environ, start_response)
            finally:
                self.answered(environ.get("werkzeug.socket"))

        def answered(self, connection: object) -> None:
            with self.changed:
                if self.computing.pop(id(connection), None) is not None:
                    self.changed.notify_all()

        def _busy(self) -> bool:
            now = time.monotonic()
            return any(now - taken < STALE for taken in self.computing.values())

        def _handle_request_noblock(self) -> None:
            deadline = time.monotonic() + ADMIT_WAIT
            with self.changed:
                while self._busy() and (left := deadline - time.monotonic()) > 0:
                    self.changed.wait(left)
            super()._handle_request_noblock()

        def process_request(self, request: Any, client_address: Any) -> None:
            with self.changed:
                self.computing[id(request)] = time.monotonic()
            super().process_request(request, client_address)

        def shutdown_request(self, request: Any) -> None:
            self.answered(request)      # a connection closed without a request
            super().shutdown_request(request)

    return AdmittingServer()
