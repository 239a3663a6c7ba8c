"""#16: the LDAP back-end against a real OpenLDAP slapd on loopback (tests/ilsauth/slapd.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from proxy.certs import test_ca
from proxy.core.authconfig import LdapSettings
from proxy.core.ilsauth import Known, LdapResult, NotKnown, ldap_answer
from proxy.ilsauth.ldap_client import LdapChecker
from proxy.ilsauth.ldap_errors import LdapUnavailable
from tests.ilsauth.slapd import (
    CANARIES,
    GROUP_DN,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    Slapd,
    TlsFiles,
    free_port,
    start_slapd,
)

STUDENT, FACULTY, ALUMNI = ((card, pw) for card, pw, _, _ in PEOPLE)
TEMPLATE = f"uid={{card}},ou=people,{SUFFIX}"
PTYPES = {"ptype_from": "employeeType", "ptype_map": {"Student": "student", "Faculty": "faculty"}}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One slapd for this module (the directory is read-only to the tests)."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def template_settings(url: str, **extra: Any) -> LdapSettings:
    """Bind-DN-template mode over plain ldap:// (allowed on purpose: loopback test)."""
    raw = {"timeout": 2, **extra}
    return LdapSettings(url=url, allow_plaintext=True, bind_dn_template=TEMPLATE, **raw)


def search_settings(url: str, tmp_path: Path, **extra: Any) -> LdapSettings:
    """Search-then-bind mode with the service account."""
    secret = tmp_path / "ldap-service.pw"
    secret.write_text(SERVICE_PASSWORD + "\n")
    secret.chmod(0o600)
    return LdapSettings(
        url=url,
        allow_plaintext=True,
        service_dn=SERVICE_DN,
        service_password_file=secret,
        base=f"ou=people,{SUFFIX}",
        filter="(&(objectClass=inetOrgPerson)(uid={card}))",
        timeout=2,
        **extra,
    )


async def test_bind_template_good_password(slapd: Slapd) -> None:
    """A good card and password bind; the patron type comes from employeeType."""
    settings = template_settings(slapd.url, **PTYPES)
    result = await LdapChecker(settings).check(*STUDENT)
    assert result == LdapResult(bound=True, conditions_met=True, ptype_value="Student")
    answer = ldap_answer(result, settings, library="U", patron_key="k")
    assert isinstance(answer, Known) and answer.facts.ptype == "student"


async def test_search_then_bind(slapd: Slapd, tmp_path: Path) -> None:
    """The service account finds the entry, then the user's own password binds."""
    checker = LdapChecker(search_settings(slapd.url, tmp_path), SERVICE_PASSWORD)
    assert (await checker.check(*FACULTY)).bound
    assert not (await checker.check(FACULTY[0], "wrong")).bound


@pytest.mark.parametrize("mode", ["template", "search"])
async def test_wrong_password_and_unknown_user_are_not_bound(
    slapd: Slapd, tmp_path: Path, mode: str
) -> None:
    """A wrong password and an unknown user both give "not bound" (one answer)."""
    settings = (
        template_settings(slapd.url) if mode == "template" else search_settings(slapd.url, tmp_path)
    )
    checker = LdapChecker(settings, SERVICE_PASSWORD if mode == "search" else None)
    wrong = await checker.check(STUDENT[0], "nope")
    unknown = await checker.check("29990000009999", STUDENT[1])
    assert wrong == unknown == LdapResult(bound=False, conditions_met=False, ptype_value=None)
    assert isinstance(ldap_answer(wrong, settings, library="U", patron_key="k"), NotKnown)


@pytest.mark.parametrize("card", ["*)(uid=*", "*", "29990000000011)(|(uid=*", "uid=*,ou=people"])
@pytest.mark.parametrize("mode", ["template", "search"])
async def test_injection_in_the_card_binds_nobody(
    slapd: Slapd, tmp_path: Path, mode: str, card: str
) -> None:
    """Filter/DN metacharacters in the card are escaped (RFC 4515/4514): no one is bound,
    even with a real user's password."""
    settings = (
        template_settings(slapd.url) if mode == "template" else search_settings(slapd.url, tmp_path)
    )
    checker = LdapChecker(settings, SERVICE_PASSWORD if mode == "search" else None)
    for _, password, _, _ in PEOPLE:
        assert not (await checker.check(card, password)).bound


async def test_empty_password_never_binds_anonymously(slapd: Slapd) -> None:
    """An empty password is refused locally (an empty simple bind would succeed anonymously)."""
    checker = LdapChecker(template_settings(slapd.url))
    assert not (await checker.check(STUDENT[0], "")).bound
    assert checker.connections_opened == 0


async def test_group_condition(slapd: Slapd) -> None:
    """A user outside the required group binds but has no remote access (NO_REMOTE ptype)."""
    settings = template_settings(slapd.url, require_group=GROUP_DN, **PTYPES)
    checker = LdapChecker(settings)
    member = await checker.check(*STUDENT)
    outsider = await checker.check(*ALUMNI)
    assert member.bound and member.conditions_met
    assert outsider.bound and not outsider.conditions_met
    answer = ldap_answer(outsider, settings, library="U", patron_key="k")
    assert isinstance(answer, Known) and answer.facts.ptype == ""


async def test_attribute_condition(slapd: Slapd) -> None:
    """``require_attribute`` admits only the listed values."""
    settings = template_settings(slapd.url, require_attribute={"employeeType": ["Faculty"]})
    checker = LdapChecker(settings)
    assert (await checker.check(*FACULTY)).conditions_met
    assert not (await checker.check(*STUDENT)).conditions_met


async def test_connections_are_reused(slapd: Slapd) -> None:
    """Ten checks in a row use one connection (rebinding it each time)."""
    checker = LdapChecker(template_settings(slapd.url))
    for _ in range(5):
        assert (await checker.check(*STUDENT)).bound
        assert not (await checker.check(STUDENT[0], "bad")).bound
    assert checker.connections_opened == 1
    checker.close()


async def test_server_down_is_unavailable_and_logged() -> None:
    """No directory listening: LdapUnavailable (503), logged with the error type only."""
    checker = LdapChecker(template_settings(f"ldap://127.0.0.1:{free_port()}"))
    with capture_logs() as logs, pytest.raises(LdapUnavailable) as caught:
        await checker.check(STUDENT[0], "secret-pw-canary")
    assert caught.value.status_hint == 503
    assert [e["event"] for e in logs] == ["ldap_unavailable"]
    assert "secret-pw-canary" not in repr(logs) and STUDENT[0] not in repr(logs)


async def test_wrong_service_password_is_unavailable(slapd: Slapd, tmp_path: Path) -> None:
    """A service account the directory refuses is an outage, not "unknown card"."""
    checker = LdapChecker(search_settings(slapd.url, tmp_path), "not-the-password")
    with pytest.raises(LdapUnavailable):
        await checker.check(*STUDENT)


async def test_directory_answers_keep_nothing_personal(slapd: Slapd) -> None:
    """Canary: the entry's name, mail, phone and address reach no result and no log."""
    settings = template_settings(slapd.url, require_group=GROUP_DN, **PTYPES)
    with capture_logs() as logs:
        result = await LdapChecker(settings).check(*STUDENT)
        answer = ldap_answer(result, settings, library="U", patron_key="k")
    for canary in CANARIES:
        assert canary not in repr(result) and canary not in repr(answer)
        assert canary not in repr(logs)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"url": "ldap://dir.example"}, "clear"),
        ({"url": "ldaps://dir.example", "start_tls": True}, "start_tls"),
        ({"url": "http://dir.example"}, "ldaps://"),
        ({"bind_dn_template": "uid=x,dc=t"}, "{card}"),
        ({"bind_dn_template": None}, "either"),
        ({"service_dn": "cn=s"}, "either"),
    ],
)
def test_settings_refuse_unsafe_or_incomplete_config(extra: dict[str, Any], problem: str) -> None:
    """Plain ldap:// needs allow_plaintext or StartTLS; one mode, complete; {card} present."""
    raw: dict[str, Any] = {"url": "ldaps://dir.example", "bind_dn_template": TEMPLATE, **extra}
    with pytest.raises(ValidationError, match=problem):
        LdapSettings.model_validate(raw)


async def test_a_silent_directory_times_out() -> None:
    """A directory that accepts but never answers: LdapUnavailable after the timeout, and the
    event loop stays free meanwhile (the bind runs in a worker thread)."""
    held: list[asyncio.StreamWriter] = []

    async def mute(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checker = LdapChecker(template_settings(f"ldap://127.0.0.1:{port}", timeout=1))
    ticks = 0
    ticks_when_done = -1

    async def tick() -> None:
        nonlocal ticks
        for _ in range(10):  # 0.5 s, well inside the 1 s timeout
            await asyncio.sleep(0.05)
            ticks += 1

    async def expect_unavailable() -> None:
        nonlocal ticks_when_done
        with pytest.raises(LdapUnavailable):
            await checker.check(*STUDENT)
        ticks_when_done = ticks

    await asyncio.gather(expect_unavailable(), tick())
    assert ticks_when_done == 10  # the loop kept ticking while the bind waited
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Slapd, Path]]:
    """A slapd with a certificate for ``localhost`` from a private CA: StartTLS and ldaps."""
    certs = tmp_path_factory.mktemp("certs")
    ca, cert, key = test_ca(certs, ["localhost"])
    server = start_slapd(tmp_path_factory.mktemp("slapd-tls"), TlsFiles(ca, cert, key))
    yield server, ca
    server.stop()


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_tls_with_a_private_ca(tls_slapd: tuple[Slapd, Path], mode: str) -> None:
    """ldaps:// and StartTLS bind when the directory's certificate chains to ca_file."""
    server, ca = tls_slapd
    url = (
        f"ldaps://localhost:{server.tls_port}"
        if mode == "ldaps"
        else f"ldap://localhost:{server.port}"
    )
    settings = LdapSettings(
        url=url, start_tls=mode == "starttls", ca_file=ca, bind_dn_template=TEMPLATE, timeout=2
    )
    assert (await LdapChecker(settings).check(*STUDENT)).bound


@pytest.mark.parametrize(
    ("host", "trust"), [("localhost", False), ("127.0.0.1", True)], ids=["untrusted", "wrong name"]
)
@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
async def test_tls_refuses_an_unverified_directory(
    tls_slapd: tuple[Slapd, Path], mode: str, host: str, trust: bool
) -> None:
    """A certificate not from a trusted CA, or for another name: unavailable, never a
    plaintext fallback and never the password sent."""
    server, ca = tls_slapd
    port = server.tls_port if mode == "ldaps" else server.port
    settings = LdapSettings(
        url=f"{'ldaps' if mode == 'ldaps' else 'ldap'}://{host}:{port}",
        start_tls=mode == "starttls",
        ca_file=ca if trust else None,
        bind_dn_template=TEMPLATE,
        timeout=2,
    )
    with pytest.raises(LdapUnavailable):
        await LdapChecker(settings).check(*STUDENT)
