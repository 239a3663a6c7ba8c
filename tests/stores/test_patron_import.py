"""Tests for the patron CSV import: validation, counts, atomicity and nothing raw at rest."""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from proxy.core.cards import CheckScheme, make_check_digit, normalize_barcode, normalize_secret
from proxy.core.settings import Settings
from proxy.stores.patron_import import (
    BATCH_SIZE,
    DEFAULT_MAX_REMOVE,
    MAX_PROBLEMS,
    CsvFormat,
    ImportSummary,
    PatronImportError,
    RemoveLimit,
    check_date_format,
    import_csv,
    import_lines,
)
from proxy.stores.patrons import DB_FILE, PatronRegistry

REPO = Path(__file__).resolve().parents[2]
LIBRARIES: list[dict[str, Any]] = [
    {
        "code": "MAIN",
        "name": "Main",
        "prefix": "21234",
        "length": 14,
        "check_digit": "luhn",
        "remote_ptypes": ["adult"],
    },
    {
        "code": "WEST",
        "name": "West",
        "prefix": "29876",
        "length": 14,
        "check_digit": "mod10_weighted_31",
        "remote_ptypes": ["student"],
        "login_with": "last_name",
    },
    {"code": "BRANCH", "name": "Branch", "prefix": "212345", "length": 14, "check_digit": "luhn"},
]
SETTINGS = Settings.model_validate({"libraries": LIBRARIES})
HEADER = ("barcode", "pin", "last_name", "library", "ptype", "expires", "status")


def card(prefix: str, serial: int, scheme: CheckScheme = "luhn") -> str:
    """A valid 14-digit card number."""
    body = f"{prefix}{serial:0{13 - len(prefix)}d}"
    return body + make_check_digit(body, scheme)


def main_row(serial: int, pin: str = "4321", **changes: str) -> dict[str, str]:
    """A valid MAIN row (logs in with a PIN)."""
    row = {
        "barcode": card("21234", serial),
        "pin": pin,
        "last_name": "",
        "library": "MAIN",
        "ptype": "adult",
        "expires": "2031-01-31",
        "status": "ok",
    }
    return row | changes


def west_row(serial: int, last_name: str = "Smith", **changes: str) -> dict[str, str]:
    """A valid WEST row (logs in with a last name)."""
    barcode = card("29876", serial, "mod10_weighted_31")
    row = {
        "barcode": barcode,
        "pin": "",
        "last_name": last_name,
        "library": "WEST",
        "ptype": "student",
        "expires": "2031-01-31",
        "status": "ok",
    }
    return row | changes


def write_csv(path: Path, rows: Sequence[dict[str, str]], header: Sequence[str] = HEADER) -> Path:
    """Write rows under ``header`` (columns not in the header are left out)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows([[row.get(col.strip().lower(), "") for col in header] for row in rows])
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Where the registry lives."""
    return tmp_path / "data"


@pytest.fixture
def registry(data_dir: Path) -> Iterator[PatronRegistry]:
    """An open, empty registry."""
    with PatronRegistry.open(data_dir) as reg:
        yield reg


def run_import(
    registry: PatronRegistry,
    path: Path,
    *,
    replace: bool = False,
    allow_partial: bool = False,
    max_remove: RemoveLimit = DEFAULT_MAX_REMOVE,
) -> ImportSummary:
    """Import without a progress bar."""
    return import_csv(
        registry,
        path,
        SETTINGS,
        replace=replace,
        progress=False,
        allow_partial=allow_partial,
        max_remove=max_remove,
    )


def snapshot(registry: PatronRegistry) -> list[tuple[Any, ...]]:
    """Every row of the registry, to compare before and after."""
    conn: sqlite3.Connection = registry._conn
    return conn.execute("SELECT * FROM patrons ORDER BY card_hash").fetchall()


@pytest.fixture
def populated(registry: PatronRegistry, tmp_path: Path) -> PatronRegistry:
    """A registry holding MAIN cards 1-2 and WEST card 1."""
    rows = [main_row(1), main_row(2), west_row(1)]
    assert run_import(registry, write_csv(tmp_path / "first.csv", rows)).imported == 3
    return registry


# --- the happy paths ---------------------------------------------------------------------


def test_import_counts_and_logins(registry: PatronRegistry, tmp_path: Path) -> None:
    """Valid rows are imported; PIN and last-name cards can then authenticate."""
    rows = [main_row(1, pin="0042"), main_row(2), west_row(1, last_name="O'Brien-Smith")]
    summary = run_import(registry, write_csv(tmp_path / "p.csv", rows))
    assert (summary.imported, summary.updated, summary.rejected, summary.removed) == (3, 0, 0, 0)
    assert summary.committed and summary.exit_code == 0 and summary.problems == []
    assert registry.authenticate(card("21234", 1), "0042", "pin")[1]
    assert registry.authenticate(
        card("29876", 1, "mod10_weighted_31"), "obrien smith", "last_name"
    )[1]
    record = registry.lookup(card("21234", 2))
    assert record is not None and (record.library, record.ptype, record.status) == (
        "MAIN",
        "adult",
        "ok",
    )


def test_upsert_keeps_cards_missing_from_the_file(
    populated: PatronRegistry, tmp_path: Path
) -> None:
    """Without --replace, rows are added or updated and nothing is removed."""
    rows = [main_row(1), main_row(2, status="blocked"), main_row(3)]
    summary = run_import(populated, write_csv(tmp_path / "second.csv", rows))
    assert (summary.imported, summary.updated, summary.unchanged, summary.removed) == (1, 1, 1, 0)
    assert populated.count() == 4
    blocked = populated.lookup(card("21234", 2))
    assert blocked is not None and blocked.status == "blocked"


def test_replace_makes_the_registry_equal_to_the_file(
    populated: PatronRegistry, tmp_path: Path
) -> None:
    """With --replace, cards gone from the export lose access."""
    rows = [main_row(1), main_row(3)]
    everything = RemoveLimit(100, percent=True)  # 2 of 3 is far over the default guard
    path = write_csv(tmp_path / "second.csv", rows)
    summary = run_import(populated, path, replace=True, max_remove=everything)
    assert (summary.imported, summary.updated, summary.unchanged, summary.removed) == (1, 0, 1, 2)
    assert populated.count() == 2
    assert populated.lookup(card("21234", 2)) is None
    assert populated.lookup(card("29876", 1, "mod10_weighted_31")) is None


def test_changed_pin_replaces_the_old_one(populated: PatronRegistry, tmp_path: Path) -> None:
    """A new PIN in the export works and the old one stops working."""
    run_import(populated, write_csv(tmp_path / "second.csv", [main_row(1, pin="9999")]))
    assert populated.authenticate(card("21234", 1), "9999", "pin")[1]
    assert not populated.authenticate(card("21234", 1), "4321", "pin")[1]


def test_I18_6_duplicate_card_is_reported_with_both_lines(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """#18.6: a card that appears twice keeps its first row; the later one is rejected as
    FILE:LINE: duplicate card (first on line N), also when written differently."""
    dashed = card("21234", 1)[:4] + "-" + card("21234", 1)[4:]
    rows = [main_row(1, ptype="adult"), main_row(2), main_row(1, ptype="staff", barcode=dashed)]
    path = write_csv(tmp_path / "dupes.csv", rows)
    summary = run_import(registry, path)
    assert summary.problems == [f"{path}:4: duplicate card (first on line 2)"]
    assert (summary.imported, summary.rejected, summary.exit_code) == (2, 1, 1)
    record = registry.lookup(card("21234", 1))
    assert record is not None and record.ptype == "adult"


def test_I18_6_duplicates_across_batches_and_in_line_order(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """#18.6: a duplicate in a later batch names the first line; problems stay in line order."""
    rows = [main_row(n) for n in range(1, BATCH_SIZE + 3)]
    rows += [main_row(BATCH_SIZE + 5, status="x"), main_row(3), main_row(1)]
    path = write_csv(tmp_path / "p.csv", rows)
    summary = run_import(registry, path)
    last = BATCH_SIZE + 6  # the header is line 1
    assert summary.problems == [
        f"{path}:{last - 2}: status is not one of blocked, fines, lost, ok",
        f"{path}:{last - 1}: duplicate card (first on line 4)",
        f"{path}:{last}: duplicate card (first on line 2)",
    ]
    assert summary.imported == BATCH_SIZE + 2


def test_I18_6_duplicate_blocks_a_replace(populated: PatronRegistry, tmp_path: Path) -> None:
    """#18.6/R13: a duplicate is a rejected row, so --replace removes nothing without
    --allow-partial."""
    before = snapshot(populated)
    path = write_csv(tmp_path / "p.csv", [main_row(1), main_row(1)])
    summary = run_import(populated, path, replace=True, max_remove=RemoveLimit(100, True))
    assert summary.refused is not None and "1 row was rejected" in summary.refused
    assert not summary.committed
    assert snapshot(populated) == before


def test_header_is_flexible(registry: PatronRegistry, tmp_path: Path) -> None:
    """Column order, case, spaces, a BOM and extra columns do not matter."""
    header = (" Status", "EXPIRES", "email", "ptype", "Library ", "PIN", "Barcode")
    path = write_csv(tmp_path / "p.csv", [main_row(1) | {"email": "a@b.org"}], header)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's UTF-8 BOM
    summary = run_import(registry, path)
    assert summary.imported == 1, summary.problems


def test_barcodes_and_values_are_normalized(registry: PatronRegistry, tmp_path: Path) -> None:
    """Dashed barcodes, padded values, upper-case status and compact dates are accepted."""
    dashed = card("21234", 7)
    row = main_row(
        7,
        barcode=f" {dashed[:4]}-{dashed[4:9]} {dashed[9:]} ",
        status=" OK ",
        expires="20310131",
        ptype=" adult ",
    )
    assert run_import(registry, write_csv(tmp_path / "p.csv", [row])).imported == 1
    record = registry.lookup(dashed)
    assert record is not None and record.expires.isoformat() == "2031-01-31"
    assert (record.status, record.ptype) == ("ok", "adult")


# --- every rejection reason -----------------------------------------------------------

NOT_ISO = (
    "expires is not an ISO date (YYYY-MM-DD); "
    "use --date-format for other formats, e.g. --date-format %m/%d/%Y"
)

REJECTIONS = [
    (main_row(5, library="EAST"), "library is not one of MAIN, WEST, BRANCH"),
    (main_row(5, library=""), "library is not one of MAIN, WEST, BRANCH"),
    (main_row(5, barcode=""), "barcode is empty"),
    (
        main_row(5, barcode="2123400000005x"),
        "barcode must contain only digits (spaces and dashes are ignored)",
    ),
    (main_row(5, barcode="2123400000005"), "barcode has 13 digits; MAIN cards have 14"),
    (main_row(5, barcode=card("29876", 5)), "barcode does not start with MAIN's prefix 21234"),
    (west_row(5, barcode=card("21234", 5)), "barcode does not start with WEST's prefix 29876"),
    (main_row(5, barcode=card("21234", 5)[:-1] + "0"), "check digit is wrong (MAIN uses luhn)"),
    (west_row(5, barcode=card("29876", 5)), "check digit is wrong (WEST uses mod10_weighted_31)"),
    (main_row(5, barcode=card("212345", 5)), "barcode belongs to BRANCH (longer prefix), not MAIN"),
    (main_row(5, pin="  "), "pin is empty"),
    (west_row(5, last_name=" -' "), "last_name is empty"),
    (main_row(5, ptype=" "), "ptype is empty"),
    (main_row(5, expires="2031-02-30"), NOT_ISO),
    (main_row(5, expires="31/01/2031"), NOT_ISO),
    (main_row(5, expires=""), NOT_ISO),
    (main_row(5, status="frozen"), "status is not one of blocked, fines, lost, ok"),
]


@pytest.mark.parametrize(("bad", "reason"), REJECTIONS)
def test_each_bad_row_is_reported_and_skipped(
    registry: PatronRegistry, tmp_path: Path, bad: dict[str, str], reason: str
) -> None:
    """A bad row is skipped as FILE:LINE: reason, quoting none of its values; others go in
    (and the exit code is 1, R13)."""
    path = write_csv(tmp_path / "p.csv", [main_row(1), bad, main_row(2)])
    summary = run_import(registry, path)
    assert summary.problems == [f"{path}:3: {reason}"]
    assert (summary.imported, summary.rejected, summary.exit_code) == (2, 1, 1)
    quoted = [
        v.strip() for k, v in bad.items() if k not in ("library", "status") and len(v.strip()) > 2
    ]
    assert not any(value in reason for value in quoted)


def test_short_row_is_rejected(registry: PatronRegistry, tmp_path: Path) -> None:
    """A row with fewer fields than the header needs is reported; blank lines are skipped."""
    path = tmp_path / "p.csv"
    good = ",".join(main_row(1)[c] for c in HEADER)
    path.write_text(",".join(HEADER) + "\n\n" + good + "\n" + "2123,1234,x\n   \n")
    summary = run_import(registry, path)
    assert summary.problems == [f"{path}:4: row has 3 fields; the header needs 7"]
    assert summary.imported == 1


def test_line_numbers_count_physical_lines(registry: PatronRegistry, tmp_path: Path) -> None:
    """A quoted field spanning lines moves the reported line number along with it."""
    header = (*HEADER, "notes")
    rows = [main_row(1) | {"notes": "line one\nline two\nline three"}, main_row(2, status="x")]
    summary = run_import(registry, write_csv(tmp_path / "p.csv", rows, header))
    assert summary.problems == [
        f"{tmp_path / 'p.csv'}:5: status is not one of blocked, fines, lost, ok"
    ]


def test_login_column_follows_each_library(registry: PatronRegistry, tmp_path: Path) -> None:
    """PIN libraries need the pin column and last-name libraries the last_name column."""
    pins_only = write_csv(
        tmp_path / "pins.csv",
        [main_row(1), west_row(1)],
        header=[c for c in HEADER if c != "last_name"],
    )
    summary = run_import(registry, pins_only)
    assert summary.problems == [
        f"{pins_only}:3: WEST logs in with last_name; the file has no such column"
    ]
    names_only = write_csv(
        tmp_path / "names.csv", [main_row(2), west_row(2)], header=[c for c in HEADER if c != "pin"]
    )
    summary = run_import(registry, names_only)
    assert summary.problems == [
        f"{names_only}:2: MAIN logs in with pin; the file has no such column"
    ]


def test_a_last_name_library_ignores_the_pin_column(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """For a last-name library the pin column is not a way in."""
    run_import(registry, write_csv(tmp_path / "p.csv", [west_row(1, pin="1234", last_name="Ng")]))
    barcode = card("29876", 1, "mod10_weighted_31")
    assert registry.authenticate(barcode, "ng", "last_name")[1]
    assert not registry.authenticate(barcode, "1234", "last_name")[1]
    assert not registry.authenticate(barcode, "4321", "pin")[1]


def test_problem_list_is_capped(registry: PatronRegistry, tmp_path: Path) -> None:
    """Only the first MAX_PROBLEMS messages are kept; every rejection is counted."""
    rows = [main_row(n, status="x") for n in range(MAX_PROBLEMS + 5)]
    summary = run_import(registry, write_csv(tmp_path / "bad.csv", [*rows, main_row(1)]))
    assert len(summary.problems) == MAX_PROBLEMS
    assert (summary.rejected, summary.unlisted_problems, summary.imported) == (
        MAX_PROBLEMS + 5,
        5,
        1,
    )


# --- nothing is written unless the file can be processed ------------------------------


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ([c for c in HEADER if c != "expires"], "missing required column(s): expires"),
        (["barcode", "pin", "library"], "missing required column(s): ptype, expires, status"),
        ([c for c in HEADER if c not in ("pin", "last_name")], "pin or last_name"),
        ([*HEADER, "PIN"], "column(s) appear twice: pin"),
    ],
)
def test_bad_header_writes_nothing(
    populated: PatronRegistry, tmp_path: Path, header: list[str], missing: str
) -> None:
    """A header without the required columns is an error before anything is written."""
    before = snapshot(populated)
    path = write_csv(tmp_path / "p.csv", [main_row(9)], header)
    with pytest.raises(
        PatronImportError, match=r":1: .*" + missing.replace("(", r"\(").replace(")", r"\)")
    ):
        run_import(populated, path, replace=True)
    assert snapshot(populated) == before


def test_unreadable_or_empty_file_is_an_error(registry: PatronRegistry, tmp_path: Path) -> None:
    """A missing file or one without a header row cannot be imported."""
    with pytest.raises(PatronImportError, match="cannot read: No such file"):
        run_import(registry, tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(PatronImportError, match="the file is empty"):
        run_import(registry, tmp_path / "empty.csv")


def test_all_rows_rejected_changes_nothing(populated: PatronRegistry, tmp_path: Path) -> None:
    """When no row is valid nothing is committed, even with --replace, and the exit is 1."""
    before = snapshot(populated)
    path = write_csv(tmp_path / "bad.csv", [main_row(1, status="x"), main_row(2, expires="soon")])
    summary = run_import(populated, path, replace=True)
    assert (summary.committed, summary.exit_code, summary.rejected, summary.removed) == (
        False,
        1,
        2,
        0,
    )
    header_only = write_csv(tmp_path / "header.csv", [])
    assert run_import(populated, header_only, replace=True).exit_code == 1
    assert snapshot(populated) == before


def test_error_midway_leaves_registry_unchanged(populated: PatronRegistry) -> None:
    """An exception from the row source after several batches rolls everything back."""
    before = snapshot(populated)

    def lines() -> Iterator[str]:
        yield ",".join(HEADER) + "\n"
        for n in range(3 * BATCH_SIZE):
            yield ",".join(main_row(100 + n, status="blocked")[c] for c in HEADER) + "\n"
        raise OSError("the export share went away")

    with pytest.raises(OSError, match="went away"):
        import_lines(populated, lines(), source="nfs.csv", settings=SETTINGS, replace=True)
    assert snapshot(populated) == before
    assert populated.authenticate(card("21234", 1), "4321", "pin")[1]


def test_undecodable_bytes_midway_leave_registry_unchanged(
    populated: PatronRegistry, tmp_path: Path
) -> None:
    """Bytes that are not UTF-8 after many good rows abort the import with the line number."""
    before = snapshot(populated)
    path = write_csv(tmp_path / "p.csv", [main_row(100 + n) for n in range(BATCH_SIZE + 10)])
    with path.open("ab") as f:
        f.write(b"21234000000018,\xff\xfe,,MAIN,adult,2031-01-31,ok\n")
    with pytest.raises(
        PatronImportError, match=rf"p\.csv:{BATCH_SIZE + 12}: not UTF-8 text \(Latin-1"
    ):
        run_import(populated, path, replace=True)
    assert snapshot(populated) == before


CRASHING_IMPORT = """
import json, sys, time
from pathlib import Path
import proxy.stores.patrons as patrons
from proxy.core.settings import Settings
from proxy.stores.patron_import import RemoveLimit, import_lines
from tests.stores.test_patron_import import HEADER, main_row
data_dir, libraries, count, phase = Path(sys.argv[1]), json.loads(sys.argv[2]), *sys.argv[3:]
count = int(count)
wal = data_dir / "patrons.sqlite3-wal"

def stop_here():
    print("MIDWAY", flush=True)
    time.sleep(120)

def lines():
    yield ",".join(HEADER) + "\\n"
    for n in range(count):
        yield ",".join(main_row(100 + n, status="lost")[c] for c in HEADER) + "\\n"
    if phase == "staging":
        stop_here()  # every batch is staged, the transaction is open

def during_merge():
    if phase == "merge" and wal.stat().st_size > 100_000:
        stop_here()  # inside the merge statement, uncommitted pages already in the WAL
    return 0

patrons.IMPORT_CACHE_KIB = 64  # a tiny cache makes the merge spill pages into the WAL early
registry = patrons.PatronRegistry.open(data_dir)
registry._conn.set_progress_handler(during_merge, 10_000)
settings = Settings.model_validate({"libraries": libraries})
everything = RemoveLimit(100, percent=True)  # past the --max-remove guard, into the merge
import_lines(
    registry, lines(), source="x", settings=settings, replace=True, max_remove=everything
)
"""


@pytest.mark.parametrize("phase", ["staging", "merge"])
def test_killed_import_leaves_previous_registry_usable(
    populated: PatronRegistry, data_dir: Path, phase: str
) -> None:
    """SIGKILL while rows are staged or merged loses that import and nothing else."""
    before = snapshot(populated)
    args = [str(data_dir), json.dumps(LIBRARIES), str(2 * BATCH_SIZE + 2), phase]
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_IMPORT, *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "MIDWAY"
        if phase == "merge":
            assert (data_dir / f"{DB_FILE}-wal").stat().st_size > 100_000
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]
    assert snapshot(populated) == before  # a reader that was open all along
    populated.close()
    with PatronRegistry.open(data_dir) as reopened:
        assert snapshot(reopened) == before
        assert reopened.authenticate(card("21234", 1), "4321", "pin")[1]
        assert reopened.lookup(card("21234", 100)) is None
        assert reopened._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_progress_bar_only_on_a_tty(
    registry: PatronRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True draws nothing when stdout is not a terminal."""
    path = write_csv(tmp_path / "p.csv", [main_row(1)])
    import_csv(registry, path, SETTINGS, replace=False, progress=True)
    out = capsys.readouterr().out
    assert "importing" not in out and "\r" not in out


# --- nothing raw at rest (DESIGN P4) -----------------------------------------------------

CANARY_CARDS = (card("21234", 31415926), card("29876", 27182818, "mod10_weighted_31"))
CANARY_PINS = ("Kanarie7319", "8675309-Pin")
CANARY_NAMES = ("Zqxjkvanneste", "Ñúñez-Wörthington")
CANARY_EMAIL = "canary.patron@example.org"


def canary_forms() -> set[bytes]:
    """Every canary, raw and normalized, in the encodings a file might hold it in."""
    texts = {*CANARY_CARDS, *CANARY_PINS, *CANARY_NAMES, CANARY_EMAIL}
    texts |= {normalize_barcode(c) for c in CANARY_CARDS}
    texts |= {normalize_secret(n, "last_name") for n in CANARY_NAMES}
    texts |= {c[:4] + "-" + c[4:] for c in CANARY_CARDS}
    forms = set()
    for text in texts:
        for encoding in ("utf-8", "ascii", "latin-1", "utf-16-le", "utf-16-be"):
            with contextlib.suppress(UnicodeEncodeError):
                forms.add(text.encode(encoding))
    return forms


def scan(data_dir: Path) -> list[str]:
    """Which files under data_dir contain any canary form (reads every file as bytes)."""
    forms = canary_forms()
    return [
        str(p)
        for p in data_dir.rglob("*")
        if p.is_file() and any(f in p.read_bytes() for f in forms)
    ]


def canary_rows() -> list[dict[str, str]]:
    """Valid rows and one rejected row carrying the canaries, plus an ignored email column."""
    main_card, west_card = CANARY_CARDS
    dashed = f"{main_card[:4]}-{main_card[4:]}"
    return [
        main_row(0, barcode=dashed, pin=CANARY_PINS[0]) | {"email": CANARY_EMAIL},
        main_row(0, barcode=main_card, pin=CANARY_PINS[1], status="nope"),  # rejected row
        west_row(0, barcode=west_card, last_name=CANARY_NAMES[1], pin=CANARY_PINS[1]),
        west_row(1, last_name=CANARY_NAMES[0]) | {"email": CANARY_EMAIL},
    ]


def test_canaries_never_reach_any_file_in_data_dir(data_dir: Path, tmp_path: Path) -> None:
    """No raw or normalized card, PIN, name or email is in any file under data_dir, ever."""
    path = write_csv(tmp_path / "export.csv", canary_rows(), (*HEADER, "email"))
    assert scan(tmp_path) == [str(path)]  # the scanner does find canaries where they are
    registry = PatronRegistry.open(data_dir)
    summary = run_import(registry, path)
    assert (summary.imported, summary.rejected) == (3, 1)
    assert registry.authenticate(CANARY_CARDS[0], CANARY_PINS[0], "pin")[1]
    assert (data_dir / f"{DB_FILE}-wal").exists() and scan(data_dir) == []
    assert run_import(registry, path, replace=True, allow_partial=True).unchanged == 3
    registry.set_status(registry.card_hash(CANARY_CARDS[1]), "blocked")
    registry.authenticate(CANARY_CARDS[1], CANARY_NAMES[1], "last_name")
    assert scan(data_dir) == []
    registry.close()
    assert scan(data_dir) == []
    assert {p.name for p in data_dir.iterdir()} >= {DB_FILE, "pepper.key"}


# --- R13: --replace guards -----------------------------------------------------------------


def many_rows(count: int, first: int = 1) -> list[dict[str, str]]:
    """``count`` valid MAIN rows with serials from ``first``."""
    return [main_row(n) for n in range(first, first + count)]


def test_R13_truncated_export_removes_nothing(registry: PatronRegistry, tmp_path: Path) -> None:
    """R13: --replace with an export cut mid-line changes nothing, says so at FILE:LINE, exits 1."""
    full = write_csv(tmp_path / "full.csv", many_rows(2000))
    assert run_import(registry, full).imported == 2000
    data = full.read_bytes()
    cut = len(data) // 3
    while data[cut - 1 : cut] == b"\n" or data[cut : cut + 1] == b"\n":
        cut += 7  # cut inside a row, never at its end
    short = tmp_path / "short.csv"
    short.write_bytes(data[:cut])
    before = snapshot(registry)
    summary = run_import(registry, short, replace=True)
    last_line = data[:cut].count(b"\n") + 1
    assert summary.ends_mid_line == last_line
    assert summary.problems[-1].startswith(f"{short}:{last_line}: ")
    assert summary.refused is not None and "ends mid-line" in summary.refused
    assert (summary.committed, summary.removed, summary.exit_code) == (False, 0, 1)
    assert snapshot(registry) == before
    partial = run_import(registry, short, replace=True, allow_partial=True)
    assert partial.refused is not None and "--max-remove 5%" in partial.refused  # 2/3 missing
    assert snapshot(registry) == before


def test_R13_rejected_rows_keep_their_cards(registry: PatronRegistry, tmp_path: Path) -> None:
    """R13: with 3 of 4 rows rejected (MM/DD/YYYY dates) --replace removes none of those cards."""
    assert run_import(registry, write_csv(tmp_path / "a.csv", many_rows(4))).imported == 4
    rows = [main_row(1)] + [main_row(n, expires="01/31/2031") for n in (2, 3, 4)]
    path = write_csv(tmp_path / "b.csv", rows)
    summary = run_import(registry, path, replace=True, max_remove=RemoveLimit(100, True))
    assert summary.problems == [f"{path}:{line}: {NOT_ISO}" for line in (3, 4, 5)]
    assert summary.refused is not None and "3 rows were rejected" in summary.refused
    assert (summary.removed, summary.exit_code, registry.count()) == (0, 1, 4)


def test_R13_allow_partial_replaces_despite_rejected_rows(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """R13: --allow-partial lets --replace go ahead past rejected rows, and still exits 1."""
    assert run_import(registry, write_csv(tmp_path / "a.csv", many_rows(4))).imported == 4
    rows = [main_row(1), main_row(2), main_row(3, status="nope")]
    path = write_csv(tmp_path / "b.csv", rows)
    summary = run_import(
        registry, path, replace=True, allow_partial=True, max_remove=RemoveLimit(2, False)
    )
    assert (summary.refused, summary.removed, summary.exit_code) == (None, 2, 1)
    assert registry.count() == 2


@pytest.mark.parametrize(
    ("kept", "limit", "removed"),
    [
        (38, DEFAULT_MAX_REMOVE, 2),  # 2 of 40 = 5%: allowed
        (37, DEFAULT_MAX_REMOVE, None),  # 3 of 40 = 7.5%: refused
        (37, RemoveLimit.parse("3"), 3),
        (36, RemoveLimit.parse("3"), None),
        (30, RemoveLimit.parse("25%"), 10),
        (1, RemoveLimit.parse("50%"), None),
    ],
)
def test_R13_max_remove_guard(
    registry: PatronRegistry,
    tmp_path: Path,
    kept: int,
    limit: RemoveLimit,
    removed: int | None,
) -> None:
    """R13: a --replace that would remove more than --max-remove (default 5%) changes nothing."""
    assert run_import(registry, write_csv(tmp_path / "a.csv", many_rows(40))).imported == 40
    before = snapshot(registry)
    path = write_csv(tmp_path / "b.csv", many_rows(kept))
    summary = run_import(registry, path, replace=True, max_remove=limit)
    if removed is None:
        assert summary.refused is not None and f"--max-remove {limit}" in summary.refused
        assert (summary.committed, summary.exit_code) == (False, 1)
        assert snapshot(registry) == before
    else:
        assert (summary.refused, summary.removed, summary.exit_code) == (None, removed, 0)
        assert registry.count() == kept


def test_R13_missing_final_newline_alone_is_not_a_cut(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """R13: a file without a final line break whose last row is valid imports normally."""
    path = write_csv(tmp_path / "a.csv", many_rows(3))
    path.write_bytes(path.read_bytes().rstrip(b"\r\n"))
    summary = run_import(registry, path, replace=True)
    assert (summary.ends_mid_line, summary.imported, summary.exit_code) == (None, 3, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5%", RemoveLimit(5, True)),
        ("500", RemoveLimit(500, False)),
        (" 0 ", RemoveLimit(0, False)),
    ],
)
def test_R13_remove_limit_parses(text: str, expected: RemoveLimit) -> None:
    """R13: --max-remove takes a count of patrons or a percentage of the registry."""
    assert RemoveLimit.parse(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "101%", "2.5", "5 %%"])
def test_R13_remove_limit_refuses_nonsense(text: str) -> None:
    """R13: anything but a whole count or a percentage up to 100 is refused."""
    with pytest.raises(ValueError, match=r"expected a count|whole number"):
        RemoveLimit.parse(text)


# --- #18 item 6: the file's format -------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expires", "stored"),
    [
        (CsvFormat(date_format="%m/%d/%Y"), "01/31/2031", "2031-01-31"),
        (CsvFormat(date_format="%d.%m.%Y"), " 31.01.2031 ", "2031-01-31"),
        (CsvFormat(date_format="%Y%m%d"), "20310131", "2031-01-31"),
    ],
)
def test_I18_6_date_format_reads_other_dates(
    registry: PatronRegistry, tmp_path: Path, fmt: CsvFormat, expires: str, stored: str
) -> None:
    """#18.6: with a date format, the expiry column is read in that format."""
    path = write_csv(tmp_path / "p.csv", [main_row(1, expires=expires)])
    summary = import_csv(registry, path, SETTINGS, replace=False, progress=False, fmt=fmt)
    assert summary.problems == [] and summary.imported == 1
    record = registry.lookup(card("21234", 1))
    assert record is not None and record.expires.isoformat() == stored


def test_I18_6_date_not_in_the_format_is_reported(registry: PatronRegistry, tmp_path: Path) -> None:
    """#18.6: an expiry not in the given format names the format, never the value."""
    path = write_csv(tmp_path / "p.csv", [main_row(1, expires="2031-01-31")])
    fmt = CsvFormat(date_format="%m/%d/%Y")
    summary = import_csv(registry, path, SETTINGS, replace=False, progress=False, fmt=fmt)
    assert summary.problems == [f"{path}:2: expires does not match --date-format %m/%d/%Y"]


@pytest.mark.parametrize("pattern", ["%m/%d/%Y", "%d.%m.%y", "%Y%m%d", "%d %b %Y"])
def test_I18_6_date_format_check_accepts_full_dates(pattern: str) -> None:
    """#18.6: a pattern with a day, month and year is accepted."""
    assert check_date_format(pattern) == pattern


@pytest.mark.parametrize("pattern", ["%m/%Y", "%H:%M", "yyyy-mm-dd", "%d/%m"])
def test_I18_6_date_format_check_refuses_partial_dates(pattern: str) -> None:
    """#18.6: a pattern that cannot say which day is refused."""
    with pytest.raises(ValueError, match="day, month and year"):
        check_date_format(pattern)


@pytest.mark.parametrize(("name", "char"), [("tab", "\t"), ("semicolon", ";")])
def test_I18_6_other_delimiter_is_named(
    registry: PatronRegistry, tmp_path: Path, name: str, char: str
) -> None:
    """#18.6: a tab- or semicolon-delimited file fails with an error naming its delimiter,
    and imports with that --delimiter."""
    path = tmp_path / "p.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, delimiter=char)
        out.writerow(HEADER)
        out.writerow([main_row(1)[c] for c in HEADER])
    with pytest.raises(PatronImportError, match=rf"p\.csv:1: the file is {name}-delimited; "
                       rf"export it comma-separated or pass --delimiter {name}"):  # fmt: skip
        run_import(registry, path)
    fmt = CsvFormat(delimiter=char)
    summary = import_csv(registry, path, SETTINGS, replace=False, progress=False, fmt=fmt)
    assert summary.imported == 1, summary.problems


def test_I18_6_comma_file_with_a_delimiter_option_is_named(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """#18.6: a comma-separated file read with --delimiter tab says it is comma-delimited."""
    path = write_csv(tmp_path / "p.csv", [main_row(1)])
    with pytest.raises(PatronImportError, match=r"comma-delimited; .* pass no --delimiter"):
        import_csv(
            registry, path, SETTINGS, replace=False, progress=False, fmt=CsvFormat(delimiter="\t")
        )


def test_I18_6_latin1_and_utf16_files_say_how_to_convert(
    registry: PatronRegistry, tmp_path: Path
) -> None:
    """#18.6: a Latin-1 byte names its line and iconv; a UTF-16 file says to save as UTF-8."""
    path = write_csv(tmp_path / "p.csv", [main_row(1, pin="", last_name="")])
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.encode("utf-8") + "x,,Müller,WEST,a,2031-01-31,ok\n".encode("latin-1"))
    with pytest.raises(PatronImportError, match=r"p\.csv:3: not UTF-8 text .*iconv"):
        run_import(registry, path)
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(PatronImportError, match=r"p\.csv:1: the file is UTF-16 text"):
        run_import(registry, path)
