"""The engine's typed errors: what a format catches to answer in its protocol's own words.

Each is an HTTPProblem with a sensible default status, so an error a format does not map still
reaches the client as a clear HTTP answer; a format that needs its own shape (OCI error codes, npm's
`{"error": ...}`) maps them by type, never by status number.
"""

from __future__ import annotations

from artifactory.http.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    HTTPProblem,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)


class EngineError(HTTPProblem):
    """Base of the errors below (never raised itself)."""


class DigestMismatch(EngineError, BadRequest):
    """Bytes that do not hash to what their upload or their upstream declared; nothing was stored."""

    def __init__(self, message: str, algorithm: str = "", expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class WritePolicyViolation(EngineError, BadRequest):
    """A write the repository's write policy (or a tombstone) refuses; `existing` is the stored
    file it collides with, if any."""

    def __init__(self, message: str, existing: str | None = None) -> None:
        super().__init__(message)
        self.existing = existing


class CompanionDelete(EngineError, MethodNotAllowed):
    """A DELETE of a companion (a wheel's .metadata, a module's .mod) while the file it belongs to,
    `owner`, is stored: it goes only with that file."""

    def __init__(self, path: str, owner: str) -> None:
        super().__init__(f"{path} belongs to {owner}: delete that file and it goes with it")
        self.owner = owner


class UploadUnknown(EngineError, NotFound):
    """An upload session that does not exist (finished, cancelled or never started)."""


class UploadOffsetMismatch(EngineError, Conflict):
    """The client's idea of an upload session's offset is not the session's (OCI answers 416)."""

    status = 416

    def __init__(self, offset: int) -> None:
        super().__init__(f"upload is at offset {offset}")
        self.offset = offset


class TooLarge(EngineError, PayloadTooLarge):
    """More bytes than the repository's (or the document's) limit."""


class UpstreamUnavailable(EngineError, BadGateway):
    """A proxy's upstream failed, timed out, or sent bytes that were refused; nothing was cached."""
