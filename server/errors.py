"""Errors translated once, at the edge: Chinese for citizens, never a stack trace."""
from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import DataError, DBAPIError

log = logging.getLogger("govchat.errors")

BUSY = "系统繁忙，请稍后再试。"
FAILED = "系统出现异常，请稍后再试。如多次失败，可拨打12345热线。"
NOT_FOUND = "您访问的页面不存在。"
UNSTORABLE = "提交的内容无法保存（过长或含有无法识别的字符），请修改后重试。"


def _api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _reply(request: web.Request, status: int, message: str) -> web.Response:
    if _api(request):
        return web.json_response({"error": message}, status=status)
    html = (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{message}</title>'
            f'<body style="font:18px sans-serif;padding:2rem"><p>{message}</p>'
            '<p><a href="/">返回首页</a></p></body></html>')
    return web.Response(text=html, status=status, content_type="text/html")


def _value_refused(exc: DBAPIError) -> bool:
    # asyncpg's errors reach SQLAlchemy as a plain DBAPIError: SQLSTATE class 22 is
    # "data exception" (value too long, invalid byte sequence such as NUL).
    return isinstance(exc, DataError) or str(getattr(exc.orig, "sqlstate", "") or "").startswith("22")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _reply(request, 404, NOT_FOUND)
        if exc.status == 405 and _api(request):
            return _reply(request, 405, "请求方式不正确。")
        if exc.status == 413:
            return _reply(request, 413, "提交的内容太大了。")
        raise
    except (DBAPIError, ConnectionError, TimeoutError) as exc:
        if isinstance(exc, DBAPIError) and _value_refused(exc):
            # The database refused the value itself (too long for its column, a character it
            # cannot hold): retrying cannot help, so not "busy". The doors should refuse it first.
            log.error("value refused by the database on %s %s: %s", request.method, request.path, exc)
            return _reply(request, 400, UNSTORABLE)
        # The database is away for a moment: fail fast and cleanly; the client may retry.
        log.error("database unavailable on %s %s: %s", request.method, request.path, exc)
        return _reply(request, 503, BUSY)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _reply(request, 500, FAILED)


# The chat page loads only its own files; nothing may frame it or sniff types.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
