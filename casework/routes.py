"""Casework over HTTP: `POST /api/route` routes a message text to a category and unit."""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from casework.routing import Router
from server.appkeys import CONFIG, DB, KB, ROUTER

log = logging.getLogger(__name__)
MAX_TEXT = 2000
MAX_DISTRICT = 32


async def router_context(app: web.Application) -> AsyncIterator[None]:
    """The served router; it shares the Q&A base's embedding model when that one is loaded."""
    kb = app.get(KB)
    app[ROUTER] = Router(app[DB], app[CONFIG].var_dir / "route",
                         embedder_source=lambda: kb.index.embedder if kb is not None else None)
    await app[ROUTER].start()
    model = app[ROUTER].model
    log.info("routing: %s", f"model of {model.stamp} examples" if model else "no model yet (no examples)")
    yield


async def route(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "The body must be JSON: {\"text\": ..., \"district\": ...}."},
                                 status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "The body must be a JSON object with a text."}, status=400)
    text = body.get("text")
    district = body.get("district")
    if not isinstance(text, str) or not text.strip():
        return web.json_response({"error": "The text to route is missing."}, status=400)
    if len(text) > MAX_TEXT:
        return web.json_response({"error": f"The text is {len(text)} characters; at most {MAX_TEXT}."},
                                 status=400)
    if district is not None and (not isinstance(district, str) or len(district) > MAX_DISTRICT):
        return web.json_response({"error": f"district must be a text of at most {MAX_DISTRICT} characters."},
                                 status=400)
    result = await request.app[ROUTER].route(text.strip(), district)
    return web.json_response(result.as_json(), dumps=lambda o: json.dumps(o, ensure_ascii=False))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/route", route, name="route")
