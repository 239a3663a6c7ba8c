"""The vendor review report: one dict, written as JSON and HTML, plus the raw flows (.mitm).

Contract: ``build_report(flows, ...)`` runs the pure detectors of ``proxy.core.review`` over
observed flows and returns a JSON-ready dict: a verdict per invariant (P1 nothing identifying
leaves, P2 pseudonyms only, P6 only rule hosts) with reasons, then the details (request
headers, pseudonym use, cookies, hosts, third parties, fingerprinting surface). Every string
in it passes ``Canaries.redact``: canaries appear only as labels like "[card number]", and
header or cookie values are never listed except the fingerprinting headers (redacted).
``write_reports`` writes ``review-<vendor>-<UTC stamp>.json`` / ``.html`` and, when given
flows, ``.mitm`` (mitmproxy's ``io.FlowWriter``, created with mode 0600, refusing to
overwrite). Files go only into ``out_dir``. Retention: the .mitm file holds the reviewed
vendor's raw requests (incl. the review card's pseudonym and vendor cookies); the reviewer
deletes it once the report is filed (docs/review.md).
Not here: detectors (core/review/), capturing flows (addon.py), starting anything.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from mitmproxy import io
from mitmproxy.http import HTTPFlow

from proxy.core.headers import CLIENT_HINT_PREFIX
from proxy.core.review.canaries import Canaries
from proxy.core.review.identifying import (
    FINGERPRINT_HEADERS,
    fingerprint_surface,
    header_names,
    identifying_data,
    varying_headers,
)
from proxy.core.review.observed import Finding, ObservedFlow, ObservedRequest
from proxy.core.review.pseudonyms import pseudonym_check, pseudonym_values
from proxy.core.review.thirdparty import hosts_contacted, third_party_references
from proxy.core.review.vendorcookies import cookies_set
from proxy.core.ruleset import RuleIndex

REPORT_VERSION: Final = 1
MAX_SHOWN_VALUES: Final = 5
INVARIANTS: Final = {
    "P1": "Nothing identifying leaves the proxy",
    "P2": "Pseudonyms only, in the vendor's own header, unlinkable across vendors",
    "P6": "The proxy contacts only hosts that a vendor rule names",
}
Report = dict[str, Any]


# ------------------------------------------------------------------ building


def build_report(
    flows: Sequence[ObservedFlow],
    *,
    vendor: str,
    index: RuleIndex,
    canaries: Canaries,
    generated_at: datetime,
    capture: Mapping[str, object] | None = None,
) -> Report:
    """The report dict for ``vendor`` ("all" for every vendor); see the module docstring."""
    in_scope = _scope(vendor, index)
    reviewed = [f for f in flows if in_scope(f.request.host)]
    requests = [f.request for f in reviewed]
    findings = _findings(reviewed, [f.request for f in flows], index, canaries, in_scope)
    rule = index.by_id.get(vendor)
    report: Report = {
        "report": "clamshell vendor review",
        "version": REPORT_VERSION,
        "vendor": vendor,
        "vendor_title": rule.title if rule is not None else "all vendors",
        "generated_at": generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "capture": {"flows": len(reviewed), "flows_all_vendors": len(flows), **(capture or {})},
        "verdicts": _verdicts(findings, requests, index, vendor),
        "findings": _grouped(findings),
        "request_headers": _header_table(requests, index),
        "pseudonyms": _pseudonym_table([f.request for f in flows], index, vendor),
        "cookies": _cookie_table(reviewed),
        "hosts": _hosts(requests, index),
        "third_parties": _third_party_table(reviewed, index),
        "fingerprint": _fingerprint_table(requests),
    }
    redacted: Report = _redacted(report, canaries)
    return redacted


def _scope(vendor: str, index: RuleIndex) -> Callable[[str], bool]:
    def in_scope(host: str) -> bool:
        rule = index.rule_for(host)
        return vendor == "all" or rule is None or rule.id == vendor

    return in_scope


def _findings(
    reviewed: Sequence[ObservedFlow],
    everyone: Sequence[ObservedRequest],
    index: RuleIndex,
    canaries: Canaries,
    in_scope: Callable[[str], bool],
) -> list[Finding]:
    found = [x for f in reviewed for x in identifying_data(f.request, canaries)]
    _, p2 = pseudonym_check(everyone, index)
    found += [x for x in p2 if not x.host or in_scope(x.host)]
    others = hosts_contacted((f.request for f in reviewed), index).other_hosts
    found += [Finding("P6", "host not named by any rule", "host", h) for h in others]
    return found


def _grouped(findings: Iterable[Finding]) -> list[dict[str, object]]:
    counts = Counter((f.invariant, f.what, f.where, f.host) for f in findings)
    return [
        {"invariant": inv, "what": what, "where": where, "host": host, "count": n}
        for (inv, what, where, host), n in sorted(counts.items())
    ]


def _verdicts(
    findings: Sequence[Finding], requests: Sequence[ObservedRequest], index: RuleIndex, vendor: str
) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for inv, title in INVARIANTS.items():
        mine = [f for f in findings if f.invariant == inv]
        reasons = [
            f"{f['what']} — {f['where']}" + (f" ({f['host']})" if f["host"] else "")
            for f in _grouped(mine)
        ]
        if mine:
            result = "fail"
        elif not requests:
            result, reasons = "no data", ["no upstream request of this vendor was recorded"]
        else:
            result = "pass"
            reasons = _pass_reasons(inv, requests, index, vendor)
        out[inv] = {"title": title, "result": result, "reasons": reasons}
    return out


def _pass_reasons(
    inv: str, requests: Sequence[ObservedRequest], index: RuleIndex, vendor: str
) -> list[str]:
    n = len(requests)
    if inv == "P1":
        return [f"{n} upstream requests checked: no canary, client address, session cookie "
                "or identifying header found"]  # fmt: skip
    if inv == "P6":
        return [f"all {n} upstream requests went to hosts that a vendor rule names"]
    rule = index.by_id.get(vendor)
    if rule is not None and rule.pseudonym is None:
        return ["this vendor's rule sends no pseudonym, and none was found"]
    return ["pseudonyms appear only in each vendor's own header; no value is shared "
            "between vendors"]  # fmt: skip


def _session_groups(
    requests: Sequence[ObservedRequest], index: RuleIndex
) -> dict[str, list[ObservedRequest]]:
    """Requests grouped by the pseudonym they carry: the only session marker upstream sees."""
    groups: dict[str, list[ObservedRequest]] = defaultdict(list)
    for request in requests:
        rule = index.rule_for(request.host)
        header = rule.pseudonym.header if rule is not None and rule.pseudonym else None
        values = request.values(header) if header else []
        groups[values[0] if values else "(none)"].append(request)
    return groups


def _header_table(requests: Sequence[ObservedRequest], index: RuleIndex) -> list[dict[str, object]]:
    groups = _session_groups(requests, index)
    varying = set(varying_headers({k: v for k, v in groups.items() if k != "(none)"}))
    return [
        {"name": name, "requests": n, "varies_between_sessions": name in varying}
        for name, n in header_names(requests).items()
    ]


def _pseudonym_table(
    everyone: Sequence[ObservedRequest], index: RuleIndex, vendor: str
) -> list[dict[str, object]]:
    uses, _ = pseudonym_check(everyone, index)
    values = pseudonym_values(everyone, index)
    shared = Counter(v for seen in values.values() for v in seen)
    return [
        {
            "vendor": use.vendor,
            "header": use.header,
            "requests_with": use.requests_with,
            "requests_without": use.requests_without,
            "distinct_values": use.distinct_values,
            "shared_with_other_vendors": sum(shared[v] > 1 for v in values.get(use.vendor, {})),
        }
        for use in uses
        if vendor in ("all", use.vendor)
    ]


@dataclass(slots=True)
class _CookieRow:
    name: str
    domain: str
    lifetime: str
    secure: bool
    httponly: bool
    samesite: str
    set_by: set[str]
    times_set: int
    values: set[str]


def _cookie_table(flows: Sequence[ObservedFlow]) -> list[dict[str, object]]:
    rows: dict[tuple[str, str], _CookieRow] = {}
    for flow in flows:
        for c in cookies_set(flow.response_headers):
            key = (c.name, c.domain or flow.request.host)
            row = rows.get(key) or _CookieRow(
                c.name, key[1], c.lifetime, c.secure, c.httponly, c.samesite, set(), 0, set()
            )
            row.lifetime = c.lifetime if c.lifetime != "deleted" else row.lifetime
            row.set_by.add(flow.request.host)
            row.times_set += 1
            row.values.add(c.value_digest)
            rows[key] = row
    return [
        {
            "name": r.name,
            "domain": r.domain,
            "lifetime": r.lifetime,
            "secure": r.secure,
            "httponly": r.httponly,
            "samesite": r.samesite or "-",
            "set_by": sorted(r.set_by),
            "times_set": r.times_set,
            "distinct_values": len(r.values),
        }
        for _, r in sorted(rows.items())
    ]


def _hosts(requests: Sequence[ObservedRequest], index: RuleIndex) -> dict[str, object]:
    contacted = hosts_contacted(requests, index)
    return {"rule_hosts": contacted.rule_hosts, "other_hosts": contacted.other_hosts}


def _third_party_table(flows: Sequence[ObservedFlow], index: RuleIndex) -> list[dict[str, object]]:
    kinds: dict[str, set[str]] = defaultdict(set)
    pages: Counter[str] = Counter()
    trackers = {}
    for flow in flows:
        refs = third_party_references(flow.html, index) if flow.html else []
        for ref in refs:
            kinds[ref.host].add(ref.kind)
            trackers[ref.host] = ref.tracker
        pages.update({ref.host for ref in refs})
    return [
        {
            "host": host,
            "kinds": sorted(kinds[host]),
            "pages": pages[host],
            "known_tracker": trackers[host] is not None,
            "tracker": None
            if (t := trackers[host]) is None
            else {"owner": t.owner, "category": t.category, "source": t.source, "domain": t.domain},
        }
        for host in sorted(kinds)
    ]


def _fingerprint_table(requests: Sequence[ObservedRequest]) -> list[dict[str, object]]:
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for request in requests:
        for name, value in fingerprint_surface(request.headers).items():
            seen[name][value] += 1
    return [
        {
            "name": name,
            "requests": sum(values.values()),
            "distinct_values": len(values),
            "values": [v for v, _ in values.most_common(MAX_SHOWN_VALUES)]
            if name in FINGERPRINT_HEADERS or name.startswith(CLIENT_HINT_PREFIX)
            else ["(value not shown)"],
        }
        for name, values in sorted(seen.items())
    ]


def _redacted(value: Any, canaries: Canaries) -> Any:
    if isinstance(value, str):
        return canaries.redact(value)
    if isinstance(value, dict):
        return {canaries.redact(str(k)): _redacted(v, canaries) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, canaries) for v in value]
    return value


# ------------------------------------------------------------------ HTML

CSS: Final = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #111; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; width: 100%; }
th, td { border: 1px solid #bbb; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #eee; }
.verdict { border: 2px solid; padding: .5rem 1rem; margin: .5rem 0; }
.pass { border-color: #2a7a2a; background: #eef8ee; }
.fail { border-color: #a32020; background: #fbeeee; }
.no-data { border-color: #8a6d00; background: #fff8e0; }
code { font-size: 90%; }
"""


def _e(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(html.escape(str(v)) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return html.escape("-" if value is None else str(value))


def _table(rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return "<p>None recorded.</p>"
    head = "".join(f"<th scope='col'>{_e(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(key))}</td>" for key, _ in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict_html(inv: str, verdict: Mapping[str, Any]) -> str:
    result = str(verdict["result"])
    reasons = "".join(f"<li>{_e(r)}</li>" for r in verdict["reasons"])
    return (
        f"<section class='verdict {result.replace(' ', '-')}'><h2>{_e(inv)}: {_e(result.upper())}"
        f" — {_e(verdict['title'])}</h2><ul>{reasons}</ul></section>"
    )


def _third_party_rows(report: Report) -> list[dict[str, object]]:
    return [
        {
            **row,
            "tracker": "unknown third party"
            if row["tracker"] is None
            else f"{row['tracker']['owner']} ({row['tracker']['category']}): "
            f"{row['tracker']['source']}",
        }
        for row in report["third_parties"]
    ]


# (title, rows key, columns (key, heading)): the detail tables, in page order.
SECTIONS: Final = (
    ("Findings", "findings",
     (("invariant", "Invariant"), ("what", "What"), ("where", "Where"), ("host", "Host"),
      ("count", "Requests"))),
    ("Request headers the vendor received", "request_headers",
     (("name", "Header"), ("requests", "Requests"),
      ("varies_between_sessions", "Varies between sessions"))),
    ("Pseudonyms", "pseudonyms",
     (("vendor", "Vendor"), ("header", "Header"), ("requests_with", "Requests with"),
      ("requests_without", "Requests without"), ("distinct_values", "Distinct values"),
      ("shared_with_other_vendors", "Values shared with other vendors"))),
    ("Cookies the vendor sets", "cookies",
     (("name", "Name"), ("domain", "Domain"), ("lifetime", "Lifetime"), ("secure", "Secure"),
      ("httponly", "HttpOnly"), ("samesite", "SameSite"), ("times_set", "Times set"),
      ("distinct_values", "Distinct values"))),
    ("Hosts the proxy contacted", "hosts",
     (("host", "Host"), ("requests", "Requests"), ("covered", "Named by a rule"))),
    ("Third parties the vendor's pages make the browser call", "third_parties",
     (("host", "Host"), ("kinds", "Loaded by"), ("pages", "Pages"), ("tracker", "Known as"))),
    ("Fingerprinting surface", "fingerprint",
     (("name", "Header"), ("requests", "Requests"), ("distinct_values", "Distinct values"),
      ("values", "Values (redacted)"))),
)  # fmt: skip


def _host_rows(report: Report) -> list[dict[str, object]]:
    hosts = report["hosts"]
    rows = [{"host": h, "requests": n, "covered": True} for h, n in hosts["rule_hosts"].items()]
    return rows + [
        {"host": h, "requests": n, "covered": False} for h, n in hosts["other_hosts"].items()
    ]


def render_html(report: Report) -> str:
    """A standalone page for a procurement file: verdicts first, then details, all escaped."""
    rows = {**report, "hosts": _host_rows(report), "third_parties": _third_party_rows(report)}
    verdicts = "".join(_verdict_html(k, v) for k, v in report["verdicts"].items())
    details = "".join(
        f"<h2>{_e(title)}</h2>{_table(rows[key], columns)}" for title, key, columns in SECTIONS
    )
    capture = _e(", ".join(f"{k}: {v}" for k, v in report["capture"].items()))
    title = f"Vendor review: {report['vendor_title']} ({report['vendor']})"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p>Generated {_e(report['generated_at'])} (UTC) by clamshell. "
        "Patron data is never shown: the review card's values appear only as labels such as "
        f"[card number].</p><p>Capture: {capture}</p>{verdicts}{details}</body></html>"
    )


# ------------------------------------------------------------------ files


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where the report was written."""

    json: Path
    html: Path
    mitm: Path | None


def report_stem(vendor: str, generated_at: datetime) -> str:
    """``review-<vendor>-<UTC timestamp>``."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in vendor)
    return f"review-{safe}-{generated_at.strftime('%Y%m%dT%H%M%SZ')}"


def _inside(out_dir: Path, name: str) -> Path:
    path = (out_dir / name).resolve()
    if path.parent != out_dir.resolve():
        raise ValueError(f"refusing to write outside {out_dir}: {name!r}")
    return path


def write_flows(path: Path, flows: Iterable[HTTPFlow]) -> None:
    """Save flows for mitmweb; the file is new and readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        writer = io.FlowWriter(fh)  # type: ignore[no-untyped-call]
        for flow in flows:
            writer.add(flow)


def write_reports(
    report: Report, out_dir: Path, *, flows: Sequence[HTTPFlow] | None = None
) -> ReportFiles:
    """Write JSON, HTML and (when ``flows`` is given) .mitm into ``out_dir``."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    generated = datetime.strptime(report["generated_at"], "%Y-%m-%dT%H:%M:%SZ")
    stem = report_stem(str(report["vendor"]), generated)
    json_path, html_path = _inside(out_dir, stem + ".json"), _inside(out_dir, stem + ".html")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    html_path.write_text(render_html(report), "utf-8")
    mitm_path = None
    if flows is not None:
        mitm_path = _inside(out_dir, stem + ".mitm")
        write_flows(mitm_path, flows)
    return ReportFiles(json_path, html_path, mitm_path)
