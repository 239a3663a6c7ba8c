"""EZproxy config.txt lines → directive records with file:line; findings for reports.

Contract: pure. ``read_config(data, file)`` decodes bytes leniently (UTF-8, else the line is
read as Windows-1252 and reported) and returns one ``Directive`` per non-blank,
non-comment line, with its canonical name (``HJ`` → ``HostJavaScript``, ``DbVar3`` →
``DbVar``, case-insensitive), the text as written and its ``Where``. ``Finding`` is the one
report record every step returns. ``DIRECTIVES`` is the table of every directive we know:
where it belongs in a config (see stanzas.py), its short forms and, when it is never
imported, why. Not here: stanzas and context (stanzas.py), meanings (translate.py).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Final, Literal

from proxy.core.hostmap import HostMapError, Origin, hostname_problem

Kind = Literal[
    "unimportable",
    "conflict",
    "merged",
    "dropped",
    "warning",
    "refused",
    "not_imported",
    "network",
    "note",
]
# start: opens a stanza; body: only inside a stanza, after its Title; leading: belongs to the
# stanza it precedes (or sits in); context: changes what following stanzas get; server: an
# EZproxy server setting; include: IncludeFile.
Placement = Literal["start", "body", "leading", "context", "server", "include"]

KIND_LABELS: Final[dict[Kind, str]] = {
    "unimportable": "not importable",
    "conflict": "conflict",
    "merged": "merged",
    "dropped": "dropped",
    "warning": "warning",
    "refused": "refused (privacy)",
    "not_imported": "not imported",
    "network": "network rule for proxy.yaml",
    "note": "note",
}


@dataclass(frozen=True, slots=True, order=True)
class Where:
    """A line of a config file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the summary reports: ``not imported: AnonymousURL +… at f.txt:3 (why)``."""

    kind: Kind
    where: Where | None
    subject: str  # the directive as written (redacted), a host, or a title
    why: str

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        subject = f" {self.subject}" if self.subject else ""
        return f"{KIND_LABELS[self.kind]}:{subject}{at} ({self.why})"


@dataclass(frozen=True, slots=True)
class Spec:
    """What we know about one directive."""

    placement: Placement
    aliases: tuple[str, ...] = ()
    why: str = ""  # why it is never imported; "" when translate.py maps it
    secret: bool = False  # its arguments may hold secrets: never copied into reports


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SSO_WHY = "a vendor single sign-on integration with a shared secret; configure it by hand"
FORM_WHY = "EZproxy's login forms with shared credentials are not supported"
USAGE_LIMIT_WHY = (  # #18.7: EZproxy counts per user per -interval; only logs without -enforce
    "not translated: EZproxy UsageLimit windows and -enforce do not map one-to-one; set the"
    " rule's limits (requests, megabytes, downloads) or proxy.yaml limits.* by hand"
)
SERVER_WHY = "an EZproxy server setting, not part of a vendor rule; see proxy.yaml"
# EZproxy server settings with a counterpart in proxy.yaml (docs/configuration.md).
SERVER_KEYS: Final[dict[str, str]] = {
    "IntruderIPAttempts": "throttle.ip_attempts",
    "IntruderUserAttempts": "throttle.card_attempts",
    "Name": "public_url",
    "LoginPort": "listen.port and public_url",
    "LoginPortSSL": "listen.port and public_url",
    "RemoteIPHeader": "trusted_proxies",
    "RemoteIPTrustedProxy": "trusted_proxies",
    "LogFormat": "log_format (logs never hold patrons or vendor URLs)",
    "LogFile": "log_format (logs never hold patrons or vendor URLs)",
}

DIRECTIVES: Final[dict[str, Spec]] = {
    # Stanza content (translate.py maps each one without a `why`; docs/moving-from-ezproxy.md).
    "Title": Spec("start", ("T",)),
    "URL": Spec("body", ("U",)),
    "Host": Spec("body", ("H",)),
    "HostJavaScript": Spec("body", ("HJ",)),
    "Domain": Spec("body", ("D",)),
    "DomainJavaScript": Spec("body", ("DJ",)),
    "Find": Spec("body"),
    "Replace": Spec("body"),
    "NeverProxy": Spec("body"),
    "HTTPHeader": Spec("leading"),
    "MimeFilter": Spec("leading"),
    "HTTPMethod": Spec("leading"),
    "AnonymousURL": Spec("leading"),
    "ProxyHostnameEdit": Spec("leading", ("PHE",)),
    "Cookie": Spec(
        "leading", why="rules cannot seed vendor cookies; the server-side jar keeps the rest"
    ),
    "AddUserHeader": Spec("leading"),
    "DbVar": Spec("leading", why="EZproxy database variables have no equivalent"),
    # Position-dependent context (stanzas.py).
    "Group": Spec("context"),
    "Option": Spec("context"),
    "AutoLoginIP": Spec("context", ("A",)),
    "ExcludeIP": Spec("context", ("E",)),
    "IncludeIP": Spec("context", ("I",)),
    "RejectIP": Spec("context"),
    "IncludeFile": Spec("include"),
    # Stanza-level directives with no equivalent in a vendor rule.
    "Description": Spec("leading", why="the portal shows the rule's title only"),
    "Referer": Spec("leading", why="the relay never sends a Referer naming the proxy"),
    "ByteServe": Spec("leading", why="the relay passes Range requests through already"),
    "RedirectSafe": Spec("leading", why="redirects to unproxied hosts are left unrewritten"),
    "CookieFilter": Spec("leading", why="cookies stay in the server-side jar"),
    "BinaryTimeout": Spec("leading", why="set the rule's `timeouts` by hand if needed"),
    "ClientTimeout": Spec("leading", why="set the rule's `timeouts` by hand if needed"),
    "RemoteTimeout": Spec("leading", why="set the rule's `timeouts` by hand if needed"),
    "MetaFind": Spec("leading", why="EZproxy MetaFind searching is not supported"),
    "AllowVars": Spec("leading", why="URL variables for EZproxy scripting are not supported"),
    "EncryptVar": Spec("leading", why=SSO_WHY, secret=True),
    "EBLSecret": Spec("leading", why=SSO_WHY, secret=True),
    "ebrarySite": Spec("leading", why=SSO_WHY),
    "Books24x7Site": Spec("leading", why=SSO_WHY),
    "OverDriveSite": Spec("leading", why=SSO_WHY, secret=True),
    "Gartner": Spec("leading", why=SSO_WHY, secret=True),
    "SSO": Spec("leading", why=SSO_WHY, secret=True),
    "TokenKey": Spec("leading", why=SSO_WHY, secret=True),
    "TokenSignatureKey": Spec("leading", why=SSO_WHY, secret=True),
    "FormVariable": Spec("body", why=FORM_WHY, secret=True),
    "FormSelect": Spec("body", why=FORM_WHY, secret=True),
    "FormSubmit": Spec("body", why=FORM_WHY),
    "URLAppendEncoded": Spec("body", why="use a plain URL line"),
    "URLRedirect": Spec("body", why="use a plain URL line"),
    "URLRedirectAppend": Spec("body", why="use a plain URL line"),
    "URLRedirectAppendEncoded": Spec("body", why="use a plain URL line"),
    "UsageLimit": Spec("leading", why=USAGE_LIMIT_WHY),
    # EZproxy server settings (the summary lists them; proxy.yaml covers what we support).
    **{
        name: Spec(
            "server",
            why=f"an EZproxy server setting; in proxy.yaml see {SERVER_KEYS[name]}"
            if name in SERVER_KEYS
            else SERVER_WHY,
            secret=name in {"SSOUsername", "IntrusionAPI"},
        )
        for name in _words(
            "AllowIP Audit AuditPurge AutoLoginIPBanner CASServiceURL ChargeSetLatency Charset "
            "ConnectWindow DenyIfRequestHeader DNS ExcludeIPBanner ExtraLoginCookie FirstPort "
            "HAName HAPeer Identifier Interface IntruderIPAttempts IntruderLog "
            "IntruderUserAttempts IntrusionAPI LBPeer Location LogFile LogFilter LogFormat "
            "LoginCookieDomain LoginCookieName LoginMenu LoginPort LoginPortSSL LogSPU "
            "MessagesFile Name PDFRefresh PDFRefreshPost PDFRefreshPre PidFile Proxy ProxySSL "
            "RADIUSRetry RemoteIPHeader RemoteIPInternalProxy RemoteIPTrustedProxy RunAs "
            "ShibbolethDisable ShibbolethMetadata SkipPort SPUEdit SPUEditVar SQLiteTempDir "
            "SSLCipherSuite SSLHonorCipherOrder SSLOpenSSLConfCmd SSOUsername UMask Validate "
            "XDebug"
        )
    },
    "MaxConcurrentTransfers": Spec("server", ("MC",), why=SERVER_WHY),
    "MaxLifetime": Spec("server", ("ML",), why=f"{SERVER_WHY}: sessions.idle_minutes"),
    "MaxSessions": Spec("server", ("MS",), why=SERVER_WHY),
    "MaxVirtualHosts": Spec("server", ("MV",), why=SERVER_WHY),
}

# Every spelling (lower-cased) → canonical name.
_NAMES: Final[dict[str, str]] = {
    alias.lower(): name for name, spec in DIRECTIVES.items() for alias in (name, *spec.aliases)
}
_DBVAR: Final = re.compile(r"dbvar[0-9]", re.IGNORECASE)  # DbVar0 … DbVar9

# The Option names EZproxy documents, in their canonical spelling.
OPTIONS: Final[dict[str, str]] = {
    name.lower(): name
    for name in _words(
        "AcceptX-Forwarded-For AllowSendGZip AllowWebSubdirectories AnyDNSHostname "
        "BlockCountryChange Cookie CookiePassThrough CSRFToken DisableSSL40bit DisableSSL56bit "
        "DisableSSLv2 DomainCookieOnly ebraryUnencodedTokens ExcludeIPMenu ForceHTTPSAdmin "
        "ForceHTTPSLogin ForceWildcardCertificate HideEZproxy HttpsHyphens "
        "IgnoreWildcardCertificate IPv6 LoginReplaceGroups LogReferer LogSAML LogSession "
        "LogSPUEdit LogUser MenuByGroups MetaEZproxyRewriting NoCookie NoHideEZproxy "
        "NoHttpsHyphens NoMetaEZproxyRewriting NoProxyFTP NoRedirectPatch NoUTF16 "
        "NoX-Forwarded-For ProxyByHostname ProxyFTP RecordPeaks RedirectUnknown "
        "RefererInHostname RelaxedRADIUS RequireAuthenticate SafariCookiePatch StatusUser "
        "TicketIgnoreExcludeIP UnsafeRedirectUnknown UsernameCaretN UTF16 X-Forwarded-For"
    )
}
THREATENING_DOMAINS_OPTION: Final = (
    "I choose to use Domain lines that threaten the security of my network"
)
OPTIONS[THREATENING_DOMAINS_OPTION.lower()] = THREATENING_DOMAINS_OPTION

MAX_SHOWN: Final = 120  # characters of a directive's arguments quoted in reports
# Query parameters and userinfo that may carry credentials (EZproxy's URL -Redirect and
# -Form lines exist to hide such URLs from patrons): never quoted in reports.
_CREDENTIAL_PARAM: Final = re.compile(
    r"(?i)\b(user(?:name)?|uid|login|pass(?:word)?|pwd|pw|secret|token|key|auth|sig)=[^&\s]*"
)
_USERINFO: Final = re.compile(r"(?i)(://)[^/@\s]+@")


@dataclass(frozen=True, slots=True)
class Directive:
    """One config line: ``name`` is canonical (or as written when unknown)."""

    name: str
    written: str
    args: str
    where: Where
    known: bool = True

    @property
    def spec(self) -> Spec | None:
        return DIRECTIVES.get(self.name)

    @property
    def shown(self) -> str:
        """The line as written, cut short, with secret arguments redacted."""
        spec = self.spec
        if spec is not None and spec.secret and self.args:
            return f"{self.written} <redacted>"
        return f"{self.written} {redact(self.args)}".rstrip()


def redact(text: str) -> str:
    """``text`` cut short, with credential-like URL parts replaced by ``<redacted>``."""
    text = _USERINFO.sub(r"\1<redacted>@", _CREDENTIAL_PARAM.sub(r"\1=<redacted>", text))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def canonical_name(written: str) -> str | None:
    """The canonical directive name for a spelling, or None if unknown."""
    if _DBVAR.fullmatch(written):
        return "DbVar"
    return _NAMES.get(written.lower())


def suggest(written: str) -> str | None:
    """The known directive a misspelled name most likely meant (``Ttitle`` → ``Title``)."""
    close = difflib.get_close_matches(written.lower(), list(_NAMES), n=1, cutoff=0.8)
    return _NAMES[close[0]] if close else None


def decode_config(data: bytes, file: str) -> tuple[str, list[Finding]]:
    """Bytes → text; lines that are not UTF-8 are read as Windows-1252 and reported."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines, findings = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
            lines.append(text)
            snippet = text.strip()[:60]
            why = f"not UTF-8; read as Windows-1252: {snippet!r}"
            findings.append(Finding("warning", Where(file, number), "text", why))
    return "\n".join(lines), findings


def tokenize(text: str, file: str) -> list[Directive]:
    """One directive per line that is neither blank nor a ``#`` comment (CRLF or LF)."""
    out = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): \x0c, \x85…
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(parse_line(stripped, Where(file, number)))
    return out


def parse_line(stripped: str, where: Where) -> Directive:
    """Split a non-blank line into its directive name and arguments."""
    parts = stripped.split(None, 1)  # None: any whitespace, including a stray NBSP
    written, args = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    name = canonical_name(written)
    if name is None:
        return Directive(written, written, args, where, known=False)
    if name == "Option":
        args = OPTIONS.get(args.lower(), args)
    return Directive(name, written, args, where)


def read_config(data: bytes, file: str) -> tuple[list[Directive], list[Finding]]:
    """Decode and tokenize one file."""
    text, findings = decode_config(data, file)
    return tokenize(text, file), findings


# --- why the parts that do not map are not imported (translate.py) ------------------------
URL_QUALIFIER_WHY: Final[dict[str, str]] = {
    "-redirect": "EZproxy sent patrons to this URL unproxied; clamshell proxies it",
    "-refresh": "EZproxy sent patrons to this URL unproxied; clamshell proxies it",
    "-append": "query additions from /login/LABEL/… links are not supported",
    "-encoded": "query additions from /login/LABEL/… links are not supported",
    "-form": "EZproxy built a login form (FormVariable lines); not supported",
    "-rewritehost": "",  # "proxy the URL": what clamshell does anyway
}


ESCAPE_WHY: Final[dict[str, str]] = {
    "a": "^A (leave the next URL unproxied) has no equivalent: every URL of a proxied host "
    "is mapped",
    "d": "^D (the proxy's domain) has no literal equivalent: a rule does not name the proxy",
    "h": "^H (the proxy's hostname) has no literal equivalent: a rule does not name the proxy",
    "l": "^L (the proxy's domain) has no literal equivalent: a rule does not name the proxy",
}


HEADER_WHY: Final[dict[str, str]] = {
    "response": "the relay applies its own response-header policy (Location, CORS, CSP… "
    "are rewritten, framing headers kept)",
    "server": "a header on EZproxy's own pages, not a vendor setting",
    "block": "not needed: request headers outside the allow-list are never sent",
    "unrewrite": "no equivalent: headers.allow passes the value as the browser sent it",
    "inject": "no equivalent: headers.set takes fixed values, not EZproxy expressions",
    "edit": "no equivalent: headers.set takes fixed values, not EZproxy expressions",
}

# --- argument syntax: hosts, domains, HTTPHeader qualifiers ----------------------------------
LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})  # never a vendor (P6)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A host or domain argument: the value (None when unusable), warnings, the problem."""

    value: str | None
    warnings: tuple[str, ...] = ()
    problem: str = ""


def parse_host(text: str) -> tuple[Origin | None, tuple[str, ...], str]:
    """``Host``/``HJ`` argument → origin; trailing slashes and paths are warned and cut."""
    cleaned = _clean_location(text)
    if cleaned.problem or cleaned.value is None:
        return None, cleaned.warnings, cleaned.problem
    try:
        origin = Origin.parse(cleaned.value)
    except HostMapError as exc:
        return None, cleaned.warnings, f"{exc}; dropped"
    if _is_local(origin.host):
        return None, cleaned.warnings, f"{origin.host!r} is a local name; dropped"
    return origin, cleaned.warnings, ""


def parse_domain(text: str) -> Parsed:
    """``Domain``/``DJ``/``NeverProxy`` argument → a lower-case domain (``*.`` is dropped)."""
    cleaned = _clean_location(text)
    if cleaned.problem or cleaned.value is None:
        return cleaned
    name, warnings = cleaned.value.lower(), cleaned.warnings
    scheme, sep, rest = name.partition("://")
    if sep:
        name = rest
        warnings += (f"scheme {scheme}:// ignored: a domain covers every scheme",)
    name = name.removeprefix("*.").removeprefix(".")
    problem = _domain_problem(name)
    return Parsed(None if problem else name, warnings, f"{problem}; dropped" if problem else "")


def _domain_problem(name: str) -> str:
    if name and "." not in name and name.isalnum():
        return f"{name!r} is a top-level domain, far too wide"
    if _is_local(name):
        return f"{name!r} is a local name"
    return hostname_problem(name) or ""


def _clean_location(text: str) -> Parsed:
    """Cut what EZproxy ignores after a host (path, fragment, slashes); refuse templates."""
    value = text.strip()
    if not value or len(value.split()) > 1:
        return Parsed(None, (), "expected one host or domain")
    if "{" in value or "[" in value or "*" in value.removeprefix("*."):
        return Parsed(None, (), "a template placeholder or wildcard, not a hostname; dropped")
    warnings: tuple[str, ...] = ()
    if value.endswith("/"):
        value = value.rstrip("/")
        warnings += ("trailing slash removed",)
    scheme, sep, rest = value.rpartition("://")
    authority, slash, path = rest.partition("/")
    authority, _, fragment = authority.partition("#")
    if slash or fragment:
        cut = ("/" + path if slash else "") or "#" + fragment
        warnings += (f"{cut!r} ignored: EZproxy matches hosts, not paths",)
    return Parsed(f"{scheme}{sep}{authority}", warnings)


def _is_local(name: str) -> bool:
    return name in LOCAL_NAMES or name.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class HeaderArgs:
    """``HTTPHeader [-global] [-request|-response|-server] [-process|-block…] name [expr]``."""

    qualifiers: frozenset[str]
    name: str
    expression: str


def parse_http_header(args: str) -> HeaderArgs:
    """Split qualifiers (``-request``; a mistyped ``=request`` too) from the header name."""
    tokens = args.split()
    quals = []
    while tokens and tokens[0][:1] in "-=" and len(tokens[0]) > 1:
        quals.append(tokens.pop(0).lstrip("-=").lower())
    name = tokens.pop(0) if tokens else ""
    return HeaderArgs(frozenset(quals), name, " ".join(tokens))
