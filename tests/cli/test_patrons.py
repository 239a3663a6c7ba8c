"""The ``patrons import`` and ``patrons check`` commands, run as a person would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.core.cards import make_check_digit
from proxy.stores.blocks import Block, BlockList

REPO = Path(__file__).resolve().parents[2]
# The main parser with only the patrons commands, as proxy/cli wires them (logs go to stderr).
HARNESS = """
import argparse, sys
from proxy.config_loader import load_settings
from proxy.logconfig import configure_logging
from proxy.cli.patrons import add_patrons_parser, run_patrons
parser = argparse.ArgumentParser(prog="run_proxy.py")
parser.add_argument("--config", required=True)
add_patrons_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args()
configure_logging("json")
sys.exit(run_patrons(args, load_settings(args.config)))
"""
CONFIG = {
    "data_dir": "./data",
    "libraries": [
        {"code": "MAIN", "name": "Main Street Public Library", "prefix": "21234",
         "length": 14, "check_digit": "luhn", "remote_ptypes": ["adult"]},
        {"code": "WEST", "name": "Westfield College Library", "prefix": "29876",
         "length": 14, "check_digit": "mod10_weighted_31", "remote_ptypes": ["student"],
         "login_with": "last_name"},
    ],
}  # fmt: skip


def main_card(serial: int) -> str:
    """A valid MAIN card number."""
    body = f"21234{serial:08d}"
    return body + make_check_digit(body, "luhn")


OK, EXPIRED, LOST, STAFF, UNKNOWN = (main_card(n) for n in range(1, 6))
WEST = "29876000000013"
EXPORT = f"""barcode,pin,last_name,library,ptype,expires,status
{OK},1111,,MAIN,adult,2099-12-31,ok
{EXPIRED},2222,,MAIN,adult,2020-01-31,ok
{LOST},3333,,MAIN,adult,2099-12-31,lost
{STAFF},4444,,MAIN,staff,2099-12-31,ok
{WEST},,Ng,WEST,student,2099-12-31,ok
{OK[:-1]}0,5555,,MAIN,adult,2099-12-31,ok
"""


def run(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the patrons commands in a fresh interpreter, with ``stdin`` piped in."""
    return subprocess.run(
        [sys.executable, "-c", HARNESS, "--config", str(config), *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proxy.yaml whose registry holds EXPORT (imported once for the module)."""
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "proxy.yaml"
    path.write_text(json.dumps(CONFIG))  # JSON is YAML
    (folder / "export.csv").write_text(EXPORT)
    result = run(path, "patrons", "import", str(folder / "export.csv"))
    assert result.returncode == 1, result.stderr  # EXPORT has one rejected row (R13)
    return path


def test_import_prints_problems_and_summary(config: Path) -> None:
    """Bad rows go to stderr as FILE:LINE: reason; the summary line goes to stdout; exit 1."""
    export = config.parent / "export.csv"
    result = run(config, "patrons", "import", str(export))
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"{export}: imported 0, updated 0, unchanged 5, rejected 1, removed 0"
    )
    assert f"{export}:7: check digit is wrong (MAIN uses luhn)" in result.stderr.splitlines()
    assert '"event": "patrons_imported"' in result.stderr
    assert OK[:-1] not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read: No such file or directory"),
        ("barcode,pin,library\n", ":1: missing required column(s): ptype, expires, status"),
        ("barcode,pin,library,ptype,expires,status\n1,2,MAIN,adult,x,ok\n", "nothing was changed"),
    ],
)
def test_import_that_cannot_be_processed_exits_1(
    config: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    """Unreadable files, bad headers and all-rejected files exit 1 with a clear message."""
    path = tmp_path / "export.csv"
    if content is not None:
        path.write_text(content)
    result = run(config, "patrons", "import", str(path), "--replace")
    assert result.returncode == 1
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


CHECKS = [
    (OK, 0, ["card: found", "library: MAIN (Main Street Public Library)", "patron type: adult",
             "status: ok", "expires: 2099-12-31", "remote login: yes"]),
    (EXPIRED, 1, ["expires: 2020-01-31", "remote login: no - the card expired on 2020-01-31"]),
    (LOST, 1, ["status: lost", "remote login: no - status is lost (only 'ok' may log in)"]),
    (STAFF, 1, ["remote login: no - patron type 'staff' has no remote access at MAIN "
                "(remote_ptypes: adult)"]),
    (WEST, 0, ["library: WEST (Westfield College Library)", "remote login: yes"]),
    (UNKNOWN, 1, ["card: not found in the registry", "number: a valid MAIN card number",
                  "remote login: no - the card is not in the registry"]),
    (OK[:-1] + "0", 1, ["card: not found", "number: check digit is wrong (MAIN uses luhn)"]),
    ("99990000000000", 1, ["number: no member library uses this card number's prefix"]),
]  # fmt: skip


@pytest.mark.parametrize(("barcode", "code", "expected"), CHECKS)
def test_check_reads_the_card_from_stdin_and_explains(
    config: Path, barcode: str, code: int, expected: list[str]
) -> None:
    """`patrons check` explains why a card can or cannot log in, never echoing the card."""
    typed = f"{barcode[:4]}-{barcode[4:9]} {barcode[9:]}\n"
    result = run(config, "patrons", "check", stdin=typed)
    assert result.returncode == code, result.stderr
    lines = result.stdout.splitlines()
    for line in expected:
        assert any(got.startswith(line) for got in lines), (line, lines)
    for form in (barcode, typed.strip(), barcode[-8:]):
        assert form not in result.stdout and form not in result.stderr


def test_check_refuses_a_card_on_the_command_line(config: Path) -> None:
    """A card number in argv is a usage error (it would land in shell history and ps)."""
    result = run(config, "patrons", "check", OK)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_check_with_empty_stdin(config: Path) -> None:
    """No card number on stdin is reported, not looked up."""
    result = run(config, "patrons", "check", stdin="")
    assert result.returncode == 1
    assert "no card number given" in result.stderr


def fresh_config(folder: Path, cards: int) -> tuple[Path, bytes]:
    """A proxy.yaml in ``folder`` whose registry holds ``cards`` MAIN cards; the export's bytes."""
    path = folder / "proxy.yaml"
    path.write_text(json.dumps(CONFIG))
    header = "barcode,pin,last_name,library,ptype,expires,status\n"
    rows = "".join(f"{main_card(n)},1111,,MAIN,adult,2099-12-31,ok\n" for n in range(1, cards + 1))
    export = (header + rows).encode()
    (folder / "full.csv").write_bytes(export)
    assert run(path, "patrons", "import", str(folder / "full.csv")).returncode == 0
    return path, export


def test_R13_truncated_replace_is_refused(tmp_path: Path) -> None:
    """R13: --replace of an export cut mid-line removes nothing, names FILE:LINE and exits 1."""
    config, export = fresh_config(tmp_path, 300)
    cut = len(export) // 2 + 5
    assert export[cut - 1 : cut + 1].count(b"\n") == 0
    short = tmp_path / "short.csv"
    short.write_bytes(export[:cut])
    line = export[:cut].count(b"\n") + 1
    result = run(config, "patrons", "import", str(short), "--replace")
    assert result.returncode == 1
    assert f"{short}:{line}: the file ends mid-line (a truncated export?)" in result.stderr
    assert "--replace refused" in result.stdout and "removed 0" in result.stdout
    again = run(config, "patrons", "import", str(tmp_path / "full.csv"), "--replace")
    assert again.returncode == 0 and "unchanged 300, rejected 0, removed 0" in again.stdout


def test_R13_max_remove_option(tmp_path: Path) -> None:
    """R13: --max-remove guards --replace (default 5%); a bad value is a usage error."""
    config, export = fresh_config(tmp_path, 20)
    fewer = tmp_path / "fewer.csv"
    fewer.write_bytes(b"".join(export.splitlines(keepends=True)[:-2]))  # 2 of 20 gone: 10%
    refused = run(config, "patrons", "import", str(fewer), "--replace")
    assert refused.returncode == 1 and "more than --max-remove 5%" in refused.stdout
    allowed = run(config, "patrons", "import", str(fewer), "--replace", "--max-remove", "2")
    assert allowed.returncode == 0 and "removed 2" in allowed.stdout
    bad = run(config, "patrons", "import", str(fewer), "--replace", "--max-remove", "lots")
    assert bad.returncode == 2 and "expected a count like 500" in bad.stderr


def test_blocks_and_unblock_commands(tmp_path: Path) -> None:
    """#18 item 1: `patrons blocks` lists a block with no card number and `patrons unblock
    --hash` lifts it; a too-short prefix is refused with exit 1."""
    config = tmp_path / "proxy.yaml"
    config.write_text(json.dumps(CONFIG))
    assert "No card is blocked" in run(config, "patrons", "blocks").stdout
    blocks = BlockList.open(tmp_path / "data")
    try:
        card = blocks.card_hash(OK)
        blocks.add(Block(card, "MAIN", "C-9", "scraping", "jdoe", datetime.now(UTC)))
    finally:
        blocks.close()
    listed = run(config, "patrons", "blocks")
    assert listed.returncode == 0, listed.stderr
    assert card[:12] in listed.stdout and "C-9" in listed.stdout and "jdoe" in listed.stdout
    assert OK not in listed.stdout + listed.stderr and card not in listed.stdout
    checked = run(config, "patrons", "check", stdin=OK + "\n")
    assert checked.returncode == 1 and "block list (case C-9" in checked.stdout
    short = run(config, "patrons", "unblock", "--hash", card[:4])
    assert short.returncode == 1 and "hex digits" in short.stderr
    lifted = run(config, "patrons", "unblock", "--hash", card[:12])
    assert lifted.returncode == 0, lifted.stderr
    assert run(config, "patrons", "unblock", "--case", "C-9").returncode == 1


def test_I18_6_delimiter_and_date_format_options(tmp_path: Path) -> None:
    """#18.6: a semicolon file with US dates is refused with the delimiter named, then imports
    with --delimiter semicolon --date-format %m/%d/%Y; a bad pattern is a usage error."""
    path = tmp_path / "proxy.yaml"
    path.write_text(json.dumps(CONFIG))
    export = tmp_path / "export.csv"
    export.write_text(
        f"barcode;pin;library;ptype;expires;status\n{OK};1111;MAIN;adult;12/31/2099;ok\n"
    )
    result = run(path, "patrons", "import", str(export))
    assert result.returncode == 1
    assert f"{export}:1: the file is semicolon-delimited" in result.stderr
    result = run(path, "patrons", "import", str(export), "--delimiter", "semicolon")
    assert (
        f"{export}:2: expires is not an ISO date (YYYY-MM-DD); use --date-format" in result.stderr
    )
    result = run(path, "patrons", "import", str(export), "--delimiter", "semicolon",
                 "--date-format", "%m/%d/%Y")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == f"{export}: imported 1, updated 0, unchanged 0, rejected 0, removed 0"
    )
    result = run(path, "patrons", "import", str(export), "--date-format", "%m/%Y")
    assert result.returncode == 2 and "day, month and year" in result.stderr


def test_I18_6_duplicate_card_is_printed(tmp_path: Path) -> None:
    """#18.6: the CLI prints a duplicate card with both line numbers and exits 1."""
    path = tmp_path / "proxy.yaml"
    path.write_text(json.dumps(CONFIG))
    export = tmp_path / "export.csv"
    export.write_text(EXPORT.splitlines()[0] + "\n" + f"{OK},1,,MAIN,adult,2099-12-31,ok\n" * 2)
    result = run(path, "patrons", "import", str(export))
    assert result.returncode == 1
    assert f"{export}:3: duplicate card (first on line 2)" in result.stderr.splitlines()
