"""`/openapi.json`, generated from the route declarations and the msgspec types they use."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from julia_chips.http.auth import Access
from julia_chips.http.errors import ApiError
from julia_chips.http.operator import Refused
from julia_chips.http.routes import Route

_REF = "#/components/schemas/{name}"
_STATUS_TEXT = {200: "OK", 303: "Signed in: the same page without `token`, the session "
                "cookie set", 400: "Bad request: names the `field`", 401: "Bearer token required",
                403: "The operator token (JULIA_OPERATOR_TOKEN) required",
                404: "No such chip or doctor",
                409: "Refused: the rule, the chip's state and the moves allowed",
                503: "A backing service is unavailable"}


# A server-sent event as OpenAPI tools read one (each event checked on its own): its
# `event` name, `id` (`<CHIP_EVENTS seq>:<FLEET_EVENTS seq>`) and JSON `data`.
_SSE_EVENT = {"type": "object", "properties": {
    "event": {"type": "string"}, "id": {"type": "string"}, "data": {"type": "string"},
    "retry": {"type": "integer"}}}
_TEXT_SCHEMAS: dict[str, dict[str, Any]] = {"text/event-stream": _SSE_EVENT}


def _parameters(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if "{id}" in route.path:
        params.append({"name": "id", "in": "path", "required": True,
                       "schema": msgspec.json.schema(route.id_type)})
    schema = components[route.query.__name__]
    for name, prop in schema.get("properties", {}).items():
        params.append({"name": name, "in": "query", "required": False, "schema": prop})
    return params


def _responses(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in route.statuses:
        if status == 303:
            out[str(status)] = {"description": _STATUS_TEXT[status]}
            continue
        if status == 200 and route.response is None:
            content = {route.media_type: {"schema": _TEXT_SCHEMAS.get(route.media_type,
                                                                      {"type": "string"})}}
        elif status == 401 and route.media_type == "text/html":  # a page tells a person
            content = {"text/html": {"schema": {"type": "string"}}}
        elif status == 200 or (status == 503 and route.access is Access.OPEN):
            ref = _REF.format(name=route.response.__name__)  # type: ignore[union-attr]
            content = {"application/json": {"schema": {"$ref": ref}}}
        else:
            name = Refused.__name__ if status == 409 else ApiError.__name__
            content = {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}
        out[str(status)] = {"description": _STATUS_TEXT[status], "content": content}
    return out


def openapi_document(routes: tuple[Route, ...], title: str = "Julia Chips API"
                     ) -> dict[str, Any]:
    types = [ApiError, Refused, *{r.query for r in routes},
             *{r.response for r in routes if r.response}, *{r.body for r in routes if r.body}]
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    paths: dict[str, Any] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary, "operationId": route.handler.__name__,
            "parameters": _parameters(route, components), "responses": _responses(route)}
        if route.body is not None:
            ref = _REF.format(name=route.body.__name__)
            # An empty body is `{}` (operator.body), so one is needed only for a type
            # with required fields (found by fuzzing: `ban` with none was a 400).
            needed = bool(components[route.body.__name__].get("required"))
            operation["requestBody"] = {"required": needed, "content": {
                "application/json": {"schema": {"$ref": ref}}}}
        if route.access is not Access.OPEN:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def openapi_handler(document: dict[str, Any]) -> web.RouteDef:
    body = msgspec.json.encode(document)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return web.get("/openapi.json", openapi, allow_head=False)
