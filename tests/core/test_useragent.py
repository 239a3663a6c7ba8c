"""The User-Agent a vendor gets: passed, reduced to the browsers' frozen forms, or generic."""

from __future__ import annotations

import pytest

from proxy.core.useragent import GENERIC_USER_AGENT, reduced_user_agent, shaped_user_agent

CHROME_FORM = (
    "Mozilla/5.0 ({}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.0.0 {}Safari/537.36"
)
IOS_FORM = "Mozilla/5.0 ({}) AppleWebKit/605.1.15 (KHTML, like Gecko) {} Mobile/15E148 Safari/604.1"
IPHONE = "iPhone; CPU iPhone OS 18_6 like Mac OS X"

REDUCED_CASES = [
    # Chrome, full strings as sent before UA reduction, and already-reduced ones (unchanged)
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/109.0.5414.120 Safari/537.36",
     CHROME_FORM.format("Windows NT 10.0; Win64; x64", 109, "")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 13_2_1) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/110.0.5481.100 Safari/537.36",
     CHROME_FORM.format("Macintosh; Intel Mac OS X 10_15_7", 110, "")),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36",
     CHROME_FORM.format("X11; Linux x86_64", 131, "")),
    ("Mozilla/5.0 (X11; CrOS aarch64 15236.80.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/114.0.5735.119 Safari/537.36",
     CHROME_FORM.format("X11; CrOS x86_64 14541.0.0", 114, "")),
    ("Mozilla/5.0 (Linux; Android 13; Pixel 6 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/108.0.5359.128 Mobile Safari/537.36",
     CHROME_FORM.format("Linux; Android 10; K", 108, "Mobile ")),
    ("Mozilla/5.0 (Linux; Android 12; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/112.0.5615.48 Safari/537.36",
     CHROME_FORM.format("Linux; Android 10; K", 112, "")),
    # Chromium browsers without a family of their own here look like Chrome
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
     CHROME_FORM.format("Linux; Android 10; K", 115, "Mobile ")),
    # Edge keeps its own token, major version only
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
     CHROME_FORM.format("Windows NT 10.0; Win64; x64", 120, "") + " Edg/120.0.0.0"),
    ("Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.144 Mobile Safari/537.36 EdgA/120.0.2210.126",
     CHROME_FORM.format("Linux; Android 10; K", 120, "Mobile ") + " EdgA/120.0.0.0"),
    # Firefox: frozen platform tokens
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.2; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"),
    ("Mozilla/5.0 (X11; Ubuntu; Linux i686; rv:109.0) Gecko/20100101 Firefox/115.0",
     "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"),
    ("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
     "Mozilla/5.0 (Android 10; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"),
    # Safari on macOS and iOS, and the other iOS browsers (all WebKit)
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.2.1 Safari/605.1.15",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.0 Safari/605.1.15"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
     IOS_FORM.format(IPHONE, "Version/17.0")),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1",
     IOS_FORM.format("iPad; CPU OS 18_6 like Mac OS X", "Version/16.0")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
     IOS_FORM.format(IPHONE, "CriOS/120.0.0.0")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
     IOS_FORM.format(IPHONE, "FxiOS/121.0")),
    # bots, tools, unknown and empty: the generic string
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     GENERIC_USER_AGENT),
    ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/120.0.6099.216 Mobile Safari/537.36 "
     "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)", GENERIC_USER_AGENT),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.6099.28 Safari/537.36", GENERIC_USER_AGENT),
    ("curl/8.5.0", GENERIC_USER_AGENT),
    ("python-requests/2.31.0", GENERIC_USER_AGENT),
    ("Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", GENERIC_USER_AGENT),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.0 Safari/605.1.15", GENERIC_USER_AGENT),
    ("", GENERIC_USER_AGENT),
]  # fmt: skip


@pytest.mark.parametrize(("full", "reduced"), REDUCED_CASES)
def test_reduced_user_agent_keeps_family_major_and_platform(full: str, reduced: str) -> None:
    """#18: a real UA becomes its browser's frozen form; bots, tools and empty the generic."""
    assert reduced_user_agent(full) == reduced


@pytest.mark.parametrize(("full", "reduced"), REDUCED_CASES)
def test_reducing_twice_changes_nothing(full: str, reduced: str) -> None:
    """#18: a reduced UA is its own reduction (browsers that already reduce are unchanged)."""
    assert reduced_user_agent(reduced) == reduced


def test_policies_pass_reduce_or_replace() -> None:
    """#18: pass keeps the browser's string, reduced reduces it, generic replaces it."""
    full = REDUCED_CASES[0][0]
    assert shaped_user_agent(full, "pass") == full
    assert shaped_user_agent(full, "reduced") == REDUCED_CASES[0][1]
    assert shaped_user_agent(full, "generic") == GENERIC_USER_AGENT
