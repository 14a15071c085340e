"""Portal accounts: creation, roles, disabling, password checks with login throttling.

Passwords are hashed with werkzeug's scrypt (salted, memory-hard). Failed logins are counted
per user name and per client address in the catalogue, so throttling holds across processes
and restarts: after ``login_max_failures`` failures within ``login_window_seconds`` further
attempts are refused until the window has passed, whether the password is right or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from access.models import AccessRequest, LoginAttempt, User
from access.rules import ACCOUNT_ROLES, Reader, live_grants, utcnow
from policies import DanganError, NotFoundError, Settings, UsageError
from storage.catalogue import Catalogue

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 10
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
    """Login throttling limits."""

    max_failures: int = 5
    max_failures_per_remote: int = 20
    window_seconds: int = 900

    @classmethod
    def from_settings(cls, settings: Settings) -> "Throttle":
        return cls(
            settings.int("portal", "login_max_failures"),
            settings.int("portal", "login_max_failures") * 4,
            settings.int("portal", "login_window_seconds"),
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


def _failures_since(s, column, value: str, since: datetime, reset_on_ok: bool) -> list[datetime]:
    last_ok = (
        s.scalar(
            select(func.max(LoginAttempt.at)).where(
                column == value, LoginAttempt.ok.is_(True), LoginAttempt.at >= since
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
            .where(column == value, LoginAttempt.ok.is_(False), LoginAttempt.at >= start)
            .order_by(LoginAttempt.at)
        )
    ]


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
        LoginThrottled: too many recent failures for this user name or client address.
        LoginRefused: wrong user name or password, or the account is disabled.
    """
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(seconds=throttle.window_seconds)
    username = (username or "")[:64]
    remote = (remote or "-")[:64]
    with catalogue.session() as s:
        # a good login clears its user name's count, never the client address's
        for column, value, limit, reset in (
            (LoginAttempt.username, username, throttle.max_failures, True),
            (LoginAttempt.remote, remote, throttle.max_failures_per_remote, False),
        ):
            failures = _failures_since(s, column, value, since, reset)
            if len(failures) >= limit:
                wait = int((failures[-limit] - since).total_seconds()) + 1
                raise LoginThrottled("too many failed logins; try again later", max(wait, 1))
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
