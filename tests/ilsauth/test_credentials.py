"""#16: back-end password files are read like every secret: private, non-empty, small."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config_loader import settings_from
from proxy.ilsauth.credentials import CredentialFileError, read_password_file


def secret(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    """A password file with ``text`` and ``mode``."""
    path = tmp_path / "sip2.pw"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_reads_the_password_without_its_newline(tmp_path: Path) -> None:
    """The trailing newline an editor adds is not part of the password."""
    assert read_password_file(secret(tmp_path, "s3cret pw\n"), key="k") == "s3cret pw"


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        ("PW-CANARY", 0o644, "chmod 600"),
        ("\n", 0o600, "empty"),
        ("PW-CANARY" * 500, 0o600, "too large"),
    ],
)
def test_refuses_unsafe_files_naming_the_key_not_the_content(
    tmp_path: Path, text: str, mode: int, problem: str
) -> None:
    """A readable-by-others, empty or huge file is refused; the message names key and path."""
    with pytest.raises(CredentialFileError, match=problem) as caught:
        read_password_file(secret(tmp_path, text, mode), key="libraries[EAST].auth.sip2.x")
    assert "libraries[EAST]" in str(caught.value) and "PW-CANARY" not in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing file names itself."""
    with pytest.raises(CredentialFileError, match="cannot read"):
        read_password_file(tmp_path / "nope", key="k")


def test_relative_secret_paths_are_resolved_against_the_config_folder(tmp_path: Path) -> None:
    """``login_password_file: east.pw`` means the file next to proxy.yaml, as data_dir does."""
    raw = {
        "libraries": [
            {
                "code": "EAST",
                "name": "East",
                "auth": {
                    "use": ["sip2"],
                    "sip2": {"host": "ils", "login_user": "u", "login_password_file": "east.pw"},
                },
            }
        ]
    }
    settings = settings_from(raw, where="proxy.yaml", base=tmp_path)
    sip2 = settings.libraries[0].auth.sip2
    assert sip2 is not None and sip2.login_password_file == (tmp_path / "east.pw").resolve()
