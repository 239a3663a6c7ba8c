"""The admin API described as OpenAPI 3.1, served at ``/api/openapi.json``.

Contract: ``openapi_document()`` is built once (cached; callers must not mutate it) with its
component schemas generated from models.py, so the description cannot drift from the
bodies the handlers send; every operation lists 401 and the refusals it can produce.
tests/web/admin/test_schemathesis.py drives the running API against it.
Not here: the handlers it describes (api.py), the models themselves (models.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from proxy.web.admin.models import (
    FILTER_MAX,
    BackendsOut,
    BlockIn,
    BlockOut,
    ErrorOut,
    HealthOut,
    ReloadOut,
    StatsOut,
    SuspendIn,
    SuspensionOut,
    SuspensionsOut,
    VendorsOut,
)

REASONS: Final = {
    400: "The request is not valid.",
    401: "The admin token is missing or wrong.",
    403: "Cross-site request refused.",
    404: "No such vendor or live session.",
    501: "The session store cannot look sessions up by hash.",
}


def _op(summary: str, ok: str, *errors: int, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _content(ok, "OK")}
    for status in (*errors, 401):
        responses[str(status)] = _content("ErrorOut", REASONS[status])
    return {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_"),
        "responses": responses,
        **extra,
    }


def _content(model: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The API as OpenAPI 3.1, components generated from the models (do not mutate)."""
    outs = (
        ErrorOut,
        HealthOut,
        VendorsOut,
        StatsOut,
        ReloadOut,
        SuspensionOut,
        SuspensionsOut,
        BlockOut,
        BackendsOut,
    )
    _, schemas = models_json_schema(
        [*((m, "serialization") for m in outs), (SuspendIn, "validation"), (BlockIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clamshell admin API",
            "version": "1",
            "description": "Aggregates and pseudonymous handles only: nothing here names "
            "a patron or what anyone read.",
        },
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": _paths(),
    }


def _paths() -> dict[str, Any]:
    reload_op = _op("Reload rules", "ReloadOut", 403)
    reload_op["responses"]["422"] = _content("ReloadOut", "Rules invalid; old rules kept.")
    stats_params = [
        _query("from", "First day (UTC), default 29 days before 'to'.", format="date"),
        _query("to", "Last day (UTC), default today.", format="date"),
        _query("vendor", "Only this vendor id.", minLength=1, maxLength=FILTER_MAX),
        _query("library", "Only this member library.", minLength=1, maxLength=FILTER_MAX),
    ]
    body = {"required": True, "content": _content("SuspendIn", "")["content"]}
    suspend = _op("Suspend session", "SuspensionOut", 400, 403, 404, 501, requestBody=body)
    block_body = {"required": True, "content": _content("BlockIn", "")["content"]}
    block = _op(
        "Block the card behind a pseudonym", "BlockOut", 400, 403, 404, requestBody=block_body
    )
    return {
        "/api/health": {"get": _op("Health", "HealthOut")},
        "/api/auth-backends": {"get": _op("Card-check back-ends' health", "BackendsOut")},
        "/api/vendors": {"get": _op("List vendors", "VendorsOut")},
        "/api/stats": {"get": _op("Usage statistics", "StatsOut", 400, parameters=stats_params)},
        "/api/reload": {"post": reload_op},
        "/api/suspensions": {"get": _op("List suspensions", "SuspensionsOut")},
        "/api/sessions/suspend": {"post": suspend},
        "/api/patrons/block": {"post": block},
    }
