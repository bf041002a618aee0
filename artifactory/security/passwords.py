"""Password hashes (scrypt, from the standard library) and API token secrets.

Stored password form: scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>. Tokens are random and high-entropy,
so a single sha256 is enough to store them; both comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
TOKEN_PREFIX = "art_"  # noqa: S105 - a prefix, not a secret


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    return _stored(salt, hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32))


def _stored(salt: bytes, digest: bytes) -> str:
    return "$".join(
        [
            "scrypt",
            str(_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


# What a login for an unknown user is checked against, so that it costs the same scrypt as a known
# one. It needs the current parameters, not a real password's hash (computing one at import would
# cost every process, command-line runs included, a full scrypt).
TIMING_EQUALISER = _stored(bytes(16), bytes(32))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**26
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_token() -> tuple[str, str, str]:
    """A fresh token: (the token as handed to the user, its public id, the hash to store)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{token_id}_{secret}", token_id, hash_secret(secret)


def split_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 16 or not secret:
        return None
    return token_id, secret


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
