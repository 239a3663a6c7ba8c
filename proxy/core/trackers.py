"""A bundled, documented list of known tracker and analytics domains.

Contract: ``tracker_for(host)`` returns the ``Tracker`` whose domain is ``host`` or one of its
parent domains, else None. Each entry names who runs it, what it does and where that is
documented (the source a reviewer can cite in a procurement file). The list is deliberately
short and hand-checked: a host that is *not* here is still reported as a third party by the
vendor review, only without a name attached. Pure data, no I/O.
Not here: finding third-party hosts in pages (core/review/thirdparty.py), blocking them (rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Category = Literal[
    "analytics", "advertising", "tag manager", "session replay", "monitoring", "demo"
]


@dataclass(frozen=True, slots=True)
class Tracker:
    """One known tracker domain and why it is on the list."""

    domain: str
    owner: str
    category: Category
    source: str  # where the purpose is documented (one line)


def _t(domain: str, owner: str, category: Category, source: str) -> tuple[str, Tracker]:
    return domain, Tracker(domain, owner, category, source)


# Sources are the operators' own documentation, or the EasyPrivacy list / DuckDuckGo Tracker
# Radar entries where the operator does not document the domain itself.
TRACKERS: Final[dict[str, Tracker]] = dict(
    [
        _t("google-analytics.com", "Google", "analytics", "Google Analytics collection endpoint"),
        _t("analytics.google.com", "Google", "analytics", "GA4 collection endpoint (Google docs)"),
        _t("googletagmanager.com", "Google", "tag manager", "Google Tag Manager / gtag.js loader"),
        _t("doubleclick.net", "Google", "advertising", "DoubleClick / Google Marketing Platform"),
        _t("googlesyndication.com", "Google", "advertising", "AdSense ad serving"),
        _t("googleadservices.com", "Google", "advertising", "Google Ads conversion tracking"),
        _t("facebook.net", "Meta", "advertising", "Meta Pixel (connect.facebook.net/fbevents.js)"),
        _t("facebook.com", "Meta", "advertising", "Meta Pixel beacon (facebook.com/tr)"),
        _t("hotjar.com", "Hotjar", "session replay", "Hotjar heatmaps and session recordings"),
        _t("hotjar.io", "Hotjar", "session replay", "Hotjar content delivery and collection"),
        _t("nr-data.net", "New Relic", "monitoring", "New Relic Browser agent beacon endpoint"),
        _t("newrelic.com", "New Relic", "monitoring", "New Relic Browser agent (js-agent)"),
        _t(
            "scorecardresearch.com", "Comscore", "analytics", "Comscore audience measurement beacon"
        ),
        _t("omtrdc.net", "Adobe", "analytics", "Adobe Analytics (Omniture) collection servers"),
        _t("2o7.net", "Adobe", "analytics", "Adobe Analytics legacy collection domain"),
        _t("adobedtm.com", "Adobe", "tag manager", "Adobe Experience Platform Launch / DTM"),
        _t("demdex.net", "Adobe", "advertising", "Adobe Audience Manager ID sync"),
        _t("everesttech.net", "Adobe", "advertising", "Adobe Advertising Cloud pixel"),
        _t("quantserve.com", "Quantcast", "advertising", "Quantcast Measure tag"),
        _t("quantcount.com", "Quantcast", "advertising", "Quantcast pixel endpoint"),
        _t("chartbeat.com", "Chartbeat", "analytics", "Chartbeat real-time audience analytics"),
        _t("chartbeat.net", "Chartbeat", "analytics", "Chartbeat collection (ping.chartbeat.net)"),
        _t("mathtag.com", "MediaMath", "advertising", "MediaMath ad-tech pixel and ID sync"),
        _t("adnxs.com", "Microsoft (Xandr)", "advertising", "Xandr/AppNexus ad serving"),
        _t("bat.bing.com", "Microsoft", "advertising", "Microsoft Advertising UET tag"),
        _t("clarity.ms", "Microsoft", "session replay", "Microsoft Clarity session replay"),
        _t("linkedin.com", "LinkedIn", "advertising", "LinkedIn Insight Tag (px.ads.linkedin)"),
        _t("licdn.com", "LinkedIn", "advertising", "LinkedIn Insight Tag script host"),
        _t("twitter.com", "X", "advertising", "X/Twitter conversion pixel"),
        _t("ads-twitter.com", "X", "advertising", "X/Twitter uwt.js ad tag"),
        _t("criteo.com", "Criteo", "advertising", "Criteo retargeting tag"),
        _t("taboola.com", "Taboola", "advertising", "Taboola recommendation and pixel"),
        _t("outbrain.com", "Outbrain", "advertising", "Outbrain recommendation and pixel"),
        _t("segment.com", "Twilio Segment", "analytics", "Segment analytics.js CDN"),
        _t("segment.io", "Twilio Segment", "analytics", "Segment collection API"),
        _t("mixpanel.com", "Mixpanel", "analytics", "Mixpanel product analytics"),
        _t("amplitude.com", "Amplitude", "analytics", "Amplitude product analytics"),
        _t("fullstory.com", "FullStory", "session replay", "FullStory session replay"),
        _t("mouseflow.com", "Mouseflow", "session replay", "Mouseflow session replay"),
        _t("crazyegg.com", "Crazy Egg", "session replay", "Crazy Egg heatmaps"),
        _t("optimizely.com", "Optimizely", "analytics", "Optimizely experimentation snippet"),
        _t("pendo.io", "Pendo", "analytics", "Pendo product analytics (used by some platforms)"),
        _t("heapanalytics.com", "Heap", "analytics", "Heap autocapture analytics"),
        _t("matomo.cloud", "Matomo (cloud)", "analytics", "Matomo Cloud hosted analytics"),
        _t("addthis.com", "Oracle", "advertising", "AddThis share widget (data collection)"),
        _t("sharethis.com", "ShareThis", "advertising", "ShareThis share widget (data broker)"),
        _t("bluekai.com", "Oracle", "advertising", "Oracle BlueKai data management platform"),
        _t("krxd.net", "Salesforce", "advertising", "Salesforce Krux DMP"),
        _t("rlcdn.com", "LiveRamp", "advertising", "LiveRamp identity sync"),
        _t("bounceexchange.com", "Wunderkind", "advertising", "Wunderkind (BounceX) tracking"),
        _t("cookielaw.org", "OneTrust", "tag manager", "OneTrust consent manager (loads tags)"),
        _t("trendmd.com", "TrendMD", "advertising", "TrendMD scholarly recommendation widget"),
        _t("altmetric.com", "Altmetric", "analytics", "Altmetric badges (embed script)"),
        _t("hubspot.com", "HubSpot", "analytics", "HubSpot tracking code"),
        _t("hs-analytics.net", "HubSpot", "analytics", "HubSpot analytics script host"),
    ]
)


def tracker_for(host: str) -> Tracker | None:
    """The known tracker covering ``host`` (exact domain or a parent domain), if any."""
    labels = host.lower().rstrip(".").split(".")
    for cut in range(len(labels) - 1):
        found = TRACKERS.get(".".join(labels[cut:]))
        if found is not None:
            return found
    return None
