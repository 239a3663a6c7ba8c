"""Shared core fixtures: a small rule set and a mapper under proxy.localhost:8080."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.core import accelerated
from proxy.core.hostmap import HostMap
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.core.urlmap import UrlMapper


def make_rule(**raw: Any) -> VendorRule:
    """A rule from plain data."""
    return VendorRule.model_validate(raw)


@pytest.fixture
def index() -> RuleIndex:
    """JSTOR (domain), Acme (hosts, one on http:8080) and BigDB."""
    return RuleIndex.build(
        [
            make_rule(
                id="jstor",
                title="JSTOR",
                url="https://www.jstor.org/",
                hosts=["www.jstor.org"],
                domains=["jstor.org"],
                never_proxy=["ads.jstor.org"],
            ),
            make_rule(
                id="acme",
                title="Acme",
                url="https://www.acmejournals.test/",
                hosts=["www.acmejournals.test", "http://old.acmejournals.test:8080"],
                libraries=["MAIN"],
            ),
            make_rule(
                id="bigdb",
                title="BigDB",
                url="https://search.bigdb.test/",
                hosts=["search.bigdb.test"],
            ),
        ]
    )


@pytest.fixture
def hostmap() -> HostMap:
    """The proxy at proxy.localhost:8080."""
    return HostMap("proxy.localhost", 8080)


@pytest.fixture
def mapper(hostmap: HostMap, index: RuleIndex) -> UrlMapper:
    """A mapper for http://proxy.localhost:8080."""
    return UrlMapper(hostmap, index, "http")


def require_compiled() -> accelerated.Compiled:
    """The compiled rewriter helpers; in CI (``CI=true``, where setup.py builds them with
    gcc) their absence is a failure, elsewhere the test is skipped with the reason."""
    if accelerated.compiled is not None:
        return accelerated.compiled
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail("proxy/core/_referencescan.pyx was not built (setup.py: Cython and gcc)")
    pytest.skip("the compiled rewriter helpers are not built here (no C compiler)")


@pytest.fixture(params=["compiled", "python"])
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run a test once with the compiled helpers (core/accelerated.py) and once with the
    Python code they mirror: both must pass every rewriter test."""
    if request.param == "compiled":
        require_compiled()
    else:
        monkeypatch.setattr(accelerated, "compiled", None)
    yield request.param
