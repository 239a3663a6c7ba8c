"""URL mapping between vendor and proxy forms."""

from __future__ import annotations

import pytest

from proxy.core.urlmap import UrlMapper, translate_params

P = "proxy.localhost:8080"


@pytest.mark.parametrize(
    ("url", "mapped"),
    [
        ("https://www.jstor.org/stable/1?x=y", f"http://www-jstor-org.{P}/stable/1?x=y"),
        ("http://www.jstor.org/a", f"http://www-jstor-org.{P}/a"),
        ("//cdn.jstor.org/x.js", f"http://cdn-jstor-org.{P}/x.js"),
        ("https://www.jstor.org", f"http://www-jstor-org.{P}"),
        ("https://WWW.JSTOR.ORG:443/#f", f"http://www-jstor-org.{P}/#f"),
        ("http://old.acmejournals.test:8080/p", f"http://old-acmejournals-test---h8080.{P}/p"),
        ("https://search.bigdb.test/?q=1", f"http://search-bigdb-test.{P}/?q=1"),
    ],
)
def test_covered_urls_map_to_proxy(mapper: UrlMapper, url: str, mapped: str) -> None:
    """Covered hosts map to their mapped host, keeping path, query and fragment."""
    assert mapper.to_proxy(url) == mapped


@pytest.mark.parametrize(
    "url",
    [
        "/relative/path",
        "https://notjstor.org/",
        "https://jstor.org.evil.com/",
        "https://evil.com/?u=www.jstor.org",
        "https://ads.jstor.org/x",
        "mailto:a@www.jstor.org",
        "https://user@www.jstor.org/",
        "https://www.jstor.org:9999/",
        "javascript:alert(1)",
        "",
    ],
)
def test_other_urls_are_left_alone(mapper: UrlMapper, url: str) -> None:
    """Relative URLs, uncovered hosts, never_proxy hosts and tricks map to None."""
    assert mapper.to_proxy(url) is None


@pytest.mark.parametrize(
    ("url", "vendor"),
    [
        (f"http://www-jstor-org.{P}/stable/1?x=y", "https://www.jstor.org/stable/1?x=y"),
        (f"http://old-acmejournals-test---h8080.{P}/p", "http://old.acmejournals.test:8080/p"),
    ],
)
def test_mapped_urls_map_back(mapper: UrlMapper, url: str, vendor: str) -> None:
    """Mapped URLs translate back to the vendor's own URL."""
    assert mapper.to_vendor(url) == vendor


@pytest.mark.parametrize(
    "url",
    [
        f"http://{P}/login?url=x",
        f"http://www-evil-com.{P}/",
        "https://www.jstor.org/",
        f"http://a.b.{P}/",
        "not a url",
    ],
)
def test_non_mapped_urls_do_not_map_back(mapper: UrlMapper, url: str) -> None:
    """The portal, unknown mapped hosts and vendor URLs do not translate back."""
    assert mapper.to_vendor(url) is None


def test_request_params_translate_back(mapper: UrlMapper) -> None:
    """Named parameters holding proxy URLs go upstream as vendor URLs; the rest is untouched."""
    from urllib.parse import quote

    mapped = quote(f"http://www-jstor-org.{P}/stable/1?x=y", safe="")
    query = f"return={mapped}&q=a+b%20c&other={mapped}&return=not-a-url"
    out = translate_params(query, frozenset({"return"}), mapper)
    assert out == (
        f"return={quote('https://www.jstor.org/stable/1?x=y', safe='')}"
        f"&q=a+b%20c&other={mapped}&return=not-a-url"
    )


def test_no_named_params_is_identity(mapper: UrlMapper) -> None:
    """Without request_params the query is returned as it was."""
    assert translate_params("a=1&b=%2F", frozenset(), mapper) == "a=1&b=%2F"
