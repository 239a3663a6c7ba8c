"""#17: ``rules link`` and ``rules check-links`` on the shipped demo rules."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import run


def test_rules_link_prints_the_link_the_rule_and_the_licences() -> None:
    """A covered URL: the /login?url= link, rule and database, each library's licence."""
    result = run("--config", "proxy.yaml", "rules", "link", "https://search.bigdb.test/?q=x")
    assert result.returncode == 0, result.stderr
    assert "rule bigdb" in result.stdout
    assert "/login?url=https://search.bigdb.test/?q=x" in result.stdout
    assert "MAIN yes, WEST no" in result.stdout


def test_rules_link_for_an_unknown_host_suggests_the_domain() -> None:
    """Not covered: exit 1, and the domain to add."""
    result = run("--config", "proxy.yaml", "rules", "link", "https://www.newvendor.co.uk/a")
    assert result.returncode == 1
    assert "NOT COVERED" in result.stdout and "add the domain newvendor.co.uk" in result.stdout


def test_check_links_reads_a_csv_export_and_counts(tmp_path: Path) -> None:
    """A LibGuides-style CSV: one line per URL and a count; exit 1 when any is not covered."""
    links = tmp_path / "links.csv"
    links.write_text(
        'name,url\nAcme,https://www.acmejournals.test/article/1\n"Nope, Inc",https://nope.example.net/\n',
        encoding="utf-8",
    )
    result = run("--config", "proxy.yaml", "rules", "check-links", str(links))
    assert result.returncode == 1
    assert "2 links: 1 covered, 1 not covered" in result.stdout
    missing = run("--config", "proxy.yaml", "rules", "check-links", str(tmp_path / "none.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
