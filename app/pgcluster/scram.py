"""SCRAM-SHA-256 password verifiers, computed here so a plaintext password never reaches SQL.

PostgreSQL stores `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5803) and
accepts that string in `CREATE/ALTER ROLE ... PASSWORD '...'` as an already-hashed secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

ITERATIONS = 4096
SALT_BYTES = 16
VERIFIER_RE = re.compile(r"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """The verifier PostgreSQL computes for `password` (ASCII: SASLprep changes nothing)."""
    if not password.isascii():
        raise ValueError("only ASCII passwords are supported")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def verifier_literal(verifier: str) -> str:
    """The verifier as an SQL string literal; refuses anything that is not a verifier."""
    if not VERIFIER_RE.fullmatch(verifier):
        raise ValueError("not a SCRAM-SHA-256 verifier")
    return f"'{verifier}'"
