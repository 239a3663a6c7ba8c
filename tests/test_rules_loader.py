"""Loading rule directories: every problem with file:line:key, all or nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.cli.rules import rules_check
from proxy.errors import ConfigError
from proxy.rulebook import Rulebook
from proxy.rules_loader import load_rules

REPO = Path(__file__).resolve().parents[1]
GOOD = """id: jstor
title: JSTOR
url: https://www.jstor.org/
hosts:
  - www.jstor.org
domains: [jstor.org]
libraries: [MAIN]
"""


def write(directory: Path, name: str, text: str) -> Path:
    """Write one rule file."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(directory: Path, codes: frozenset[str] | None = frozenset({"MAIN"})) -> list[str]:
    """The rendered problems of loading ``directory``."""
    with pytest.raises(ConfigError) as info:
        load_rules(directory, codes)
    return [str(p) for p in info.value.problems]


def test_shipped_rules_load() -> None:
    """The rules in vendor_rules/ pass every check with the example proxy.yaml's libraries."""
    loaded = load_rules(REPO / "vendor_rules", frozenset({"MAIN", "WEST"}))
    assert {r.id for r in loaded.rules} >= {"acme", "bigdb"}


def test_problem_names_file_line_and_key(tmp_path: Path) -> None:
    """A bad host is reported as path:line: hosts[2]: reason."""
    path = write(
        tmp_path,
        "jstor.yaml",
        GOOD.replace(
            "  - www.jstor.org\n", "  - www.jstor.org\n  - cdn.jstor.org\n  - www..jstor.org\n"
        ),
    )
    assert problems_of(tmp_path) == [
        f"{path}:7: hosts[2]: not a hostname: 'www..jstor.org' (empty label)"
    ]


def test_every_problem_in_every_file_is_listed(tmp_path: Path) -> None:
    """Several broken files give one line per problem, each naming its file and key."""
    write(tmp_path, "a.yaml", GOOD + "cookeis: pass\nthird_party: maybe\n")
    write(tmp_path, "b.yaml", GOOD.replace("jstor", "muse").replace("[MAIN]", "[NOPE]"))
    write(tmp_path, "c.yaml", "id: x\n  title: [\n")
    write(
        tmp_path,
        "d.yaml",
        GOOD.replace("id: jstor", "id: other").replace("domains: [jstor.org]", "domains: [co.uk]"),
    )
    found = problems_of(tmp_path)
    expected = [
        ("a.yaml:8: cookeis", "unknown key"),
        ("a.yaml:9: third_party", "maybe"),
        ("b.yaml:7: libraries", "'NOPE' is not defined"),
        ("c.yaml:2", "YAML syntax error"),
        ("d.yaml:6: domains[0]", "public suffix"),
    ]
    for where, what in expected:
        assert any(where in line and what in line for line in found), (where, found)


def test_same_host_claimed_twice_and_duplicate_id(tmp_path: Path) -> None:
    """Two files claiming one host, or one id, are both reported."""
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD.replace("domains: [jstor.org]\n", ""))
    found = problems_of(tmp_path)
    assert any("b.yaml:1: id: duplicate id 'jstor'" in line for line in found)
    assert any("b.yaml:5: hosts[0]" in line and "already claimed" in line for line in found)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    """A key written twice in one mapping is an error, not last-one-wins."""
    write(tmp_path, "a.yaml", GOOD + "title: Again\n")
    assert any("a.yaml:8: title: duplicate key" in line for line in problems_of(tmp_path))


def test_without_codes_libraries_are_not_checked(tmp_path: Path) -> None:
    """When proxy.yaml is absent the library codes cannot be checked, and are not."""
    write(tmp_path, "a.yaml", GOOD.replace("[MAIN]", "[ANY]"))
    assert len(load_rules(tmp_path, None).rules) == 1


def test_reload_with_broken_set_keeps_old_rules(tmp_path: Path) -> None:
    """A broken reload keeps the previous rules and records why."""
    write(tmp_path, "a.yaml", GOOD)
    book = Rulebook.open(tmp_path, frozenset({"MAIN"}))
    write(tmp_path, "b.yaml", "id: [\n")
    result = book.reload()
    assert not result.ok
    assert result.problems and "b.yaml" in result.problems[0]
    assert [r.id for r in book.current.rules] == ["jstor"]
    (tmp_path / "b.yaml").write_text(GOOD.replace("jstor", "muse"), encoding="utf-8")
    assert book.reload().ok
    assert {r.id for r in book.current.rules} == {"jstor", "muse"}


ALIAS_BOMB = """id: bomb
title: Bomb
url: https://www.bomb.org/
hosts: [www.bomb.org]
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_R12_alias_bomb_is_refused_fast_and_old_rules_kept(tmp_path: Path) -> None:
    """R12: a YAML alias bomb is refused at its first anchor, quickly; a reload keeps the rules."""
    write(tmp_path, "a.yaml", GOOD)
    book = Rulebook.open(tmp_path, frozenset({"MAIN"}))
    path = write(tmp_path, "bomb.yaml", ALIAS_BOMB)
    started = time.monotonic()
    result = book.reload()
    assert time.monotonic() - started < 2.0
    assert not result.ok
    assert result.problems == (f"{path}:5: YAML anchors and aliases are not allowed",)
    assert [r.id for r in book.current.rules] == ["jstor"]


def test_R12_a_single_alias_is_refused_with_its_line(tmp_path: Path) -> None:
    """R12: even one harmless-looking alias is refused, naming the alias's file and line."""
    path = write(tmp_path, "a.yaml", GOOD + "never_proxy: [*x]\n")
    assert problems_of(tmp_path) == [f"{path}:8: YAML anchors and aliases are not allowed"]


def test_R12_oversized_rule_file_is_refused_by_name(tmp_path: Path) -> None:
    """R12: a rule file over 1 MiB is refused with a message naming the file."""
    write(tmp_path, "a.yaml", GOOD)
    big = write(tmp_path, "big.yaml", GOOD.replace("jstor", "big") + "#" * (1024 * 1024) + "\n")
    assert problems_of(tmp_path) == [f"{big}: file is larger than 1048576 bytes; refused"]


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("headers:\n  set:\n    Content-Length: '0'\n", 9, "headers.set: 'Content-Length' may"),
        ("pseudonym:\n  header: Cookie\n", 9, "pseudonym.header: 'Cookie' cannot carry"),
        ("never_proxy: []\nheaders: {}\n", None, None),
    ],
)
def test_R17_header_problems_name_file_and_line(
    tmp_path: Path, extra: str, line: int | None, message: str | None
) -> None:
    """R17: headers a rule may not set or use for the pseudonym are refused at file:line."""
    path = write(tmp_path, "a.yaml", GOOD + extra)
    if message is None:
        assert len(load_rules(tmp_path, frozenset({"MAIN"})).rules) == 1
        return
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}:{line}: {message}")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("www.jstor.org\n", "www.jstor.org\n  - www.jstor.org:22\n", 6, "hosts[1]: port 22"),
        ("[jstor.org]", "[jstor.org, lib.org]", 6, "domains[1]: 'lib.org' covers the proxy"),
        ("www.jstor.org\n", "www.jstor.org\n  - ezp.lib.org\n", 6, "hosts[1]: 'ezp.lib.org' is"),
        ("[jstor.org]", "[jstor.org, amazonaws.com]", 6, "domains[1]: 'amazonaws.com' is a sh"),
        ("[jstor.org]", "[jstor.org, nip.io]", 6, "domains[1]: 'nip.io' is under 'nip.io'"),
        ("www.jstor.org\n", "www.jstor.org\n  - 127.0.0.1.nip.io\n", 6, "hosts[1]: '127.0.0.1"),
    ],
)
def test_R17_host_problems_name_file_and_line(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    """R17: ports, the proxy's host, shared and wildcard-DNS domains are refused at file:line."""
    path = write(tmp_path, "a.yaml", GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path, frozenset({"MAIN"}), proxy_host="ezp.lib.org")
    assert [str(p)[: len(f"{path}:{line}: {message}")] for p in info.value.problems] == [
        f"{path}:{line}: {message}"
    ]


def test_R17_rulebook_reload_checks_the_proxy_host(tmp_path: Path) -> None:
    """R17: a reload refuses a rule covering the proxy host and keeps the old rules."""
    write(tmp_path, "a.yaml", GOOD)
    book = Rulebook.open(tmp_path, frozenset({"MAIN"}), "ezp.lib.org")
    path = write(tmp_path, "b.yaml", GOOD.replace("jstor", "lib"))
    result = book.reload()
    assert not result.ok and [r.id for r in book.current.rules] == ["jstor"]
    assert result.problems == (
        f"{path}:6: domains[0]: 'lib.org' covers the proxy's own host 'ezp.lib.org': "
        "the proxy would relay to itself",
    )


def test_R17_rules_check_command_checks_the_proxy_host(tmp_path: Path) -> None:
    """R17: `rules check` with proxy.yaml refuses a rule covering the proxy's own host."""
    (tmp_path / "b.yaml").write_text(
        "id: b\ntitle: B\nurl: https://www.b.org/\nhosts: [www.b.org, x.proxy.localhost]\n"
    )
    config = str(REPO / "proxy.yaml")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_proxy.py"),
            "--config",
            config,
            "rules",
            "check",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{tmp_path}/b.yaml:4: hosts[1]: 'x.proxy.localhost' is the proxy's own host "
        "'proxy.localhost' or under it: the proxy would relay to itself"
    ) in result.stderr.splitlines()


def test_rotate_never_without_reason_names_file_and_line(tmp_path: Path) -> None:
    """#18: pseudonym.rotate: never without never_reason is refused at the rotate line."""
    path = write(tmp_path, "a.yaml", GOOD + "pseudonym:\n  header: X-P\n  rotate: never\n")
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}:10: pseudonym.rotate: rotate: never keeps")
    assert "never_reason" in problem


def test_rules_check_warns_about_rotate_never(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """#18: `rules check` passes a never-rotated rule with a reason but prints a warning line."""
    reason = "the vendor's saved searches need a stable id"
    path = write(
        tmp_path, "a.yaml", GOOD + f"pseudonym:\n  rotate: never\n  never_reason: {reason}\n"
    )
    write(tmp_path, "b.yaml", GOOD.replace("jstor", "muse") + "pseudonym:\n  rotate: daily\n")
    args = argparse.Namespace(config=str(tmp_path / "absent.yaml"), directory=str(tmp_path))
    assert rules_check(args) == 0
    lines = capsys.readouterr().out.splitlines()
    warnings = [ln for ln in lines if ln.startswith("warning:") and "pseudonym" in ln]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: {path}: pseudonym.rotate: never: jstor's")
    # #17: both fixtures are titled JSTOR, so /login/jstor is ambiguous: warned too
    assert any("/login/jstor goes to jstor/jstor" in ln for ln in lines)
    assert reason in warnings[0]
