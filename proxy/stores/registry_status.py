"""The last patron import's summary, for the admin console's registry status (issue #20).

Contract: ``record_import(data_dir, summary, now)`` writes ``data_dir/patrons-import.json``
(mode 0600, replaced atomically) with the time and the counts of the import (imported,
updated, unchanged, rejected, removed, committed) — numbers only, never a row, a card or a
problem line; ``last_import(data_dir)`` reads it back (None when there was no import or the
file is unreadable).
Not here: the import itself (stores/patron_import.py), rows per library (stores/patrons.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from proxy.stores.patron_import import ImportSummary

STATUS_FILE: Final = "patrons-import.json"


@dataclass(frozen=True, slots=True)
class LastImport:
    """When the last import ran and what it counted."""

    at: datetime
    imported: int
    updated: int
    unchanged: int
    rejected: int
    removed: int
    committed: bool


def record_import(data_dir: Path, summary: ImportSummary, now: datetime) -> None:
    """Remember this import's counts."""
    body = {
        "at": now.isoformat(),
        "imported": summary.imported,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "rejected": summary.rejected,
        "removed": summary.removed,
        "committed": summary.committed,
    }
    path = data_dir / STATUS_FILE
    tmp = path.with_name(f".{STATUS_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(body, out)
    os.replace(tmp, path)


def last_import(data_dir: Path) -> LastImport | None:
    """The last import's counts, if any."""
    try:
        raw = json.loads((data_dir / STATUS_FILE).read_text("utf-8"))
        return LastImport(
            at=datetime.fromisoformat(raw["at"]),
            **{k: int(raw[k]) for k in ("imported", "updated", "unchanged", "rejected", "removed")},
            committed=bool(raw["committed"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
