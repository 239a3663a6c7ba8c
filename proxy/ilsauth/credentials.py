"""Reading the passwords of live back-ends from their secret files.

Contract: ``read_password_file(path, key=...)`` returns the file's text without its trailing
newline. A missing, unreadable, empty, or group/world-accessible file is refused with a
``CredentialFileError`` naming the path and the setting (never the content), as P4 asks of
every secret: ``chmod 600`` fixes the last case.
Not here: which settings name such files (core/authconfig.py, core/sip2.py).
"""

from __future__ import annotations

import stat
from pathlib import Path

from proxy.errors import ClamshellError

MAX_PASSWORD_BYTES = 4096  # a password file, not a data file


class CredentialFileError(ClamshellError):
    """A back-end password file cannot be used as it is."""


def read_password_file(path: Path, *, key: str) -> str:
    """The password in ``path`` (for setting ``key``), checked for mode and size."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CredentialFileError(f"{key}: {path} is not a regular file")
        if info.st_mode & 0o077:
            raise CredentialFileError(f"{key}: {path} is readable by others; chmod 600 it")
        if info.st_size > MAX_PASSWORD_BYTES:
            raise CredentialFileError(f"{key}: {path} is too large for a password file")
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise CredentialFileError(f"{key}: cannot read {path} ({exc.strerror})") from None
    if not text:
        raise CredentialFileError(f"{key}: {path} is empty")
    return text
