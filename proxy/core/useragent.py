"""The User-Agent a vendor gets: the browser's, a reduced form, or one generic string.

Contract: ``shaped_user_agent(value, policy)`` returns the User-Agent to send for a rule's
``headers.user_agent``: ``pass`` keeps the browser's string, ``generic`` sends one
consortium-wide string, and ``reduced`` (the default) keeps only the browser family, its major
version and the platform family, in the frozen form the browsers themselves send when they
reduce their UA (Chromium's UA reduction, Firefox's and Safari's frozen tokens). Anything not
recognised as one of those browsers (bots, tools, empty) becomes the generic string.
Pure: strings in and out.
Not here: which headers are sent at all (core/headers.py), the rule schema (core/rules.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Final, Literal

UserAgentPolicy = Literal["pass", "reduced", "generic"]
GENERIC_USER_AGENT: Final = "Mozilla/5.0 (compatible; LibraryProxy/1.0)"

# Crawlers and tools that borrow a browser's tokens keep no browser form: they get the
# generic string (e.g. Googlebot smartphone carries Chrome/… and "compatible; Googlebot").
NOT_A_BROWSER: Final = re.compile(r"(?i)bot\b|crawler|spider|compatible;|headless")

# Platform family by the first marker found, in this order (Android says "Linux", iOS says
# "like Mac OS X", so they are tested first).
PLATFORM_MARKERS: Final = (
    ("Android", "android"),
    ("iPhone", "iphone"),
    ("iPad", "ipad"),
    ("CrOS", "chromeos"),
    ("Windows", "windows"),
    ("Macintosh", "mac"),
    ("Linux", "linux"),
    ("X11", "linux"),
)
# Chromium's reduced platform tokens (chromium.org/updates/ua-reduction, reference table).
CHROMIUM_PLATFORM: Final = {
    "windows": "Windows NT 10.0; Win64; x64",
    "mac": "Macintosh; Intel Mac OS X 10_15_7",
    "linux": "X11; Linux x86_64",
    "chromeos": "X11; CrOS x86_64 14541.0.0",
    "android": "Linux; Android 10; K",
}
# Firefox's frozen platform tokens (Firefox 60+ freezes the OS versions; mozilla bug 1679929).
FIREFOX_PLATFORM: Final = {
    "windows": "Windows NT 10.0; Win64; x64",
    "mac": "Macintosh; Intel Mac OS X 10.15",
    "linux": "X11; Linux x86_64",
    "chromeos": "X11; Linux x86_64",
}
# iOS and iPadOS: every browser is WebKit; Safari 26 freezes the OS version at 18_6.
IOS_PLATFORM: Final = {
    "iphone": "iPhone; CPU iPhone OS 18_6 like Mac OS X",
    "ipad": "iPad; CPU OS 18_6 like Mac OS X",
}
# The browser token on iOS, per family (CriOS, FxiOS, EdgiOS are the iOS apps' own tokens).
IOS_BROWSER_TOKEN: Final = {
    "safari": "Version/{m}.0",
    "chrome": "CriOS/{m}.0.0.0",
    "firefox": "FxiOS/{m}.0",
    "edge": "EdgiOS/{m}.0.0.0",
}
# Browser family by its version token, first match wins: Edge and every Chromium browser say
# "Chrome/", Chrome on iOS says "CriOS/", Safari says "Version/" (checked last).
FAMILY_VERSION: Final = (
    ("edge", re.compile(r"\bEdg(?:e|A|iOS)?/(\d{1,4})\.")),
    ("firefox", re.compile(r"\b(?:Firefox|FxiOS)/(\d{1,4})\.")),
    ("chrome", re.compile(r"\b(?:Chrome|CriOS)/(\d{1,4})\.")),
    ("safari", re.compile(r"\bVersion/(\d{1,4})[. ].*\bSafari/")),
)
CHROMIUM_FORM: Final = (
    "Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{m}.0.0.0 {mobile}Safari/537.36"
)


def shaped_user_agent(value: str, policy: UserAgentPolicy) -> str:
    """The User-Agent to send under ``policy`` for the browser's ``value``."""
    return USER_AGENT_POLICIES[policy](value)


@functools.lru_cache(maxsize=512)  # per request; few distinct browsers behind one proxy
def reduced_user_agent(value: str) -> str:
    """Browser family, major version and platform family in the browser's own frozen form."""
    platform = _platform(value)
    if not value or platform is None or NOT_A_BROWSER.search(value):
        return GENERIC_USER_AGENT
    for family, pattern in FAMILY_VERSION:
        found = pattern.search(value)
        if found:
            return _form(family, platform, found[1], mobile="Mobile" in value) or GENERIC_USER_AGENT
    return GENERIC_USER_AGENT


def _platform(value: str) -> str | None:
    return next((family for marker, family in PLATFORM_MARKERS if marker in value), None)


def _form(family: str, platform: str, major: str, *, mobile: bool) -> str | None:
    """The frozen string for (family, platform), or None where that browser has none."""
    if platform in IOS_PLATFORM:
        token = IOS_BROWSER_TOKEN[family].format(m=major)
        return (
            f"Mozilla/5.0 ({IOS_PLATFORM[platform]}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"{token} Mobile/15E148 Safari/604.1"
        )
    if family == "firefox":
        return _firefox(platform, major, mobile=mobile)
    if family == "safari":
        return _safari(platform, major)
    chromium = CHROMIUM_PLATFORM.get(platform)
    if chromium is None:
        return None
    form = CHROMIUM_FORM.format(platform=chromium, m=major, mobile="Mobile " if mobile else "")
    if family == "edge":
        form += f" {'EdgA' if platform == 'android' else 'Edg'}/{major}.0.0.0"
    return form


def _firefox(platform: str, major: str, *, mobile: bool) -> str | None:
    if platform == "android":
        device = "Mobile" if mobile else "Tablet"
        return f"Mozilla/5.0 (Android 10; {device}; rv:{major}.0) Gecko/{major}.0 Firefox/{major}.0"
    token = FIREFOX_PLATFORM.get(platform)
    if token is None:
        return None
    return f"Mozilla/5.0 ({token}; rv:{major}.0) Gecko/20100101 Firefox/{major}.0"


def _safari(platform: str, major: str) -> str | None:
    if platform != "mac":
        return None  # Safari outside Apple platforms is someone else's UA
    return (
        f"Mozilla/5.0 ({CHROMIUM_PLATFORM['mac']}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{major}.0 Safari/605.1.15"
    )


# headers.user_agent -> what the vendor gets
USER_AGENT_POLICIES: Final[dict[UserAgentPolicy, Callable[[str], str]]] = {
    "pass": lambda value: value,
    "reduced": reduced_user_agent,
    "generic": lambda _value: GENERIC_USER_AGENT,
}
