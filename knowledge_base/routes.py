"""The Q&A search over HTTP, for consoles and integrations."""
from __future__ import annotations

from aiohttp import web

from server.appkeys import KB

MAX_QUERY = 500


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "").strip()
    if not query:
        return web.json_response({"error": "缺少查询内容（参数 q）。"}, status=400)
    if len(query) > MAX_QUERY:
        return web.json_response({"error": f"查询内容太长，请控制在{MAX_QUERY}字以内。"}, status=413)
    try:
        k = int(request.query.get("k", "5"))
    except ValueError:
        k = 0
    if not 1 <= k <= 50:
        return web.json_response({"error": "参数 k 须为 1 到 50 的整数。"}, status=400)
    return web.json_response(request.app[KB].search(query, k))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/kb/search", search, name="kb-search")
