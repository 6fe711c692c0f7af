"""Personal API key material: generation, hashing, masking. Plaintext never leaves this call."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "phx_"
_ALPHABET = string.ascii_letters + string.digits  # base62
_KEY_BODY_LENGTH = 44  # 44 * log2(62) ~= 262 bits of randomness


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_BODY_LENGTH))


def hash_key(plaintext: str) -> str:
    return "sha256$" + hashlib.sha256(plaintext.encode()).hexdigest()


def mask_key(plaintext: str) -> str:
    return f"{plaintext[:4]}...{plaintext[-4:]}"
