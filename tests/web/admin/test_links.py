"""#17: the admin console's link builder and unknown hosts (web/admin/links.py)."""

from __future__ import annotations

from proxy.core.usage import Drained
from proxy.web.keys import STATS
from tests.web.admin.test_app import Console, console, make_console  # noqa: F401 — fixtures


async def test_the_link_builder_reports_cover_link_and_licences(console: Console) -> None:  # noqa: F811 — the fixture
    """JSON and HTML: the covering rule, the /login?url= link, each library's licence."""
    url = "https://search.bigdb.test/?q=cells"
    resp = await console.client.get("/api/links", params={"url": url}, headers=console.bearer)
    body = await resp.json()
    assert (body["covered"], body["rule_id"]) == (True, "bigdb")
    assert body["link"].endswith(f"/login?url={url}")
    assert body["licensed"] == {"MAIN": True, "WEST": False}
    page = await console.client.get("/links", params={"url": url}, headers=console.bearer)
    assert "Covered by rule <code>bigdb</code>" in await page.text()


async def test_an_uncovered_url_suggests_the_domain_escaped(console: Console) -> None:  # noqa: F811 — the fixture
    """Not covered: the domain to add; the pasted URL is escaped on the page."""
    url = 'https://www.newvendor.co.uk/"><script>x</script>'
    page = await console.client.get("/links", params={"url": url}, headers=console.bearer)
    text = await page.text()
    assert "No rule covers this URL" in text and "<code>newvendor.co.uk</code>" in text
    assert "<script>x" not in text


async def test_unknown_hosts_are_listed_most_hit_first(console: Console) -> None:  # noqa: F811 — the fixture
    """Counted hosts appear per host (no patron data), most hit first."""
    today = console.clock.now.date()
    drained = Drained()
    drained.unknown_hosts[(today, "a.example.net")] = 2
    drained.unknown_hosts[(today, "b.example.net")] = 5
    console.main[STATS].add(drained)
    resp = await console.client.get("/api/unknown-hosts", headers=console.bearer)
    assert await resp.json() == [
        {"host": "b.example.net", "hits": 5},
        {"host": "a.example.net", "hits": 2},
    ]
    assert (
        "b.example.net" in await (await console.client.get("/links", headers=console.bearer)).text()
    )


async def test_the_link_routes_need_the_admin_token(console: Console) -> None:  # noqa: F811 — the fixture
    """Without the token: 401, like every console path."""
    resp = await console.client.get("/api/links", params={"url": "https://x.test/"})
    assert resp.status == 401
    assert (await console.client.get("/links", allow_redirects=False)).status in (302, 303, 401)


async def test_database_starts_are_summed_per_database(console: Console) -> None:  # noqa: F811
    """Starts per (vendor, database, library) over the period, as JSON."""
    today = console.clock.now.date()
    drained = Drained()
    drained.starts[(today, "ebsco", "cinahl", "MAIN")] = 2
    drained.starts[(today, "ebsco", "ebsco", "WEST")] = 1
    console.main[STATS].add(drained)
    console.main[STATS].add(drained)
    resp = await console.client.get("/api/database-starts?days=7", headers=console.bearer)
    assert await resp.json() == [
        {"vendor": "ebsco", "database": "cinahl", "library": "MAIN", "starts": 4},
        {"vendor": "ebsco", "database": "ebsco", "library": "WEST", "starts": 2},
    ]
    bad = await console.client.get("/api/database-starts?days=0", headers=console.bearer)
    assert bad.status == 400


async def test_link_apis_refuse_unknown_query_parameters(console: Console) -> None:  # noqa: F811
    """A typo such as ?day= is a 400 naming the parameter, not a silently default period."""
    for path in ("/api/unknown-hosts?day=7", "/api/database-starts?x=1", "/api/links?u=a"):
        resp = await console.client.get(path, headers=console.bearer)
        assert resp.status == 400, path
        assert "Unknown query parameter" in (await resp.json())["error"]
