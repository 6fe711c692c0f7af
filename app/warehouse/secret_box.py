"""The root password at rest: encrypted with a key derived from `SECRET_KEY` (Fernet).

Only the ciphertext is stored (`ManagedWarehouse.password_ciphertext`); the plaintext exists in
memory just long enough to answer the API call, compute a SCRAM verifier or run a login probe.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PASSWORD_BYTES = 32
_INFO = b"warehouse-api/managed-warehouse-root-password/v1"


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted with the configured key."""


def generate_password() -> str:
    """>= 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("stored password cannot be decrypted") from exc
