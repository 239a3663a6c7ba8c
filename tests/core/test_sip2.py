"""The pure SIP2 codec: checksums, building, parsing with personal fields dropped, judging."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from proxy.core.sip2 import (
    DENY_NAMES,
    KEPT_FIELDS,
    PATRON_FLAGS,
    DenyName,
    Frame,
    PatronAnswer,
    Sip2FrameError,
    Sip2Settings,
    Sip2Verdict,
    UnsendableField,
    build_login,
    build_patron_request,
    checksum,
    encode_field,
    judge,
    login_accepted,
    next_sequence,
    parse_amount,
    parse_expiry,
    parse_frame,
    parse_patron_answer,
    react,
    seal,
)

NOW = datetime(2026, 3, 4, 5, 6, 7)
DATE18 = "20260304    050607"
SETTINGS = Sip2Settings(host="ils.example.org")


def sealed(text: str, sequence: int | None = None) -> bytes:
    """``text`` with an AY/AZ trailer, as an ILS with error detection sends it."""
    return seal(text.encode("latin-1"), sequence=sequence, with_checksum=True)


def answer64(status: str = " " * 14, fields: str = "") -> str:
    """A 64 answer text: status, language, date, six counts, then ``fields``."""
    return "64" + status + "000" + DATE18 + "0000" * 6 + fields


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"97AZ", "FEF5"),  # Evergreen SIPServer's REQUEST_ACS_RESEND_CKSUM
        (b"96AZ", "FEF6"),  # … and REQUEST_SC_RESEND_CKSUM
        (
            b"09N20160419    12200820160419    122008APReading Room 1|AO830|AB830$28170815"
            b"|AC|AY2AZ",
            "EB80",
        ),  # the worked example in the PyPI sip2 package's comments
        (b"", "0000"),
    ],
)
def test_checksum_known_values(data: bytes, expected: str) -> None:
    """Checksums match values published by real SIP2 implementations."""
    assert checksum(data) == expected


def test_sequence_numbers_cycle_0_to_9() -> None:
    """AY is one digit: 0…9 then 0 again."""
    seen = [0]
    for _ in range(10):
        seen.append(next_sequence(seen[-1]))
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def test_build_patron_information() -> None:
    """A 63: language 000, the SIP date, blank summary, AO AA AC AD in order."""
    body = build_patron_request(
        "63",
        institution="MAIN",
        card="123",
        pin="9",
        terminal_password="t",
        now=NOW,
        encoding="utf-8",
    )
    assert body == f"63000{DATE18}{' ' * 10}AOMAIN|AA123|ACt|AD9|".encode()


def test_build_patron_status_and_login() -> None:
    """A 23 has no summary; a 93 sends plain-text algorithms and CN CO CP."""
    body = build_patron_request(
        "23", institution="", card="1", pin="2", terminal_password="", now=NOW, encoding="ascii"
    )
    assert body == f"23000{DATE18}AO|AA1|AC|AD2|".encode()
    assert build_login("u", "p", "WEB", encoding="utf-8") == b"9300CNu|COp|CPWEB|"


def test_seal_forms() -> None:
    """seal adds AY+AZ, AZ only, or nothing, and always the terminator."""
    assert seal(b"97", sequence=None, with_checksum=True) == b"97AZFEF5\r"
    assert seal(b"x", sequence=None, with_checksum=False) == b"x\r"
    wire = seal(b"63abc|", sequence=3, with_checksum=True)
    assert wire[:-5].endswith(b"|AY3AZ")
    assert sum(wire[:-5]) + int(wire[-5:-1], 16) & 0xFFFF == 0


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        ("12|AOother", "utf-8"),  # a delimiter would inject fields
        ("12\r34", "utf-8"),  # a terminator would split the message
        ("tab\there", "utf-8"),
        ("x" * 256, "utf-8"),
        ("é" * 128, "utf-8"),  # 256 bytes in UTF-8
        ("€uro", "cp850"),  # not encodable
        ("ï", "ascii"),
    ],
)
def test_unsendable_values_are_refused_without_echo(value: str, encoding: str) -> None:
    """A value that would break SIP2 framing raises, naming the field and not the value."""
    with pytest.raises(UnsendableField) as caught:
        encode_field("AD", value, encoding)
    assert caught.value.field_id == "AD"
    assert value not in str(caught.value)


def test_longest_sendable_value() -> None:
    """255 bytes is allowed."""
    assert encode_field("AA", "1" * 255, "ascii").endswith(b"1|")


@pytest.mark.parametrize(
    ("raw", "command", "fixed", "fields", "sequence", "checksum_ok"),
    [
        (b"941\r", "94", "1", (), None, None),
        (sealed("941", 4), "94", "1", (), 4, True),
        (b"940AY1AZ0000\r", "94", "0", (), 1, False),
        (b"96\r", "96", "", (), None, None),
        (b"96AZFEF6\r", "96", "", (), None, True),
        (b"\n941\r\n", "94", "1", (), None, None),  # \r\n endings leave a leading \n
        (sealed("941|", 2)[:-1] + b"\r", "94", "1", (), 2, True),
        (
            # some ILSs put a delimiter between AY and AZ
            sealed(answer64("Y" + " " * 13, "AOx|AAcard|AEName|BLY|CQN|AFhi|AY9|"), None),
            "64",
            "Y" + " " * 13 + "000" + DATE18 + "0000" * 6,
            (("BL", "Y"), ("CQ", "N"), ("AF", "hi")),
            9,
            True,
        ),
        (
            ("24" + " " * 14 + "000" + DATE18 + "AEx|BV1.00|PA20300101|AGprint").encode(),
            "24",
            " " * 14 + "000" + DATE18,
            (("BV", "1.00"), ("PA", "20300101"), ("AG", "print")),
            None,
            None,
        ),
    ],
)
def test_parse_frame_table(
    raw: bytes,
    command: str,
    fixed: str,
    fields: tuple[tuple[str, str], ...],
    sequence: int | None,
    checksum_ok: bool | None,
) -> None:
    """parse_frame splits command, fixed part, kept fields and the error-detection trailer."""
    frame = parse_frame(raw, encoding="utf-8")
    if checksum_ok is False:
        assert (frame.command, frame.checksum_ok, frame.sequence) == (command, False, sequence)
        return
    assert frame == Frame(command, fixed, fields, sequence, checksum_ok)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r", b"x\r", b"ab|\r", b"64YY\r", b"99abc\r", b"64" + b"\xe9" * 59 + b"\r", b"6\r"],
)
def test_parse_frame_refuses_malformed(raw: bytes) -> None:
    """Garbage, unknown messages and short or non-ASCII fixed parts raise Sip2FrameError."""
    with pytest.raises(Sip2FrameError):
        parse_frame(raw, encoding="utf-8")


def test_verify_false_ignores_a_bad_checksum() -> None:
    """With verify False the trailer is stripped and the body parsed anyway."""
    frame = parse_frame(b"941AY1AZ0000\r", encoding="utf-8", verify=False)
    assert (frame.fixed, frame.checksum_ok, frame.sequence) == ("1", None, 1)


PERSONAL = {
    "AE": "CanaryName",
    "AA": "CanaryCard",
    "BD": "CanaryAddress",
    "BE": "canary@example.org",
    "BF": "555-CANARY",
    "PB": "19010101",
    "AQ": "CanaryBranch",
    "PC": "CanaryClass",
}


@pytest.mark.parametrize("encoding", ["utf-8", "cp850", "latin-1"])
def test_personal_fields_are_dropped_at_parse_time(encoding: str) -> None:
    """No personal field value survives parse_frame, in any encoding."""
    fields = "".join(f"{fid}{value}|" for fid, value in PERSONAL.items()) + "BLY|CQY|"
    frame = parse_frame(sealed(answer64(fields=fields)), encoding=encoding)
    assert {fid for fid, _ in frame.fields} == {"BL", "CQ"}
    for value in PERSONAL.values():
        assert value not in repr(frame)
    assert not KEPT_FIELDS & set(PERSONAL)


def test_answer_types_have_no_personal_fields() -> None:
    """PatronAnswer and Sip2Verdict have exactly the decision's fields, nothing personal."""
    facts = {"valid_patron", "valid_password", "flags", "fee_amount", "expiry"}
    facts.add("had_screen_message")
    assert {f.name for f in dataclasses.fields(PatronAnswer)} == facts
    assert {f.name for f in dataclasses.fields(Sip2Verdict)} == facts | {"denials"}


def test_a_cp850_name_does_not_break_parsing() -> None:
    """A name in cp850 bytes (invalid UTF-8) is skipped without being decoded."""
    raw = answer64(fields="AEZoë Müller|BLY|CQY|BV2,50|").encode("cp850") + b"\r"
    answer = parse_patron_answer(parse_frame(raw, encoding="utf-8"))
    assert (answer.valid_patron, answer.fee_amount) == (True, Decimal("2.50"))


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (" " * 14, set()),
        ("Y" + " " * 13, {"charge_privileges_denied"}),
        ("    Y     Y   ", {"card_reported_lost", "excessive_fines"}),
        ("N" * 14, set()),  # some ILSs send N for "not set"
        ("Y" * 14, set(PATRON_FLAGS)),
        (" " * 13 + "y", {"too_many_items_billed"}),
    ],
)
def test_patron_status_flags(status: str, flags: set[str]) -> None:
    """The 14 patron-status positions map to their names; only Y sets a flag."""
    frame = parse_frame(answer64(status, "BLY|").encode() + b"\r", encoding="utf-8")
    assert parse_patron_answer(frame).flags == flags


def test_flag_names_are_the_sip2_positions() -> None:
    """14 flag names, and deny_if accepts them plus expired and invalid_patron."""
    assert len(PATRON_FLAGS) == 14
    assert set(get_args(DenyName)) == DENY_NAMES
    assert {*PATRON_FLAGS, "expired", "invalid_patron"} == DENY_NAMES


@pytest.mark.parametrize(
    ("fields", "valid_patron", "valid_password", "screen"),
    [
        ("BLY|CQY|", True, True, False),
        ("BLN|CQN|", False, False, False),
        ("BLy|", True, None, False),
        ("", None, None, False),
        ("BL|CQ |AF|", None, None, False),  # empty values say nothing
        ("BLY|CQY|AF   |AGSee desk|", True, True, True),
    ],
)
def test_patron_answer_booleans(
    fields: str, valid_patron: bool | None, valid_password: bool | None, screen: bool
) -> None:
    """BL and CQ read as yes/no/unknown; any non-blank AF/AG marks a screen message."""
    answer = parse_patron_answer(parse_frame(answer64(fields=fields).encode(), encoding="utf-8"))
    assert (answer.valid_patron, answer.valid_password) == (valid_patron, valid_password)
    assert answer.had_screen_message is screen


def test_parse_patron_answer_refuses_other_messages() -> None:
    """Only 24 and 64 are patron answers."""
    with pytest.raises(Sip2FrameError):
        parse_patron_answer(parse_frame(b"941\r", encoding="utf-8"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261231", date(2026, 12, 31)),
        ("20261231    235959", date(2026, 12, 31)),
        ("2026-12-31", date(2026, 12, 31)),
        (" 20261231", date(2026, 12, 31)),
        ("20261331", None),
        ("31/12/2026", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_expiry(value: str | None, expected: date | None) -> None:
    """PA expiry is read leniently; anything unreadable is None."""
    assert parse_expiry(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", Decimal("12.50")),
        (" $3,00", Decimal("3.00")),
        ("-1.25", Decimal("-1.25")),
        ("0", Decimal("0")),
        ("USD 7", Decimal("7")),
        ("none", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_amount(value: str | None, expected: Decimal | None) -> None:
    """BV fee amounts are read leniently; anything unreadable is None."""
    assert parse_amount(value) == expected


def frame_of(command: str, sequence: int | None = None, ok: bool | None = True) -> Frame:
    """A bare frame for react()."""
    return Frame(command, "", (), sequence, ok)


@pytest.mark.parametrize(
    ("frame", "mode", "reaction"),
    [
        (frame_of("64", 3), "auto", "accept"),
        (frame_of("64", None, None), "auto", "accept"),
        (frame_of("64", 3, False), "auto", "ask_resend"),
        (frame_of("64", 3, False), "on", "ask_resend"),
        (frame_of("96", None, None), "auto", "resend_ours"),
        (frame_of("96", None, True), "on", "resend_ours"),
        (frame_of("64", 3, None), "off", "accept"),
    ],
)
def test_react_table(frame: Frame, mode: str, reaction: str) -> None:
    """react accepts, resends ours after a 96, or asks for a resend after a bad checksum."""
    assert react(frame, expected="64", sequence=3, mode=mode) == reaction  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "mode"),
    [
        (frame_of("64", None, None), "on"),  # on: a checksum is required
        (frame_of("24", 3), "auto"),  # another message
        (frame_of("64", 2), "auto"),  # another request's answer
    ],
)
def test_react_refuses(frame: Frame, mode: str) -> None:
    """Missing checksum under 'on', a wrong message or a wrong sequence number raise."""
    with pytest.raises(Sip2FrameError):
        react(frame, expected="64", sequence=3, mode=mode)  # type: ignore[arg-type]


def test_login_accepted() -> None:
    """Only a 94 with ok '1' is an accepted login."""
    assert login_accepted(Frame("94", "1", (), None, None))
    assert not login_accepted(Frame("94", "0", (), None, None))
    assert not login_accepted(Frame("64", "1", (), None, None))


def answer_with(**kw: object) -> PatronAnswer:
    """A good patron's answer with some facts changed."""
    base: dict[str, object] = {
        "valid_patron": True,
        "valid_password": True,
        "flags": frozenset(),
        "fee_amount": None,
        "expiry": None,
        "had_screen_message": False,
    }
    return PatronAnswer(**{**base, **kw})  # type: ignore[arg-type]


TODAY = date(2026, 6, 1)


@pytest.mark.parametrize(
    ("answer", "settings", "denials"),
    [
        (answer_with(), {}, set()),
        (answer_with(valid_password=False), {}, {"invalid_password"}),
        (answer_with(valid_password=None), {}, {"invalid_password"}),  # fail closed
        (answer_with(valid_patron=None), {}, {"invalid_patron"}),
        (answer_with(valid_patron=False), {"deny_if": []}, set()),
        (answer_with(expiry=date(2026, 5, 31)), {}, {"expired"}),
        (answer_with(expiry=TODAY), {}, set()),  # valid through its last day
        (answer_with(expiry=date(2020, 1, 1)), {"deny_if": []}, set()),
        (answer_with(flags=frozenset({"card_reported_lost"})), {}, {"card_reported_lost"}),
        (answer_with(flags=frozenset({"excessive_fines"})), {}, set()),
        (
            answer_with(flags=frozenset({"excessive_fines"})),
            {"deny_if": ["excessive_fines"]},
            {"excessive_fines"},
        ),
        (answer_with(fee_amount=Decimal("10.01")), {"max_fines": "10"}, {"fines_over_limit"}),
        (answer_with(fee_amount=Decimal("10.00")), {"max_fines": "10"}, set()),
        (answer_with(fee_amount=None), {"max_fines": "0"}, set()),
        (answer_with(fee_amount=Decimal("99")), {}, set()),
    ],
)
def test_judge_table(answer: PatronAnswer, settings: dict[str, object], denials: set[str]) -> None:
    """judge denies by deny_if and max_fines; a wrong or unconfirmed PIN always denies."""
    verdict = judge(answer, Sip2Settings(host="ils", **settings), today=TODAY)  # type: ignore[arg-type]
    assert verdict.denials == denials
    assert verdict.allowed is (not denials)


@pytest.mark.parametrize(
    "raw",
    [
        {"host": "ils", "deny_if": ["not_a_flag"]},
        {"host": "ils", "login_user": "sip"},  # no password file
        {"host": "ils", "ca_file": "/etc/ca.pem"},  # ca_file without tls
        {"host": "ils", "checksum": "maybe"},
        {"host": "ils", "encoding": "ebcdic"},
        {"host": "ils", "max_fines": "-1"},
        {"host": "ils", "pool_size": 0},
        {"host": "ils", "login_password": "literal"},  # secrets are never literals
    ],
)
def test_settings_refuse_bad_values(raw: dict[str, object]) -> None:
    """Unknown deny names, unpaired login settings and literal secrets are config errors."""
    with pytest.raises(ValidationError):
        Sip2Settings.model_validate(raw)


def test_settings_are_frozen() -> None:
    """Sip2Settings is immutable."""
    with pytest.raises(ValidationError):
        SETTINGS.port = 1  # type: ignore[misc]


field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="|"),
    max_size=40,
)


@given(
    status=st.lists(st.sampled_from(" YN"), min_size=14, max_size=14).map("".join),
    fee=st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False),
    expiry=st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31)),
    name=field_text,
    screen=field_text,
    sequence=st.none() | st.integers(min_value=0, max_value=9),
    encoding=st.sampled_from(["utf-8", "latin-1"]),
)
def test_answer_round_trip(
    status: str,
    fee: Decimal,
    expiry: date,
    name: str,
    screen: str,
    sequence: int | None,
    encoding: str,
) -> None:
    """Build a 64 with encode_field + seal, parse it back: every kept fact survives."""
    head = f"64{status}000{DATE18}{'0000' * 6}".encode("ascii")
    pairs = [("AE", name), ("BV", str(fee)), ("PA", f"{expiry:%Y%m%d}"), ("AF", screen)]
    pairs += [("BL", "Y"), ("CQ", "N")]
    try:
        body = head + b"".join(encode_field(fid, value, encoding) for fid, value in pairs)
    except UnsendableField:
        return  # not encodable in latin-1 or too long: nothing to round-trip
    frame = parse_frame(seal(body, sequence=sequence, with_checksum=True), encoding=encoding)
    answer = parse_patron_answer(frame)
    assert (frame.checksum_ok, frame.sequence) == (True, sequence)
    assert answer.flags == {f for f, c in zip(PATRON_FLAGS, status, strict=True) if c == "Y"}
    assert (answer.fee_amount, answer.expiry) == (fee, expiry)
    assert answer.had_screen_message is bool(screen.strip())
    assert (answer.valid_patron, answer.valid_password) == (True, False)


@given(
    body=st.binary(min_size=1, max_size=200).filter(lambda b: b"\r" not in b),
    at=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_detected(body: bytes, at: int, delta: int) -> None:
    """Changing one byte of a sealed message's body makes its checksum fail."""
    wire = bytearray(seal(b"94" + body, sequence=1, with_checksum=True))
    index = at % (len(body) + 2)
    wire[index] = (wire[index] + delta) % 256
    if wire[index] in b"\r\n\x00 \t" and index == 0:
        return  # a leading byte the parser strips as line noise
    try:
        frame = parse_frame(bytes(wire), encoding="latin-1")
    except Sip2FrameError:
        return  # refused outright is fine too
    assert frame.checksum_ok is False
