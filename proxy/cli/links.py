"""``rules link URL`` and ``rules check-links FILE``: the link builder for librarians (#17).

Contract: ``add_link_parsers(rules_cmds)`` adds both subcommands; ``rules_link`` prints, for
one vendor URL, the proxied starting-point link, the rule and database covering it and each
member library's licence, or that no rule covers it and the domain to add (exit 1);
``rules_check_links`` does the same for a link list (one URL per line, or CSV), one line
per URL and a count, exit 1 when any is not covered, 2 when the file cannot be read.
Rules load as for ``rules check`` (a broken rule set is reported, exit 1).
Not here: the report itself (core/links.py), the admin page (web/admin/links.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from proxy.cli.startup import settings_of
from proxy.core.hostmap import HostMap
from proxy.core.links import LinkReport, link_report, urls_in
from proxy.core.settings import Settings
from proxy.rules_loader import is_public_suffix, load_rules

MAX_LIST_BYTES: Final = 20 * 2**20


def add_link_parsers(rules_cmds: Any) -> None:
    """Add ``rules link`` and ``rules check-links``."""
    link = rules_cmds.add_parser(
        "link", help="the proxied link for a vendor URL, and who licenses it"
    )
    link.add_argument("url", metavar="URL")
    check = rules_cmds.add_parser(
        "check-links", help="check a link list (one URL per line, or CSV) against the rules"
    )
    check.add_argument("file", metavar="FILE")


def _reporter(args: argparse.Namespace) -> tuple[Settings, Any]:
    settings = settings_of(args) if Path(args.config).exists() else Settings()
    codes = frozenset(lib.code for lib in settings.libraries) if settings.libraries else None
    loaded = load_rules(Path(settings.rules_dir), codes, proxy_host=settings.proxy_host)
    hostmap = HostMap(settings.proxy_host, settings.proxy_port)
    libraries = [lib.code for lib in settings.libraries]

    def report(url: str) -> LinkReport:
        return link_report(
            url,
            loaded.index,
            hostmap,
            public_url=settings.public_url,
            libraries=libraries,
            is_public_suffix=is_public_suffix,
        )

    return settings, report


def describe(r: LinkReport) -> list[str]:
    """The lines printed for one URL."""
    if not r.covered:
        add = f"; add the domain {r.suggestion} to a rule" if r.suggestion else ""
        return [f"NOT COVERED  {r.url}  ({r.why}{add})"]
    database = f" / database {r.database_id}" if r.database_id else " (the platform)"
    lines = [
        f"covered      {r.url}",
        f"  rule {r.rule_id}{database}: {r.title}",
        f"  link {r.link}",
    ]
    if r.licensed:
        shown = ", ".join(f"{code} {'yes' if ok else 'no'}" for code, ok in r.licensed.items())
        lines.append(f"  licensed: {shown}")
    return lines


def rules_link(args: argparse.Namespace) -> int:
    """``rules link URL``."""
    _, report = _reporter(args)
    result = report(args.url)
    print("\n".join(describe(result)))
    return 0 if result.covered else 1


def rules_check_links(args: argparse.Namespace) -> int:
    """``rules check-links FILE``."""
    try:
        with Path(args.file).open("rb") as handle:  # bounded: a link list, not a data dump
            text = handle.read(MAX_LIST_BYTES).decode("utf-8", "replace")
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _, report = _reporter(args)
    results = [report(url) for url in urls_in(text)]
    for result in results:
        print("\n".join(describe(result)))
    missing = sum(1 for r in results if not r.covered)
    print(f"\n{len(results)} links: {len(results) - missing} covered, {missing} not covered")
    return 1 if missing else 0
