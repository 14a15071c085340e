"""Errors at the edge: JSON for the API, a page for people; never a traceback, and never the
text of an internal error.

An internal error's message can hold an SQL statement with its parameters, a storage URL or a
server path: it goes to the log (``$DANGAN_HOME/logs/dangan.log``) under a short incident id,
and the answer says only that something failed and which id to quote. Only the messages of
errors that are about the request itself (bad input, not found, not allowed) are shown.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, jsonify, render_template, request
from flask_babel import get_locale, gettext as _

from access.portal.i18n import N_
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from policies import DanganError, FixityError, NotFoundError, RejectedError, UsageError

log = logging.getLogger("dangan.portal")


def _shown_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message is written for the person who made the request."""
    from access.accounts import LoginRefused, LoginThrottled
    from access.services import Forbidden

    return (UsageError, RejectedError, Forbidden, LoginRefused, LoginThrottled)


def incident(message: str = "internal error") -> str:
    """Log the exception being handled with a new incident id; return the id."""
    ident = secrets.token_hex(4)
    log.exception("%s [incident %s] %s %s", message, ident, request.method, request.path)
    return ident


def internal_message(ident: str) -> str:
    """What a reader is told of an internal error (the details are in the log)."""
    return _("内部错误，已记入服务器日志（事件编号 %(id)s）。", id=ident)


def public_message(exc: BaseException) -> str:
    """The text of ``exc`` that may be shown in an answer: its own message when it is about
    the request, else a generic one (the error is logged with an incident id)."""
    if isinstance(exc, _shown_errors()):
        return str(exc)
    return internal_message(incident("request failed"))


def _status_of(exc: DanganError) -> int:
    """The HTTP status of an error about the request."""
    from access.accounts import LoginThrottled
    from access.services import Forbidden

    for kind, code in ((NotFoundError, 404), (Forbidden, 403), (LoginThrottled, 429)):
        if isinstance(exc, kind):
            return code
    return 400


PAGE_TITLES = {400: N_("请求有误"), 401: N_("需要登录"), 403: N_("无权访问"), 404: N_("未找到"),
               405: N_("不支持的请求方式"), 409: N_("无法完成"), 413: N_("请求内容过大"),
               416: N_("请求的范围无效"), 429: N_("请求过多"), 500: N_("内部错误"), 503: N_("服务暂不可用")}
PAGE_MESSAGES = {
    400: N_("请求的参数有误，请返回上一页重试。"),
    401: N_("请先登录。"),
    403: N_("您没有查看此页面或此档案内容的权限。如需查阅受控档案，请登录后提交查档申请。"),
    404: N_("没有找到这个页面或档案。档案可能不存在，或者您无权知道它的存在。"),
    405: N_("此地址不接受这种请求方式。"),
    413: N_("提交的内容过大。"),
    429: N_("请求过于频繁，请稍后再试。"),
    500: N_("服务器内部错误，请稍后再试。"),
    503: N_("服务暂时不可用，请稍后再试。"),
}
"""Page texts in Chinese for errors whose own message is Werkzeug's English default or an
English sentence meant for the API."""


def _page_message(code: int, message: str) -> str:
    """The message a page shows: the error's own when it is written in Chinese (or names an
    incident), else the Chinese text of the status."""
    written = any("\u4e00" <= ch <= "\u9fff" for ch in message)
    return message if written or code not in PAGE_MESSAGES else _(PAGE_MESSAGES[code])


def _answer(code: int, name: str, message: str, **extra):
    if request.path.startswith("/api/"):
        return jsonify({"error": code, "name": name, "message": message, **extra}), code
    title = _(PAGE_TITLES[code]) if code in PAGE_TITLES else name
    return render_template("error.html", code=code, name=name, title=title,
                           message=_page_message(code, message), **extra), code


def _repair_note(repair: str | None) -> str:
    """What the page says of the repair, from the AIP's latest repair request."""
    if repair == "pending":
        return _("修复申请已提出，待档案管理员批准后从完好的副本修复。")
    if repair == "unrepairable":
        return _("目前没有完好的副本可用于修复，已报告审计员，须从其他来源恢复。")
    if repair in ("failed", "rejected"):
        return _("上次修复未完成，审计员已知悉，待再次修复。")
    return _("待下一次固定性审计确认后修复。")


def damaged_file(exc: FixityError):
    """The answer for a file no copy serves intact: 409 naming the file, saying that the
    damage is on record for the auditors and where its repair stands."""
    from access.portal.views import service

    uuid = getattr(exc, "aip_uuid", "") or ""
    path = exc.path or ""
    state = service().damage_state(uuid, path)
    # Chinese sentences follow one another without a space; English ones with one
    joiner = "" if str(get_locale() or "zh").startswith("zh") else " "
    message = joiner.join(
        (
            _("文件 %(path)s 的所有副本均未通过校验（内容与入库时登记的摘要不符或无法读取），"
              "暂不能提供。", path=path),
            _("损坏已记入保存记录（PREMIS 事件和审计日志），审计员可以看到。"),
            _repair_note(state["repair"]),
            _("本档案的其他文件不受影响，仍可下载。"),
        )
    )
    return _answer(409, "Conflict", message, damaged={"path": path, **state})


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return _answer(400, "CSRF", exc.description)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = _answer(exc.code or 500, exc.name, exc.description or "")
        if exc.code == 401 and request.path.startswith("/api/"):
            response[0].headers["WWW-Authenticate"] = 'Session realm="dangan"'
        return response

    @app.errorhandler(FixityError)
    def _fixity(exc: FixityError):
        return damaged_file(exc)

    @app.errorhandler(DanganError)
    def _dangan(exc: DanganError):
        if isinstance(exc, _shown_errors()):
            return _answer(_status_of(exc), type(exc).__name__, str(exc))
        ident = incident("request failed")
        return _answer(503, "Service Unavailable", internal_message(ident), incident=ident)

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        if app.config.get("TESTING") and app.config.get("PROPAGATE_EXCEPTIONS", True):
            raise exc
        ident = incident()
        return _answer(500, InternalServerError().name, internal_message(ident), incident=ident)
