"""One EZproxy stanza → a plain dict in the vendor-rule shape, plus findings.

Contract: pure. ``translate(stanza, options)`` returns a ``Translation``: the rule as a dict
(every key but ``id``, which summary.py assigns across stanzas) or None when nothing
importable is left, and every finding about the stanza. Each directive has a handler in
``HANDLERS``; the others are reported with the reason from ``directives.DIRECTIVES`` (or as
unknown). Hosts and domains that fail our validation are dropped and reported. The proxy
serves one origin per host, so when a stanza lists ``http://`` and ``https://`` forms of a
host the https one is kept (and an http URL on that host follows it).
Not here: reading files (importer.py), ids and hosts claimed by two stanzas (summary.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from proxy.core.databases import matches_everything
from proxy.core.headers import RELAYED_METHODS
from proxy.core.hostmap import AliasRequired, HostMapError, Origin, encode_label
from proxy.core.rules import DEFAULT_REWRITE_TYPES, HEADER_NAME
from proxy.ezproxy.directives import (
    ESCAPE_WHY,
    HEADER_WHY,
    URL_QUALIFIER_WHY,
    Directive,
    Finding,
    Kind,
    Parsed,
    Where,
    parse_domain,
    parse_host,
    parse_http_header,
    redact,
)
from proxy.ezproxy.stanzas import Libraries, Stanza, context_keys, unknown_why


def _no_suffix(_: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Options:
    """What a translation needs from outside the stanza."""

    groups: Mapping[str, Libraries] = field(default_factory=dict)  # keys lower-cased
    is_public_suffix: Callable[[str], bool] = _no_suffix


@dataclass(frozen=True, slots=True)
class Translation:
    """A stanza's rule (without ``id``) or None, and what the summary says about it."""

    stanza: Stanza
    title: str
    rule: dict[str, Any] | None
    findings: tuple[Finding, ...]


@dataclass(slots=True)
class _Draft:
    """A rule being built from one stanza's directives."""

    title: str
    options: Options
    url: str | None = None
    origins: list[Origin] = field(default_factory=list)
    domains: dict[str, None] = field(default_factory=dict)  # ordered sets
    never: dict[str, None] = field(default_factory=dict)
    allow: dict[str, None] = field(default_factory=dict)
    content_types: dict[str, None] = field(default_factory=dict)
    find: Directive | None = None  # a Find waiting for its Replace
    find_replace: list[dict[str, str]] = field(default_factory=list)
    anonymous: list[tuple[Directive, dict[str, Any]]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def report(self, kind: Kind, d: Directive | None, why: str, subject: str = "") -> None:
        shown = subject or (d.shown if d is not None else "")
        self.findings.append(Finding(kind, d.where if d else None, shown, why))


Handler = Callable[[Directive, _Draft], None]


# --- URL ------------------------------------------------------------------------------------
def _url(d: Directive, draft: _Draft) -> None:
    if "{" in d.args or "[" in d.args:
        draft.report("not_imported", d, "a template placeholder: put your library's address in")
        return
    tokens = d.args.split()
    qualifiers = [t for t in tokens if t.startswith("-")]
    rest = [t for t in tokens if not t.startswith("-")]
    if len(rest) == 2 and rest[0].lower() in ("http://", "https://"):
        rest = [rest[0] + rest[1]]
        draft.report("warning", d, "a space inside the address removed")
    if len(rest) not in (1, 2):
        draft.report("not_imported", d, "expected 'URL address' or 'URL label address'")
        return
    for q in qualifiers:
        why = URL_QUALIFIER_WHY.get(q.lower().split("=")[0], "unknown URL qualifier")
        if why:
            draft.report("not_imported", d, f"{q}: {why}; the address itself is imported")
    if len(rest) == 2:
        why = f"EZproxy label {rest[0]!r} (/login/{rest[0]} links): no rule field for it yet"
        draft.report("note", d, why)
    _set_url(d, draft, rest[-1], hide_query=bool(qualifiers) or len(rest) == 2)


def _set_url(d: Directive, draft: _Draft, text: str, *, hide_query: bool) -> None:
    try:
        parts = urlsplit(text)
        origin = Origin.parse(urlunsplit(parts._replace(path="", query="", fragment="")))
    except ValueError as exc:  # HostMapError is a ValueError
        draft.report("not_imported", d, f"not an http(s) URL: {exc}")
        return
    if hide_query and parts.query:
        why = "query string left out: EZproxy hid this URL from patrons; it may hold credentials"
        draft.report("warning", d, why)
        parts = parts._replace(query="")
    if draft.url is not None:
        draft.report("note", d, "another URL line: its host is added; the first is the url")
    else:
        draft.url = urlunsplit(parts._replace(fragment=""))
    draft.origins.append(origin)


# --- hosts, domains, never_proxy -------------------------------------------------------------
# Registrable domains shared by many unrelated sites (clouds, CDNs, big platforms): a Domain
# line for one of them proxies all of those sites. True public suffixes are refused outright.
SHARED_DOMAINS: Final = frozenset(
    {
        "amazonaws.com", "cloudfront.net", "akamai.net", "akamaihd.net", "akamaized.net",
        "azureedge.net", "azurewebsites.net", "windows.net", "cloudflare.com", "cloudflare.net",
        "fastly.net", "googleapis.com", "googleusercontent.com", "gstatic.com", "google.com",
        "jsdelivr.net", "unpkg.com", "githubusercontent.com", "typekit.net", "youtube.com",
        "facebook.com", "twitter.com", "microsoft.com", "sharepoint.com", "apple.com",
    }
)  # fmt: skip


def _host(d: Directive, draft: _Draft) -> None:
    origin, warnings, problem = parse_host(d.args)
    _report_parsed(d, draft, warnings, problem)
    if origin is not None:
        draft.origins.append(origin)


def _domain(d: Directive, draft: _Draft) -> None:
    parsed = parse_domain(d.args)
    name = parsed.value
    if name is not None and draft.options.is_public_suffix(name):
        why = f"{name!r} is a public suffix: it would proxy every site under it; dropped"
        parsed, name = Parsed(None, parsed.warnings, why), None
    if name is not None and _shared(name):
        why = f"{name!r} is shared by many unrelated sites, all of which it would proxy"
        draft.report("warning", d, why + "; list the vendor's exact hosts instead")
    _report_parsed(d, draft, parsed.warnings, parsed.problem)
    if name is not None:
        draft.domains[name] = None


def _never_proxy(d: Directive, draft: _Draft) -> None:
    parsed = parse_domain(d.args)
    _report_parsed(d, draft, parsed.warnings, parsed.problem)
    if parsed.value is not None:
        draft.never[parsed.value] = None


def _shared(name: str) -> bool:
    return any(name == s or name.endswith("." + s) for s in SHARED_DOMAINS)


def _report_parsed(d: Directive, draft: _Draft, warnings: tuple[str, ...], problem: str) -> None:
    for why in warnings:
        draft.report("warning", d, why)
    if problem:
        draft.report("dropped", d, problem)


# --- Find / Replace ------------------------------------------------------------------------
# ^P host^ / ^S host^ (any case): the proxied name of host. Find/Replace runs before host
# rewriting, which maps a covered host in URLs, JS strings, JSON and %-encoded forms (issue 5),
# so writing the host itself gives the same result there.
_ESCAPE: Final = re.compile(r"\^([pPsS])([^^]*)\^|\^([a-zA-Z])")
_MAPPED_CONTEXT: Final = re.compile(r"(//|%2f%2f|\\/\\/|[\"'`])$", re.IGNORECASE)
_PROXY_NAME_IN_FIND: Final = re.compile(r"\^[dDhHlL]")
_RETURN_PARAM: Final = re.compile(r"([A-Za-z_][\w.-]*)=https?://$")  # redirect_uri=https://


def translate_replace(text: str) -> tuple[str, list[str], list[str]]:
    """Replace text with ``^Shost^``/``^Phost^`` made literal; problems; warnings."""
    out: list[str] = []
    problems: list[str] = []
    warnings: list[str] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        if m.group(1) is None:
            letter = m.group(3).lower()
            problems.append(ESCAPE_WHY.get(letter, f"unknown escape ^{m.group(3)}"))
        elif not m.group(2):
            problems.append(f"^{m.group(1)}^ names no host")
        else:
            if not _MAPPED_CONTEXT.search("".join(out)):
                warnings.append(f"check that host rewriting maps {m.group(2)} in this form")
            out.append(m.group(2))
    out.append(text[pos:])
    return "".join(out), problems, warnings


def translate_pair(find: str, replace: str) -> tuple[dict[str, str] | None, Kind, str]:
    """A Find/Replace pair → ``{find, replace}`` or None, with the finding's kind and why."""
    if not find.strip():
        return None, "not_imported", "a Find with no text"
    if _PROXY_NAME_IN_FIND.search(find):
        return None, "not_imported", "the Find text uses ^D/^H/^L, the proxy's own name"
    text, problems, warnings = translate_replace(replace)
    if problems:
        param = _RETURN_PARAM.search(find.strip())
        if param and "^A" in replace:
            problems.append(
                f"to hand the vendor its own URL back, add {param.group(1)!r} to "
                "rewrite.request_params"
            )
        return None, "not_imported", "; ".join(dict.fromkeys(problems))
    checks = "; ".join(dict.fromkeys(warnings))
    if text.strip() == find.strip():
        if checks:
            return None, "warning", f"changes nothing once translated; {checks}"
        return None, "note", "changes nothing once translated: host rewriting maps it already"
    pair = {"find": find.strip(), "replace": text.strip()}
    if checks:
        return pair, "warning", f"^S/^P made literal; {checks}"
    why = "^S/^P made literal: host rewriting runs after Find/Replace" if text != replace else ""
    return pair, "note", why


def _find(d: Directive, draft: _Draft) -> None:
    if draft.find is not None:
        draft.report("not_imported", draft.find, "a Find without its Replace")
    draft.find = d


def _replace(d: Directive, draft: _Draft) -> None:
    find, draft.find = draft.find, None
    if find is None:
        draft.report("not_imported", d, "a Replace without a Find just before it")
        return
    pair, kind, why = translate_pair(find.args, d.args)
    if why:
        draft.report(kind, find, why, f"Find {redact(find.args)} / Replace {redact(d.args)}")
    if pair is not None:
        draft.find_replace.append(pair)


# --- HTTPHeader ----------------------------------------------------------------------------
# Never forwarded, whatever a rule says (DESIGN P1; issue 4's "always removed" list).
SENSITIVE_HEADERS: Final = frozenset(
    {
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "via",
        "x-real-ip", "true-client-ip", "client-ip", "x-client-ip", "cf-connecting-ip",
        "authorization", "proxy-authorization", "cookie", "from", "referer", "origin",
        "dnt", "sec-gpc",
    }
)  # fmt: skip
HEADER_QUALIFIERS: Final = frozenset({"global", "ignoreglobal", "request", "process", *HEADER_WHY})


def header_rule(args: str) -> tuple[str | None, Kind, str]:
    """An HTTPHeader line → the header name to allow (or None), the finding's kind and why."""
    h = parse_http_header(args)
    unknown = sorted(h.qualifiers - HEADER_QUALIFIERS)
    if unknown or not h.name:
        why = f"unrecognised qualifier -{unknown[0]}" if unknown else "no header name"
        return None, "not_imported", why
    for qualifier in ("response", "server", "block", "unrewrite", "inject", "edit"):
        if qualifier in h.qualifiers:
            return None, "not_imported", HEADER_WHY[qualifier]
    name = h.name.lower()
    if not HEADER_NAME.fullmatch(name) or "*" in name:
        return None, "not_imported", "not a header name (wildcards: list each header)"
    if name in SENSITIVE_HEADERS or name.startswith("sec-ch-"):
        return None, "refused", "privacy: the relay never forwards this header (DESIGN P1)"
    if "global" in h.qualifiers:
        return name, "note", "-global: EZproxy allowed it for every stanza; here this rule"
    return name, "note", ""


def _http_header(d: Directive, draft: _Draft) -> None:
    name, kind, why = header_rule(d.args)
    if name is not None:
        draft.allow[name] = None
    if why:
        draft.report(kind, d, why)


# --- MimeFilter ----------------------------------------------------------------------------
_PLAIN_MIME: Final = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_ANY_URL: Final = frozenset({".*", "*.", "*", "^.*$"})
# Rewriting these would corrupt downloads: they pass through byte for byte.
BINARY_TYPES: Final = ("image/", "video/", "audio/", "font/", "application/pdf",
                       "application/octet-stream", "application/zip")  # fmt: skip


def mime_rule(args: str) -> tuple[str | None, Kind, str]:
    """A MimeFilter line → the content type to rewrite (or None), the finding's kind and why."""
    tokens = [t for t in args.split() if t != "-"]
    if len(tokens) != 3:
        return None, "not_imported", "expected 'MimeFilter type URL-pattern action'"
    mime, pattern, action = tokens[0].lower(), tokens[1], tokens[2].lower()
    if action not in ("javascript", "html"):
        return None, "not_imported", f"action {action!r} has no equivalent"
    if not _PLAIN_MIME.fullmatch(mime):
        return None, "not_imported", "a regular expression: list types in rewrite.content_types"
    if mime.startswith(BINARY_TYPES):
        return None, "not_imported", "rewriting this type would corrupt binary downloads"
    if mime in DEFAULT_REWRITE_TYPES:
        return mime, "note", "rewritten by default already"
    if pattern not in _ANY_URL:
        why = f"EZproxy limited it to URLs matching {pattern}; here every {mime} response is"
        return mime, "warning", why + " rewritten"
    if "-" in args.split():
        return mime, "note", "'-' (only these patterns for this type): no equivalent"
    return mime, "note", ""


def _mime_filter(d: Directive, draft: _Draft) -> None:
    mime, kind, why = mime_rule(d.args)
    if mime is not None and mime not in DEFAULT_REWRITE_TYPES:
        draft.content_types[mime] = None
    if why:
        draft.report(kind, d, why)


# --- the rest ------------------------------------------------------------------------------
def hostname_edit_why(args: str) -> str:
    """What our host mapping does instead of a ``ProxyHostnameEdit find$ replace`` line."""
    parts = args.split()
    host = parts[0].removeprefix("^").removesuffix("$") if parts else ""
    try:
        ours = encode_label(Origin.parse(host))
    except (HostMapError, AliasRequired):
        return "our host mapping always writes dots as '-' (www.x.com → www-x-com); no edits"
    wanted = parts[1] if len(parts) > 1 else ""
    if wanted == ours:
        return f"not needed: our host mapping already yields {ours!r} for {host!r}"
    return f"custom proxy hostnames are not supported: ours for {host!r} is {ours!r}"


def _proxy_hostname_edit(d: Directive, draft: _Draft) -> None:
    draft.report("not_imported", d, hostname_edit_why(d.args))


def _add_user_header(d: Directive, draft: _Draft) -> None:
    header = (d.args.split() or ["X-Patron-Pseudonym"])[-1]
    why = (
        "privacy: it sends the patron's username to the vendor; to send a per-vendor "
        f"pseudonym instead, add `pseudonym: {{header: {header}}}` to the rule"
    )
    draft.report("refused", d, why)


# EZproxy AnonymousURL qualifiers → the methods an entry covers (-Options: CORS preflights).
ANONYMOUS_QUALIFIERS: Final[dict[str, tuple[str, ...]]] = {
    "-options": ("OPTIONS",),
    "-get": ("GET", "HEAD"),
    "-post": ("POST",),
}
ANONYMOUS_IGNORED: Final = frozenset({"-cs", "-re"})  # case-sensitive: our globs already are


def anonymous_entry(d: Directive) -> tuple[dict[str, Any] | None, str]:
    """One ``AnonymousURL`` line → an ``anonymous`` entry (or None and why)."""
    tokens = d.args.split()
    methods: list[str] = []
    for token in [t for t in tokens if t.lower() in ANONYMOUS_QUALIFIERS]:
        methods += ANONYMOUS_QUALIFIERS[token.lower()]
    if any(t.lower() == "-re" for t in tokens):
        return None, "regular-expression AnonymousURL patterns are not translated; use a glob"
    rest = [
        t
        for t in tokens
        if t.lower() not in ANONYMOUS_QUALIFIERS and t.lower() not in ANONYMOUS_IGNORED
    ]
    if len(rest) != 1 or rest[0] in ("-", "+", "-*"):
        return None, "expected one [+|-]pattern"
    pattern = rest[0]
    if pattern.startswith("-"):
        return None, "an exclusion (-pattern): anonymous entries only list what is allowed"
    pattern = pattern.removeprefix("+")
    if "://" not in pattern and not pattern.startswith(("/", "*")):
        pattern = f"*{pattern}*"  # "+.woff": EZproxy matches it anywhere in the URL
    entry: dict[str, Any] = {"methods": methods or ["GET", "HEAD"], "patterns": [pattern]}
    if matches_everything(pattern):
        entry["allow_all"] = True
        entry["reason"] = f"EZproxy AnonymousURL at {d.where}: review before going live"
    return entry, ""


def _anonymous_url(d: Directive, draft: _Draft) -> None:
    if d.args.strip() == "-*":
        return  # the closer: ends the anonymous block (ours are per rule already)
    entry, why = anonymous_entry(d)
    if entry is None:
        draft.report("not_imported", d, why)
    else:
        draft.anonymous.append((d, entry))


def _http_method(d: Directive, draft: _Draft) -> None:
    why = f"the relay already sends {RELAYED_METHODS} for signed-in patrons"
    draft.report("note", d, why)


def _other(d: Directive, draft: _Draft) -> None:
    why = d.spec.why if d.spec is not None and d.spec.why else unknown_why(d)
    draft.report("not_imported", d, why)


HANDLERS: Final[dict[str, Handler]] = {
    "URL": _url,  # → url, and its host → hosts; -Form/-Redirect… reported
    "Host": _host,  # → hosts (scheme and port kept)
    "HostJavaScript": _host,  # → hosts: our rewriter always rewrites JavaScript too
    "Domain": _domain,  # → domains
    "DomainJavaScript": _domain,  # → domains
    "NeverProxy": _never_proxy,  # → never_proxy
    "Find": _find,  # → rewrite.find_replace, with the Replace after it
    "Replace": _replace,
    "HTTPHeader": _http_header,  # -request -process → headers.allow; the rest reported
    "MimeFilter": _mime_filter,  # → rewrite.content_types
    "ProxyHostnameEdit": _proxy_hostname_edit,  # reported with our mapped name
    "AddUserHeader": _add_user_header,  # refused: the patron's username
    "AnonymousURL": _anonymous_url,  # → anonymous (patterns on the rule's own hosts)
    "HTTPMethod": _http_method,  # noted: the relay's method set already covers them
}


# --- the stanza ----------------------------------------------------------------------------
def translate(stanza: Stanza, options: Options) -> Translation:
    """Translate one stanza."""
    title = stanza.title.args
    draft = _Draft(title, options)
    hide = title.lower().startswith("-hide")
    if hide:
        draft.title = title[5:].strip()
    for d in stanza.directives:
        HANDLERS.get(d.name, _other)(d, draft)
    if draft.find is not None:
        draft.report("not_imported", draft.find, "a Find without its Replace")
    rule = _finish(stanza, draft)
    if rule is not None:
        rule = _with_title_notes(rule, hide)
    return Translation(stanza, draft.title, rule, tuple(sorted(draft.findings, key=_position)))


# Stanza notes in titles: "(updated 20220627)", "(NEW)", "(OCLC IncludeFile updated …)".
TITLE_NOTE: Final = re.compile(r"\s*\(([^)]*(?:updat|revis|\bnew\b|\d{8})[^)]*)\)", re.IGNORECASE)


def _with_title_notes(rule: dict[str, Any], hide: bool) -> dict[str, Any]:
    """Notes in the title move to the description; ``-Hide`` becomes ``hide``."""
    title = str(rule["title"])
    notes = [m.group(1).strip() for m in TITLE_NOTE.finditer(title)]
    clean = TITLE_NOTE.sub("", title).strip() or title
    out: dict[str, Any] = {"title": clean}
    if notes:
        out["description"] = "; ".join(notes)
    out.update({k: v for k, v in rule.items() if k != "title"})
    if hide:
        out["hide"] = True
    return out


def _position(f: Finding) -> tuple[bool, Where]:
    return f.where is None, f.where or Where("", 0)


def _finish(stanza: Stanza, draft: _Draft) -> dict[str, Any] | None:
    url = draft.url or _fallback_url(stanza, draft)
    if url is None:
        draft.report("unimportable", stanza.title, "no URL, Host or Domain line to import")
        return None
    hosts, url = _choose_origins(stanza, draft, url)
    rule: dict[str, Any] = {"title": draft.title or _host_of(url), "url": url, "hosts": hosts}
    if draft.domains:
        rule["domains"] = list(draft.domains)
    never = _never_entries(stanza, draft, url)
    if never:
        rule["never_proxy"] = never
    keys, findings = context_keys(stanza.context, draft.options.groups)
    draft.findings += findings
    rule.update(keys)
    rule.update(_policies(draft))
    anonymous = _covered_anonymous(draft, hosts, list(draft.domains), stanza)
    if anonymous:
        rule["anonymous"] = anonymous
    rule["third_party"] = "block"  # #18.8: stated, so the imported file shows the containment
    return rule


def _covered_anonymous(
    draft: _Draft, hosts: list[str], domains: list[str], stanza: Stanza
) -> list[dict[str, Any]]:
    """Anonymous entries whose URL hosts the stanza covers (P6: never wider than its hosts)."""
    names = {_host_of(h if "://" in h else f"https://{h}") for h in hosts}
    kept = []
    for d, entry in draft.anonymous:
        pattern = entry["patterns"][0]
        host = _host_of(pattern.replace("*.", "wildcard.", 1)) if "://" in pattern else ""
        host = host.removeprefix("wildcard.")
        if not host or host in names or any(host == n or host.endswith("." + n) for n in domains):
            kept.append(entry)
            continue
        why = f"{host} is not one of this stanza's hosts or domains (anonymous never widens them)"
        draft.report("not_imported", d, why)
    return kept


def _fallback_url(stanza: Stanza, draft: _Draft) -> str | None:
    if draft.origins:
        url = draft.origins[0].url_prefix() + "/"
    elif draft.domains:
        url = f"https://{next(iter(draft.domains))}/"
    else:
        return None
    draft.report("warning", stanza.title, f"no usable URL line; the starting point is {url}")
    return url


def _choose_origins(stanza: Stanza, draft: _Draft, url: str) -> tuple[list[str], str]:
    """One origin per host: the first https one, else the first; an http URL follows it."""
    chosen: dict[str, Origin] = {}
    for o in draft.origins:
        best = chosen.get(o.host)
        if best is None or (best.scheme == "http" and o.scheme == "https"):
            chosen[o.host] = o
    folded = [o.url_prefix() for o in dict.fromkeys(draft.origins) if chosen[o.host] != o]
    if folded:
        shown = f"{', '.join(folded[:5])}{' …' if len(folded) > 5 else ''}"
        why = f"one origin per host (https preferred): {shown} folded into the kept one"
        draft.report("note", stanza.title, why, "hosts")
    parts = urlsplit(url)
    target = chosen.get((parts.hostname or "").lower())
    if target and target.scheme == "https" and parts.scheme == "http" and parts.port is None:
        url = urlunsplit(parts._replace(scheme="https"))
        draft.report("note", stanza.title, "URL upgraded to https, as the stanza lists it", "URL")
    return [o.authority if o.scheme == "https" else o.url_prefix() for o in chosen.values()], url


def _host_of(url: str) -> str:
    return (urlsplit(url).hostname or url).lower()


def _never_entries(stanza: Stanza, draft: _Draft, url: str) -> list[str]:
    host = _host_of(url)
    kept = []
    for name in draft.never:
        if host == name or host.endswith("." + name):
            why = f"it would cover the rule's own starting point {host}; left out"
            draft.report("warning", stanza.title, why, f"NeverProxy {name}")
        else:
            kept.append(name)
    return kept


def _policies(draft: _Draft) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draft.allow:
        out["headers"] = {"allow": list(draft.allow)}
    rewrite: dict[str, Any] = {}
    if draft.content_types:
        rewrite["content_types"] = [*DEFAULT_REWRITE_TYPES, *draft.content_types]
    if draft.find_replace:
        rewrite["find_replace"] = draft.find_replace
    if rewrite:
        out["rewrite"] = rewrite
    return out
