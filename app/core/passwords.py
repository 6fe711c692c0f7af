"""The root password at rest: encrypted with a key derived from `SECRET_KEY` (Fernet).

Only the ciphertext is stored (`ManagedWarehouse.password_ciphertext`); the plaintext exists in
memory just long enough to answer the API call, compute a SCRAM verifier or run a login probe.
"""

from __future__ import annotations

import secrets

from app.core import crypto

PASSWORD_BYTES = 32
_PURPOSE = "warehouse-api/managed-warehouse-root-password/v1"


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted with the configured key."""


def generate_password() -> str:
    """>= 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


class SecretBox:
    """Passwords in and out of `app.crypto.SecretBox`, with this purpose's own derived key."""

    def __init__(self, secret_key: str) -> None:
        self._box = crypto.SecretBox(secret_key, _PURPOSE)

    def encrypt(self, plaintext: str) -> bytes:
        return self._box.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._box.decrypt(ciphertext).decode()
        except crypto.InvalidToken as exc:
            raise SecretUnreadable("stored password cannot be decrypted") from exc
