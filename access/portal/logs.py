"""The portal's logs: errors with their tracebacks in ``$DANGAN_HOME/logs/dangan.log`` (from
every serving process), and request lines without what readers typed.

A request line carries the query string: the words searched (names, ID numbers), facet values,
``next=`` addresses holding other searches, auditors' API keys. Every query value is replaced
by ``[redacted]`` in every log record, keeping the path and the parameter names; only the
values of a few parameters that never hold personal data (page, sort, language …) are kept.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from policies import Settings

#: parameters whose values are kept in logs: paging, order, language, flags, an account name
KEPT_PARAMETERS = frozenset(
    {"page", "per_page", "sort", "lang", "limit", "offset", "inline", "force_local", "username"}
)
LOGGERS = ("werkzeug", "flask.app", "access.portal", "dangan")
LOG_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
# a query parameter (after ? or &) up to the next separator, quote or white space
_PARAMETER = re.compile(r"([?&;])([^=&;\s\"'#]*)=([^&;\s\"'#]*)")


def redact(text: str) -> str:
    """``text`` with the value of every query parameter but :data:`KEPT_PARAMETERS`
    replaced by ``[redacted]``.

    >>> redact('"GET /search?q=%E5%BC%A0%E4%B8%89&page=2 HTTP/1.1" 200 -')
    '"GET /search?q=[redacted]&page=2 HTTP/1.1" 200 -'
    """

    def replace(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        if name.lower() in KEPT_PARAMETERS and len(value) <= 64:
            return match.group(0)
        return f"{sep}{name}=[redacted]"

    return _PARAMETER.sub(replace, text) if "=" in text else text


class RedactQueries(logging.Filter):
    """Applies :func:`redact` to a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        return True


def install_filters() -> None:
    """Redact query values in the records of the portal's loggers (once per process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueries) for f in logger.filters):
            logger.addFilter(RedactQueries())


class _PortalLogHandler(logging.handlers.WatchedFileHandler):
    """The handler :func:`configure` adds (recognised to be replaced, never doubled)."""


def log_path(settings: Settings) -> Path:
    """Where the portal writes its errors: ``$DANGAN_HOME/logs/dangan.log``."""
    return settings.home / "logs" / "dangan.log"


def configure(settings: Settings) -> Path:
    """Send the portal's errors (with tracebacks) and Dangan's own notices to the home's
    log file, from this process; call it in every serving process (after a fork too).

    Errors of the web server (a failure while streaming an answer) and of Flask go there as
    well; the request log stays on standard error, redacted.
    """
    path = log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():   # tracebacks can quote records: readable by the owner only
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    install_filters()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _PortalLogHandler)]:
            logger.removeHandler(old)
            old.close()
        handler = _PortalLogHandler(path, encoding="utf-8")
        # Dangan's notices (a worker starting) and everyone's warnings and errors
        handler.setLevel(logging.INFO if name == "dangan" else logging.WARNING)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RedactQueries())
        logger.addHandler(handler)
        if name == "dangan" and (logger.level == logging.NOTSET or logger.level > logging.INFO):
            logger.setLevel(logging.INFO)
    return path
