"""Small response builders shared by the portal and the relay.

Contract: ``found(location)`` is a 302 whose Location is exactly the string given.
aiohttp's ``HTTPFound`` re-parses the location with yarl and re-encodes it, which changes
vendor URLs (``qurl=`` values, percent-encoded paths) — a proxy must not do that.
Not here: pages (pages.py), errors (errors.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

NO_STORE: Final = {"Cache-Control": "no-store"}


def found(location: str) -> web.Response:
    """A 302 to ``location``, byte for byte, never cached."""
    return web.Response(status=302, headers={"Location": location, **NO_STORE})
