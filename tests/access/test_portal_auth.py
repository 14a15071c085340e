"""Accounts and sessions: login, throttling, CSRF on every form, disabled accounts, safe
redirects, the language switch, and ``dangan user``."""

from __future__ import annotations

import re

import pytest
from holdings import PASSWORD


@pytest.fixture
def app(holding):
    """A portal with CSRF protection on, as in production."""
    from access.portal import create_app

    return create_app(holding.settings, {"TESTING": True})


def _token(client, url="/login") -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_login_with_csrf_and_logout(app):
    client = app.test_client()
    assert (
        client.post("/login", data={"username": "researcher", "password": PASSWORD}).status_code
        == 400
    )  # no token
    token = _token(client)
    response = client.post(
        "/login",
        data={
            "username": "researcher",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/requests",
        },
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/requests")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/v1/me").get_json()["role"] == "researcher"
    assert client.post("/logout").status_code == 400  # forms need a token
    assert (
        client.post("/logout", data={"csrf_token": _token(client, "/account")}).status_code == 302
    )
    assert client.get("/api/v1/me").get_json()["role"] == "public"


def test_wrong_password_then_throttled_even_with_the_right_one(app, holding):
    from access import accounts
    from access.services import AccessService

    accounts.add_user(
        AccessService(holding.settings).catalogue, "throttled", PASSWORD, "researcher"
    )
    client = app.test_client()
    token = _token(client)
    for _ in range(5):
        bad = client.post(
            "/login",
            data={"username": "throttled", "password": "wrong password!", "csrf_token": token},
        )
        assert bad.status_code == 401
    right = client.post(
        "/login", data={"username": "throttled", "password": PASSWORD, "csrf_token": token}
    )
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0


def test_disabled_account_is_logged_out_and_cannot_log_in(app, holding):
    from access import accounts
    from access.services import AccessService

    catalogue = AccessService(holding.settings).catalogue
    accounts.add_user(catalogue, "leaver", PASSWORD, "archivist")
    client = app.test_client()
    client.post(
        "/login", data={"username": "leaver", "password": PASSWORD, "csrf_token": _token(client)}
    )
    assert client.get("/api/v1/me").get_json()["role"] == "archivist"
    accounts.set_disabled(catalogue, "leaver")
    assert client.get("/api/v1/me").get_json()["role"] == "public"  # session ended
    again = client.post(
        "/login", data={"username": "leaver", "password": PASSWORD, "csrf_token": _token(client)}
    )
    assert again.status_code == 401


def test_role_change_ends_sessions(app, holding):
    from access import accounts
    from access.services import AccessService

    catalogue = AccessService(holding.settings).catalogue
    accounts.add_user(catalogue, "mover", PASSWORD, "archivist")
    client = app.test_client()
    client.post(
        "/login", data={"username": "mover", "password": PASSWORD, "csrf_token": _token(client)}
    )
    accounts.set_role(catalogue, "mover", "researcher")
    assert client.get("/api/v1/me").get_json()["role"] == "public"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_no_open_redirect_after_login(app, target):
    client = app.test_client()
    response = client.post(
        "/login",
        data={
            "username": "researcher",
            "password": PASSWORD,
            "csrf_token": _token(client),
            "next": target,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] in ("/search", "http://localhost/search")


def test_api_post_needs_the_csrf_token_from_me(app, holding):
    client = app.test_client()
    client.post(
        "/login",
        data={"username": "researcher", "password": PASSWORD, "csrf_token": _token(client)},
    )
    body = {"aip": holding.restricted, "purpose": "研究扶贫政策效果"}
    assert client.post("/api/v1/requests", json=body).status_code == 400
    token = client.get("/api/v1/me").get_json()["csrf_token"]
    created = client.post("/api/v1/requests", json=body, headers={"X-CSRFToken": token})
    assert created.status_code == 201


def test_chinese_first_english_on_request(client_for):
    client = client_for("public")
    assert "档案检索" in client.get("/").get_data(as_text=True)
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Search the archives" in english and 'lang="en"' in english
    switched = client.get("/lang/en?next=/")
    assert switched.status_code == 302
    assert "Search the archives" in client.get("/").get_data(as_text=True)  # cookie kept


def test_translation_catalogue_is_compiled_and_complete():
    from pathlib import Path

    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    folder = Path(__file__).resolve().parents[2] / "access/portal/translations/en/LC_MESSAGES"
    with open(folder / "messages.po", "rb") as handle:
        po = read_po(handle)
    with open(folder / "messages.mo", "rb") as handle:
        mo = read_mo(handle)
    missing = [m.id for m in po if m.id and not m.string]
    assert not missing
    assert {(m.context, m.id): m.string for m in po if m.id} == {
        (m.context, m.id): m.string for m in mo if m.id}


def _marked_strings() -> dict[tuple[str | None, str], str]:
    """Every string the portal's templates and Python code mark for translation (gettext,
    pgettext, the ``N_`` and ``NP_`` markers), as ``access/portal/babel.cfg`` extracts them, with where."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    from access.portal.i18n import KEYWORDS

    portal = Path(__file__).resolve().parents[2] / "access/portal"
    with open(portal / "babel.cfg", encoding="utf-8") as handle:
        methods, options = parse_mapping_cfg(handle)
    found: dict[tuple[str | None, str], str] = {}
    for path, line, message, _comments, context in extract_from_dir(
            portal, methods, options, keywords=KEYWORDS, strip_comment_tags=True):
        text = message if isinstance(message, str) else message[0]
        found.setdefault((context, text), f"{path}:{line}")
    return found


def test_every_marked_string_has_an_english_translation():
    from pathlib import Path

    from babel.messages.pofile import read_po

    marked = _marked_strings()
    assert ("版本变更", "撤回") in marked and (None, "未找到") in marked     # pgettext, N_
    assert len(marked) > 300
    from storage.appraisal.batches import DECISION_LABELS, STATUS_LABELS

    shown = set(STATUS_LABELS.values()) | set(DECISION_LABELS.values())
    assert not shown - {text for context, text in marked if context == "鉴定"}, \
        "storage.appraisal labels the portal shows are not marked (access/portal/appraisal.py)"
    folder = Path(__file__).resolve().parents[2] / "access/portal/translations/en/LC_MESSAGES"
    with open(folder / "messages.po", "rb") as handle:
        english = {(m.context, m.id): m.string for m in read_po(handle) if m.id}
    untranslated = sorted(f"{where}: {context + ' | ' if context else ''}{text}"
                          for (context, text), where in marked.items()
                          if not english.get((context, text)))
    assert not untranslated, f"{len(untranslated)} without English:\n" + "\n".join(untranslated)


def test_admin_manages_users_in_the_portal(client_for):
    admin = client_for("admin")
    response = admin.post(
        "/admin/users",
        data={
            "action": "add",
            "username": "newcomer",
            "password": "long enough pw",
            "role": "researcher",
        },
    )
    assert response.status_code == 302
    assert "newcomer" in admin.get("/admin/users").get_data(as_text=True)
    assert (
        client_for("archivist")
        .post(
            "/admin/users",
            data={"action": "add", "username": "x2", "password": "long enough pw", "role": "admin"},
        )
        .status_code
        == 403
    )


def test_cli_user_commands(cli, monkeypatch):
    monkeypatch.setenv("NEW_PW", "a long password")
    assert cli("user", "add", "li", "--role", "archivist", "--password-env", "NEW_PW").code == 0
    assert cli("user", "add", "li", "--role", "archivist", "--password-env", "NEW_PW").code == 2
    assert cli("user", "role", "li", "auditor").code == 0
    assert cli("user", "disable", "li").code == 0
    listed = cli("user", "list")
    assert "li" in listed.out and "auditor" in listed.out and "disabled" in listed.out
    monkeypatch.setenv("SHORT_PW", "short")
    bad = cli("user", "add", "wang", "--role", "researcher", "--password-env", "SHORT_PW")
    assert bad.code == 2 and "10 characters" in bad.err
    assert cli("user", "add", "zhao", "--role", "superuser", "--password-env", "NEW_PW").code == 2


def _client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _login(client, username: str, password: str):
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": _token(client)},
    )


def test_a_lockout_aimed_at_a_colleague_does_not_lock_them_out(app, holding):
    from access import accounts
    from access.services import AccessService

    accounts.add_user(AccessService(holding.settings).catalogue, "colleague", PASSWORD, "archivist")
    attacker = _client_at(app, "10.66.0.1")
    for _ in range(5):
        assert _login(attacker, "colleague", "wrong password!").status_code == 401
    # the attacker's client is throttled for that name, the right password included
    refused = _login(attacker, "colleague", PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # the colleague, at their own machine, signs in
    colleague = _client_at(app, "10.20.0.7")
    assert _login(colleague, "colleague", PASSWORD).status_code == 302
    assert colleague.get("/api/v1/me").get_json()["username"] == "colleague"
    assert _login(attacker, "colleague", PASSWORD).status_code == 429   # still throttled


def test_one_client_trying_many_names_is_throttled(app, holding):
    from access import accounts
    from access.services import AccessService

    accounts.add_user(AccessService(holding.settings).catalogue, "sprayed", PASSWORD, "researcher")
    sprayer = _client_at(app, "10.66.0.2")
    for n in range(20):
        assert _login(sprayer, f"guess{n:02d}", "Password123!").status_code == 401
    assert _login(sprayer, "sprayed", PASSWORD).status_code == 429
    assert _login(_client_at(app, "10.20.0.8"), "sprayed", PASSWORD).status_code == 302


def test_failures_from_many_clients_cap_an_account_except_from_its_own_clients(holding):
    from datetime import datetime, timedelta, timezone

    from access import accounts
    from access.services import AccessService

    catalogue = AccessService(holding.settings).catalogue
    accounts.add_user(catalogue, "targeted", PASSWORD, "researcher")
    throttle = accounts.Throttle(max_failures_per_account=6)
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    accounts.authenticate(catalogue, "targeted", PASSWORD, "10.20.0.9", throttle, now=start)
    for n in range(6):  # a botnet: one try from each of six addresses
        with pytest.raises(accounts.LoginRefused):
            accounts.authenticate(catalogue, "targeted", "wrong password!", f"10.77.0.{n}",
                                  throttle, now=start + timedelta(seconds=n + 1))
    with pytest.raises(accounts.LoginThrottled):
        accounts.authenticate(catalogue, "targeted", PASSWORD, "10.77.1.1", throttle)
    # the address the user signed in from before keeps its own limits
    assert accounts.authenticate(catalogue, "targeted", PASSWORD, "10.20.0.9", throttle)


def test_logout_ends_the_session_for_a_copied_cookie(app):
    client = _client_at(app, "10.20.0.10")
    assert _login(client, "researcher", PASSWORD).status_code == 302
    copied = app.test_client()
    cookie = client.get_cookie("session")
    copied.set_cookie("session", cookie.value)
    assert copied.get("/api/v1/me").get_json()["username"] == "researcher"
    token = _token(client, "/account")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/api/v1/me").get_json()["username"] is None
    assert copied.get("/api/v1/me").get_json()["username"] is None   # the copy is dead too
    assert copied.get("/account").status_code == 302                 # back to the login page


def test_a_new_signed_in_session_id_each_login_and_the_old_one_ends(app):
    client = _client_at(app, "10.20.0.11")
    assert _login(client, "auditor", PASSWORD).status_code == 302
    first = client.get_cookie("session").value
    assert _login(client, "auditor", PASSWORD).status_code == 302
    stale = app.test_client()
    stale.set_cookie("session", first)
    assert stale.get("/api/v1/me").get_json()["username"] is None
    assert client.get("/api/v1/me").get_json()["username"] == "auditor"


def test_new_users_default_to_the_least_privileged_role(client_for):
    admin = client_for("admin")
    form = admin.get("/admin/users").get_data(as_text=True)
    add_form = form[form.index('value="add"'):]
    selected = re.search(r'<option value="(\w+)" selected>', add_form).group(1)
    assert selected == "researcher"
    # granting admin is a deliberate choice: without the confirmation nothing is created
    refused = admin.post(
        "/admin/users",
        data={"action": "add", "username": "hasty", "password": "long enough pw", "role": "admin"},
    )
    assert refused.status_code == 400 and "hasty" not in admin.get("/admin/users").get_data(
        as_text=True
    )
    made = admin.post(
        "/admin/users",
        data={"action": "add", "username": "chosen", "password": "long enough pw",
              "role": "admin", "confirm_admin": "1"},
    )
    assert made.status_code == 302
    # a form without a role makes the least privileged account
    admin.post("/admin/users",
               data={"action": "add", "username": "plain", "password": "long enough pw"})
    app = admin.application
    from access import accounts

    catalogue = app.extensions["dangan"]["catalogue"]
    assert accounts.get_user(catalogue, "chosen").role == "admin"
    assert accounts.get_user(catalogue, "plain").role == "researcher"


def test_making_an_existing_user_admin_asks_for_confirmation(client_for, holding):
    from access import accounts

    admin = client_for("admin")
    catalogue = admin.application.extensions["dangan"]["catalogue"]
    accounts.add_user(catalogue, "promoted", PASSWORD, "archivist")
    asked = admin.post("/admin/users",
                       data={"action": "role", "username": "promoted", "role": "admin"})
    assert asked.status_code == 200 and 'name="confirm_admin" value="1"' in asked.get_data(
        as_text=True
    )
    assert accounts.get_user(catalogue, "promoted").role == "archivist"
    admin.post("/admin/users", data={"action": "role", "username": "promoted", "role": "admin",
                                     "confirm_admin": "1"})
    assert accounts.get_user(catalogue, "promoted").role == "admin"
