"""The key that encrypts profiles' secrets at rest (README "Runtime profiles").

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) through a MultiFernet, so that a key
can later be rotated: MNEMO_ENCRYPTION_KEY holds one key, or several separated by commas (the
first encrypts, any decrypts). Unset, the key is DATA_DIR/encryption-key, created once (mode
0600) with a new random key. Lose it and the secrets stored with it are lost.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from dal.errors import EncryptionKeyMismatch
from dal.settings import Settings

KEY_FILE = "encryption-key"


def parse_keys(text: str) -> list[Fernet]:
    """The Fernet keys of MNEMO_ENCRYPTION_KEY's value (comma-separated, first one encrypts);
    ValueError naming the setting, never the value, for a malformed one."""
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ValueError("MNEMO_ENCRYPTION_KEY holds no key")
    fernets = []
    for number, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise ValueError(
                f"MNEMO_ENCRYPTION_KEY: key {number} is not a Fernet key (32 url-safe base64-"
                "encoded bytes: Fernet.generate_key() of the cryptography package)"
            ) from None
    return fernets


def _draft(path: Path, text: str) -> Path:
    """A new file of this process's own beside ``path`` (mode 0600), holding ``text`` and a
    newline, flushed to disk: to be linked or renamed to ``path`` whole."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        draft.unlink(missing_ok=True)
        raise
    return draft


def secret_file(path: Path, make: Callable[[], str]) -> Path:
    """``path``, created (mode 0600) holding ``make()`` and a newline if missing.

    Several processes may start at once on one DATA_DIR: the secret is written whole to a file
    of this process's own, then linked to the final name, which either succeeds (this secret is
    the one) or finds another process's complete file (that secret is the one) — never a file
    a reader could find empty or half-written."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = _draft(path, make())
        try:
            with contextlib.suppress(FileExistsError):  # another process's secret won: use it
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    return path


def key_file(data_dir: Path) -> Path:
    """DATA_DIR/encryption-key, created (mode 0600) with a new random key if missing."""
    return secret_file(data_dir / KEY_FILE, lambda: Fernet.generate_key().decode("ascii"))


def write_key_file(path: Path, keys: str) -> None:
    """Replace the key file by one holding ``keys`` (comma-separated), mode 0600, whole: written
    to a file of its own first, then renamed over it."""
    draft = _draft(path, keys)
    try:
        os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


class Vault:
    """Encrypts and decrypts secrets with the configured key(s)."""

    def __init__(self, keys: list[Fernet], *, source: str) -> None:
        self._fernet = MultiFernet(keys)
        self._primary = keys[0]
        self.source = source  # what to name in an error: the setting or the key file

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """MNEMO_ENCRYPTION_KEY's key(s), else DATA_DIR/encryption-key's (made if missing)."""
        configured = settings.mnemo_encryption_key
        if configured is not None:
            return cls(parse_keys(configured.get_secret_value()), source="MNEMO_ENCRYPTION_KEY")
        path = key_file(settings.data_dir)
        keys = parse_keys(path.read_text())
        return cls(keys, source=f"the key file {path} (MNEMO_ENCRYPTION_KEY is unset)")

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The secret; EncryptionKeyMismatch if the key is not the one it was stored with."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise self._mismatch() from None

    def rotate(self, token: str) -> str | None:
        """The token re-encrypted with the first key, or None if the first key wrote it
        already (`mnemo keys rotate` skips it); EncryptionKeyMismatch if no key reads it."""
        try:
            data = token.encode("ascii")
        except UnicodeError:
            raise self._mismatch() from None
        try:
            self._primary.decrypt(data)
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(data).decode("ascii")
        except InvalidToken:
            raise self._mismatch() from None

    def _mismatch(self) -> EncryptionKeyMismatch:
        return EncryptionKeyMismatch(
            "a stored secret does not decrypt with the configured encryption key: "
            f"{self.source} is not the key the secrets were stored with "
            "(set MNEMO_ENCRYPTION_KEY to that key, or set the secrets again)"
        )
