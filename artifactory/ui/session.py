"""Sign-in for the web UI: a signed session cookie, CSRF tokens, and login rate limits.

The cookie holds no secret of its own: a random session id, the username, when it was issued and a
fingerprint of the user's password hash, signed with a key derived from the server's token secret
(so every node accepts every node's cookies). It is scoped to /ui/, HttpOnly, SameSite=Lax and
Secure over HTTPS, and lives at most SESSION_SECONDS. A session stops working at once when the
password changes (the fingerprint no longer matches), when the user is disabled or deleted, and when
the user signs out (a per-user "signed out at" mark, which ends that user's other sessions too).

Every form carries a CSRF token: an HMAC of the session id, so a page of another site can neither
read nor forge it. Failed sign-ins go to the audit log, which is also what the rate limit counts:
the limit holds across processes and nodes without any state in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from artifactory.db.engine import Database
from artifactory.db.models import AuditEvent, Setting, User
from artifactory.security.principal import ANONYMOUS, Principal

COOKIE = "artifactory_ui"
SESSION_SECONDS = 12 * 3600
CLOCK_SKEW_SECONDS = 60  # between nodes, and a sign-in in the second of a sign-out (see signed_in)
LOGIN_WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
LOGIN_FAILED = "ui.login_failed"
LOGIN = "ui.login"
LOGOUT = "ui.logout"
_SIGNED_OUT = "ui.signed_out:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    sid: str
    username: str = ""  # "" for a visitor who has not signed in
    issued: float = 0.0
    fingerprint: str = ""

    @classmethod
    def anonymous(cls) -> Session:
        return cls(sid=secrets.token_urlsafe(18), issued=time.time())


@dataclass(frozen=True)
class Account:
    username: str
    roles: frozenset[str]
    disabled: bool
    fingerprint: str
    signed_out_at: float


class Sessions:
    def __init__(self, secret: bytes, db: Database, cache_seconds: float) -> None:
        self.key = hmac.new(secret, b"artifactory web ui session", hashlib.sha256).digest()
        self.db = db
        self.cache_seconds = cache_seconds
        self._accounts: dict[str, tuple[float, Account | None]] = {}
        self._lock = threading.Lock()

    # -- the cookie --------------------------------------------------------------------------
    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.key, payload, hashlib.sha256).digest())

    def dump(self, session: Session) -> str:
        payload = json.dumps(
            [session.sid, session.username, int(session.issued), session.fingerprint], separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, if it is ours, intact and not too old."""
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        body, _, signature = cookie.partition(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            sid, username, issued, fingerprint = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if not all(isinstance(v, str) for v in (sid, username, fingerprint)) or not isinstance(issued, int):
            return None
        if not -CLOCK_SKEW_SECONDS <= time.time() - issued < SESSION_SECONDS:
            return None
        return Session(sid, username, float(issued), fingerprint)

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self.key, b"csrf\0" + session.sid.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session | None, token: str) -> bool:
        return session is not None and bool(token) and hmac.compare_digest(token, self.csrf_token(session))

    def fingerprint(self, password_hash: str) -> str:
        return _b64(hmac.new(self.key, b"password\0" + password_hash.encode(), hashlib.sha256).digest()[:12])

    # -- who a session is --------------------------------------------------------------------
    def principal(self, session: Session | None) -> Principal:
        """The user a signed-in session stands for, or ANONYMOUS when it no longer does."""
        if session is None or not session.username:
            return ANONYMOUS
        account = self.account(session.username)
        if (
            account is None
            or account.disabled
            or not hmac.compare_digest(account.fingerprint, session.fingerprint)
            or session.issued <= account.signed_out_at
        ):
            return ANONYMOUS
        return Principal(account.username, account.roles)

    def account(self, username: str, fresh: bool = False) -> Account | None:
        now = time.monotonic()
        cached = self._accounts.get(username)
        if cached is not None and not fresh and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self.db.read() as session:
            user = session.scalar(select(User).where(User.username == username))
            mark = session.get(Setting, _signed_out_key(username)) if user is not None else None
        account = None
        if user is not None:
            account = Account(
                username=user.username,
                roles=frozenset(user.roles or ()),
                disabled=bool(getattr(user, "disabled", False)),
                fingerprint=self.fingerprint(user.password_hash),
                signed_out_at=float((mark.value or {}).get("at", 0)) if mark is not None else 0.0,
            )
        with self._lock:
            if len(self._accounts) > 10_000:
                self._accounts.clear()
            self._accounts[username] = (now, account)
        return account

    def forget(self, username: str) -> None:
        """Re-read this user at the next request (this process; others within cache_seconds)."""
        self._accounts.pop(username, None)

    def signed_in(self, username: str) -> Session:
        """A new session (with a new id: no fixation) for a user whose password was just checked."""
        account = self.account(username, fresh=True)
        fingerprint = account.fingerprint if account is not None else ""
        # Whole seconds, after any earlier sign-out mark: a sign-out in this same second must not
        # end the session that follows it.
        issued = float(int(time.time()))
        if account is not None and issued <= account.signed_out_at:
            issued = account.signed_out_at + 1
        return Session(secrets.token_urlsafe(18), username, issued, fingerprint)

    def sign_out(self, username: str, address: str) -> None:
        """End every session of `username` issued until now, on every node."""
        with self.db.write() as session:
            key = _signed_out_key(username)
            mark = session.get(Setting, key)
            value = {"at": int(time.time())}
            if mark is None:
                session.add(Setting(key=key, value=value))
            else:
                mark.value = value
            session.add(AuditEvent(actor=username[:100], action=LOGOUT, details={"address": address}))
        self._accounts.pop(username, None)

    # -- sign-in attempts --------------------------------------------------------------------
    def throttled(self, username: str, address: str) -> bool:
        """Whether recent failures for this user or from this address reach the limit."""
        since = datetime.now(UTC) - timedelta(seconds=LOGIN_WINDOW_SECONDS)
        with self.db.read() as session:
            rows = session.execute(
                select(AuditEvent.actor, AuditEvent.details)
                .where(AuditEvent.action == LOGIN_FAILED, AuditEvent.at >= since)
                .order_by(AuditEvent.id.desc())
                .limit(5000)
            ).all()
        by_user = sum(1 for row in rows if row.actor == username[:100])
        by_address = sum(1 for row in rows if (row.details or {}).get("address") == address)
        return by_user >= MAX_FAILURES_PER_USER or by_address >= MAX_FAILURES_PER_ADDRESS

    def record(self, username: str, address: str, ok: bool, reason: str = "") -> None:
        details: dict[str, Any] = {"address": address}
        if reason:
            details["reason"] = reason
        with self.db.write() as session:
            session.add(
                AuditEvent(actor=username[:100], action=LOGIN if ok else LOGIN_FAILED, details=details)
            )


def _signed_out_key(username: str) -> str:
    return _SIGNED_OUT + hashlib.sha256(username.encode()).hexdigest()[:40]
