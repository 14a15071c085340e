"""What every blueprint shares: the signed-in user and reader on ``g``, the login and
capability guards, the service accessor and template helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask_babel import get_locale, gettext as _

from access.portal.i18n import N_

from access.accounts import session_user
from access.rules import Reader
from access.services import AccessService

TIER_NAMES = {"content": N_("全文可见"), "masked": N_("已脱敏"), "listed": N_("仅目录"), "hidden": N_("不可见")}
RETENTION_NAMES = {"Y": N_("永久"), "D30": N_("定期30年"), "D10": N_("定期10年")}
ROLE_NAMES = {
    "admin": N_("管理员"),
    "archivist": N_("档案管理员"),
    "auditor": N_("审计员"),
    "researcher": N_("研究人员"),
    "public": N_("公众"),
}
OUTCOME_NAMES = {"present": N_("快速校验：文件齐全、大小相符")}
"""Event outcomes shown in words: a quick check's ``present`` must not read as a pass."""

STATUS_NAMES = {
    "pending": N_("待审批"),
    "granted": N_("已批准"),
    "refused": N_("已拒绝"),
    "revoked": N_("已撤销"),
    "expired": N_("已过期"),
    "withdrawn": N_("已撤回"),
    "": N_("全部"),
}

VIEWER_STYLE = ("@media (hover: none) {    .openseadragon-canvas:focus {"
                "        outline: none !important;    }}")
"""The one ``<style>`` element OpenSeadragon (the IIIF viewer, 6.1.1) adds to a page itself:
the policy allows exactly this text by its hash (``style-src``), no other inline style."""


def _style_hash(text: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; "
    f"style-src 'self' {_style_hash(VIEWER_STYLE)}; script-src 'self'; "
    "object-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'"
)
"""Scripts and styles from the portal's own files only; inline: the viewer's style alone."""


def service() -> AccessService:
    """The access service of this portal."""
    return current_app.extensions["dangan"]["service"]


def _load_user() -> None:
    g.user = None
    g.reader = Reader()
    uid = session.get("uid")
    if uid is None:
        return
    with service().catalogue.session() as s:      # session, account and grants: one session
        user = session_user(s, uid, session.get("sid"))
        if user is None or user.session_version != session.get("sv"):
            session.clear()
        else:
            g.user = user
            g.reader = service().reader(user, s)


def reader() -> Reader:
    """The reader of this request (anonymous visitors are the ``public`` role)."""
    if "reader" not in g:
        _load_user()
    return g.reader


def is_api() -> bool:
    return request.path.startswith("/api/")


def login_required(view: Callable) -> Callable:
    """Pages: send anonymous visitors to the login page (and back). API: 401."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if reader().username is None:
            if is_api():
                abort(401)
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def requires(capability: str) -> Callable[[Callable], Callable]:
    """Guard a view by a capability of the reader's role (403 otherwise)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not reader().can(capability):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def safe_next(target: str | None) -> str:
    """A redirect target inside this portal only (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("search.search_page")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("search.search_page")


def base_url() -> str:
    """The portal's public address for QR codes (``[portal] public_url``, else this host)."""
    configured = current_app.extensions["dangan"]["settings"].get("portal", "public_url")
    return str(configured or request.host_url).rstrip("/")


def _filesize(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def init_app(app: Flask) -> None:
    """Load the user before each request; add template helpers."""
    app.before_request(_load_user)
    app.jinja_env.filters["filesize"] = _filesize
    from access.charts import bar_chart, column_chart, gauge

    app.jinja_env.filters["zip"] = lambda a, b: zip(a, b)
    app.jinja_env.globals.update(bar_chart=bar_chart, column_chart=column_chart, gauge=gauge)
    app.jinja_env.globals.update(
        role_name=lambda r: _(ROLE_NAMES.get(r, r)), status_name=lambda s: _(STATUS_NAMES.get(s, s))
    )
    app.jinja_env.globals.update(
        outcome_name=lambda o: _(OUTCOME_NAMES[o]) if o in OUTCOME_NAMES else o
    )
    app.jinja_env.globals.update(
        tier_name=lambda t: _(TIER_NAMES.get(t, t)),
        retention_name=lambda c: _(RETENTION_NAMES.get(c, c or "—")),
    )

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"reader": reader(), "user": g.get("user"), "locale": str(get_locale() or "zh")}

    @app.after_request
    def _headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if "uid" in session:
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    @app.teardown_request
    def _anchor_audit_log(_exc: BaseException | None) -> None:
        # entries this request appended are anchored in storage now (reading ones at most
        # every [audit] anchor_interval_seconds); a failure never fails the request
        from storage.catalogue import AUDIT_WRITTEN, auditlog

        if not AUDIT_WRITTEN:
            return
        try:
            auditlog.anchor_written(current_app.extensions["dangan"]["settings"], service().catalogue,
                           actor="portal")
        except Exception:  # noqa: BLE001 - logged; the answer is already given
            current_app.logger.exception("audit log not anchored in storage")


__all__ = [
    "base_url",
    "init_app",
    "is_api",
    "login_required",
    "reader",
    "requires",
    "safe_next",
    "service",
]
