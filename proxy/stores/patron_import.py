"""Import the ILS's patron export (CSV) into the registry, all or nothing.

Contract: ``import_csv(registry, path, settings, replace=..., progress=...)`` reads a CSV
with a header row naming ``barcode, library, ptype, expires, status`` and ``pin`` and/or
``last_name`` (any order, any case, extra columns ignored). Each row's secret column is the
one its library's ``login_with`` names. A header without the required columns raises
``PatronImportError`` before anything is written. Every data row is validated (library
defined in proxy.yaml; barcode normalized and checked against that library's prefix, length
and check digit, and not claimed by a library with a longer prefix; secret not empty;
ptype not empty; ``expires`` an ISO date, or a date in ``CsvFormat.date_format`` when one
is given; ``status`` one of ok/blocked/lost/fines; the card not already on an earlier line);
a bad row is skipped and reported as ``FILE:LINE: reason``. Reasons never quote a field's
value: a shifted column could put a PIN or name anywhere. A card that appears twice keeps
its first row; the later one is rejected as ``duplicate card (first on line N)``.

Format (docs/patron-import.md): comma-delimited unless ``CsvFormat.delimiter`` says
otherwise; a header that holds a single field containing a tab or semicolon (or a comma,
when another delimiter was asked for) raises ``PatronImportError`` naming the delimiter
found. UTF-8 with or without a BOM; a UTF-16 file or a byte that is not UTF-8 (Latin-1,
Windows-1252) raises ``PatronImportError`` naming the line and how to convert it.

The file is streamed (csv.reader over lines decoded one at a time, so a byte that is not
UTF-8 is reported with its line) in batches of ``BATCH_SIZE`` into
``registry.bulk_write``: one transaction, so an error or crash midway (unreadable bytes,
a kill) leaves the previous registry as it was. When no row is valid nothing is committed —
in particular ``replace`` with an empty or all-bad export never empties the registry.
Memory does not grow with the file: at most ``MAX_PROBLEMS`` problem lines are kept (the
rest are only counted) and seen cards live in SQLite — the staged rows in the registry's
stage, and for the duplicate check the first 64 bits of each card hash with its line in a
private temporary database (``_SeenCards``: a temp file SQLite deletes on close, its page
cache capped at ``SEEN_CACHE_KIB``; 64 bits make a false duplicate among a million cards
about a 1 in 30 million chance). ``ImportSummary.exit_code`` is 0 when
every row was imported, 1 when any row was rejected or nothing was committed.

``replace`` guards (R13: a truncated export once deleted 395,654 of 400,000 patrons). A
replace commits nothing at all when any row was rejected — this includes a file that *ends
mid-line*, defined as: its last byte is not a line break and its last data row was rejected
(short or invalid) — unless ``allow_partial``. And it commits nothing when it would remove
more existing patrons than ``max_remove`` allows (``RemoveLimit``: a count or a percentage
of the registry; 5% by default), ``allow_partial`` or not. ``ImportSummary.refused`` says why.
Not here: hashing and SQL (stores/patrons.py), card-number rules (core/cards.py), argument
parsing and printing (proxy/cli/patrons.py).
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple, cast

from proxy.core.cards import (
    barcode_problem,
    library_for_barcode,
    normalize_barcode,
    normalize_secret,
)
from proxy.core.settings import Library, Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.patrons import STATUSES, PatronRegistry, PatronRow, PatronStatus

REQUIRED_COLUMNS: Final = ("barcode", "library", "ptype", "expires", "status")
SECRET_COLUMNS: Final = ("pin", "last_name")  # at least one; login_with picks per row
BATCH_SIZE: Final = 5000
MAX_PROBLEMS: Final = 1000
STATUS_LIST: Final = ", ".join(sorted(STATUSES))
REMOVE_LIMIT: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")  # "500" or "5%"
# Delimiters an ILS or spreadsheet export uses; a header split by another one is named.
DELIMITERS: Final[dict[str, str]] = {"comma": ",", "tab": "\t", "semicolon": ";"}
# Excel's "Unicode text" is UTF-16 with a byte-order mark (and tab-delimited).
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
SEEN_CACHE_KIB: Final = 16 * 1024  # the duplicate check's page cache: ~6 s per 1M rows, flat
SEEN_SCHEMA: Final = "CREATE TABLE seen (card INTEGER PRIMARY KEY, line INTEGER NOT NULL)"
SEEN_ADD: Final = "INSERT INTO seen VALUES (?, ?) ON CONFLICT DO NOTHING"
SEEN_LINE: Final = "SELECT line FROM seen WHERE card = ?"

log = get_logger("patrons")


class PatronImportError(ClamshellError):
    """The file cannot be imported at all (unreadable, bad header); nothing was changed."""


@dataclass(frozen=True, slots=True)
class RemoveLimit:
    """How many existing patrons a ``replace`` may remove: a count, or a percentage."""

    amount: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> RemoveLimit:
        """``"500"`` (patrons) or ``"5%"`` (of the registry); ValueError otherwise."""
        match = REMOVE_LIMIT.match(text)
        if match is None or (match[2] and float(match[1]) > 100):
            raise ValueError(f"expected a count like 500 or a percentage like 5%, got {text!r}")
        if not match[2] and "." in match[1]:
            raise ValueError(f"a count of patrons is a whole number, got {text!r}")
        return cls(float(match[1]), bool(match[2]))

    def allows(self, removing: int, existing: int) -> bool:
        """True when removing ``removing`` of ``existing`` patrons stays within the limit."""
        if self.percent:
            return removing * 100 <= self.amount * existing
        return removing <= self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{int(self.amount)}"


@dataclass(frozen=True, slots=True)
class CsvFormat:
    """How the file is written: its delimiter and the expiry column's date format."""

    delimiter: str = ","
    date_format: str | None = None  # a strptime pattern such as %m/%d/%Y; None: ISO dates

    def parse_date(self, value: str) -> date | None:
        """The expiry date, or None when it is not in this format."""
        text = value.strip()
        try:
            if self.date_format is None:
                return date.fromisoformat(text)
            return datetime.strptime(text, self.date_format).date()
        except ValueError:
            return None

    @property
    def date_problem(self) -> str:
        """The reason given for an expiry that does not parse (never quoting it)."""
        if self.date_format is None:
            return (
                "expires is not an ISO date (YYYY-MM-DD); "
                "use --date-format for other formats, e.g. --date-format %m/%d/%Y"
            )
        return f"expires does not match --date-format {self.date_format}"


def check_date_format(pattern: str) -> str:
    """``pattern`` if it can express a full date (day, month, year); ValueError otherwise."""
    sample = date(2031, 12, 25)
    try:
        parsed = datetime.strptime(sample.strftime(pattern), pattern).date()
    except ValueError:
        parsed = None
    if parsed != sample:
        raise ValueError(
            f"{pattern!r} is not a date format with a day, month and year (e.g. %m/%d/%Y)"
        )
    return pattern


# A routine export loses a few cards (expired, moved away); a cut or filtered file loses most.
DEFAULT_MAX_REMOVE: Final = RemoveLimit(5.0, percent=True)


@dataclass(slots=True)
class ImportSummary:
    """What an import did. ``problems`` holds the first MAX_PROBLEMS ``FILE:LINE: reason``."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)
    committed: bool = False
    ends_mid_line: int | None = None  # the line of a cut-off last row (see module docstring)
    refused: str | None = None  # why a replace committed nothing
    last_rejected: bool = False  # the last data row read was rejected

    @property
    def unlisted_problems(self) -> int:
        """Rejected rows beyond the ones kept in ``problems``."""
        return self.rejected - len(self.problems)

    @property
    def exit_code(self) -> int:
        """0 when every row was imported; 1 when a row was rejected or nothing was committed."""
        return 0 if self.committed and not self.rejected else 1

    def reject(self, problem: str) -> None:
        """Count a bad row; keep its message while under the cap."""
        self.rejected += 1
        self.last_rejected = True
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each needed column is in a row (``None``: the file has no such column)."""

    barcode: int
    library: int
    ptype: int
    expires: int
    status: int
    pin: int | None
    last_name: int | None

    width: int  # fields a row needs so that every present column can be read


class _Valid(NamedTuple):
    barcode: str
    secret: str
    library: Library
    ptype: str
    expires: date
    status: PatronStatus


def import_csv(
    registry: PatronRegistry,
    path: Path,
    settings: Settings,
    *,
    replace: bool,
    progress: bool,
    allow_partial: bool = False,
    max_remove: RemoveLimit = DEFAULT_MAX_REMOVE,
    fmt: CsvFormat = CsvFormat(),
) -> ImportSummary:
    """Import ``path`` (UTF-8, a BOM is fine); see the module docstring."""
    try:
        raw = Path(path).open("rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise PatronImportError(f"{path}: cannot read: {exc.strerror}") from None
    with raw:
        bar = _ByteProgress(raw) if progress and sys.stdout.isatty() else None
        try:
            return import_lines(
                registry,
                _utf8_lines(raw, str(path)),
                source=str(path),
                settings=settings,
                replace=replace,
                on_batch=bar,
                allow_partial=allow_partial,
                max_remove=max_remove,
                fmt=fmt,
            )
        finally:
            if bar is not None:
                bar.close()


def _utf8_lines(raw: BinaryIO, source: str) -> Iterator[str]:
    """Decode line by line, so an error names the exact line (a leading BOM is dropped)."""
    for number, line in enumerate(raw, start=1):
        if number == 1 and line.startswith(UTF16_BOMS):
            raise PatronImportError(
                f'{source}:1: the file is UTF-16 text (Excel\'s "Unicode text"); save it as '
                '"CSV UTF-8" instead; nothing was changed'
            )
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise PatronImportError(
                f"{source}:{number}: not UTF-8 text (Latin-1 or Windows-1252? convert it, e.g. "
                "iconv -f WINDOWS-1252 -t UTF-8); nothing was changed"
            ) from None


def import_lines(
    registry: PatronRegistry,
    lines: Iterable[str],
    *,
    source: str,
    settings: Settings,
    replace: bool,
    on_batch: Callable[[], object] | None = None,
    allow_partial: bool = False,
    max_remove: RemoveLimit = DEFAULT_MAX_REMOVE,
    fmt: CsvFormat = CsvFormat(),
) -> ImportSummary:
    """Import CSV text lines (``import_csv`` without the file); ``source`` names it."""
    tail = _Tail(lines)
    rows = _Rows(tail, fmt.delimiter)
    summary = ImportSummary()
    try:
        columns = _read_header(rows, source, fmt.delimiter)
        check = RowChecker(columns, settings.libraries, fmt)
        with registry.bulk_write(replace=replace) as writer, _SeenCards() as seen:
            for batch in _batches(rows, check, source, registry, seen, summary):
                writer.write(batch)
                if on_batch is not None:
                    on_batch()
            if tail.unterminated and summary.last_rejected:
                summary.ends_mid_line = rows.line
            if replace and writer.written:
                summary.refused = _replace_refusal(
                    summary, writer.unseen(), registry.count(), allow_partial, max_remove
                )
            if writer.written == 0 or summary.refused:
                writer.discard()
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        raise PatronImportError(
            f"{source}:{rows.line + 1}: cannot read ({exc}); nothing was changed"
        ) from None
    if writer.committed:
        summary.committed = True
        summary.imported, summary.updated = writer.imported, writer.updated
        summary.unchanged, summary.removed = writer.unchanged, writer.removed
    log.info("patrons_imported", **_counts(summary), replace=replace)
    if summary.refused:
        log.warning("patrons_replace_refused", rejected=summary.rejected)
    return summary


def _replace_refusal(
    summary: ImportSummary,
    removing: int,
    existing: int,
    allow_partial: bool,
    max_remove: RemoveLimit,
) -> str | None:
    """Why a replace must commit nothing, or None (see the module docstring)."""
    if summary.rejected and not allow_partial:
        cut = (
            f"; the file ends mid-line at line {summary.ends_mid_line} (a truncated export?)"
            if summary.ends_mid_line
            else ""
        )
        rows = "1 row was" if summary.rejected == 1 else f"{summary.rejected} rows were"
        return (
            f"--replace refused: {rows} rejected{cut}; nothing was "
            "changed (fix the file, or pass --allow-partial to remove cards missing from it "
            "anyway)"
        )
    if not max_remove.allows(removing, existing):
        return (
            f"--replace refused: it would remove {removing} of {existing} patrons, more than "
            f"--max-remove {max_remove}; nothing was changed (check that the export is "
            "complete, or pass a larger --max-remove)"
        )
    return None


class _Tail:
    """Lines passed through; ``unterminated`` tells whether the last one lacked a line break."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.unterminated = False

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.unterminated = not line.endswith(("\n", "\r"))
            yield line


class _Rows:
    """CSV rows; ``line`` is the 1-based line where the last row read ended."""

    def __init__(self, lines: Iterable[str], delimiter: str = ",") -> None:
        self._reader = csv.reader(lines, delimiter=delimiter)
        self.line = 0

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        row = next(self._reader)
        self.line = self._reader.line_num
        return row


def _read_header(rows: _Rows, source: str, delimiter: str = ",") -> Columns:
    """Column positions from the header row, or PatronImportError naming what is missing."""
    header = next(rows, None)
    if header is None:
        raise PatronImportError(f"{source}: the file is empty (no header row)")
    if len(header) == 1:
        _check_delimiter(header[0], source, delimiter)
    names = [name.strip().lower() for name in header]
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        raise PatronImportError(f"{source}:1: column(s) appear twice: {', '.join(dupes)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if not any(c in names for c in SECRET_COLUMNS):
        missing.append("pin or last_name")
    if missing:
        raise PatronImportError(
            f"{source}:1: missing required column(s): {', '.join(missing)}; nothing was changed"
        )
    where = {name: i for i, name in enumerate(names)}
    return Columns(
        barcode=where["barcode"],
        library=where["library"],
        ptype=where["ptype"],
        expires=where["expires"],
        status=where["status"],
        pin=where.get("pin"),
        last_name=where.get("last_name"),
        width=1 + max(where[c] for c in (*REQUIRED_COLUMNS, *SECRET_COLUMNS) if c in where),
    )


def _check_delimiter(header: str, source: str, delimiter: str) -> None:
    """PatronImportError naming the delimiter when the header is split by another one."""
    for name, found in DELIMITERS.items():
        if found != delimiter and found in header:
            hint = "--delimiter " + name if name != "comma" else "no --delimiter"
            raise PatronImportError(
                f"{source}:1: the file is {name}-delimited; export it comma-separated "
                f"or pass {hint}; nothing was changed"
            )


def _batches(
    rows: _Rows,
    check: RowChecker,
    source: str,
    registry: PatronRegistry,
    seen: _SeenCards,
    summary: ImportSummary,
) -> Iterator[list[PatronRow]]:
    """Valid first rows of each card, hashed, in lists of BATCH_SIZE; the rest go to
    ``summary`` in line order."""
    batch = _Batch()
    for row in rows:
        if len(row) < check.width and not "".join(row).strip():
            continue  # blank line
        checked = check(row)
        if isinstance(checked, str):
            batch.bad.append((rows.line, checked))
        else:
            batch.good.append((rows.line, _hashed(registry, checked)))
        batch.last_line = rows.line
        if len(batch.good) >= BATCH_SIZE:
            yield batch.settle(seen, source, summary)
            batch = _Batch()
    if batch.last_line:
        yield batch.settle(seen, source, summary)


def _hashed(registry: PatronRegistry, valid: _Valid) -> PatronRow:
    """The row to store: the barcode and secret are hashed here and go no further."""
    barcode, secret, lib, ptype, expires, status = valid
    return registry.hashed_row(
        barcode, secret, lib.login_with, library=lib.code, ptype=ptype, expires=expires,
        status=status,
    )  # fmt: skip


@dataclass(slots=True)
class _Batch:
    """Rows read since the last batch was written, with their line numbers."""

    good: list[tuple[int, PatronRow]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    last_line: int = 0  # the last data row's line

    def settle(self, seen: _SeenCards, source: str, summary: ImportSummary) -> list[PatronRow]:
        """Report the bad and duplicate rows in line order; the rows to write."""
        duplicates = seen.add(self.good)
        bad = sorted(self.bad + [(line, f"duplicate card (first on line {first})")
                                 for line, first in duplicates.items()])  # fmt: skip
        for line, reason in bad:
            summary.reject(f"{source}:{line}: {reason}")
        summary.last_rejected = bool(bad) and bad[-1][0] == self.last_line
        return [row for line, row in self.good if line not in duplicates]


class _SeenCards:
    """Cards already read (64 bits of the card hash -> first line), in a temp SQLite file."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect("", isolation_level=None)  # "": a private temp file
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            f"cache_size = -{SEEN_CACHE_KIB}",
        ):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.execute(SEEN_SCHEMA)
        self._conn.execute("BEGIN")

    def add(self, rows: Sequence[tuple[int, PatronRow]]) -> dict[int, int]:
        """Remember these cards; the duplicates among them as {line: first line}."""
        keyed = sorted((int(row.card_hash[:16], 16) - 2**63, line) for line, row in rows)
        if self._conn.executemany(SEEN_ADD, keyed).rowcount == len(keyed):
            return {}  # every card was new (the usual case): no look-ups
        found = {line: self._conn.execute(SEEN_LINE, (key,)).fetchone()[0] for key, line in keyed}
        return {line: first for line, first in found.items() if first != line}

    def __enter__(self) -> _SeenCards:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._conn.close()  # SQLite deletes the temp file


class RowChecker:
    """Checks one data row against the header's columns and the configured libraries."""

    def __init__(
        self,
        columns: Columns,
        libraries: Sequence[Library],
        fmt: CsvFormat = CsvFormat(),
    ) -> None:
        self._columns = columns
        self._fmt = fmt
        self.width = columns.width
        self._libraries = {lib.code: lib for lib in libraries}
        self._all = tuple(libraries)
        self._known = ", ".join(self._libraries) or "(none configured)"
        # Libraries whose prefix starts another library's: their cards may belong elsewhere.
        self._shadowed = frozenset(
            a.code
            for a in libraries
            for b in libraries
            if a is not b and b.prefix.startswith(a.prefix)
        )

    def __call__(self, row: list[str]) -> _Valid | str:
        """The row's values, or the first reason it is rejected (never quoting a value)."""
        cols = self._columns
        if len(row) < cols.width:
            return f"row has {len(row)} fields; the header needs {cols.width}"
        library = self._libraries.get(row[cols.library].strip())
        if library is None:
            return f"library is not one of {self._known}"
        barcode = normalize_barcode(row[cols.barcode])
        problem = barcode_problem(barcode, library) or self._claimed(barcode, library)
        if problem is not None:
            return problem
        index = cols.pin if library.login_with == "pin" else cols.last_name
        if index is None:
            return f"{library.code} logs in with {library.login_with}; the file has no such column"
        if not normalize_secret(row[index], library.login_with):
            return f"{library.login_with} is empty"
        ptype, expires = row[cols.ptype].strip(), self._fmt.parse_date(row[cols.expires])
        status = row[cols.status].strip().lower()
        if not ptype:
            return "ptype is empty"
        if expires is None:
            return self._fmt.date_problem
        if status not in STATUSES:
            return f"status is not one of {STATUS_LIST}"
        return _Valid(barcode, row[index], library, ptype, expires, cast(PatronStatus, status))

    def _claimed(self, barcode: str, library: Library) -> str | None:
        """A reason if a library with a longer prefix owns this barcode instead."""
        if library.code not in self._shadowed:
            return None
        owner = library_for_barcode(barcode, self._all)
        if owner is None or owner.code == library.code:
            return None
        return f"barcode belongs to {owner.code} (longer prefix), not {library.code}"


def _counts(summary: ImportSummary) -> dict[str, Any]:
    return {
        "imported": summary.imported,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "rejected": summary.rejected,
        "removed": summary.removed,
        "committed": summary.committed,
    }


class _ByteProgress:
    """A progress bar over the bytes of the file read so far (call it after each batch)."""

    def __init__(self, raw: BinaryIO) -> None:
        from tqdm import tqdm  # only when a person is watching

        self._raw = raw
        self._bar = tqdm(
            total=os.fstat(raw.fileno()).st_size,
            unit="B",
            unit_scale=True,
            desc="importing",
            file=sys.stdout,
            leave=False,
        )

    def __call__(self) -> None:
        self._bar.update(self._raw.tell() - self._bar.n)
        if self._bar.total and self._bar.n >= self._bar.total:
            self._bar.set_description("saving")  # the merge and commit come after the last read

    def close(self) -> None:
        self._bar.close()
