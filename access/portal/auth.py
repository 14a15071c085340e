"""Login, logout, the language switch, one's own password and the administrator's accounts page."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from access import accounts
from access.portal.errors import public_message
from access.portal.views import login_required, reader, requires, safe_next, service
from policies import DanganError, UsageError

bp = Blueprint("auth", __name__)


def _throttle() -> accounts.Throttle:
    return accounts.Throttle.from_settings(current_app.extensions["dangan"]["settings"])


def sign_in(user) -> None:
    """Start a fresh session for a user: a new session id, kept in the catalogue (the one
    this browser had before ends: no fixation)."""
    settings = current_app.extensions["dangan"]["settings"]
    token = accounts.start_session(
        service().catalogue,
        user,
        request.remote_addr or "-",
        settings.int("portal", "session_hours"),
        replaces=session.get("sid"),
    )
    session.clear()
    session["uid"] = user.id
    session["sv"] = user.session_version
    session["sid"] = token
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=next_url)
    try:
        user = accounts.authenticate(
            service().catalogue,
            request.form.get("username", ""),
            request.form.get("password", ""),
            request.remote_addr or "-",
            _throttle(),
        )
    except accounts.LoginThrottled as exc:
        response = make_response(
            render_template(
                "login.html",
                next=next_url,
                error=_("登录失败次数过多，请 %(n)s 秒后再试。", n=exc.retry_after),
            ),
            429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except accounts.LoginRefused:
        return render_template("login.html", next=next_url, error=_("用户名或密码错误。")), 401
    sign_in(user)
    return redirect(next_url)


@bp.post("/logout")
def logout():
    accounts.end_session(service().catalogue, session.get("sid"))
    session.clear()
    return redirect(url_for("search.search_page"))


@bp.get("/lang/<code>")
def language(code: str):
    if code not in ("zh", "en"):
        abort(404)
    response = redirect(safe_next(request.args.get("next")))
    response.set_cookie("lang", code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    message = error = None
    if request.method == "POST":
        me = reader().username or ""
        try:
            accounts.authenticate(
                service().catalogue,
                me,
                request.form.get("current", ""),
                request.remote_addr or "-",
                _throttle(),
            )
            user = accounts.set_password(
                service().catalogue, me, request.form.get("new", ""), actor=me
            )
            sign_in(user)
            message = _("密码已修改。")
        except (accounts.LoginRefused, accounts.LoginThrottled):
            error = _("当前密码错误。")
        except UsageError as exc:
            error = public_message(exc)
    return render_template("account.html", message=message, error=error)


@bp.route("/admin/users", methods=["GET", "POST"])
@requires("manage-users")
def users():
    error = confirm = None
    if request.method == "POST":
        form, catalogue, me = request.form, service().catalogue, reader().actor
        try:
            action = form.get("action")
            granting_admin = action in ("add", "role") and form.get("role") == "admin"
            if granting_admin and form.get("confirm_admin") != "1":
                if action == "add":
                    raise UsageError(_("授予管理员角色须勾选确认。"))
                confirm = {"username": form.get("username", "")}
            elif action == "add":
                accounts.add_user(
                    catalogue,
                    form.get("username", ""),
                    form.get("password", ""),
                    form.get("role") or accounts.DEFAULT_ROLE,
                    form.get("display_name", ""),
                    actor=me,
                )
            elif action == "role":
                accounts.set_role(
                    catalogue, form.get("username", ""), form.get("role", ""), actor=me
                )
            elif action in ("disable", "enable"):
                if form.get("username") == me:
                    raise UsageError(_("不能停用自己的账户。"))
                accounts.set_disabled(
                    catalogue, form.get("username", ""), action == "disable", actor=me
                )
            else:
                abort(400)
            if confirm is None:
                flash(_("已保存。"))
                return redirect(url_for("auth.users"))
        except DanganError as exc:
            error = public_message(exc)
    return render_template(
        "users.html",
        users=accounts.list_users(service().catalogue),
        roles=accounts.ROLES_BY_PRIVILEGE,
        default_role=accounts.DEFAULT_ROLE,
        confirm=confirm,
        error=error,
    ), 400 if error else 200


def test_login(client, role: str, username: str | None = None) -> str:
    """Tests: make (once) and sign in an account of ``role`` on a test client."""
    app = client.application
    catalogue = app.extensions["dangan"]["service"].catalogue
    username = username or f"test-{role}"
    try:
        user = accounts.get_user(catalogue, username)
    except DanganError:
        user = accounts.add_user(catalogue, username, "correct horse battery", role)
    token = accounts.start_session(catalogue, user, "127.0.0.1", 1)
    with client.session_transaction() as sess:
        sess.clear()
        sess["uid"], sess["sv"], sess["sid"] = user.id, user.session_version, token
    return username
