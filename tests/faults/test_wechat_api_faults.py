"""WeChat's API misbehaving while late replies go out as 客服消息, through the running app: the
token endpoint failing, 5xx, timeouts, a token expired mid-way (42001), the 48-hour window
closed (45015). Each reply is delivered after retries with backoff, or recorded undeliverable
with a delivery_failed event — never lost silently.

tests/channels/test_wechat_delivery.py already covers, on the worker alone: 40001 refresh, a
token renewed before expiry, HTTP 500 retried with backoff, giving up after the last attempt,
45015 and 45047 recorded undeliverable without retry, the window known without asking, a
split reply resumed. Added here: the token endpoint failing, send timeouts, 42001, and all of
them on WeChat messages through the server, ending with the database audit.
"""
from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import select

from casework.models import Event
from channels.wechat import api_client
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import text_msg
from tests.channels.test_wechat_delivery import eventually, late_wechat, rows
from tests.faults.audit import audit

ANSWER = "携带身份证到派出所申请。"      # the fake Rasa's answer to 居住证怎么办理


class FaultyWechatApi(fake_wechat_api.FakeWechatApi):
    """The fake API with the faults it lacks: a token endpoint that fails, and a token expiry
    answered with a chosen errcode (42001 "access_token expired")."""
    token_500 = 0
    expire_with: int | None = None

    async def token(self, request: web.Request) -> web.Response:
        if self.token_500:
            self.token_500 -= 1
            return web.Response(status=502, text="bad gateway")
        return await super().token(request)

    async def send(self, request: web.Request) -> web.Response:
        if self.expire_with is not None:
            errcode, self.expire_with = self.expire_with, None
            self.send_calls += 1
            dead = request.query.get("access_token", "")
            self._valid = {app: t for app, t in self._valid.items() if t != dead}
            return web.Response(text=f'{{"errcode": {errcode}, "errmsg": "access_token expired"}}',
                                content_type="text/plain")
        return await super().send(request)


async def test_every_late_reply_is_delivered_or_recorded_undeliverable(db, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_wechat_api, "FakeWechatApi", FaultyWechatApi)
    monkeypatch.setattr(api_client, "TIMEOUT", api_client.aiohttp.ClientTimeout(total=0.4))
    async with late_wechat(db, tmp_path) as (wechat, api):
        async def settled(n: int):
            async def check():
                return len([r for r in await rows(db) if r[2] in ("delivered", "undeliverable")]) == n
            await eventually(check, timeout=10)

        async def citizen_writes(n: int, user: str) -> None:
            assert await wechat.send(text_msg("居住证怎么办理", msg_id=f"74{n:017d}", user=user)) == "success"
            await settled(n)

        # The token endpoint down (502) and then the first send failing (500): tried again.
        api.token_500, api.http_500 = 1, 1
        await citizen_writes(1, "oTokenDown")
        # A send that WeChat does not answer in time: tried again.
        api.delay = 1.0
        send = asyncio.create_task(citizen_writes(2, "oTimeout"))
        await eventually(lambda: _true(api.send_calls >= 3), timeout=5)
        api.delay = 0.0
        await send
        # The token expired between two sends (42001): fetched again, the send repeated.
        tokens_before = len(api.tokens_issued)
        api.expire_with = 42001
        await citizen_writes(3, "oExpired")
        assert len(api.tokens_issued) == tokens_before + 1
        # The citizen wrote more than 48 hours ago as far as WeChat knows (45015): given up.
        api.errcode = 45015
        await citizen_writes(4, "oWindowClosed")
        api.errcode = None
        # And once WeChat behaves again, a reply goes straight out.
        await citizen_writes(5, "oFine")

    delivered = {s["touser"] for s in api.sent if s["content"] == ANSWER}
    assert delivered == {"oTokenDown", "oTimeout", "oExpired", "oFine"}
    # Each sent once, except the timed-out send: WeChat may have sent it although it did not
    # answer in time, so the citizen may see it twice (at least once, never lost).
    assert [s["touser"] for s in api.sent].count("oTokenDown") == 1
    assert [s["touser"] for s in api.sent].count("oExpired") == 1
    by_user = {r[1]: r for r in await rows(db)}
    assert by_user["oTokenDown"][2:4] == ("delivered", 3)     # token 502, send 500, sent
    assert by_user["oTimeout"][2] == "delivered" and by_user["oTimeout"][3] >= 2
    assert by_user["oExpired"][2:4] == ("delivered", 1)       # refreshed within the one attempt
    assert by_user["oWindowClosed"][2:] == ("undeliverable", 1, "window closed")
    async with db.session() as session:
        [failed] = await session.scalars(select(Event).where(Event.name == "delivery_failed"))
    assert failed.detail["errcode"] == 45015
    found = await audit(db, accepted=[("wechat", "default", f"74{n:017d}") for n in range(1, 6)])
    assert (found.inbound, found.delivered, found.undeliverable) == (5, 4, 1)


async def _true(value: bool) -> bool:
    return value
