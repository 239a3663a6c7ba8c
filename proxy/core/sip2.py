"""SIP2 (3M Standard Interchange Protocol 2.00) as pure functions: the messages a card check needs.

Contract:
- ``build_login``/``build_patron_request`` make a message body; ``seal`` adds the error-detection
  trailer (``AY`` sequence number, ``AZ`` checksum) and the ``\\r`` terminator. A value that cannot
  travel in a SIP2 field (a ``|``, a control character, more than 255 bytes, not encodable) raises
  ``UnsendableField`` naming the field id only, never the value.
- ``parse_frame`` turns one answer (bytes, terminator optional) into a ``Frame``. Personal fields
  are dropped here, before they are even decoded: only the ids in ``KEPT_FIELDS`` survive, so no
  name, address, e-mail, phone, birth date or card echo exists in any value this module returns.
- ``react`` decides what a client does with a frame (accept it, resend ours after a ``96``, ask
  for a resend with ``97`` after a bad checksum); ``parse_patron_answer`` reads a 24/64 answer
  into a ``PatronAnswer``; ``judge`` applies a library's ``deny_if``/``max_fines`` to it.
- ``Sip2Settings`` is the frozen configuration value of one ILS connection.
Errors are ``Sip2FrameError``/``UnsendableField`` (``ValueError``s); their messages never hold
field values. Not here: sockets, pooling, timeouts, logging (proxy/ilsauth/sip2_client.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

from pydantic import Field, model_validator

from proxy.core.frozen import Frozen

DELIMITER: Final = b"|"
TERMINATOR: Final = b"\r"
MAX_FIELD_BYTES: Final = 255  # SIP2 2.00 "Fields": variable-length fields hold 0-255 characters

LOGIN: Final = "93"
LOGIN_RESPONSE: Final = "94"
PATRON_STATUS: Final = "23"
PATRON_STATUS_RESPONSE: Final = "24"
PATRON_INFORMATION: Final = "63"
PATRON_INFORMATION_RESPONSE: Final = "64"
REQUEST_SC_RESEND: Final = "96"  # the ILS (ACS) asks us (the SC) to send our last message again
REQUEST_ACS_RESEND: Final = "97"  # we ask the ILS to send its last message again

# Length of the fixed part after the 2-digit command id (SIP2 2.00 message layouts):
# 94 ok(1); 24 status(14) language(3) date(18); 64 the same + six item counts (4 each); 96 none.
FIXED_LENGTH: Final[dict[str, int]] = {"94": 1, "24": 35, "64": 59, "96": 0}

# The only variable fields a verdict needs: valid patron, valid password, fee amount, expiry
# (Envisionware extension, sent by Evergreen and Koha), screen message and print line. Every other
# field (AE name, AA card echo, BD address, BE e-mail, BF phone, PB birth date…) is never decoded
# (DESIGN P3: only the decision is kept).
KEPT_FIELDS: Final = frozenset({"BL", "CQ", "BV", "PA", "AF", "AG"})

PatronFlag = Literal[
    "charge_privileges_denied",
    "renewal_privileges_denied",
    "recall_privileges_denied",
    "hold_privileges_denied",
    "card_reported_lost",
    "too_many_items_charged",
    "too_many_items_overdue",
    "too_many_renewals",
    "too_many_claims_of_items_returned",
    "too_many_items_lost",
    "excessive_fines",
    "excessive_fees",
    "recall_overdue",
    "too_many_items_billed",
]
# The 14 positions of the SIP2 2.00 "patron status" fixed field, in order ('Y' = set).
PATRON_FLAGS: Final[tuple[PatronFlag, ...]] = get_args(PatronFlag)
DenyName = Literal[PatronFlag, "expired", "invalid_patron"]
DENY_NAMES: Final = frozenset(get_args(PatronFlag)) | {"expired", "invalid_patron"}
# What ``judge`` may report; the last two always deny and are not configurable.
Denial = Literal[DenyName, "invalid_password", "fines_over_limit"]
DEFAULT_DENY_IF: Final[tuple[DenyName, ...]] = ("invalid_patron", "expired", "card_reported_lost")

ChecksumMode = Literal["auto", "on", "off"]
Reaction = Literal["accept", "resend_ours", "ask_resend"]

_TRAILER: Final = re.compile(rb"(?:AY(?P<seq>[0-9])\|?)?AZ(?P<sum>[0-9A-Fa-f]{4})\|?\Z")
_LEADING_JUNK: Final = b"\r\n\x00 \t"  # some ILSs end frames with \r\n; the \n leads the next one
_EXPIRY_DIGITS: Final = re.compile(r"^\s*(\d{4})-?(\d{2})-?(\d{2})")
_AMOUNT: Final = re.compile(r"-?\d+(?:[.,]\d+)?")


class Sip2FrameError(ValueError):
    """An answer is not a SIP2 message we can use; the message never holds field values."""


class UnsendableField(ValueError):
    """A value cannot travel in a SIP2 field; the message names the field id only."""

    def __init__(self, field_id: str) -> None:
        super().__init__(f"{field_id}: value cannot be sent in a SIP2 field")
        self.field_id = field_id


class Sip2Settings(Frozen):
    """One ILS's SIP2 endpoint and what of its answers denies a login.

    Secrets are not here: the login and terminal passwords live in files (``*_file``) that the
    caller reads and hands to the client.
    """

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 6001
    tls: bool = False
    ca_file: Path | None = None
    login_user: str | None = None
    login_password_file: Path | None = None
    terminal_password_file: Path | None = None
    institution_id: str = ""
    location_code: str = ""
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    idle_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    pool_size: Annotated[int, Field(ge=1, le=32)] = 2
    checksum: ChecksumMode = "auto"
    encoding: Literal["utf-8", "cp850", "latin-1", "ascii"] = "utf-8"
    message: Literal["patron_information", "patron_status"] = "patron_information"
    deny_if: tuple[DenyName, ...] = DEFAULT_DENY_IF
    max_fines: Annotated[Decimal, Field(ge=0)] | None = None
    # The patron type a card checked over SIP2 gets (SIP2 has no portable patron class field;
    # list it in the library's remote_ptypes to give SIP2 cards remote access).
    ptype: str = "sip2"

    @model_validator(mode="after")
    def _login_pair(self) -> Sip2Settings:
        if (self.login_user is None) != (self.login_password_file is None):
            raise ValueError("login_user and login_password_file go together")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file needs tls: true")
        return self

    @property
    def request_command(self) -> str:
        """The request id for ``message``: 63 (patron information) or 23 (patron status)."""
        return PATRON_INFORMATION if self.message == "patron_information" else PATRON_STATUS


@dataclass(frozen=True, slots=True)
class Frame:
    """One answer with personal fields already dropped.

    ``fields`` holds only ``KEPT_FIELDS`` ids, in the order sent. ``checksum_ok`` is None when
    the answer carried no checksum; when False nothing but the command id is parsed.
    """

    command: str
    fixed: str
    fields: tuple[tuple[str, str], ...]
    sequence: int | None
    checksum_ok: bool | None

    def values(self, field_id: str) -> tuple[str, ...]:
        """Every value sent for ``field_id`` (a field may repeat, e.g. AF)."""
        return tuple(value for fid, value in self.fields if fid == field_id)


@dataclass(frozen=True, slots=True)
class PatronAnswer:
    """What a 24/64 answer says about a card: no field for anything personal exists here."""

    valid_patron: bool | None
    valid_password: bool | None
    flags: frozenset[PatronFlag]
    fee_amount: Decimal | None
    expiry: date | None
    had_screen_message: bool


@dataclass(frozen=True, slots=True)
class Sip2Verdict:
    """The decision about one card: the ILS's facts and, in ``denials``, why it may not log in.

    A missing BL or CQ counts as "no" (fail closed).
    """

    valid_patron: bool
    valid_password: bool
    flags: frozenset[PatronFlag]
    fee_amount: Decimal | None
    expiry: date | None
    had_screen_message: bool
    denials: frozenset[Denial]

    @property
    def allowed(self) -> bool:
        """True when nothing denies the login."""
        return not self.denials


def checksum(data: bytes) -> str:
    """The SIP2 checksum of ``data`` (from the first byte through ``AZ``): 4 hex digits.

    The two's complement of the low 16 bits of the byte sum, so that sum + checksum == 0.
    """
    return f"{-sum(data) & 0xFFFF:04X}"


def next_sequence(sequence: int) -> int:
    """The sequence number after ``sequence``: AY is one digit, 0-9, then wraps."""
    return (sequence + 1) % 10


def seal(body: bytes, *, sequence: int | None, with_checksum: bool) -> bytes:
    """``body`` with its error-detection trailer (when asked) and the terminator."""
    if not with_checksum:
        return body + TERMINATOR
    head = body + (f"AY{sequence}".encode("ascii") if sequence is not None else b"") + b"AZ"
    return head + checksum(head).encode("ascii") + TERMINATOR


def sip_datetime(now: datetime) -> str:
    """SIP2's 18-character date: YYYYMMDD, 4 spaces (local time zone), HHMMSS."""
    return f"{now:%Y%m%d}    {now:%H%M%S}"


def encode_field(field_id: str, value: str, encoding: str) -> bytes:
    """``field_id + value + '|'`` in ``encoding``; refuses values that would break framing."""
    try:
        data = value.encode(encoding)
    except UnicodeEncodeError:
        raise UnsendableField(field_id) from None
    if len(data) > MAX_FIELD_BYTES or any(b < 0x20 or b == 0x7C for b in data):
        raise UnsendableField(field_id)
    return field_id.encode("ascii") + data + DELIMITER


def build_login(user: str, password: str, location: str, *, encoding: str) -> bytes:
    """A 93 Login body: plain-text user id and password algorithms ('0'), CN, CO, CP."""
    return (
        b"9300"
        + encode_field("CN", user, encoding)
        + encode_field("CO", password, encoding)
        + encode_field("CP", location, encoding)
    )


def build_patron_request(
    command: str,
    *,
    institution: str,
    card: str,
    pin: str,
    terminal_password: str,
    now: datetime,
    encoding: str,
) -> bytes:
    """A 63 Patron Information or 23 Patron Status body asking about ``card`` with ``pin``.

    Language 000 (unknown); 63 asks for no item lists (summary all blank).
    """
    if command not in (PATRON_INFORMATION, PATRON_STATUS):
        raise ValueError(f"not a patron request: {command}")
    summary = " " * 10 if command == PATRON_INFORMATION else ""
    fixed = f"{command}000{sip_datetime(now)}{summary}".encode("ascii")
    return (
        fixed
        + encode_field("AO", institution, encoding)
        + encode_field("AA", card, encoding)
        + encode_field("AC", terminal_password, encoding)
        + encode_field("AD", pin, encoding)
    )


def parse_frame(raw: bytes, *, encoding: str, verify: bool = True) -> Frame:
    """One answer → ``Frame``, keeping only ``KEPT_FIELDS`` (decoded leniently).

    With ``verify`` False a checksum is stripped but not checked (``checksum_ok`` is None).
    """
    raw = raw.lstrip(_LEADING_JUNK).rstrip(b"\r\n")
    body, sequence, checksum_ok = _split_trailer(raw)
    if not verify:
        checksum_ok = None
    command = body[:2].decode("ascii", errors="replace")
    if checksum_ok is False:
        return Frame(command, "", (), sequence, False)
    if not command.isdigit() or len(command) != 2:
        raise Sip2FrameError("not a SIP2 message")
    width = FIXED_LENGTH.get(command)
    if width is None:
        raise Sip2FrameError(f"unexpected message {command}")
    if len(body) < 2 + width:
        raise Sip2FrameError(f"message {command}: fixed part too short")
    try:
        fixed = body[2 : 2 + width].decode("ascii")
    except UnicodeDecodeError:
        raise Sip2FrameError(f"message {command}: fixed part is not ASCII") from None
    fields = _kept_fields(body[2 + width :], encoding)
    return Frame(command, fixed, fields, sequence, checksum_ok)


def _split_trailer(raw: bytes) -> tuple[bytes, int | None, bool | None]:
    """(body, AY, checksum verdict) — (raw, None, None) when no AZ trailer was sent."""
    match = _TRAILER.search(raw)
    if match is None:
        return raw, None, None
    az_end = match.start("sum")
    ok = (sum(raw[:az_end]) + int(match["sum"], 16)) & 0xFFFF == 0
    sequence = int(match["seq"]) if match["seq"] is not None else None
    return raw[: match.start()], sequence, ok


def _kept_fields(variable: bytes, encoding: str) -> tuple[tuple[str, str], ...]:
    kept: list[tuple[str, str]] = []
    for piece in variable.split(DELIMITER):
        field_id = piece[:2].decode("ascii", errors="replace")
        if field_id in KEPT_FIELDS:
            kept.append((field_id, piece[2:].decode(encoding, errors="replace")))
    return tuple(kept)


def react(frame: Frame, *, expected: str, sequence: int | None, mode: ChecksumMode) -> Reaction:
    """What to do with ``frame``, the answer to a request expecting ``expected``.

    A 96 → resend ours; a bad checksum (unless ``off``) → ask for a resend (97). ``on`` refuses
    an answer without a checksum; a wrong message or a wrong sequence number (an answer meant
    for an earlier request) raises ``Sip2FrameError``.
    """
    if frame.checksum_ok is False and mode != "off":
        return "ask_resend"
    if frame.command == REQUEST_SC_RESEND:
        return "resend_ours"
    if frame.checksum_ok is None and mode == "on":
        raise Sip2FrameError("answer without a checksum")
    if frame.command != expected:
        raise Sip2FrameError(f"expected message {expected}, got {frame.command}")
    if sequence is not None and frame.sequence is not None and frame.sequence != sequence:
        raise Sip2FrameError("answer carries another request's sequence number")
    return "accept"


def login_accepted(frame: Frame) -> bool:
    """A 94 Login Response says ok ('1')."""
    return frame.command == LOGIN_RESPONSE and frame.fixed == "1"


def parse_patron_answer(frame: Frame) -> PatronAnswer:
    """A 24/64 frame → ``PatronAnswer`` (flags from the 14-character patron status)."""
    if frame.command not in (PATRON_STATUS_RESPONSE, PATRON_INFORMATION_RESPONSE):
        raise Sip2FrameError(f"not a patron answer: {frame.command}")
    status = frame.fixed[:14]
    flags = frozenset(flag for flag, c in zip(PATRON_FLAGS, status, strict=True) if c in "Yy")
    return PatronAnswer(
        valid_patron=_yes_no(frame.values("BL")),
        valid_password=_yes_no(frame.values("CQ")),
        flags=flags,
        fee_amount=parse_amount(_first(frame.values("BV"))),
        expiry=parse_expiry(_first(frame.values("PA"))),
        had_screen_message=any(v.strip() for v in frame.values("AF") + frame.values("AG")),
    )


def _first(values: tuple[str, ...]) -> str | None:
    return values[0] if values else None


def _yes_no(values: tuple[str, ...]) -> bool | None:
    answer = _first(values)
    if answer is None or not answer.strip():
        return None
    return answer.strip()[:1] in "Yy"


def parse_amount(value: str | None) -> Decimal | None:
    """BV '12.50', ' $3,00', '-1.25' → Decimal; absent or unreadable → None."""
    if value is None:
        return None
    match = _AMOUNT.search(value)
    if match is None:
        return None
    try:
        return Decimal(match[0].replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def parse_expiry(value: str | None) -> date | None:
    """PA 'YYYYMMDD', 'YYYYMMDD    HHMMSS' or 'YYYY-MM-DD' → date; anything else → None."""
    match = _EXPIRY_DIGITS.match(value or "")
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def judge(answer: PatronAnswer, settings: Sip2Settings, *, today: date) -> Sip2Verdict:
    """Apply ``deny_if`` and ``max_fines`` to ``answer``; a wrong PIN always denies."""
    denials: set[Denial] = {flag for flag in answer.flags if flag in settings.deny_if}
    if answer.valid_patron is not True and "invalid_patron" in settings.deny_if:
        denials.add("invalid_patron")
    if answer.valid_password is not True:
        denials.add("invalid_password")
    if answer.expiry is not None and answer.expiry < today and "expired" in settings.deny_if:
        denials.add("expired")
    limit, fee = settings.max_fines, answer.fee_amount
    if limit is not None and fee is not None and fee > limit:
        denials.add("fines_over_limit")
    return Sip2Verdict(
        valid_patron=answer.valid_patron is True,
        valid_password=answer.valid_password is True,
        flags=answer.flags,
        fee_amount=answer.fee_amount,
        expiry=answer.expiry,
        had_screen_message=answer.had_screen_message,
        denials=frozenset(denials),
    )
