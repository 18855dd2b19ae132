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
        return web.json_response({"error": "请求格式不正确：应为 JSON，如 {\"text\": \"…\", \"district\": \"南湖区\"}。"},
                                 status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "请求格式不正确：应为含 text 的 JSON 对象。"}, status=400)
    text = body.get("text")
    district = body.get("district")
    if not isinstance(text, str) or not text.strip():
        return web.json_response({"error": "缺少要分派的内容（text）。"}, status=400)
    if len(text) > MAX_TEXT:
        return web.json_response({"error": f"内容太长（{len(text)}字），最多{MAX_TEXT}字。"},
                                 status=400)
    if district is not None and (not isinstance(district, str) or len(district) > MAX_DISTRICT):
        return web.json_response({"error": f"district 应为不超过{MAX_DISTRICT}字的文字。"},
                                 status=400)
    result = await request.app[ROUTER].route(text.strip(), district)
    return web.json_response(result.as_json(), dumps=lambda o: json.dumps(o, ensure_ascii=False))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/route", route, name="route")
