"""Live queues: a Server-Sent Events stream that says "this queue changed" (event `changed`).

Several servers share one database, so a change is found in the database, not in this process:
every CHECK_EVERY seconds the stream asks the page's `state()` for a cheap (fingerprint, counts)
pair over the viewer's own scope (a unit handler: their unit) and sends `changed` with the counts
when the fingerprint moved. The page's script then fetches the list again (admin/static/live.js).

A comment line every HEARTBEAT_EVERY seconds keeps proxies from closing a quiet stream. The
stream ends — and the browser's EventSource reconnects through the guard again — after
MAX_LIFE seconds; it ends with `event: ended` as soon as the staff session is gone (signed out,
timed out, the account deactivated: checked on every loop), and when the client leaves.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Hashable

from aiohttp import web

from admin.auth import session_alive
from server.db import CHINA, utcnow

log = logging.getLogger(__name__)

CHECK_EVERY = 2.0
HEARTBEAT_EVERY = 15.0
MAX_LIFE = 600.0
RETRY_MS = 5000              # how long EventSource waits before reconnecting

State = Callable[[], Awaitable[tuple[Hashable, dict]]]


def sse(event: str | None, data: dict | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    if data is not None:
        lines.append("data: " + json.dumps(data, ensure_ascii=False, default=str))
    return ("\n".join(lines) + "\n\n").encode()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream(request: web.Request, state: State) -> web.StreamResponse:
    """Stream `changed` events for one queue until the session ends, the client leaves or
    MAX_LIFE passes. `state()` returns (fingerprint, counts) for this viewer's scope."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})           # nginx: pass each event on at once
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = beat = loop.time()
    try:
        seen, counts = await state()
        await response.write(f"retry: {RETRY_MS}\n\n".encode() + sse("ready", {"counts": counts}))
        while loop.time() - started < MAX_LIFE:
            await asyncio.sleep(CHECK_EVERY)
            if _gone(request):
                break
            if not await session_alive(request):
                await response.write(sse("ended", {}))
                break
            fingerprint, counts = await state()
            if fingerprint != seen:
                seen = fingerprint
                await response.write(sse("changed", {
                    "counts": counts, "at": utcnow().astimezone(CHINA).strftime("%H:%M:%S")}))
                beat = loop.time()
            elif loop.time() - beat >= HEARTBEAT_EVERY:
                await response.write(b": heartbeat\n\n")
                beat = loop.time()
    except ConnectionResetError:          # the client left while we wrote
        log.debug("live stream %s: client gone", request.path)
    return response
