"""Who is asking: credentials as sent, and the principal they prove (with what that credential may do)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """What a request carried: HTTP Basic (username and password) or a Bearer token, or nothing."""

    scheme: str = ""  # "basic", "bearer" or "" for none
    username: str = ""
    secret: str = ""

    @property
    def present(self) -> bool:
        return bool(self.scheme)


@dataclass(frozen=True)
class Grant:
    """One thing a scoped credential may do: `actions` in the repositories matching a glob."""

    repositories: str
    actions: frozenset[str]

    def grants(self, repository: str, action: str) -> bool:
        return action in self.actions and fnmatch.fnmatchcase(repository, self.repositories)


@dataclass(frozen=True)
class Principal:
    """A user (or anonymous) as proven by one credential.

    `scope` None means the user's roles in full; otherwise the credential may do only what one of
    its grants names, and never more than the roles allow. `only_under` confines the credential to
    request paths under a prefix (a registry token is good only on /v2/). `expires_at` (epoch
    seconds) is when the credential stops working: a token it mints may not outlive it.
    """

    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False
    scope: tuple[Grant, ...] | None = None
    only_under: str = ""
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        """The admin role, through an unscoped credential: a scoped one never administers."""
        return "admin" in self.roles and self.scope is None and not self.only_under

    def scope_grants(self, repository: str, action: str) -> bool:
        return self.scope is None or any(g.grants(repository, action) for g in self.scope)


ANONYMOUS = Principal(username="anonymous", roles=frozenset({"anonymous"}), anonymous=True)
