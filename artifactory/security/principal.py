"""Who is asking: credentials as sent, and the principal they prove."""

from __future__ import annotations

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
class Principal:
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


ANONYMOUS = Principal(username="anonymous", roles=frozenset({"anonymous"}), anonymous=True)
