"""Keyed hashes of patron identifiers: what the registry stores instead of raw values.

Contract: ``keyed_hash(pepper, purpose, value)`` is
``HMAC-SHA256(pepper, "clamshell-keyed-v1" || len(purpose) || purpose || value)`` as 64
lowercase hex characters, with a 4-byte big-endian byte length of the UTF-8 ``purpose``, so
two purposes can never produce the same input (``("card", "1")`` vs ``("card1", "")``).
The purpose separates domains: a card number and a PIN with the same digits hash to
unrelated values, and a stolen hash of one kind is useless as the other.
Without the pepper the hashes cannot be checked against guesses; with it, low-entropy values
(4-digit PINs, sequential card numbers) can be enumerated — the pepper file (mode 0600) is
what protects them.
``KeyedHasher(pepper, purpose)(value)`` gives the same result, faster for many values.
Not here: where the pepper comes from (secretfiles.py), normalization (core/cards.py).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

DOMAIN: Final = b"clamshell-keyed-v1"
BLOCK: Final = 64  # SHA-256 block size in bytes (RFC 2104's B)


def keyed_hash(pepper: bytes, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``pepper``, separated by ``purpose``; lowercase hex."""
    return hmac.digest(pepper, _prefix(purpose) + value.encode("utf-8"), "sha256").hex()


class KeyedHasher:
    """``keyed_hash`` with the pepper and purpose bound once: the same values, for bulk work.

    This is HMAC as RFC 2104 defines it, ``H((K ^ opad) || H((K ^ ipad) || message))``, with
    both keyed SHA-256 states computed once and copied per value: about 1.0 µs per value
    instead of 2.2 µs for ``hmac.new(...).copy()`` here, which matters for a 1M-row import.
    Tests pin it to the stdlib ``hmac`` result for arbitrary keys, purposes and values.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, pepper: bytes, purpose: str) -> None:
        key = hashlib.sha256(pepper).digest() if len(pepper) > BLOCK else pepper
        key = key.ljust(BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + _prefix(purpose))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, value: str) -> str:
        inner = self._inner.copy()
        inner.update(value.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _prefix(purpose: str) -> bytes:
    tag = purpose.encode("utf-8")
    return DOMAIN + len(tag).to_bytes(4, "big") + tag
