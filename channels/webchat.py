"""The web chat channel: `POST /api/chat` for the page at `/` (and any H5 client),
`POST /api/chat/feedback` for the citizen's thumbs up/down on an answer, and
`GET /api/chat/updates` for the messages that arrive later (a unit's reply, a status change)."""
from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from bot import api as bot_api
from bot.gateway import Inbound, InputRejected
from bot.models import Message
from knowledge_base import curation
from server.appkeys import DB, GATEWAY
from server.db import CHINA

STATIC = Path(__file__).resolve().parent / "static" / "webchat"
CHANNEL = "webchat"
MAX_BODY = 16 * 1024
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
BAD_REQUEST = "请求格式不正确，请刷新页面后重试。"
BAD_SENDER = "缺少有效的会话标识，请刷新页面后重试。"
UPDATES_LIMIT = 50
_AFTER = re.compile(r"^[0-9]{1,10}$")
MAX_ID = 2**31 - 1       # message ids are 32-bit integers (PostgreSQL refuses larger)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def chat(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(413, "消息太长了，请精简后再发送。")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "请求格式不正确，请刷新页面后重试。")
    if not isinstance(body, dict):
        return _error(400, "请求格式不正确，请刷新页面后重试。")
    sender, text, message_id = body.get("sender"), body.get("text"), body.get("message_id")
    if not isinstance(sender, str) or not _ID.match(sender):
        return _error(400, BAD_SENDER)
    if not isinstance(text, str):
        return _error(400, "消息内容为空，请输入您要咨询的问题。")
    if message_id is not None and (not isinstance(message_id, str) or not _ID.match(message_id)):
        return _error(400, "消息编号格式不正确，请刷新页面后重试。")
    try:
        outcome = await request.app[GATEWAY].handle(
            Inbound(channel=CHANNEL, sender=sender, text=text, external_id=message_id))
    except InputRejected as exc:
        return _error(exc.status, exc.message)
    return web.json_response(
        {"replies": [r.public() for r in outcome.replies], "status": outcome.status})


async def feedback(request: web.Request) -> web.Response:
    """A thumbs up/down on one answer; only the citizen it was sent to may rate it."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(413, BAD_REQUEST)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, BAD_REQUEST)
    if not isinstance(body, dict):
        return _error(400, BAD_REQUEST)
    sender, reply_id, helpful = body.get("sender"), body.get("reply_id"), body.get("helpful")
    # bool is an int in Python: `true` is no reply id.
    if (not isinstance(sender, str) or not _ID.match(sender) or type(reply_id) is not int
            or reply_id < 1 or not isinstance(helpful, bool)):
        return _error(400, BAD_REQUEST)
    async with request.app[DB].session() as session, session.begin():
        reply = await session.get(Message, reply_id)
        conv = await bot_api.get_conversation(session, reply.conversation_id) if reply else None
        # Someone else's reply looks exactly like one that does not exist.
        if (conv is None or reply.direction != "out"
                or (conv.channel, conv.account, conv.sender) != (CHANNEL, "", sender)):
            return _error(404, "没有找到这条回复，请刷新页面后重试。")
        try:
            await curation.record_feedback(session, reply_id, helpful)
        except curation.NotAnAnswer:
            return _error(400, "只有问答库的答复可以评价。")
    return web.json_response({"ok": True})


async def updates(request: web.Request) -> web.Response:
    """The messages the citizen did not just ask for, after the page's last seen id.

    A sender with no conversation gets an empty list, like one with nothing new: whether a
    sender exists is not for anyone to find out here.
    """
    sender, after = request.query.get("sender"), request.query.get("after", "0")
    if sender is None or not _ID.match(sender):
        return _error(400, BAD_SENDER)
    if not _AFTER.match(after) or int(after) > MAX_ID:
        return _error(400, BAD_REQUEST)
    after_id = int(after)
    async with request.app[DB].session() as session:
        rows = await bot_api.updates_for(session, CHANNEL, "", sender, after_id, UPDATES_LIMIT)
    messages = []
    for m in rows:
        item = {"id": m.id, "text": m.text, "kind": m.kind or "info", "source": m.source,
                "at": m.created_at.astimezone(CHINA).isoformat(timespec="seconds")}
        case_no = (m.meta or {}).get("case_no")
        if isinstance(case_no, str) and case_no:
            item["case_no"] = case_no
        messages.append(item)
    last_id = rows[-1].id if rows else after_id
    return web.json_response({"messages": messages, "last_id": last_id},
                             headers={"Cache-Control": "no-store"})


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", page, name="webchat-page")
    app.router.add_post("/api/chat", chat, name="webchat-api")
    app.router.add_post("/api/chat/feedback", feedback, name="webchat-feedback")
    app.router.add_get("/api/chat/updates", updates, name="webchat-updates")
    app.router.add_static("/static/webchat/", STATIC, name="webchat-static")
