"""Secrets Frontdesk must be able to use again (an IMAP password), encrypted at rest.

The key is derived from the installation's secret key, the one that already signs web
sessions (FRONTDESK_SECRET_KEY or <data_dir>/secret.key): one secret to keep and back
up, not two. HKDF with a purpose label makes the encryption key a different key from the
session-signing one, so neither use can be turned against the other.

A database dump alone therefore reveals no password; a dump plus the secret key does.
Changing the secret key makes stored secrets unreadable (`UnreadableSecret`): they must
then be entered again, which the IMAP state reports in `last_error`.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from frontdesk.config import Settings

_PURPOSE = b"frontdesk/secrets-at-rest/v1"


class UnreadableSecret(Exception):
    """The ciphertext was not made with this installation's key (or was altered)."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_PURPOSE).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise UnreadableSecret("a stored secret cannot be decrypted with this "
                                   "installation's secret key (was it changed?)") from exc

    def __repr__(self) -> str:  # never the key, not even in a traceback
        return "SecretBox(<key hidden>)"


@lru_cache(maxsize=8)
def _box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key)


def secret_box(settings: Settings) -> SecretBox:
    # Imported here: the key's home is the web package's session set-up, and importing it
    # at module level would make every domain module load the web UI.
    from frontdesk.web.security import load_secret_key

    return _box(load_secret_key(settings))
