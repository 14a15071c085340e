"""Portal accounts: creation, roles, disabling, password checks with login throttling.

Passwords are hashed with werkzeug's scrypt (salted, memory-hard). Failed logins are kept in
the catalogue, so throttling holds across processes and restarts. They are counted, as OWASP
ASVS 4.0 (V2.2.1) and OWASP's guidance on blocking brute force describe, so that nobody can
lock a colleague out from their own machine:

* per client address *and* user name: after ``login_max_failures`` failures within
  ``login_window_seconds`` that client may not try that name again until the window has
  passed, whether the password is right or not; the same name from another client is not
  affected;
* per client address: four times as many failures, whatever the names (password spraying);
* per user name: at most ``login_account_max_failures`` failures an hour from all clients
  together (ASVS: no more than 100 an hour on one account), not counting clients the user
  signed in from in the last 30 days, which keep only their own limits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from access.models import AccessRequest, LoginAttempt, PortalSession, User
from access.rules import ACCOUNT_ROLES, Reader, live_grants, utcnow
from policies import DanganError, NotFoundError, Settings, UsageError
from storage.catalogue import Catalogue

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 10
#: the role a new account gets unless another is chosen: the least privileged one
DEFAULT_ROLE = "researcher"
#: the roles from least to most privileged (how forms offer them)
ROLES_BY_PRIVILEGE = ("researcher", "auditor", "archivist", "admin")
# compared against when the user does not exist, so that timing does not tell
_DUMMY_HASH = generate_password_hash("not-a-real-password-0000")


class LoginRefused(DanganError):
    """Wrong user name or password, or a disabled account (the message never says which)."""

    exit_code = 1


class LoginThrottled(DanganError):
    """Too many failed logins recently; ``retry_after`` seconds until the next try."""

    exit_code = 1

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Throttle:
    """Login throttling limits (see the module docstring)."""

    max_failures: int = 5
    max_failures_per_remote: int = 20
    window_seconds: int = 900
    max_failures_per_account: int = 100
    account_window_seconds: int = 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> "Throttle":
        return cls(
            settings.int("portal", "login_max_failures"),
            settings.int("portal", "login_max_failures") * 4,
            settings.int("portal", "login_window_seconds"),
            settings.int("portal", "login_account_max_failures"),
        )


def _check_username(username: str) -> str:
    if not USERNAME.match(username or ""):
        raise UsageError(f"user name {username!r}: 2-64 letters, digits, '_', '.', '@' or '-'")
    return username


def _check_role(role: str) -> str:
    if role not in ACCOUNT_ROLES:
        raise UsageError(f"role {role!r}: one of {', '.join(ACCOUNT_ROLES)}")
    return role


def _check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise UsageError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def get_user(catalogue: Catalogue, username: str) -> User:
    """One account, or NotFoundError."""
    with catalogue.session() as s:
        user = s.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def list_users(catalogue: Catalogue) -> list[User]:
    """Every account, by user name."""
    with catalogue.session() as s:
        return list(s.scalars(select(User).order_by(User.username)))


def add_user(
    catalogue: Catalogue,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    actor: str = "dangan",
) -> User:
    """Create an account.

    Raises:
        UsageError: bad user name, role or password, or the user exists.
    """
    _check_username(username), _check_role(role), _check_password(password)
    with catalogue.session() as s:
        if s.scalars(select(User).where(User.username == username)).first():
            raise UsageError(f"user {username!r} exists")
        user = User(
            username=username,
            display_name=display_name or username,
            password_hash=generate_password_hash(password),
            role=role,
            disabled=False,
            session_version=1,
            created_at=utcnow(),
        )
        s.add(user)
        catalogue.append_audit(s, actor, "user-add", username, {"role": role})
    return user


def _update(
    catalogue: Catalogue, username: str, actor: str, action: str, detail: dict, **changes: object
) -> User:
    with catalogue.session() as s:
        user = s.scalars(select(User).where(User.username == username)).first()
        if user is None:
            raise NotFoundError(f"no user {username!r}")
        for key, value in changes.items():
            setattr(user, key, value)
        user.session_version += 1  # every open session of the user ends
        catalogue.append_audit(s, actor, action, username, detail)
    return user


def set_role(catalogue: Catalogue, username: str, role: str, actor: str = "dangan") -> User:
    """Change a user's role (their sessions end)."""
    return _update(catalogue, username, actor, "user-role", {"role": _check_role(role)}, role=role)


def set_disabled(
    catalogue: Catalogue, username: str, disabled: bool = True, actor: str = "dangan"
) -> User:
    """Disable (or enable again) an account; a disabled account cannot log in."""
    return _update(
        catalogue,
        username,
        actor,
        "user-disable" if disabled else "user-enable",
        {},
        disabled=disabled,
    )


def set_password(catalogue: Catalogue, username: str, password: str, actor: str = "dangan") -> User:
    """Set a new password (the user's sessions end)."""
    return _update(
        catalogue,
        username,
        actor,
        "user-password",
        {},
        password_hash=generate_password_hash(_check_password(password)),
    )


KNOWN_CLIENT_DAYS = 30  # a client address a user signed in from this recently is theirs


def _failures_since(s, where: Any, since: datetime, reset_on_ok: bool) -> list[datetime]:
    """Times of the failed attempts matching ``where`` since ``since`` (and since the last
    good login matching it, when ``reset_on_ok``), oldest first."""
    last_ok = (
        s.scalar(
            select(func.max(LoginAttempt.at)).where(
                where, LoginAttempt.ok.is_(True), LoginAttempt.at >= since
            )
        )
        if reset_on_ok
        else None
    )
    start = max(since, _aware(last_ok)) if last_ok else since
    return [
        _aware(a)
        for a in s.scalars(
            select(LoginAttempt.at)
            .where(where, LoginAttempt.ok.is_(False), LoginAttempt.at >= start)
            .order_by(LoginAttempt.at)
        )
    ]


def _known_client(s, username: str, remote: str, now: datetime) -> bool:
    """Whether the user signed in from this client address in the last 30 days."""
    return (
        s.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                LoginAttempt.username == username,
                LoginAttempt.remote == remote,
                LoginAttempt.ok.is_(True),
                LoginAttempt.at >= now - timedelta(days=KNOWN_CLIENT_DAYS),
            )
        )
        > 0
    )


def _throttled_for(s, username: str, remote: str, throttle: Throttle, now: datetime) -> int:
    """Seconds this client must wait before trying this user name again (0: it may try)."""
    since = now - timedelta(seconds=throttle.window_seconds)
    pair = (LoginAttempt.username == username) & (LoginAttempt.remote == remote)
    limits = [
        # a good login from this client clears its count for this name
        (_failures_since(s, pair, since, True), throttle.max_failures, since),
        (_failures_since(s, LoginAttempt.remote == remote, since, False),
         throttle.max_failures_per_remote, since),
    ]
    if not _known_client(s, username, remote, now):
        hour = now - timedelta(seconds=throttle.account_window_seconds)
        limits.append(
            # never reset by a good login: the cap is on failures an hour, whatever happens
            (_failures_since(s, LoginAttempt.username == username, hour, False),
             throttle.max_failures_per_account, hour)
        )
    waits = [
        int((failures[-limit] - start).total_seconds()) + 1
        for failures, limit, start in limits
        if limit > 0 and len(failures) >= limit
    ]
    return max([max(w, 1) for w in waits], default=0)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def authenticate(
    catalogue: Catalogue,
    username: str,
    password: str,
    remote: str,
    throttle: Throttle = Throttle(),
    now: datetime | None = None,
) -> User:
    """Check a login; record the attempt.

    Raises:
        LoginThrottled: too many recent failures from this client for this user name, from
            this client, or for this user name from clients it does not know.
        LoginRefused: wrong user name or password, or the account is disabled.
    """
    now = now or datetime.now(timezone.utc)
    username = (username or "")[:64]
    remote = (remote or "-")[:64]
    with catalogue.session() as s:
        wait = _throttled_for(s, username, remote, throttle, now)
        if wait:
            raise LoginThrottled("too many failed logins; try again later", wait)
        user = s.scalars(select(User).where(User.username == username)).first()
        valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password or "")
        ok = bool(user and valid and not user.disabled)
        s.add(LoginAttempt(username=username, remote=remote, at=now, ok=ok))
        s.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=30)))
        if ok:
            user.last_login_at = now
            catalogue.append_audit(s, username, "login", username, {"remote": remote})
    if not ok:
        raise LoginRefused("wrong user name or password")
    return user


# -- sessions -------------------------------------------------------------------------------


def _session_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(
    catalogue: Catalogue, user: User, remote: str, hours: int, replaces: str | None = None
) -> str:
    """Open a session for a signed-in user; return the random id its cookie carries.

    Arguments:
        replaces: the id of the session this one takes over (it ends: no fixation).
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with catalogue.session() as s:
        if replaces:
            _end(s, replaces, now)
        s.add(
            PortalSession(
                id_hash=_session_hash(token),
                user_id=user.id,
                remote=(remote or "-")[:64],
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
        s.execute(delete(PortalSession).where(PortalSession.expires_at < now - timedelta(days=30)))
    return token


def _end(s, token: str, now: datetime) -> None:
    row = s.get(PortalSession, _session_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now


def end_session(catalogue: Catalogue, token: str | None) -> None:
    """End a session (logout): its cookie, and every copy of it, stops working."""
    if token:
        with catalogue.session() as s:
            _end(s, token, utcnow())


def session_user(s, user_id: Any, token: Any) -> User | None:
    """The user of a live session (inside ``s``), or None: an unknown, ended or expired
    session, another user's, or a disabled account."""
    if not isinstance(token, str) or not isinstance(user_id, int):
        return None
    row = s.get(PortalSession, _session_hash(token))
    if row is None or row.ended_at is not None or row.user_id != user_id:
        return None
    if _aware(row.expires_at) <= utcnow():
        return None
    user = s.get(User, user_id)
    return None if user is None or user.disabled else user


def reader_for(catalogue: Catalogue, user: User | None, session: Any = None) -> Reader:
    """The reader an account acts as: its role and its live access grants (read in
    ``session`` when given, else in a session of its own)."""
    if user is None or user.disabled:
        return Reader()
    if session is None:
        with catalogue.session() as s:
            return reader_for(catalogue, user, s)
    rows = list(
        session.scalars(
            select(AccessRequest).where(
                AccessRequest.username == user.username, AccessRequest.status == "granted"
            )
        )
    )
    return Reader(user.role, user.username, live_grants(rows))
