"""Directives → database stanzas, each with the position-dependent context it was defined in.

Contract: pure. ``group_stanzas(directives)`` returns every stanza (a ``Title`` and the
directives that belong to it, in file order) and the findings that belong to no stanza.
EZproxy reads config.txt top to bottom, so position matters:
- A stanza starts at ``Title``. Body directives (URL, Host, Find…) join the open stanza.
- Leading directives (AnonymousURL, HTTPMethod, Cookie, ProxyHostnameEdit…) usually sit just
  before the ``Title`` they are for: they join the next stanza when only leading or context
  lines separate them from its ``Title``, else the stanza they sit in.
- ``Group`` and ``Option`` lines are state: they apply to every following stanza until
  changed (``Option Cookie`` resets the cookie options, ``Option NoX-Forwarded-For`` the
  forwarded-for one). A stanza keeps the state in effect at its ``Title``.
- ``AutoLoginIP``/``ExcludeIP``/``IncludeIP``/``RejectIP`` become network findings for
  proxy.yaml; ``Option X-Forwarded-For`` is refused (DESIGN P1: the patron's address never
  leaves). Server settings are listed, never silently dropped.
Not here: what a stanza's directives mean (translate.py), IncludeFile (importer.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from proxy.ezproxy.directives import Directive, Finding, Placement, Where, suggest

Libraries = tuple[str, ...] | Literal["all"]
CookieMode = Literal["Cookie", "DomainCookieOnly", "NoCookie", "CookiePassThrough"]

XFF_WHY = (
    "privacy: it would send the patron's IP address to the vendor; clamshell never does "
    "(DESIGN P1) — vendors see the library's address only"
)


@dataclass(frozen=True, slots=True)
class Context:
    """The Group and Option state in effect at a stanza's Title."""

    group: str | None = None  # None: EZproxy's implicit "Default" group
    group_where: Where | None = None
    cookies: CookieMode = "Cookie"
    cookies_where: Where | None = None
    forwarded_for: Where | None = None  # the Option X-Forwarded-For line in effect


@dataclass(frozen=True, slots=True)
class Stanza:
    """One database definition: its Title line and the directives that belong to it."""

    title: Directive
    directives: tuple[Directive, ...]
    context: Context


@dataclass(frozen=True, slots=True)
class Grouping:
    """Every stanza, and the findings that belong to no stanza."""

    stanzas: tuple[Stanza, ...]
    findings: tuple[Finding, ...]


# Option name → the cookie mode it selects (Option Cookie resets to EZproxy's default).
COOKIE_OPTIONS: Final[dict[str, CookieMode]] = {
    "Cookie": "Cookie",
    "DomainCookieOnly": "DomainCookieOnly",
    "NoCookie": "NoCookie",
    "CookiePassThrough": "CookiePassThrough",
}
# Options with no per-vendor meaning here, and why.
OPTION_WHY: Final[dict[str, str]] = {
    "AcceptX-Forwarded-For": "set `trusted_proxies` in proxy.yaml instead",
    "AllowSendGZip": "the relay passes the vendor's compression through already",
    "HttpsHyphens": "our host mapping always uses the hyphenated form",
    "NoHttpsHyphens": "our host mapping always uses the hyphenated form",
    "ProxyByHostname": "clamshell always proxies by hostname",
    "MetaEZproxyRewriting": "no equivalent; the rewriter handles <meta> refresh URLs",
    "NoMetaEZproxyRewriting": "no equivalent; the rewriter handles <meta> refresh URLs",
    "HideEZproxy": "clamshell never announces itself to vendors",
    "NoHideEZproxy": "clamshell never announces itself to vendors",
    "UTF16": "no equivalent; the rewriter decodes by the declared charset",
    "NoUTF16": "no equivalent; the rewriter decodes by the declared charset",
    "ebraryUnencodedTokens": "ebrary token links are not supported",
    "I choose to use Domain lines that threaten the security of my network": (
        "refused: public-suffix Domain lines are always rejected here"
    ),
}
NETWORK_WHY: Final[dict[str, str]] = {
    "AutoLoginIP": "add to `auto_login_networks` of the member library in proxy.yaml",
    "ExcludeIP": (
        "EZproxy sent these addresses to the vendor unproxied; clamshell has no such bypass "
        "(patrons there log in too, or list the range under `auto_login_networks`)"
    ),
    "IncludeIP": "re-included addresses excluded by ExcludeIP; no equivalent needed",
    "RejectIP": "no equivalent in proxy.yaml: block these addresses at the firewall",
}


@dataclass(slots=True)
class _Open:
    title: Directive
    context: Context
    directives: list[Directive] = field(default_factory=list)
    files: set[str] = field(default_factory=set)  # files its lines came from

    def __post_init__(self) -> None:
        self.files.add(self.title.where.file)


@dataclass(slots=True)
class _Grouper:
    """The reading state: context, the open stanza, leading lines waiting for a Title."""

    context: Context = Context()
    current: _Open | None = None
    pending: list[Directive] = field(default_factory=list)
    stanzas: list[Stanza] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def start(self, d: Directive) -> None:
        self._close()
        self.current = _Open(d, self.context, self.pending)
        self.pending = []

    def body(self, d: Directive) -> None:
        if self.current is None:
            self._orphan(d, "outside any stanza: no Title line before it")
            return
        self._note_other_file(self.current, d)
        self.current.directives += self.pending
        self.pending = []
        self.current.directives.append(d)

    def leading(self, d: Directive) -> None:
        self.pending.append(d)

    def context_line(self, d: Directive) -> None:
        CONTEXT_HANDLERS[d.name](self, d)

    def server(self, d: Directive) -> None:
        why = d.spec.why if d.spec else ""
        self.findings.append(Finding("not_imported", d.where, d.shown, why))

    def include(self, d: Directive) -> None:
        self.findings.append(
            Finding("not_imported", d.where, d.shown, "IncludeFile was not followed")
        )

    def finish(self) -> Grouping:
        if self.current is not None:
            self.current.directives += self.pending
        else:
            for d in self.pending:
                self._orphan(d, "no database stanza (Title line) follows it")
        self.pending = []
        self._close()
        return Grouping(tuple(self.stanzas), tuple(self.findings))

    def _close(self) -> None:
        if self.current is not None:
            c = self.current
            self.stanzas.append(Stanza(c.title, tuple(c.directives), c.context))
        self.current = None

    def _note_other_file(self, c: _Open, d: Directive) -> None:
        """Body lines from another file than the Title's: an include without its own Title."""
        if d.where.file in c.files:
            return
        c.files.add(d.where.file)
        why = (
            f"no Title line in {d.where.file} before it: read as part of the stanza "
            f"{c.title.args!r} at {c.title.where}, as EZproxy would"
        )
        self.findings.append(Finding("warning", d.where, d.shown, why))

    def _orphan(self, d: Directive, why: str) -> None:
        self.findings.append(Finding("not_imported", d.where, d.shown, why))


def _group(g: _Grouper, d: Directive) -> None:
    g.context = replace(g.context, group=d.args or None, group_where=d.where)


def _option(g: _Grouper, d: Directive) -> None:
    name = d.args
    if name in COOKIE_OPTIONS:
        g.context = replace(g.context, cookies=COOKIE_OPTIONS[name], cookies_where=d.where)
    elif name == "X-Forwarded-For":
        g.context = replace(g.context, forwarded_for=d.where)
        g.findings.append(Finding("refused", d.where, d.shown, XFF_WHY))
    elif name == "NoX-Forwarded-For":
        g.context = replace(g.context, forwarded_for=None)
    else:
        why = OPTION_WHY.get(name, "no equivalent option in clamshell")
        g.findings.append(Finding("not_imported", d.where, d.shown, why))


def _network(g: _Grouper, d: Directive) -> None:
    group = f"; it followed Group {g.context.group}" if g.context.group else ""
    g.findings.append(Finding("network", d.where, d.shown, network_advice(d) + group))


CONTEXT_HANDLERS: Final[dict[str, Callable[[_Grouper, Directive], None]]] = {
    "Group": _group,  # licensing: → libraries (translate.py, via the group mapping)
    "Option": _option,  # cookie and forwarded-for state; the rest reported
    "AutoLoginIP": _network,  # → proxy.yaml libraries[].auto_login_networks
    "ExcludeIP": _network,  # no bypass here: reported
    "IncludeIP": _network,
    "RejectIP": _network,
}


def network_advice(d: Directive) -> str:
    """What to do in proxy.yaml about an IP rule, with the range as CIDR networks."""
    nets = ip_networks(d.args)
    shown = ", ".join(nets) if nets else "the range could not be read; copy it by hand"
    return f"{NETWORK_WHY[d.name]}: {shown}"


def ip_networks(text: str) -> list[str]:
    """``1.2.3.0-1.2.3.255`` → ``['1.2.3.0/24']``; a single address or CIDR as-is; [] if bad."""
    first, dash, last = "".join(text.split()).partition("-")
    try:
        if not dash:
            return [str(ipaddress.ip_network(first, strict=False))]
        start, end = ipaddress.ip_address(first), ipaddress.ip_address(last)
        if start.version != end.version:
            return []
        return [str(n) for n in ipaddress.summarize_address_range(start, end)]
    except (ValueError, TypeError):
        return []


def placement_of(d: Directive) -> Placement:
    """Where a directive belongs; unknown lines travel like leading ones (with their stanza)."""
    if d.spec is None:
        return "leading"
    if d.name == "AnonymousURL" and d.args.strip() == "-*":
        return "body"  # the closer at the end of a stanza
    return d.spec.placement


_STEPS: Final[dict[Placement, Callable[[_Grouper, Directive], None]]] = {
    "start": _Grouper.start,
    "body": _Grouper.body,
    "leading": _Grouper.leading,
    "context": _Grouper.context_line,
    "server": _Grouper.server,
    "include": _Grouper.include,
}


def group_stanzas(directives: Iterable[Directive]) -> Grouping:
    """Group directives into stanzas, tracking Group/Option state in file order."""
    grouper = _Grouper()
    for d in directives:
        _STEPS[placement_of(d)](grouper, d)
    return grouper.finish()


def unknown_why(d: Directive) -> str:
    """Why an unknown directive is not imported, with a spelling suggestion if one fits."""
    guess = suggest(d.written)
    if guess is None:
        return "unknown directive"
    return f"unknown directive; did you mean {guess}?"


# --- what the context sets in a rule -------------------------------------------------------
COOKIE_WHY: Final[dict[CookieMode, str]] = {
    "DomainCookieOnly": "mapped to cookies: server_side (every vendor cookie stays in the "
    "session's server-side jar)",
    "NoCookie": "mapped to cookies: server_side (EZproxy dropped vendor cookies; here they "
    "stay in the session's server-side jar)",
}


def context_keys(
    ctx: Context, groups: Mapping[str, Libraries]
) -> tuple[dict[str, Any], list[Finding]]:
    """A stanza's ``libraries`` (via the group mapping) and ``cookies``, and their findings.

    ``groups`` maps lower-cased EZproxy group names to member library codes; stanzas before
    any Group line are in EZproxy's "Default" group.
    """
    findings = []
    libraries = groups.get((ctx.group or "Default").lower())
    if libraries is None:
        libraries = "all"
        if ctx.group is not None and ctx.group.lower() != "default":
            why = (
                f"not mapped to member libraries (use --group {ctx.group}=CODE or --groups "
                "FILE); licensed to all libraries"
            )
            findings.append(Finding("warning", ctx.group_where, f"Group {ctx.group}", why))
    if ctx.forwarded_for is not None:
        findings.append(Finding("refused", ctx.forwarded_for, "Option X-Forwarded-For", XFF_WHY))
    if ctx.cookies in COOKIE_WHY:
        subject = f"Option {ctx.cookies}"
        findings.append(
            Finding("not_imported", ctx.cookies_where, subject, COOKIE_WHY[ctx.cookies])
        )
    cookies = "pass" if ctx.cookies == "CookiePassThrough" else "server_side"
    return {"libraries": libraries, "cookies": cookies}, findings
