"""The docker token flow: Bearer challenges, the scoped tokens `/v2/token` issues, and checking them.

A token is a JWT (HS256, signed with the server's shared token secret, so every node accepts what
any node issued) carrying the user, their roles and the granted access:
`[{"type": "repository", "name": "<repo>/<image>", "actions": ["pull", "push", "delete"]}]`.
Registry actions map onto ours: pull -> read, push -> write, delete -> delete.

A token proves a principal confined to /v2/ (`only_under`), with a `scope` of one grant per
repository it names and the token's expiry: the core's permission check then refuses everything
else, on every route. The image-level check (`TokenPrincipal.grants`) is ours, on /v2/.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from artifactory.plugin import Grant, Principal

KEY_ID = "artifactory-oci"
ISSUER = "artifactory"
TOKEN_SECONDS = 300
ACTIONS = {"pull": "read", "push": "write", "delete": "delete"}
ACTION_OF = {v: k for k, v in ACTIONS.items()}
ONLY_UNDER = "/v2/"
MAX_TOKEN = 64 * 1024


@dataclass(frozen=True)
class Access:
    type: str
    name: str
    actions: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


@dataclass(frozen=True)
class TokenPrincipal(Principal):
    """A principal proven by one of our registry tokens: it may do only what the token grants."""

    access: tuple[Access, ...] = field(default=())

    def grants(self, name: str, action: str) -> bool:
        wanted = ACTION_OF.get(action, action)
        for entry in self.access:
            if entry.type != "repository" or entry.name != name:
                continue
            if wanted in entry.actions or "*" in entry.actions:
                return True
        return False

    def grants_catalog(self) -> bool:
        return any(e.type == "registry" and e.name == "catalog" for e in self.access)


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """`repository:<name>:pull,push` (several may be given, also space-separated in one value)."""
    found: list[Access] = []
    for value in values:
        for scope in value.split():
            kind, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name or kind not in ("repository", "registry"):
                continue
            found.append(Access(kind, name, frozenset(a for a in actions.split(",") if a)))
    return found


def scope_of(access: Iterable[Access]) -> tuple[Grant, ...]:
    """One grant per repository the token names ("<repo>/<image>" -> "<repo>"), in our actions."""
    actions: dict[str, set[str]] = {}
    for entry in access:
        if entry.type != "repository":
            continue
        repository = entry.name.partition("/")[0]
        wanted = set(ACTIONS) if "*" in entry.actions else entry.actions & set(ACTIONS)
        actions.setdefault(repository, set()).update(ACTIONS[a] for a in wanted)
    return tuple(Grant(name, frozenset(acts)) for name, acts in sorted(actions.items()) if acts)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(
    secret: bytes,
    principal: Principal,
    access: Sequence[Access],
    service: str,
    seconds: int = TOKEN_SECONDS,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": KEY_ID}
    claims = {
        "iss": ISSUER,
        "sub": principal.username,
        "aud": service,
        "iat": issued,
        "nbf": issued - 5,
        "exp": issued + seconds,
        "jti": secrets.token_hex(8),
        "roles": sorted(principal.roles),
        "anonymous": principal.anonymous,
        "access": [a.as_dict() for a in access],
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class InvalidToken(Exception):
    pass


def is_ours(token: str) -> bool:
    """Whether a Bearer token is one of ours (else the core's API tokens and other plugins try)."""
    head, sep, _rest = token.partition(".")
    if not sep or not head.startswith("eyJ") or len(head) > 1024:
        return False
    try:
        return bool(json.loads(_unb64(head)).get("kid") == KEY_ID)
    except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        return False


def verify(secret: bytes, token: str, now: float | None = None) -> TokenPrincipal:
    """The principal a token proves; InvalidToken for anything forged, malformed or expired.

    The signature is checked before the claims are parsed, so no unsigned input is ever decoded.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN:
        raise InvalidToken("malformed token")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        signature = _unb64(parts[2])
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("bad token signature")
    try:
        claims: Any = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidToken("malformed token") from None
    if not isinstance(claims, Mapping):
        raise InvalidToken("malformed token")
    moment = now if now is not None else time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp < moment:
        raise InvalidToken("the token has expired")
    if isinstance(claims.get("nbf"), int) and claims["nbf"] > moment:
        raise InvalidToken("the token is not valid yet")
    access = tuple(
        Access(str(a.get("type")), str(a.get("name")), frozenset(str(x) for x in a.get("actions", [])))
        for a in claims.get("access", [])
        if isinstance(a, dict)
    )
    return TokenPrincipal(
        username=str(claims.get("sub", "")),
        roles=frozenset(str(r) for r in claims.get("roles", [])),
        anonymous=bool(claims.get("anonymous", False)),
        scope=scope_of(access),
        only_under=ONLY_UNDER,
        expires_at=float(exp),
        access=access,
    )


def challenge(realm: str, service: str, scope: str | None = None, error: str | None = None) -> str:
    value = f'Bearer realm="{realm}",service="{service}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value


def scope_for(name: str, actions: Iterable[str]) -> str:
    return f"repository:{name}:{','.join(sorted(set(actions)))}"
