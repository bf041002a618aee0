"""Users, roles, tokens and the permission check, with per-process caches bounded in time.

Roles and the anonymous switch are re-read at most every `config_cache_seconds`, so a change made
on one node reaches the others within that time. Verified credentials are remembered for the same
time at most (keyed by a hash of the credentials, never the credentials themselves) so that clients
sending Basic auth on every request do not pay for scrypt each time: a revoked token, a deleted or
disabled user or a changed password stops working on every process and node within
`config_cache_seconds`, and a token's expiry is exact (checked on every use, cached or not).

What a credential may do is decided here, once: `allowed(principal, repository, action)` answers
for every route of every format and the admin API, combining the user's roles, the credential's
scope (an API token's `scope`, a registry token's access list) and the rule that anonymous callers
only ever read.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from artifactory.db.engine import Database
from artifactory.db.models import ApiToken, Role, Setting, User
from artifactory.db.queries import RawQuery
from artifactory.security.passwords import (
    TIMING_EQUALISER,
    TOKEN_PREFIX,
    hash_password,
    new_token,
    secret_matches,
    split_token,
    verify_password,
)
from artifactory.security.principal import ANONYMOUS, Credentials, Grant, Principal

ACTIONS = ("read", "write", "delete")
ADMIN_ROLE = "admin"
ANONYMOUS_ROLE = "anonymous"
BUILTIN_ROLES: dict[str, list[dict[str, Any]]] = {
    ADMIN_ROLE: [{"repositories": "*", "actions": list(ACTIONS)}],
    ANONYMOUS_ROLE: [{"repositories": "*", "actions": ["read"]}],
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MAX_TOKEN_NAME = 200
MAX_PASSWORD = 1024
MAX_TOKEN_SECONDS = 10 * 366 * 24 * 3600  # ten years: longer is refused, not overflowed
_ROLES = select(Role.name, Role.privileges)
_SECURITY_SETTING = select(Setting.value).where(Setting.key == "security")


class SecurityError(Exception):
    pass


class InvalidCredentials(SecurityError):
    """Credentials were sent and are wrong: 401."""


@dataclass(frozen=True)
class Privilege:
    repositories: str
    actions: frozenset[str]

    def grants(self, repository: str, action: str) -> bool:
        return action in self.actions and fnmatch.fnmatchcase(repository, self.repositories)


def validate_privileges(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError("privileges must be a list")
    result = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("repositories"), str):
            raise ValueError('each privilege needs "repositories" (a glob) and "actions"')
        actions = item.get("actions")
        if not isinstance(actions, list) or not actions or any(a not in ACTIONS for a in actions):
            raise ValueError(f"actions must be a non-empty list of {', '.join(ACTIONS)}")
        result.append({"repositories": item["repositories"], "actions": sorted(set(actions))})
    return result


def validate_scope(raw: Any) -> dict[str, Any] | None:
    """An API token's scope: None, or {"repositories": "<glob>", "actions": [...]}."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"repositories", "actions"}:
        raise ValueError('scope must be {"repositories": "<glob>", "actions": [...]}')
    repositories = raw.get("repositories", "*")
    if not isinstance(repositories, str) or not repositories or len(repositories) > 200:
        raise ValueError("scope.repositories must be a glob of at most 200 characters")
    actions = raw.get("actions", list(ACTIONS))
    if not isinstance(actions, list) or not actions or any(a not in ACTIONS for a in actions):
        raise ValueError(f"scope.actions must be a non-empty list of {', '.join(ACTIONS)}")
    return {"repositories": repositories, "actions": sorted(set(actions))}


def _grants(scope: dict[str, Any] | None) -> tuple[Grant, ...] | None:
    if scope is None:
        return None
    return (Grant(str(scope["repositories"]), frozenset(scope["actions"])),)


def _within(scope: dict[str, Any], limit: tuple[Grant, ...]) -> bool:
    """Whether every (repository, action) `scope` grants is granted by `limit` too."""
    return any(
        set(scope["actions"]) <= grant.actions
        and (grant.repositories == "*" or grant.repositories == scope["repositories"])
        for grant in limit
    )


def validate_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid {kind} name: letters, digits, '.', '_', '-', '@'; at most 100")
    return name


def parse_authorization(header: str | None) -> Credentials:
    if not header:
        return Credentials()
    if header.startswith(TOKEN_PREFIX) and " " not in header.strip():
        # A bare API token, as Cargo sends the one it was given: read as a Bearer token.
        return Credentials("bearer", "", header.strip())
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidCredentials("malformed Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidCredentials("malformed Basic credentials")
        return Credentials("basic", username, password)
    if scheme == "bearer" and value:
        return Credentials("bearer", "", value)
    raise InvalidCredentials(f"unsupported authorization scheme {scheme!r}")


class Security:
    def __init__(self, db: Database, cache_seconds: float = 1.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._roles: dict[str, list[Privilege]] = {}
        self._anonymous_read = True
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        # The roles and the anonymous switch, read on pooled DBAPI connections: through the ORM, the
        # reload every `cache_seconds` cost each process about 0.8 ms on its event loop.
        self._read_roles = RawQuery(db.read_engine, _ROLES)
        self._read_setting = RawQuery(db.read_engine, _SECURITY_SETTING)

    # -- bootstrap ---------------------------------------------------------------------------
    def bootstrap(self, admin_password: str) -> bool:
        """Create the built-in roles and the admin user if missing. True if the admin was created."""
        with self.db.write() as session:
            for name, privileges in BUILTIN_ROLES.items():
                if session.get(Role, name) is None:
                    session.add(Role(name=name, privileges=privileges, builtin=True))
            if session.get(Setting, "security") is None:
                session.add(Setting(key="security", value={"anonymous_read": True}))
            if session.scalar(select(User.id).where(User.username == "admin")) is None:
                session.add(
                    User(username="admin", password_hash=hash_password(admin_password), roles=[ADMIN_ROLE])
                )
                return True
        return False

    # -- caches ------------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._loaded_at < self.cache_seconds:
            return
        roles = {
            name: [Privilege(p["repositories"], frozenset(p["actions"])) for p in privileges or []]
            for name, privileges in self._read_roles.rows({})
        }
        found = self._read_setting.rows({})
        setting = found[0][0] if found else None
        with self._lock:
            self._roles = roles
            self._anonymous_read = bool(setting.get("anonymous_read", True)) if setting else True
            self._loaded_at = now

    def invalidate(self) -> None:
        """Forget this process's caches (other processes forget theirs within cache_seconds)."""
        with self._lock:
            self._loaded_at = 0.0
            self._verified.clear()

    @property
    def anonymous_read(self) -> bool:
        self._refresh()
        return self._anonymous_read

    # -- authentication ----------------------------------------------------------------------
    @staticmethod
    def _cache_key(credentials: Credentials) -> bytes:
        return hashlib.sha256(
            f"{credentials.scheme}\0{credentials.username}\0{credentials.secret}".encode()
        ).digest()

    def cached(self, credentials: Credentials) -> Principal | None:
        """The principal `verify` proved for these credentials within `cache_seconds`, still
        unexpired, without any I/O (so the caller need not leave the event loop); None: verify them."""
        hit = self._verified.get(self._cache_key(credentials))
        if hit is None or hit[0] <= time.monotonic():
            return None
        principal = hit[1]
        if principal.expires_at is not None and principal.expires_at <= time.time():
            return None
        return principal

    def verify(self, credentials: Credentials) -> Principal:
        """The principal these credentials prove; InvalidCredentials if they prove nothing."""
        key = self._cache_key(credentials)
        now = time.monotonic()
        cached = self._verified.get(key)
        if cached and cached[0] > now:
            principal = cached[1]
        else:
            principal = self._verify_uncached(credentials)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = (now + self.cache_seconds, principal)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise InvalidCredentials("invalid or expired token")
        return principal

    def _verify_uncached(self, credentials: Credentials) -> Principal:
        token = split_token(credentials.secret)
        with self.db.read() as session:
            if token is not None:
                token_id, secret = token
                row = session.execute(
                    select(ApiToken, User)
                    .join(User, ApiToken.user_id == User.id)
                    .where(ApiToken.id == token_id)
                ).first()
                if row is not None:
                    api_token, user = row
                    name_ok = credentials.scheme == "bearer" or credentials.username in (
                        user.username,
                        "__token__",
                    )
                    fresh = api_token.expires_at is None or api_token.expires_at > datetime.now(UTC)
                    if (
                        secret_matches(secret, api_token.secret_hash)
                        and name_ok
                        and fresh
                        and not user.disabled
                    ):
                        return Principal(
                            user.username,
                            frozenset(user.roles),
                            scope=_grants(api_token.scope),
                            expires_at=api_token.expires_at.timestamp() if api_token.expires_at else None,
                        )
                raise InvalidCredentials("invalid or expired token")
            if credentials.scheme != "basic":
                raise InvalidCredentials("invalid token")
            account = session.scalar(select(User).where(User.username == credentials.username))
            if account is None:
                verify_password(credentials.secret, TIMING_EQUALISER)  # the same cost either way
                raise InvalidCredentials("invalid username or password")
            if not verify_password(credentials.secret, account.password_hash) or account.disabled:
                raise InvalidCredentials("invalid username or password")
            return Principal(account.username, frozenset(account.roles))

    def check_password(self, username: str, password: str) -> bool:
        """Whether `password` is this user's real password (never a token); same cost either way."""
        with self.db.read() as session:
            account = session.scalar(select(User).where(User.username == username))
        if account is None or account.disabled or len(password) > MAX_PASSWORD:
            verify_password(password[:MAX_PASSWORD], TIMING_EQUALISER)
            return False
        return verify_password(password, account.password_hash)

    # -- authorisation -----------------------------------------------------------------------
    def allowed(self, principal: Principal, repository: str, action: str) -> bool:
        """Whether this principal, through the credential it used, may `action` in `repository`."""
        if principal.anonymous and action != "read":
            return False  # every write needs a user, whatever the anonymous role says
        if not principal.scope_grants(repository, action):
            return False
        if "admin" in principal.roles:
            return True
        self._refresh()
        if principal.anonymous and not self._anonymous_read:
            return False
        role_names = set(principal.roles)
        if self._anonymous_read:
            role_names.add(ANONYMOUS_ROLE)
        for role in role_names:
            for privilege in self._roles.get(role, ()):
                if privilege.grants(repository, action):
                    return True
        return False

    # -- administration ----------------------------------------------------------------------
    def set_anonymous_read(self, enabled: bool) -> None:
        with self.db.write() as session:
            setting = session.get(Setting, "security")
            if setting is None:
                session.add(Setting(key="security", value={"anonymous_read": enabled}))
            else:
                setting.value = {**setting.value, "anonymous_read": enabled}
        self.invalidate()

    def create_user(self, username: str, password: str, roles: list[str]) -> dict[str, Any]:
        validate_name("user", username)
        _check_password_value(password)
        checked_roles = _check_roles_value(roles)
        with self.db.write() as session:
            self._known_roles(session, checked_roles)
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise KeyError(username)
            session.add(User(username=username, password_hash=hash_password(password), roles=checked_roles))
        return {"username": username, "roles": checked_roles, "disabled": False}

    def update_user(
        self,
        username: str,
        password: str | None = None,
        roles: list[str] | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change a user's password, roles or disabled flag; KeyError when there is no such user."""
        if password is not None:
            _check_password_value(password)
        checked_roles = _check_roles_value(roles) if roles is not None else None
        if disabled is not None and not isinstance(disabled, bool):
            raise ValueError("disabled must be true or false")
        with self.db.write() as session:
            account = session.scalar(select(User).where(User.username == username))
            if account is None:
                raise KeyError(username)
            if checked_roles is not None:
                self._known_roles(session, checked_roles)
                account.roles = checked_roles
            if password is not None:
                account.password_hash = hash_password(password)
            if disabled is not None:
                account.disabled = disabled
            result = {
                "username": account.username,
                "roles": list(account.roles),
                "disabled": account.disabled,
            }
        self.invalidate()
        return result

    @staticmethod
    def _known_roles(session: Any, roles: list[str]) -> None:
        known = set(session.scalars(select(Role.name)))
        unknown = sorted(set(roles) - known)
        if unknown:
            raise ValueError(f"unknown roles: {', '.join(unknown)}")

    def list_users(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            return [
                {"username": u.username, "roles": list(u.roles), "disabled": u.disabled}
                for u in session.scalars(select(User).order_by(User.username))
            ]

    def delete_user(self, username: str) -> bool:
        with self.db.write() as session:
            result = session.execute(delete(User).where(User.username == username))
        self.invalidate()
        return bool(getattr(result, "rowcount", 0))

    def save_role(self, name: str, privileges: Any, create: bool) -> dict[str, Any]:
        validate_name("role", name)
        if name == ADMIN_ROLE:
            raise PermissionError("the built-in admin role cannot be changed")
        checked = validate_privileges(privileges)
        with self.db.write() as session:
            role = session.get(Role, name)
            if role is not None and create:
                raise KeyError(name)
            if role is None:
                session.add(Role(name=name, privileges=checked, builtin=False))
            else:
                role.privileges = checked
        self.invalidate()
        return {"name": name, "privileges": checked}

    def list_roles(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            return [
                {"name": r.name, "privileges": list(r.privileges), "builtin": r.builtin}
                for r in session.scalars(select(Role).order_by(Role.name))
            ]

    def delete_role(self, name: str) -> bool:
        if name in BUILTIN_ROLES:
            raise PermissionError(f"the built-in role {name!r} cannot be deleted")
        with self.db.write() as session:
            result = session.execute(delete(Role).where(Role.name == name))
        self.invalidate()
        return bool(getattr(result, "rowcount", 0))

    def create_token(
        self,
        principal: Principal | str,
        name: str = "",
        expires_in_seconds: int | None = None,
        scope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new API token for `principal`'s user that can never outlive or exceed `principal`'s
        credential: a scoped or expiring credential makes only tokens inside its scope and life.
        A bare username stands for that user's full, unexpiring credential (the CLI, an admin)."""
        if isinstance(principal, str):
            principal = Principal(principal)
        if principal.anonymous or principal.only_under:
            raise ValueError("this credential cannot create API tokens")
        if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME:
            raise ValueError(f"name must be a string of at most {MAX_TOKEN_NAME} characters")
        if expires_in_seconds is not None and (
            isinstance(expires_in_seconds, bool)
            or not isinstance(expires_in_seconds, int)
            or not 0 < expires_in_seconds <= MAX_TOKEN_SECONDS
        ):
            raise ValueError(f"expires_in_seconds must be an integer from 1 to {MAX_TOKEN_SECONDS}")
        checked = validate_scope(scope)
        if principal.scope is not None:
            if checked is None and len(principal.scope) == 1:
                only = principal.scope[0]
                checked = {"repositories": only.repositories, "actions": sorted(only.actions)}
            if checked is None or not _within(checked, principal.scope):
                raise ValueError("a scoped token can only create tokens within its own scope")
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
        if principal.expires_at is not None:
            limit = datetime.fromtimestamp(principal.expires_at, UTC)
            if expires_at is None:
                expires_at = limit
            elif expires_at > limit:
                raise ValueError("a token cannot outlive the credential that creates it")
        token, token_id, secret_hash = new_token()
        with self.db.write() as session:
            user_id = session.scalar(select(User.id).where(User.username == principal.username))
            if user_id is None:
                raise KeyError(principal.username)
            session.add(
                ApiToken(
                    id=token_id,
                    user_id=user_id,
                    name=name,
                    secret_hash=secret_hash,
                    expires_at=expires_at,
                    scope=checked,
                )
            )
        return {
            "token": token,
            "id": token_id,
            "name": name,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "scope": checked,
        }

    def list_tokens(self, username: str) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.scalars(
                select(ApiToken).join(User, ApiToken.user_id == User.id).where(User.username == username)
            )
            return [
                {
                    "id": t.id,
                    "name": t.name,
                    "created_at": t.created_at.isoformat(),
                    "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                    "scope": t.scope,
                }
                for t in rows
            ]

    def revoke_token(self, username: str, token_id: str, any_user: bool = False) -> bool:
        with self.db.write() as session:
            query = delete(ApiToken).where(ApiToken.id == token_id)
            if not any_user:
                user_id = session.scalar(select(User.id).where(User.username == username))
                query = query.where(ApiToken.user_id == user_id)
            result = session.execute(query)
        self.invalidate()
        return bool(getattr(result, "rowcount", 0))


def _check_password_value(password: Any) -> None:
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD:
        raise ValueError(f"password must be a non-empty string of at most {MAX_PASSWORD} characters")


def _check_roles_value(roles: Any) -> list[str]:
    if not isinstance(roles, list) or not all(isinstance(r, str) and len(r) <= 100 for r in roles):
        raise ValueError("roles must be a list of role names")
    return sorted(set(roles))


__all__ = ["ANONYMOUS", "Security", "InvalidCredentials", "parse_authorization", "Principal", "Credentials"]
