"""Officer sign-in: server-side sessions that expire, CSRF tokens, login throttling, roles,
and audited reveals of masked data.

The cookie holds a random token; the database keeps only its HMAC (CONSOLE_SECRET_KEY), so a
copy of the sessions table lets nobody in. CSRF tokens are an HMAC of the session id, so they
need no storage and die with the session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.models import AuditEntry, ConsoleSession, Officer
from bot.governance import audit
from bot.identity.officers import hash_password, verify_password
from console.config import ConsoleSettings

ROLE_RANK = {"officer": 1, "supervisor": 2, "admin": 3}
ROLE_LABELS = {"officer": "Cán bộ", "supervisor": "Lãnh đạo / giám sát", "admin": "Quản trị"}
_TOUCH_EVERY = dt.timedelta(seconds=60)
_DUMMY_HASH = hash_password("not-a-real-password-0")


def digest(secret: str, value: str, purpose: str = "session") -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CurrentOfficer:
    """Who is asking, for handlers and templates."""

    id: int
    username: str
    role: str
    session_id: str
    csrf: str
    reveals: dict[str, str] = field(default_factory=dict)

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def revealed(self, key: str, now: dt.datetime | None = None) -> bool:
        until = self.reveals.get(key)
        if not until:
            return False
        return dt.datetime.fromisoformat(until) > (now or utcnow())

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


@dataclass(frozen=True)
class LoginResult:
    token: str | None
    error: str | None = None
    throttled: bool = False


def _failures(session: Session, column, value: str, since: dt.datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.action == "console.login_failed",
            AuditEntry.created_at > since,
            column == value,
        )
    )


def _lock_key(kind: str, value: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    data = hashlib.sha256(f"console-login:{kind}:{value}".encode()).digest()
    return int.from_bytes(data[:8], "big", signed=True)


def _serialize_attempts(session: Session, username: str, ip: str) -> None:
    """Count-then-insert must be one step, or concurrent attempts all pass the count. On
    PostgreSQL: transaction-scoped advisory locks on the name, then the address (always in this
    order: no deadlock). SQLite needs nothing: the console's units of work begin with
    BEGIN IMMEDIATE (bot/core/db.py), so they run one at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in (_lock_key("user", username), _lock_key("ip", ip)):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def login(
    session: Session,
    settings: ConsoleSettings,
    username: str,
    password: str,
    ip: str,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check the password (always spending the KDF time) unless throttled; open a session.
    Attempts for the same name or address are serialized (`_serialize_attempts`)."""
    now = now or utcnow()
    username = username.strip()[:64]
    _serialize_attempts(session, username, ip)
    since = now - dt.timedelta(minutes=settings.login_window_minutes)
    if (
        _failures(session, AuditEntry.target_id, username, since) >= settings.login_max_failures
        or _failures(session, AuditEntry.actor, ip, since) >= settings.login_ip_max_failures
    ):
        return LoginResult(
            None,
            f"Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {settings.login_window_minutes} "
            "phút.",
            throttled=True,
        )
    officer = session.scalar(select(Officer).where(Officer.username == username))
    valid = verify_password(password, officer.password_hash if officer else _DUMMY_HASH)
    if officer is None or not valid or not officer.active:
        audit.record(session, ip, "console.login_failed", target_id=username)
        return LoginResult(None, "Tên đăng nhập hoặc mật khẩu không đúng.")
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id=digest(settings.secret_key, token),
            officer_id=officer.id,
            reveals={},
            ip=ip[:45],
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=settings.session_max_hours),
        )
    )
    officer.last_login_at = now
    audit.record(session, officer.username, "console.login", detail={"ip": ip})
    return LoginResult(token)


def load_session(
    session: Session, settings: ConsoleSettings, token: str | None, now: dt.datetime | None = None
) -> CurrentOfficer | None:
    """The officer behind a cookie, or None if it is unknown, idle too long or expired."""
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    row = session.get(ConsoleSession, digest(settings.secret_key, token))
    if row is None:
        return None
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    officer = session.get(Officer, row.officer_id)
    if row.expires_at <= now or row.last_seen_at + idle <= now or not officer or not officer.active:
        session.delete(row)
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return CurrentOfficer(
        officer.id,
        officer.username,
        officer.role,
        row.id,
        csrf_token(settings, row.id),
        dict(row.reveals or {}),
    )


def logout(session: Session, current: CurrentOfficer) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == current.session_id))
    audit.record(session, current.username, "console.logout")


def purge_sessions(session: Session, settings: ConsoleSettings, now: dt.datetime) -> int:
    idle = now - dt.timedelta(minutes=settings.session_idle_minutes)
    result = session.execute(
        delete(ConsoleSession).where(
            or_(ConsoleSession.expires_at <= now, ConsoleSession.last_seen_at <= idle)
        )
    )
    return result.rowcount or 0


def csrf_token(settings: ConsoleSettings, session_id: str) -> str:
    return digest(settings.secret_key, session_id, "csrf")


def csrf_ok(settings: ConsoleSettings, session_id: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(settings, session_id), given or "")


def login_csrf(settings: ConsoleSettings, nonce: str) -> str:
    """The login form's token, bound to a pre-login cookie (double submit, signed)."""
    return digest(settings.secret_key, nonce, "login")


def csrf_ok_login(settings: ConsoleSettings, nonce: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(login_csrf(settings, nonce), given or "")


def grant_reveal(
    session: Session,
    settings: ConsoleSettings,
    current: CurrentOfficer,
    key: str,
    reason: str,
    target_type: str,
    target_id: str,
    now: dt.datetime | None = None,
) -> None:
    """Unmask one conversation or dossier for this session for a few minutes; audited."""
    now = now or utcnow()
    row = session.get(ConsoleSession, current.session_id)
    if row is None:
        return
    until = now + dt.timedelta(minutes=settings.reveal_minutes)
    row.reveals = {**(row.reveals or {}), key: until.isoformat()}
    audit.record(
        session,
        current.username,
        f"{target_type}.reveal",
        target_type=target_type,
        target_id=target_id,
        detail={"reason": reason, "until": until.isoformat(timespec="seconds")},
    )
