"""Sip2Client against a real SIP2 peer on loopback: every ILS behaviour a card check meets.

The peer (tests/ilsauth/sip2_peer.py) is a real asyncio server with its own framing and
checksums; nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from proxy import certs
from proxy.core.sip2 import Sip2Settings, Sip2Verdict
from proxy.ilsauth.sip2_client import (
    MAX_RESENDS,
    Sip2Client,
    Sip2Credentials,
    Sip2InputRejected,
    Sip2LoginRejected,
    Sip2ProtocolError,
    Sip2Timeout,
    Sip2Unavailable,
    Sip2Unreachable,
)
from tests.ilsauth.sip2_peer import PeerMode, PeerPatron, Sip2Peer

CARD = "21234000012345"
PIN = "4321"
CANARY_CARD = "29999000077777"
CANARY_PIN = "8642PINCANARY"
PERSONAL_CANARIES = {
    "name": "Zoë CANARYNAME",
    "address": "1 CanaryAddress Lane",
    "email": "canary.mail@example.org",
    "phone": "555-CANARY",
    "birth_date": "19010101",
}

StartPeer = Callable[..., Awaitable[Sip2Peer]]


def patrons() -> dict[str, PeerPatron]:
    """A good patron, a patron with a lost card and fines, and the canary patron."""
    return {
        CARD: PeerPatron(pin=PIN, fee="1.50", expiry="20991231", screen_message="Welcome back"),
        "21234000099999": PeerPatron(pin="1111", status="    Y     Y   ", fee="42.00"),
        CANARY_CARD: PeerPatron(pin=CANARY_PIN, **PERSONAL_CANARIES),
    }


@pytest.fixture
async def start_peer() -> AsyncIterator[StartPeer]:
    """Starts peers with a given mode and stops them after the test."""
    peers: list[Sip2Peer] = []

    async def start(mode: PeerMode | None = None, **kwargs: Any) -> Sip2Peer:
        peer = Sip2Peer(patrons(), mode or PeerMode(), **kwargs)
        peers.append(await peer.start())
        return peer

    yield start
    for peer in peers:
        await peer.stop()


def make_client(
    peer: Sip2Peer, credentials: Sip2Credentials | None = None, **kw: Any
) -> Sip2Client:
    """A client for ``peer`` with short timeouts."""
    settings = Sip2Settings(
        host=kw.pop("host", "127.0.0.1"), port=peer.port, timeout=kw.pop("timeout", 1.0), **kw
    )
    return Sip2Client(settings, credentials)


def exception_texts(exc: BaseException) -> str:
    """str and repr of an exception and everything it chains to."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), str(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


async def test_valid_patron_is_allowed_with_facts_kept() -> None:
    """A good card and PIN → allowed; fee, expiry and "had screen message" are kept."""
    peer = await Sip2Peer(patrons()).start()
    client = make_client(peer)
    try:
        verdict = await client.check(CARD, PIN)
    finally:
        await client.close()
        await peer.stop()
    assert verdict == Sip2Verdict(
        valid_patron=True,
        valid_password=True,
        flags=frozenset(),
        fee_amount=Decimal("1.50"),
        expiry=date(2099, 12, 31),
        had_screen_message=True,
        denials=frozenset(),
    )
    assert verdict.allowed


async def test_wrong_pin_and_unknown_card_are_denied(start_peer: StartPeer) -> None:
    """A wrong PIN denies with invalid_password; an unknown card also with invalid_patron."""
    client = make_client(await start_peer())
    wrong_pin = await client.check(CARD, "0000")
    unknown = await client.check("21234000000000", PIN)
    await client.close()
    assert wrong_pin.denials == {"invalid_password"}
    assert unknown.denials == {"invalid_patron", "invalid_password"}
    assert not unknown.valid_patron


async def test_status_flags_and_fines_deny_as_configured(start_peer: StartPeer) -> None:
    """Flags deny only when named in deny_if; max_fines compares with the BV fee amount."""
    peer = await start_peer()
    lenient = make_client(peer, deny_if=[])
    strict = make_client(peer, deny_if=["card_reported_lost"], max_fines="10")
    relaxed = await lenient.check("21234000099999", "1111")
    denied = await strict.check("21234000099999", "1111")
    await lenient.close()
    await strict.close()
    assert relaxed.flags == {"card_reported_lost", "excessive_fines"}
    assert relaxed.allowed
    assert denied.denials == {"card_reported_lost", "fines_over_limit"}


async def test_expired_card_is_denied(start_peer: StartPeer) -> None:
    """A PA expiry date in the past → 'expired'."""
    peer = await start_peer()
    peer.patrons[CARD].expiry = "20200101    000000"
    client = make_client(peer)
    verdict = await client.check(CARD, PIN)
    await client.close()
    assert verdict.expiry == date(2020, 1, 1)
    assert verdict.denials == {"expired"}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_fields_in_any_order(start_peer: StartPeer, seed: int) -> None:
    """The verdict does not depend on the order the ILS sends its fields in."""
    client = make_client(await start_peer(PeerMode(shuffle_seed=seed)))
    verdict = await client.check(CARD, PIN)
    await client.close()
    assert verdict.allowed
    assert verdict.fee_amount == Decimal("1.50")
    assert verdict.expiry == date(2099, 12, 31)


async def test_optional_fields_missing(start_peer: StartPeer) -> None:
    """An ILS that sends only the required fields: no fee, no expiry, no screen message."""
    client = make_client(await start_peer(PeerMode(minimal=True)))
    verdict = await client.check(CARD, PIN)
    await client.close()
    assert verdict.allowed
    assert (verdict.fee_amount, verdict.expiry, verdict.had_screen_message) == (None, None, False)


async def test_patron_status_message(start_peer: StartPeer) -> None:
    """message: patron_status asks with 23 and reads the 24 answer."""
    peer = await start_peer()
    client = make_client(peer, message="patron_status")
    good = await client.check(CARD, PIN)
    bad = await client.check(CARD, "9")
    await client.close()
    assert peer.commands() == ["23", "23"]
    assert good.allowed
    assert bad.denials == {"invalid_password"}


async def test_checksums_sent_and_verified(start_peer: StartPeer) -> None:
    """auto: requests carry AY/AZ with a rising sequence number; checksummed answers pass."""
    peer = await start_peer()
    client = make_client(peer)
    for _ in range(3):
        assert (await client.check(CARD, PIN)).allowed
    await client.close()
    assert [m[-9:-6] for m in peer.received] == [b"AY0", b"AY1", b"AY2"]
    assert all(m[-6:-4] == b"AZ" for m in peer.received)


async def test_ils_without_checksums(start_peer: StartPeer) -> None:
    """An ILS that never sends checksums works with auto and off, and fails closed with on."""
    peer = await start_peer(PeerMode(checksums="never"))
    auto, off, on = (make_client(peer, checksum=mode) for mode in ("auto", "off", "on"))
    assert (await auto.check(CARD, PIN)).allowed
    assert (await off.check(CARD, PIN)).allowed
    assert b"AZ" not in peer.received[-1]
    with pytest.raises(Sip2ProtocolError) as caught:
        await on.check(CARD, PIN)
    assert caught.value.status_hint == 503
    for client in (auto, off, on):
        await client.close()


async def test_bad_checksum_asks_for_a_resend(start_peer: StartPeer) -> None:
    """A corrupted answer is answered with 97; the repeated answer is used."""
    peer = await start_peer(PeerMode(bad_checksums=1))
    client = make_client(peer)
    verdict = await client.check(CARD, PIN)
    await client.close()
    assert verdict.allowed
    assert peer.commands() == ["63", "97"]
    assert peer.received[1] == b"97AZFEF5"


async def test_bad_checksums_forever_give_up_after_bounded_resends(start_peer: StartPeer) -> None:
    """An ILS whose checksums never verify → 503 after MAX_RESENDS requests, not a loop."""
    peer = await start_peer(PeerMode(bad_checksums=1000))
    client = make_client(peer)
    with pytest.raises(Sip2ProtocolError):
        await client.check(CARD, PIN)
    await client.close()
    assert peer.commands() == ["63"] + ["97"] * MAX_RESENDS


async def test_checksum_off_ignores_corruption(start_peer: StartPeer) -> None:
    """checksum: off strips but does not verify a trailer."""
    peer = await start_peer(PeerMode(checksums="always", bad_checksums=1))
    client = make_client(peer, checksum="off")
    assert (await client.check(CARD, PIN)).allowed
    await client.close()


async def test_resend_request_from_ils(start_peer: StartPeer) -> None:
    """A 96 from the ILS → the same request is sent again and its answer used."""
    peer = await start_peer(PeerMode(resend_first=True))
    client = make_client(peer)
    assert (await client.check(CARD, PIN)).allowed
    await client.close()
    assert peer.commands() == ["63", "63"]
    assert peer.received[0] == peer.received[1]


async def test_login_first_on_every_connection(start_peer: StartPeer) -> None:
    """With login_user set, each new connection sends 93 before its first 63."""
    peer = await start_peer(PeerMode(login=("sipuser", "s3cret")))
    client = make_client(
        peer,
        Sip2Credentials(login_password="s3cret"),
        login_user="sipuser",
        login_password_file=Path("/run/secrets/sip2"),
        location_code="WEB",
    )
    await client.check(CARD, PIN)
    await client.check(CARD, PIN)
    await client.close()
    assert peer.commands() == ["93", "63", "63"]
    assert b"|CPWEB|" in peer.received[0]


async def test_login_rejected_is_unavailable(start_peer: StartPeer) -> None:
    """A refused 93 (wrong SIP2 password in the config) → 503, logged with the ILS host."""
    peer = await start_peer(PeerMode(login=("sipuser", "s3cret")))
    client = make_client(
        peer,
        Sip2Credentials(login_password="wrong"),
        login_user="sipuser",
        login_password_file=Path("/run/secrets/sip2"),
    )
    with capture_logs() as logs, pytest.raises(Sip2LoginRejected) as caught:
        await client.check(CARD, PIN)
    await client.close()
    assert caught.value.status_hint == 503
    assert logs[-1]["event"] == "sip2_unavailable"
    assert logs[-1]["host"] == "127.0.0.1"
    assert logs[-1]["error"] == "Sip2LoginRejected"


async def test_ils_demanding_login_drops_unlogged_client(start_peer: StartPeer) -> None:
    """Without a configured login, an ILS that demands one closes on us → 503."""
    client = make_client(await start_peer(PeerMode(login=("sipuser", "s3cret"))))
    with pytest.raises(Sip2Unreachable):
        await client.check(CARD, PIN)
    await client.close()


async def test_ils_closing_after_every_answer(start_peer: StartPeer) -> None:
    """An ILS that closes after each answer: every check works, on a new connection each."""
    peer = await start_peer(PeerMode(close_after_answer=True))
    client = make_client(peer)
    for _ in range(4):
        assert (await client.check(CARD, PIN)).allowed
        await asyncio.sleep(0)  # sometimes the EOF is seen before reuse, sometimes not
    await client.close()
    assert peer.connections == 4
    assert peer.commands() == ["63"] * 4


async def test_connection_closed_on_reuse_is_replaced(start_peer: StartPeer) -> None:
    """A reused connection that the ILS closes instead of answering → one fresh retry."""
    peer = await start_peer(PeerMode(close_on_reuse=True))
    client = make_client(peer)
    for _ in range(3):
        assert (await client.check(CARD, PIN)).allowed
    await client.close()
    assert peer.connections == 3
    assert peer.commands() == ["63"] * 5


async def test_keep_alive_reuses_one_connection(start_peer: StartPeer) -> None:
    """Sequential checks share one connection."""
    peer = await start_peer()
    client = make_client(peer)
    for _ in range(5):
        await client.check(CARD, PIN)
    await client.close()
    assert peer.connections == 1


async def test_idle_connection_is_replaced(start_peer: StartPeer) -> None:
    """A connection idle longer than idle_seconds is not reused."""
    peer = await start_peer()
    client = make_client(peer, idle_seconds=0.05)
    await client.check(CARD, PIN)
    await asyncio.sleep(0.1)
    await client.check(CARD, PIN)
    await client.close()
    assert peer.connections == 2


async def test_pool_bounds_concurrent_connections(start_peer: StartPeer) -> None:
    """Ten concurrent checks with pool_size 2 use at most two connections."""
    peer = await start_peer(PeerMode(delay=0.05))
    client = make_client(peer, pool_size=2)
    verdicts = await asyncio.gather(*(client.check(CARD, PIN) for _ in range(10)))
    await client.close()
    assert all(v.allowed for v in verdicts)
    assert peer.max_open <= 2
    assert client.connections_opened <= 2
    assert len(peer.received) == 10


async def test_slow_ils_times_out(start_peer: StartPeer) -> None:
    """An answer slower than timeout → Sip2Timeout (503) within about the timeout."""
    client = make_client(await start_peer(PeerMode(delay=2.0)), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(Sip2Timeout) as caught:
        await client.check(CARD, PIN)
    await client.close()
    assert time.monotonic() - started < 1.0
    assert caught.value.status_hint == 503


async def test_late_answer_never_reaches_the_next_patron(start_peer: StartPeer) -> None:
    """After a timeout the connection is dropped: the next check gets its own answer."""
    peer = await start_peer(PeerMode(delay=0.5))
    client = make_client(peer, timeout=0.2)
    with pytest.raises(Sip2Timeout):
        await client.check(CARD, PIN)  # the good patron's answer arrives too late
    peer.mode.delay = 0.0
    verdict = await client.check(CARD, "0000")
    await client.close()
    assert verdict.denials == {"invalid_password"}
    assert client.connections_opened == 2


async def test_queue_wait_is_bounded(start_peer: StartPeer) -> None:
    """With the only connection busy, a waiting check gives up after its queue deadline."""
    client = make_client(await start_peer(PeerMode(delay=0.9)), timeout=0.2, pool_size=1)
    results = await asyncio.gather(
        client.check(CARD, PIN), client.check(CARD, PIN), return_exceptions=True
    )
    await client.close()
    assert all(isinstance(r, Sip2Timeout) for r in results)


async def test_unreachable_ils_is_503_and_logged() -> None:
    """A refused connection → Sip2Unreachable (503); sip2_unavailable names host and error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Sip2Client(Sip2Settings(host="127.0.0.1", port=port, timeout=1.0))
    with capture_logs() as logs, pytest.raises(Sip2Unreachable) as caught:
        await client.check(CANARY_CARD, CANARY_PIN)
    assert caught.value.status_hint == 503
    assert caught.value.public_message.startswith("We can't check your card right now")
    assert logs == [
        {
            "event": "sip2_unavailable",
            "component": "sip2",
            "host": "127.0.0.1",
            "port": port,
            "error": "Sip2Unreachable",
            "cause": "ConnectionRefusedError",
            "log_level": "warning",
        }
    ]
    assert CANARY_CARD not in exception_texts(caught.value) + str(logs)


MALFORMED = [
    b"garbage\r",
    b"\xff\xfe\xfd\r",
    b"64YY\r",  # fixed part cut short
    b"99the wrong message\r",
    b"64" + b"\xe9" * 59 + b"AOx|\r",  # a fixed part that is not ASCII
    b"24" + b" " * 35 + b"BLY|CQY|AY7AZ0000\r",  # wrong message and sequence, bad checksum
]


@pytest.mark.parametrize("answer", MALFORMED)
async def test_malformed_answers_are_503(start_peer: StartPeer, answer: bytes) -> None:
    """A malformed answer → Sip2ProtocolError (503), logged without the card or PIN."""
    client = make_client(await start_peer(PeerMode(malformed=answer)))
    with capture_logs() as logs, pytest.raises(Sip2Unavailable) as caught:
        await client.check(CANARY_CARD, CANARY_PIN)
    await client.close()
    assert caught.value.status_hint == 503
    assert logs[-1]["event"] == "sip2_unavailable"
    texts = exception_texts(caught.value) + str(logs)
    assert CANARY_CARD not in texts
    assert CANARY_PIN not in texts


async def test_wrong_sequence_number_is_refused(start_peer: StartPeer) -> None:
    """An answer carrying another request's AY is not taken as ours."""
    stale = b"64" + b" " * 14 + b"000" + b"20250101    000000" + b"0000" * 6 + b"BLY|CQY|AY5AZ"
    total = sum(stale) & 0xFFFF
    answer = stale + b"%04X\r" % ((0x10000 - total) & 0xFFFF)
    client = make_client(await start_peer(PeerMode(malformed=answer)))
    with pytest.raises(Sip2ProtocolError):
        await client.check(CARD, PIN)
    await client.close()


@pytest.mark.parametrize("mode", ["auto", "off"])
async def test_personal_fields_never_reach_verdict_or_logs(
    start_peer: StartPeer, mode: str
) -> None:
    """Canary name, address, e-mail, phone and birth date appear in no verdict or log."""
    peer = await start_peer(PeerMode(shuffle_seed=7))
    client = make_client(peer, checksum=mode)
    with capture_logs() as logs:
        verdict = await client.check(CANARY_CARD, CANARY_PIN)
        peer.mode.resend_first = True
        await client.check(CANARY_CARD, CANARY_PIN)
    await client.close()
    assert verdict.allowed
    seen = repr(verdict) + str(verdict) + str(logs)
    for canary in [*PERSONAL_CANARIES.values(), CANARY_CARD, CANARY_PIN]:
        assert canary not in seen


async def test_pin_never_in_timeout_errors_or_logs(start_peer: StartPeer) -> None:
    """A timed-out check with canary card/PIN: neither is in the exception chain or logs."""
    client = make_client(await start_peer(PeerMode(delay=1.0)), timeout=0.1)
    with capture_logs() as logs, pytest.raises(Sip2Timeout) as caught:
        await client.check(CANARY_CARD, CANARY_PIN)
    await client.close()
    texts = exception_texts(caught.value) + str(logs)
    assert CANARY_CARD not in texts
    assert CANARY_PIN not in texts


@pytest.mark.parametrize("pin", ["12|AOother", "12\r34", "x" * 256])
async def test_unsendable_pin_is_rejected_locally(start_peer: StartPeer, pin: str) -> None:
    """A PIN that would break SIP2 framing is refused (400) before anything is sent."""
    peer = await start_peer()
    client = make_client(peer)
    with pytest.raises(Sip2InputRejected) as caught:
        await client.check(CARD, pin)
    await client.close()
    assert caught.value.status_hint == 400
    assert pin not in exception_texts(caught.value)
    assert peer.received == []


async def test_cp850_ils(start_peer: StartPeer) -> None:
    """A cp850 ILS with accented names parses, whether or not the client expects cp850."""
    peer = await start_peer(PeerMode(encoding="cp850"))
    peer.patrons[CARD].name = "Zoë Müller-Ørsted"
    peer.patrons[CARD].screen_message = "Bücherei grüßt"
    for encoding in ("cp850", "utf-8"):
        client = make_client(peer, encoding=encoding)
        verdict = await client.check(CARD, PIN)
        await client.close()
        assert verdict.allowed
        assert verdict.had_screen_message


async def test_crlf_line_endings(start_peer: StartPeer) -> None:
    """An ILS ending answers with \\r\\n works across several checks on one connection."""
    peer = await start_peer(PeerMode(line_ending=b"\r\n"))
    client = make_client(peer)
    for _ in range(3):
        assert (await client.check(CARD, PIN)).allowed
    await client.close()
    assert peer.connections == 1


async def test_tls_with_private_ca(start_peer: StartPeer, tmp_path: Path) -> None:
    """tls: true with ca_file verifies the ILS certificate and checks a card over TLS."""
    import ssl

    ca, cert, key = certs.test_ca(tmp_path, ["localhost"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    peer = await start_peer(tls=server)
    client = make_client(peer, host="localhost", tls=True, ca_file=ca)
    assert (await client.check(CARD, PIN)).allowed
    await client.close()
    untrusting = make_client(peer, host="localhost", tls=True)
    with pytest.raises(Sip2Unreachable):
        await untrusting.check(CARD, PIN)
    await untrusting.close()


def test_login_user_needs_a_password() -> None:
    """A configured login_user without the password value is a startup error."""
    settings = Sip2Settings(
        host="ils.example.org", login_user="sip", login_password_file=Path("/run/secrets/sip2")
    )
    with pytest.raises(ValueError, match="no login password"):
        Sip2Client(settings)


def test_credentials_repr_hides_secrets() -> None:
    """The credentials' repr holds neither password."""
    text = repr(Sip2Credentials(login_password="hunter2", terminal_password="termpw"))
    assert "hunter2" not in text
    assert "termpw" not in text
