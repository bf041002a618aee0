"""Events handed to plugins after a transaction commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AssetEvent:
    repository: str
    format: str
    path: str
    sha256: str
    size: int
    actor: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RepositoryEvent:
    name: str
    format: str
    type: str
    actor: str
