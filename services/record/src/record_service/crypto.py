"""FernetCipher: encryption of encrypted_text field values with the FIELD_ENCRYPTION_KEY."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class FernetCipher:
    """The domain's Cipher over Fernet (AES-128-CBC + HMAC-SHA256, urlsafe base64 tokens)."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key.encode("ascii") if isinstance(key, str) else key)

    def encrypt(self, plaintext: str) -> str:
        """A ciphertext token."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext; ValueError when the token is not ours or was tampered with."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise ValueError("not a valid ciphertext for this key") from exc
