"""``rules check [DIR]``, ``rules import-ezproxy CONFIG``, ``rules link URL``,
``rules check-links FILE``: validate or import vendor rules, build and check links.

Contract: ``add_rules_parser(commands)`` adds ``rules`` and its subcommands;
``rules_command(args)`` runs one through ``RULES_COMMANDS``. ``rules check`` prints every
problem in every file (as ``file:line: key: message``, via the ``ConfigError`` that
``proxy.cli.main`` prints) and exits 1 if any; without a config file the library codes are not
checked (a note says so); a rule with ``pseudonym.rotate: never`` gets a warning line, and
on success it lists each rule's third-party policy and allowed hosts.
Not here: loading and validating rules (proxy/rules_loader.py), the EZproxy import and its
options (proxy/ezproxy/importer.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from proxy.cli.links import add_link_parsers, rules_check_links, rules_link
from proxy.cli.startup import settings_of
from proxy.core.rules import VendorRule
from proxy.core.ruleset import title_collisions
from proxy.ezproxy.importer import add_import_parser, run_import
from proxy.rules_loader import LoadedRules, load_rules


def add_rules_parser(commands: Any) -> None:
    """Add ``rules check`` and ``rules import-ezproxy``."""
    rules = commands.add_parser("rules", help="check or import vendor rules")
    rules_cmds = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_cmds.add_parser("check", help="validate every rule file and report every problem")
    check.add_argument("directory", nargs="?", default=None, help="rules dir (default: config)")
    add_import_parser(rules_cmds)
    add_link_parsers(rules_cmds)


def rules_check(args: argparse.Namespace) -> int:
    """``rules check [DIR]``: every problem in every file; exit 1 if any."""
    proxy_host: str | None = None
    if args.directory is not None and not Path(args.config).exists():
        codes: frozenset[str] | None = None  # no config: library codes cannot be checked
        directory = Path(args.directory)
    else:
        settings = settings_of(args)
        codes = frozenset(lib.code for lib in settings.libraries)
        directory = Path(args.directory or settings.rules_dir)
        proxy_host = settings.proxy_host
    if codes is None:
        print(f"note: {args.config} not found; library codes are not checked", file=sys.stderr)
    loaded = load_rules(directory, codes, proxy_host=proxy_host)
    for warning in never_rotated(loaded) + title_warnings(loaded):
        print(warning)
    databases = sum(len(r.all_databases()) for r in loaded.rules)
    print(f"{directory}: {len(loaded.rules)} rules OK ({databases} databases)")
    for rule in loaded.rules:
        print(third_party_line(rule))
    return 0


def never_rotated(loaded: LoadedRules) -> list[str]:
    """#18: one warning per rule whose pseudonyms are never rotated (a permanent link)."""
    return [
        f"warning: {loaded.sources[r.id]}: pseudonym.rotate: never: {r.id}'s pseudonyms stay "
        f"traceable to patrons for good (its key is never destroyed); reason given: "
        f"{r.pseudonym.never_reason}"
        for r in loaded.rules
        if r.pseudonym is not None and r.pseudonym.rotate == "never"
    ]


def title_warnings(loaded: LoadedRules) -> list[str]:
    """#17: databases whose titles slug alike (``/login/<title>`` picks the first)."""
    return [
        f"warning: {loaded.sources[loaded.rules[p.rule_index].id]}: "
        f"{'.'.join(map(str, p.key))}: {p.message}"
        for p in title_collisions(loaded.rules)
    ]


def third_party_line(rule: VendorRule) -> str:
    """One rule's third-party policy and the hosts it allows, for ``rules check`` (#18.8)."""
    if rule.third_party != "block":
        return f"  {rule.id}: third_party {rule.third_party} (the browser may call any host)"
    allowed = ", ".join(rule.third_party_allow) or "none"
    return f"  {rule.id}: third_party block; allowed third parties: {allowed}"


# ``rules`` subcommand -> handler (argparse requires one, so the lookup cannot miss)
RULES_COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "check": rules_check,
    "import-ezproxy": run_import,
    "link": rules_link,
    "check-links": rules_check_links,
}


def rules_command(args: argparse.Namespace) -> int:
    """Run the chosen ``rules`` subcommand."""
    return RULES_COMMANDS[args.rules_command](args)
