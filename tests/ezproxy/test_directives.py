"""Tokenizing config.txt: names and short forms, comments, CRLF, lenient decoding, arguments."""

from __future__ import annotations

import pytest

from proxy.ezproxy.directives import (
    Where,
    canonical_name,
    decode_config,
    parse_domain,
    parse_host,
    parse_http_header,
    parse_line,
    read_config,
    suggest,
    tokenize,
)


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Title", "Title"),
        ("T", "Title"),
        ("TITLE", "Title"),
        ("URL", "URL"),
        ("U", "URL"),
        ("Url", "URL"),
        ("Host", "Host"),
        ("H", "Host"),
        ("HostJavaScript", "HostJavaScript"),
        ("HJ", "HostJavaScript"),
        ("Hj", "HostJavaScript"),
        ("Domain", "Domain"),
        ("D", "Domain"),
        ("DomainJavaScript", "DomainJavaScript"),
        ("DJ", "DomainJavaScript"),
        ("HTTPheader", "HTTPHeader"),
        ("Mimefilter", "MimeFilter"),
        ("AnonymousUrl", "AnonymousURL"),
        ("neverproxy", "NeverProxy"),
        ("PHE", "ProxyHostnameEdit"),
        ("DbVar0", "DbVar"),
        ("dbvar9", "DbVar"),
        ("A", "AutoLoginIP"),
        ("E", "ExcludeIP"),
        ("I", "IncludeIP"),
        ("RejectIP", "RejectIP"),
        ("includefile", "IncludeFile"),
        ("MC", "MaxConcurrentTransfers"),
    ],
)
def test_names_and_short_forms_are_canonical(written: str, name: str) -> None:
    """Every spelling EZproxy accepts maps to one canonical name, case-insensitively."""
    assert canonical_name(written) == name


@pytest.mark.parametrize(
    ("written", "guess"),
    [
        ("Ttitle", "Title"),
        ("nonymousURL", "AnonymousURL"),
        ("HTTPHeadr", "HTTPHeader"),
        ("Zork", None),
    ],
)
def test_misspelled_directives_get_a_suggestion(written: str, guess: str | None) -> None:
    """An unknown name is not canonical, and a close one suggests what was meant."""
    assert canonical_name(written) is None
    assert suggest(written) == guess


def test_comments_blank_lines_and_indentation_are_skipped_with_line_numbers_kept() -> None:
    """Only directive lines become records, each with its own file:line."""
    text = "# a comment\n\n   Title JSTOR\n\t# indented comment\nURL https://www.jstor.org/\n"
    records = tokenize(text, "config.txt")
    assert [(d.name, d.args, d.where) for d in records] == [
        ("Title", "JSTOR", Where("config.txt", 3)),
        ("URL", "https://www.jstor.org/", Where("config.txt", 5)),
    ]


def test_crlf_and_lf_give_the_same_directives() -> None:
    """CRLF line endings (Windows-edited configs) read exactly like LF."""
    lf = "Title A\nURL https://a.example.org/\nHJ a.example.org\n"
    crlf = lf.replace("\n", "\r\n")
    assert tokenize(lf, "f") == tokenize(crlf, "f")
    assert all("\r" not in d.args for d in tokenize(crlf, "f"))


def test_a_non_breaking_space_separates_like_a_space() -> None:
    """A stray NBSP between the name and its value (seen in OCLC stanzas) still parses."""
    d = parse_line("Title\u00a0Benjamins Resource Online", Where("f", 1))
    assert (d.name, d.args) == ("Title", "Benjamins Resource Online")


def test_unknown_directives_are_kept_as_written() -> None:
    """An unknown line is a record too, so the summary can name it."""
    d = parse_line("Ttitle ATS Journals", Where("f", 7))
    assert (d.name, d.known, d.args) == ("Ttitle", False, "ATS Journals")


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("Option domaincookieonly", "DomainCookieOnly"),
        ("OPTION X-FORWARDED-FOR", "X-Forwarded-For"),
        ("Option CookiePassthrough", "CookiePassThrough"),
        ("Option NoSuchThing", "NoSuchThing"),
    ],
)
def test_option_names_are_canonical(line: str, option: str) -> None:
    """Option values are matched case-insensitively and spelled canonically."""
    d = parse_line(line, Where("f", 1))
    assert (d.name, d.args) == ("Option", option)


def test_utf8_decodes_without_findings_and_a_bom_is_dropped() -> None:
    """Valid UTF-8 (with or without a byte-order mark) is read as is."""
    text, findings = decode_config("\ufeffTitle 中国知网\n".encode(), "f")
    assert text == "Title 中国知网\n"
    assert findings == []


def test_non_utf8_bytes_are_decoded_leniently_and_reported_with_file_and_line() -> None:
    """A stray Latin-1 byte is read as Windows-1252 and reported at its line."""
    data = b"Title Ok\nTitle Hisp\xe1nica Digital\nURL https://x.example.org/\n"
    directives, findings = read_config(data, "kent.txt")
    assert directives[1].args == "Hispánica Digital"
    assert [(f.kind, str(f.where)) for f in findings] == [("warning", "kent.txt:2")]
    assert "not UTF-8" in findings[0].why


@pytest.mark.parametrize(
    ("line", "hidden", "shown"),
    [
        ("FormVariable password=hunter2", "hunter2", "FormVariable <redacted>"),
        ("TokenKey SomethingSecret", "SomethingSecret", "TokenKey <redacted>"),
        ("URL -Redirect db https://v.example.org/in?user=lib&pass=pw1", "pw1", "pass=<redacted>"),
        ("URL https://lib:pw2@v.example.org/", "pw2", "://<redacted>@"),
    ],
)
def test_secrets_never_reach_reports(line: str, hidden: str, shown: str) -> None:
    """Arguments that may hold credentials are redacted wherever a directive is quoted."""
    d = parse_line(line, Where("f", 1))
    assert hidden not in d.shown
    assert shown in d.shown


@pytest.mark.parametrize(
    ("text", "prefix", "warning", "problem"),
    [
        ("www.jstor.org", "https://www.jstor.org", "", ""),
        ("WWW.JSTOR.ORG", "https://www.jstor.org", "", ""),
        ("http://www.jstor.org", "http://www.jstor.org", "", ""),
        ("https://api.fold3.com:9080", "https://api.fold3.com:9080", "", ""),
        ("aces.onlinelibrary.wiley.com/", "https://aces.onlinelibrary.wiley.com", "trailing", ""),
        (
            "http://pericles.one-lts.literatumonline.com/",
            "http://pericles.one-lts.literatumonline.com",
            "trailing",
            "",
        ),
        ("www.fulcrum.org/heb", "https://www.fulcrum.org", "'/heb' ignored", ""),
        ("192.168.1.1", None, "", "IP literal"),
        ("*.example.org", None, "", "not allowed"),
        ("https://{yourlibraryname}.oneclickdigital.com/#register", None, "", "placeholder"),
        ("[For clients with corporate landing pages]", None, "", "one host"),
        ("db.localhost", None, "", "local name"),
        ("ftp://files.example.org", None, "", "scheme"),
    ],
)
def test_host_arguments(text: str, prefix: str | None, warning: str, problem: str) -> None:
    """Host/HJ values keep scheme and port, lose slashes and paths, and bad ones are refused."""
    origin, warnings, why = parse_host(text)
    assert (origin.url_prefix() if origin else None) == prefix
    assert warning in " ".join(warnings)
    assert problem in why
    assert bool(why) == (prefix is None)


@pytest.mark.parametrize(
    ("text", "value", "warning", "problem"),
    [
        ("jstor.org", "jstor.org", "", ""),
        ("*.els-cdn.com", "els-cdn.com", "", ""),
        (".Example.ORG", "example.org", "", ""),
        ("https://fold3.com", "fold3.com", "scheme https:// ignored", ""),
        ("fulcrum.org/heb", "fulcrum.org", "'/heb' ignored", ""),
        ("com", None, "", "top-level domain"),
        ("app-na-readspeaker-com", None, "", "single label"),
        ("[siteID].proquest.com", None, "", "placeholder"),
        ("localhost.localdomain", None, "", "local name"),
    ],
)
def test_domain_arguments(text: str, value: str | None, warning: str, problem: str) -> None:
    """Domain/DJ/NeverProxy values are lower-cased domains; '*.' and '.' prefixes are dropped."""
    parsed = parse_domain(text)
    assert parsed.value == value
    assert warning in " ".join(parsed.warnings)
    assert problem in parsed.problem


@pytest.mark.parametrize(
    ("args", "qualifiers", "name", "expression"),
    [
        ("-request -process X-Requested-With", {"request", "process"}, "X-Requested-With", ""),
        ("X-CSRF-Token", set(), "X-CSRF-Token", ""),
        ("=request =process x-b", {"request", "process"}, "x-b", ""),
        (
            "-response -edit Location rewriteurl(x)",
            {"response", "edit"},
            "Location",
            "rewriteurl(x)",
        ),
        ("-request", {"request"}, "", ""),
    ],
)
def test_http_header_arguments(args: str, qualifiers: set[str], name: str, expression: str) -> None:
    """HTTPHeader qualifiers are split from the header name and any expression."""
    h = parse_http_header(args)
    assert (set(h.qualifiers), h.name, h.expression) == (qualifiers, name, expression)


def test_only_newlines_end_lines_so_line_numbers_match_editors() -> None:
    """Form feeds or U+2028 inside a line do not shift the line numbers of later lines."""
    records = tokenize("Title A\x0cB\u2028C\r\nURL https://a.example.org/\n", "f")
    assert [(d.name, d.where.line) for d in records] == [("Title", 1), ("URL", 2)]


@pytest.mark.parametrize("module", ["directives", "stanzas", "translate"])
def test_the_pure_steps_import_only_the_stdlib_and_the_core(module: str) -> None:
    """directives, stanzas and translate stay pure: stdlib, proxy.core and each other only."""
    import ast
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "proxy" / "ezproxy" / f"{module}.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    pure = {"proxy.ezproxy.directives", "proxy.ezproxy.stanzas"}
    allowed = [
        name
        for name in imported
        if name.split(".")[0] in sys.stdlib_module_names
        or name == "__future__"
        or name.startswith("proxy.core.")
        or name in pure
    ]
    assert sorted(imported) == sorted(allowed)
