"""The login form's body: read within a deadline and a small size cap (pentest R9).

Contract: ``read_login_form(request, limits)`` returns the fields of an
``application/x-www-form-urlencoded`` body as a dict of text. It raises ``LoginBodyTooLarge``
(413) when ``Content-Length`` or the bytes read pass ``login.max_body_bytes``, and
``LoginBodyTimeout`` (408) when the whole body has not arrived within ``login.body_seconds``
— a total deadline, not a silence timer: 20 connections sending 1 byte every 25 s stayed
open past 150 s before. Any other content type, or more than ``MAX_FIELDS`` fields, yields no
fields (the form then fails its CSRF check).
Not here: what the fields mean (login.py), rendering the errors (the error boundary).
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import parse_qsl

from aiohttp import StreamReader, web

from proxy.core.settings import LoginLimits
from proxy.errors import ClamshellError

FORM_TYPE: Final = "application/x-www-form-urlencoded"  # what the login page's form sends
MAX_FIELDS: Final = 16  # the form has four


class LoginBodyTimeout(ClamshellError):
    """The login form's body did not arrive within the deadline."""

    status_hint = 408
    public_message = "The sign-in form took too long to arrive. Please try again."


class LoginBodyTooLarge(ClamshellError):
    """The login form's body is larger than any real form."""

    status_hint = 413
    public_message = "The sign-in form was too large."


async def read_login_form(request: web.Request, limits: LoginLimits) -> dict[str, str]:
    """The form's fields; raises LoginBodyTooLarge or LoginBodyTimeout (see the module doc)."""
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise LoginBodyTooLarge()
    try:
        async with asyncio.timeout(limits.body_seconds):
            body = await _read_capped(request.content, limits.max_body_bytes)
    except TimeoutError:
        raise LoginBodyTimeout() from None
    if request.content_type != FORM_TYPE:
        return {}
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except ValueError:  # too many fields
        return {}
    return dict(pairs)


async def _read_capped(stream: StreamReader, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > cap:
            raise LoginBodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)
