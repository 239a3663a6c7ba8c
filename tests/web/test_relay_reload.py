"""A reload during a relayed request: that request keeps its snapshot, the next sees the new
set (#14: one rule snapshot per request)."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from aiohttp import web

from proxy.tasks import TaskOwner
from proxy.web.keys import RULEBOOK
from tests.web.conftest import REPO, StackFactory
from tests.web.test_relay import WWW, signed_in

PAGE = b'<html><body><a href="https://www.acmejournals.test/next">next</a></body></html>'


async def test_reload_while_a_slow_body_streams_keeps_the_request_on_its_snapshot(
    make_stack: StackFactory, aiohttp_server: Any, tmp_path: Any
) -> None:
    """#14: a reload that removes the rule while the vendor is slow leaves that request on
    its old snapshot (headers mapped, body rewritten, accounted) and the next one gets 404."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    asked, go_on = asyncio.Event(), asyncio.Event()

    async def slow_page(request: web.Request) -> web.StreamResponse:
        asked.set()
        await go_on.wait()  # the reload happens before the vendor answers
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for i in range(0, len(PAGE), 16):
            await response.write(PAGE[i : i + 16])
            await asyncio.sleep(0.01)
        return response

    vendor = web.Application()
    vendor.router.add_get("/{tail:.*}", slow_page)
    server = await aiohttp_server(vendor)
    stack = await make_stack(
        rules_dir=str(rules),
        upstream_overrides={"www.acmejournals.test": f"http://127.0.0.1:{server.port}"},
    )
    auth = await signed_in(stack)
    tasks = TaskOwner()
    pending = tasks.spawn(stack.client.get("/", headers={"Host": WWW, **auth}), name="slow_get")
    await asyncio.wait_for(asked.wait(), 5)
    (rules / "acme.yaml").unlink()
    result = await stack.app[RULEBOOK].reload_async()
    assert result.ok and "acme" not in {r.id for r in stack.app[RULEBOOK].current.rules}
    go_on.set()
    resp = await asyncio.wait_for(pending, 10)
    assert resp.status == 200
    assert f'href="http://{WWW}/next"' in await resp.text()  # the old rewriter, to the end
    after = await stack.client.get("/", headers={"Host": WWW, **auth})
    assert after.status == 404
