"""Secret files in ``data_dir`` (the registry pepper, later other keys): created once, 0600.

Contract: ``read_or_create_secret(path, nbytes)`` returns the file's bytes, creating the
folder (mode 0700) and the file (mode 0600, random bytes from ``secrets``) on first use.
Creation is atomic: the bytes are written and fsynced under a temporary name, then linked
into place with ``os.link``, which never overwrites — when two processes race, both end
up with the winner's secret, and nobody ever reads a half-written file. A secret file that
is group/world-accessible, not owned by us, not a regular file (or a symlink), or of the
wrong size is refused with a ``ClamshellError`` that says how to fix it.
``ensure_private_dir`` also tightens an existing folder that others may enter or read (e.g.
a ``data_dir`` made 0755 by hand) to 0700 and logs ``data_dir_tightened``; a loose folder
owned by another user is refused, not changed (R24).
Not here: what the secret is used for (core/keyedhash.py, stores/*).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from proxy.errors import ClamshellError
from proxy.logconfig import get_logger

log = get_logger("secrets")

FILE_MODE = 0o600
DIR_MODE = 0o700


class SecretFileError(ClamshellError):
    """A secret file exists but must not be used as it is."""


def read_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """The secret in ``path``, created with ``nbytes`` random bytes if it does not exist."""
    ensure_private_dir(path.parent)
    try:
        return _read_secret(path, nbytes)
    except FileNotFoundError:
        _create_secret(path, nbytes)
    return _read_secret(path, nbytes)


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) with the new leaf at mode 0700, or tighten an
    existing one to 0700; SecretFileError when it is loose and not ours to change."""
    if not directory.is_dir():
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
        return
    info = directory.stat()
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if not loose:
        return
    if info.st_uid != os.geteuid():
        raise SecretFileError(
            f"{directory}: mode {stat.S_IMODE(info.st_mode):04o} lets other users in, and it "
            f"is owned by uid {info.st_uid}, not by this user: run `chmod 700 {directory}` "
            "as its owner, or use a data_dir of this user's own"
        )
    try:
        os.chmod(directory, stat.S_IMODE(info.st_mode) & ~0o077)
    except OSError as exc:
        raise SecretFileError(
            f"{directory}: mode {stat.S_IMODE(info.st_mode):04o} lets other users in and "
            f"cannot be changed ({exc.strerror}): run `chmod 700 {directory}`"
        ) from None
    log.warning(
        "data_dir_tightened",
        path=str(directory),
        old_mode=f"{stat.S_IMODE(info.st_mode):04o}",
        new_mode=f"{stat.S_IMODE(info.st_mode) & ~0o077:04o}",
    )


def _read_secret(path: Path, nbytes: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretFileError(f"{path}: is a symlink; a secret file must be a file") from None
        raise
    try:
        info = os.fstat(fd)
        _check_secret_file(path, info, nbytes)
        data = os.read(fd, nbytes + 1)
    finally:
        os.close(fd)
    if len(data) != nbytes:  # changed under us between fstat and read
        raise SecretFileError(f"{path}: has {len(data)} bytes, expected {nbytes}")
    return data


def _check_secret_file(path: Path, info: os.stat_result, nbytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{path}: not a regular file")
    if info.st_mode & 0o077:
        raise SecretFileError(
            f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets other users read it; "
            f"run `chmod 600 {path}` (and consider the secret leaked if they did)"
        )
    if info.st_uid != os.geteuid():
        raise SecretFileError(f"{path}: owned by uid {info.st_uid}, not by this user")
    if info.st_size != nbytes:
        raise SecretFileError(
            f"{path}: has {info.st_size} bytes, expected {nbytes} (truncated or not ours)"
        )


def _create_secret(path: Path, nbytes: int) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.write(fd, secrets.token_bytes(nbytes))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):  # another process won the race: use theirs
            os.link(temp, path)
    finally:
        temp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
