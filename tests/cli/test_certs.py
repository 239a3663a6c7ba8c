"""``certs dev``: the command's options, what it prints and that it never overwrites."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from proxy.certs import DEV_FILES
from proxy.cli.certs import add_certs_parser, run_certs
from proxy.core.settings import Settings


def test_parser_accepts_certs_dev_options() -> None:
    """`certs dev --force --dir X` parses into command, subcommand, force and dir."""
    parser = argparse.ArgumentParser()
    add_certs_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["certs", "dev", "--force", "--dir", "elsewhere"])
    assert (args.command, args.certs_command, args.force, args.dir) == (
        "certs",
        "dev",
        True,
        "elsewhere",
    )
    assert parser.parse_args(["certs", "dev"]).dir == "certs"


def test_run_certs_creates_files_and_explains_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`certs dev` writes five files and prints trust steps and the proxy.yaml tls lines."""
    args = argparse.Namespace(dir=str(tmp_path / "certs"), force=False)
    assert run_certs(args, Settings()) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == sorted(DEV_FILES)
    for expected in ("update-ca-certificates", "certutil -d sql:", "add-trusted-cert", "-addstore"):
        assert expected in out
    assert (
        f"tls: {{cert: {tmp_path}/certs/proxy-chain.pem, key: {tmp_path}/certs/proxy.key}}" in out
    )
    assert "public_url: https://proxy.localhost:8080" in out  # the default config is plain http


def test_run_certs_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second `certs dev` exits 1, names the existing key and changes nothing."""
    args = argparse.Namespace(dir=str(tmp_path), force=False)
    assert run_certs(args, Settings()) == 0
    before = (tmp_path / "dev-ca.key").read_bytes()
    capsys.readouterr()
    assert run_certs(args, Settings()) == 1
    assert "dev-ca.key already exists" in capsys.readouterr().err
    assert (tmp_path / "dev-ca.key").read_bytes() == before
