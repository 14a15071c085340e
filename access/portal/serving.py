"""Serving the portal: one process with a thread per request, or several worker processes
sharing one listening socket so that searches use every core.

Each worker builds its own app (its own database connections and in-memory search columns)
after the fork; the parent only holds the socket, forwards SIGTERM / SIGINT to its workers and
waits. A worker whose parent dies (the pipe between them closes) exits too.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import NoReturn

from policies import Settings


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted.

    Arguments:
        settings: the home to serve.
        host, port: where to listen.
        workers: processes; 1 serves from this process.
    """
    from werkzeug.serving import run_simple

    from access.portal import create_app

    app = create_app(settings)   # migrations, secret key: done once, before any fork
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


def _worker(settings: Settings, host: str, port: int, listener: socket.socket,
            alive: int) -> NoReturn:
    """One worker process: its own app on the shared socket, until told to stop."""
    from werkzeug.serving import make_server

    from access.portal import create_app

    code = 0
    try:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        threading.Thread(target=lambda: (os.read(alive, 1), os._exit(0)), daemon=True).start()
        server = make_server(host, port, create_app(settings), threaded=True,
                             fd=listener.fileno())
        server.serve_forever()
    except BaseException:   # noqa: BLE001 - a worker reports and leaves, never returns
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code)
