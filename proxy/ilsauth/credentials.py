"""Reading the passwords of live back-ends from their secret files.

Contract: ``read_password_file(path, key=...)`` returns the file's text without its trailing
newline. A missing, unreadable, empty, or group/world-accessible file is refused with a
``CredentialFileError`` (a ``ConfigError``: the CLI prints ``path: key: why`` and exits 1)
naming the path and the setting, never the content, as P4 asks of every secret:
``chmod 600`` fixes the last case. Relative paths were resolved against proxy.yaml's folder
by the config loader.
Not here: which settings name such files (core/authconfig.py, core/sip2.py).
"""

from __future__ import annotations

import stat
from pathlib import Path

from proxy.errors import ConfigError, Problem

MAX_PASSWORD_BYTES = 4096  # a password file, not a data file


class CredentialFileError(ConfigError):
    """A back-end password file cannot be used as it is (a config problem: ``path: key: why``)."""

    def __init__(self, path: Path, key: str, message: str) -> None:
        super().__init__([Problem(str(path), None, key, message)])


def read_password_file(path: Path, *, key: str) -> str:
    """The password in ``path`` (for setting ``key``), checked for mode and size."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CredentialFileError(path, key, "not a regular file")
        if info.st_mode & 0o077:
            raise CredentialFileError(path, key, "readable by others; chmod 600 it")
        if info.st_size > MAX_PASSWORD_BYTES:
            raise CredentialFileError(path, key, "too large for a password file")
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise CredentialFileError(path, key, f"cannot read it ({exc.strerror})") from None
    if not text:
        raise CredentialFileError(path, key, "empty")
    return text
