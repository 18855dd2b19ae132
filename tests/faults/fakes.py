"""Small loopback stand-ins the fault tests share: a Rasa that echoes, and the way WeChat's
servers deliver a message (signed by wechatpy, re-sent when no answer comes within 5 s)."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from wechatpy import parse_message

from tests.channels.test_wechat import WeChat, text_msg

SLOW = "慢"                   # a message containing this keeps the fake Rasa busy
WECHAT_WAIT = 5.0            # WeChat waits this long for an answer, then re-sends
WECHAT_TRIES = 3


def answer_to(text: str) -> str:
    return f"已收到：{text}"


class EchoRasa:
    """Rasa's REST channel answering `已收到：<text>`, slowly for messages marked SLOW."""

    def __init__(self, slow: float = 2.0, fast: float = 0.05) -> None:
        self.slow, self.fast = slow, fast
        self.calls: Counter[str] = Counter()

    async def webhook(self, request: web.Request) -> web.Response:
        text = (await request.json())["message"]
        self.calls[text] += 1
        await asyncio.sleep(self.slow if SLOW in text else self.fast)
        return web.json_response([{"text": answer_to(text)}])

    async def status(self, _request: web.Request) -> web.Response:
        return web.Response(text="Hello from Rasa: 3.6 (fake)")


@contextlib.asynccontextmanager
async def echo_rasa(**timing):
    rasa = EchoRasa(**timing)
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    app.router.add_get("/", rasa.status)
    async with TestServer(app, host="127.0.0.1") as server:
        yield rasa, str(server.make_url("")).rstrip("/")


async def deliver(wechat: WeChat, http: aiohttp.ClientSession, text: str, msg_id: str,
                  user: str) -> tuple[str, str | None]:
    """One message as WeChat sends it: up to three tries, each given 5 s, the same MsgId.

    Returns ("passive", reply text), ("success", None), or ("none", None) when no try got an
    HTTP 200 (WeChat then gives up and the citizen sees nothing)."""
    fields = text_msg(text, msg_id=msg_id, user=user)
    for _ in range(WECHAT_TRIES):
        started = time.monotonic()
        try:
            async with asyncio.timeout(WECHAT_WAIT):
                resp = await wechat.post(fields)
                body = await resp.text()
            if resp.status == 200:
                if body == "success":
                    return "success", None
                return "passive", parse_message(body).content
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(max(0.0, WECHAT_WAIT - (time.monotonic() - started)))
    return "none", None
