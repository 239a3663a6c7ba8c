"""The link builder (#17): for a vendor URL, the proxied starting-point link, the rule and
database that cover it, and which member libraries license it; for a URL no rule covers,
the domain to add.

Contract: ``link_report(url, index, hostmap, public_url=, libraries=, is_public_suffix=)``
returns a ``LinkReport`` and never raises for bad input (an unusable URL is "not covered"
with the reason). ``urls_in(text)`` reads a link list exported from a link resolver or
LibGuides: one URL per line, or CSV whose cells hold URLs (the first http(s) cell of each
row). Pure.
Not here: printing (cli/rules.py), the admin page (web/admin/links.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from proxy.core.hostmap import HostMap
from proxy.core.ruleset import RuleIndex
from proxy.core.targets import NotOurDatabase, resolve_target


@dataclass(frozen=True, slots=True)
class LinkReport:
    """What the proxy makes of one vendor URL."""

    url: str
    covered: bool
    link: str = ""  # the proxied starting point, /login?url=…
    rule_id: str = ""
    database_id: str = ""  # the database whose starting URL this is, or "" (the platform)
    title: str = ""
    licensed: dict[str, bool] = field(default_factory=dict)  # member library code → licensed
    why: str = ""  # why not covered
    suggestion: str = ""  # the domain to add to a rule when not covered


def link_report(
    url: str,
    index: RuleIndex,
    hostmap: HostMap,
    *,
    public_url: str,
    libraries: Sequence[str],
    is_public_suffix: Callable[[str], bool],
) -> LinkReport:
    """Cover, link and licences for ``url``; or why not and the domain to add."""
    url = url.strip()
    try:
        target = resolve_target(url, index, hostmap)
    except (NotOurDatabase, ValueError) as exc:
        host = (_host(url) or "").lower()
        why = str(exc) or "not a usable URL"
        suggestion = registrable_domain(host, is_public_suffix) if host else ""
        return LinkReport(url, False, why=why, suggestion=suggestion)
    rule = target.rule
    database = index.database_for_url(rule, target.origin.url_prefix() + target.path_and_query)
    licence = database or rule
    return LinkReport(
        url,
        True,
        link=f"{public_url}/login?url={url}",
        rule_id=rule.id,
        database_id=database.id if database else "",
        title=database.title if database else rule.title,
        licensed={code: licence.licensed_to(code) for code in libraries},
    )


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def registrable_domain(host: str, is_public_suffix: Callable[[str], bool]) -> str:
    """``www.newvendor.co.uk`` → ``newvendor.co.uk``: one label above the public suffix."""
    labels = host.split(".")
    for cut in range(len(labels) - 1, -1, -1):
        suffix = ".".join(labels[cut:])
        if not is_public_suffix(suffix) and cut < len(labels) - 1:
            return suffix
    return host


def urls_in(text: str) -> list[str]:
    """URLs from a link list: one per line, or CSV (the first http(s) cell of each row)."""
    out = []
    for row in csv.reader(io.StringIO(text)):
        cell = next(
            (c.strip() for c in row if c.strip().lower().startswith(("http://", "https://"))), ""
        )
        if cell:
            out.append(cell)
    return out
