"""Late replies delivered through the customer-service API (客服消息), against a loopback fake
of WeChat's API: the queue, tokens, the 48-hour window, quota, backoff, several workers."""
from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import func, select, update

from bot import api as bot_api
from bot.models import Conversation, Message
from casework.models import Event
from channels.wechat import accounts
from channels.wechat.api_client import WechatApi
from channels.wechat.delivery import DeliveryWorker, enqueue
from channels.wechat.models import PENDING, SENDING, Delivery, WechatToken
from channels.wechat.split import split_text
from server.config import Config, load_config
from server.db import utcnow
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import (APP_ID, OPENID, RASA_SAYS, SAFE_APP_ID, TOKEN, UNIT_APP_ID,
                                        WeChat, serve, text_msg)

SECRETS = {APP_ID: "s1", SAFE_APP_ID: "s2", UNIT_APP_ID: "s3"}   # as test_wechat.serve adds them
ANSWER = "携带身份证到派出所申请。"
# 60 sentences of 25 characters: 1500 characters, three messages.
LONG = "".join(f"第{i:02d}步：请携带身份证原件和复印件到办事窗口办理。" for i in range(60))


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def rows(db) -> list[tuple]:
    async with db.session() as session:
        found = await session.scalars(select(Delivery).order_by(Delivery.id))
        return [(d.account, d.to_user, d.status, d.attempts, d.last_error) for d in found]


async def events_named(db, name: str) -> list[Event]:
    async with db.session() as session:
        return list(await session.scalars(select(Event).where(Event.name == name).order_by(Event.id)))


# --- end to end: WeChat → success → the fake API --------------------------------------------

@contextlib.asynccontextmanager
async def late_wechat(db, tmp_path):
    """The server with a budget the fake Rasa (0.6 s) always misses."""
    async with fake_wechat_api.serve(SECRETS) as (api, base):
        async with serve(db, tmp_path, budget=0.3, wechat_api_base=base,
                         wechat_delivery_poll=0.05, wechat_delivery_backoff=0.05) as (http, rasa):
            rasa.delay = 0.6
            yield WeChat(http, "/wechat", TOKEN, APP_ID), api


async def test_a_reply_slower_than_the_budget_arrives_as_one_customer_service_message(db, tmp_path):
    async with late_wechat(db, tmp_path) as (wechat, api):
        assert await wechat.send(text_msg("居住证怎么办理")) == "success"
        assert api.sent == []       # the answer is not there yet

        async def sent():
            return bool(api.sent)
        await eventually(sent)
        await asyncio.sleep(0.3)    # and nothing more follows
        assert [(s["touser"], s["content"]) for s in api.sent] == [(OPENID, ANSWER)]
        assert api.tokens_issued == [f"TOKEN-1-{APP_ID}"]   # the default account lives in env
    assert await rows(db) == [("default", OPENID, "delivered", 1, None)]
    [event] = await events_named(db, "reply_delivered")
    assert event.channel == "wechat" and event.value_seconds >= 0


async def test_several_late_replies_go_out_in_order(db, tmp_path):
    async with late_wechat(db, tmp_path) as (wechat, api):
        assert await wechat.send(text_msg("护照")) == "success"

        async def both():
            return len(api.sent) == 2
        await eventually(both)
    assert [s["content"] for s in api.sent] == ["第一条。", "第二条。"]


async def test_a_long_late_reply_is_split_at_sentence_ends(db, tmp_path, monkeypatch):
    monkeypatch.setitem(RASA_SAYS, "长答复", [{"text": LONG}])
    async with late_wechat(db, tmp_path) as (wechat, api):
        assert await wechat.send(text_msg("长答复")) == "success"

        async def delivered():
            return [r[2] for r in await rows(db)] == ["delivered"]
        await eventually(delivered)
    parts = [s["content"] for s in api.sent]
    assert len(parts) == 3 and "".join(parts) == LONG
    assert all(len(p) <= 600 and p.endswith("。") for p in parts)


async def test_a_retry_of_a_late_message_is_not_queued_twice(db, tmp_path):
    async with late_wechat(db, tmp_path) as (wechat, api):
        first, again = await asyncio.gather(wechat.send(text_msg("居住证怎么办理", msg_id="r1")),
                                            wechat.send(text_msg("居住证怎么办理", msg_id="r1")))
        assert (first, again) == ("success", "success")

        async def sent():
            return bool(api.sent)
        await eventually(sent)
        await asyncio.sleep(0.3)
    assert [s["content"] for s in api.sent] == [ANSWER]
    assert len(await rows(db)) == 1


# --- the worker alone, on a queued reply ----------------------------------------------------

@contextlib.asynccontextmanager
async def worker(db, attempts: int = 6):
    async with fake_wechat_api.serve(SECRETS) as (api, base), aiohttp.ClientSession() as http:
        config = Config(database_url=db.url, wechat_app_id=APP_ID, wechat_app_secret="s1",
                        wechat_token=TOKEN, wechat_api_base=base, wechat_delivery_backoff=0.05,
                        wechat_delivery_attempts=attempts)
        yield DeliveryWorker(db, config, WechatApi(base, http)), api


async def queue_reply(db, text: str = ANSWER, *, openid: str = OPENID, account: str = "default",
                      last_in_ago: timedelta = timedelta(0)) -> int:
    """A citizen message (written `last_in_ago`) and the bot's stored reply, queued."""
    conv = await bot_api.open_conversation(db, "wechat", account, openid)
    wrote = utcnow() - last_in_ago
    async with db.session() as session, session.begin():
        inbound = Message(conversation_id=conv.id, channel="wechat", account=account,
                          direction="in", source="citizen", text="问", status="answered",
                          created_at=wrote)
        session.add(inbound)
        await session.flush()
        reply = Message(conversation_id=conv.id, channel="wechat", account=account,
                        direction="out", source="bot", kind="answer", text=text,
                        in_reply_to_id=inbound.id)
        session.add(reply)
        await session.execute(update(Conversation).where(Conversation.id == conv.id)
                              .values(last_message_at=wrote))
        await session.flush()
        reply_id = reply.id
    assert await enqueue(db, [reply_id], account=account, to_user=openid) == 1
    return reply_id


async def drain(w: DeliveryWorker, db, timeout: float = 5.0) -> None:
    """Run the worker until nothing is waiting or sending."""
    async def done():
        await w.run_once()
        async with db.session() as session:
            return not await session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.status.in_((PENDING, SENDING))))
    await eventually(done, timeout)


async def test_a_reply_is_queued_once(db):
    reply_id = await queue_reply(db)
    assert await enqueue(db, [reply_id], account="default", to_user=OPENID) == 0


async def test_an_expired_token_is_refreshed_once_and_the_reply_delivered(db):
    async with worker(db) as (w, api):
        await queue_reply(db, "第一条。")
        await drain(w, db)
        api.reject_token_once = True     # expires between two deliveries: 40001
        await queue_reply(db, "第二条。")
        await drain(w, db)
    assert api.tokens_issued == [f"TOKEN-1-{APP_ID}", f"TOKEN-2-{APP_ID}"]
    assert [(s["content"], s["token"]) for s in api.sent] == [
        ("第一条。", f"TOKEN-1-{APP_ID}"), ("第二条。", f"TOKEN-2-{APP_ID}")]
    assert [r[2:4] for r in await rows(db)] == [("delivered", 1), ("delivered", 1)]
    async with db.session() as session:      # the new token is shared through the database
        assert (await session.get(WechatToken, APP_ID)).access_token == f"TOKEN-2-{APP_ID}"


async def test_a_token_about_to_expire_is_renewed_first(db):
    async with worker(db) as (w, api):
        await queue_reply(db, "第一条。")
        await drain(w, db)
        async with db.session() as session, session.begin():     # 4 minutes left: under 5
            await session.execute(update(WechatToken).values(
                expires_at=utcnow() + timedelta(minutes=4)))
        await queue_reply(db, "第二条。")
        await drain(w, db)
    assert [s["token"] for s in api.sent] == [f"TOKEN-1-{APP_ID}", f"TOKEN-2-{APP_ID}"]
    assert api.send_calls == 2      # renewed before sending, not after a refusal


async def test_a_split_reply_resumes_with_the_part_not_yet_sent(db):
    async with worker(db) as (w, api):
        api.http_500_on = {2}
        await queue_reply(db, LONG)
        await drain(w, db)
    assert [s["content"] for s in api.sent] == split_text(LONG)     # each part once, in order
    assert api.send_calls == 4
    assert await rows(db) == [("default", OPENID, "delivered", 2, None)]


async def test_the_token_is_fetched_once_for_several_deliveries(db):
    async with worker(db) as (w, api):
        for i in range(5):
            await queue_reply(db, f"答复{i}。", openid=f"oCitizen{i}")
        await drain(w, db)
    assert len(api.sent) == 5 and api.tokens_issued == [f"TOKEN-1-{APP_ID}"]


@pytest.mark.parametrize("errcode, reason", [(45015, "window closed"), (45047, "quota exceeded")])
async def test_a_refusal_is_recorded_undeliverable_without_retry(db, errcode, reason):
    async with worker(db) as (w, api):
        api.errcode = errcode
        reply_id = await queue_reply(db)
        await drain(w, db)
        await asyncio.sleep(0.2)
        await w.run_once()
    assert api.send_calls == 1 and api.sent == []
    assert await rows(db) == [("default", OPENID, "undeliverable", 1, reason)]
    [event] = await events_named(db, "delivery_failed")
    assert event.detail == {"message_id": reply_id, "reason": reason, "errcode": errcode}
    assert event.channel == "wechat"


async def test_the_48_hour_window_is_known_without_asking_wechat(db):
    async with worker(db) as (w, api):
        await queue_reply(db, last_in_ago=timedelta(hours=48, minutes=1))
        await drain(w, db)
    assert api.send_calls == 0 and api.tokens_issued == []
    assert await rows(db) == [("default", OPENID, "undeliverable", 1, "window closed")]
    [event] = await events_named(db, "delivery_failed")
    assert event.detail["reason"] == "window closed"


async def test_server_errors_are_retried_with_backoff(db):
    async with worker(db) as (w, api):
        api.http_500 = 2
        await queue_reply(db)
        started = time.monotonic()
        await drain(w, db)
    assert time.monotonic() - started >= 0.05 + 0.1       # backoff 0.05 s, then 0.1 s
    assert api.send_calls == 3 and [s["content"] for s in api.sent] == [ANSWER]
    assert await rows(db) == [("default", OPENID, "delivered", 3, None)]


async def test_a_delivery_is_given_up_after_the_last_attempt(db):
    async with worker(db, attempts=3) as (w, api):
        api.http_500 = 100
        await queue_reply(db)
        await drain(w, db)
    assert api.send_calls == 3
    assert await rows(db) == [("default", OPENID, "undeliverable", 3, "gave up after 3 attempts")]
    [event] = await events_named(db, "delivery_failed")
    assert event.detail["reason"] == "gave up after 3 attempts"
    assert event.detail["error"] == "HTTP 500"


async def test_an_account_from_the_table_and_an_unknown_one(db):
    async with db.session() as session, session.begin():
        await accounts.add(session, "unit2", app_id=UNIT_APP_ID, app_secret="s3", token="unitToken3")
    async with worker(db) as (w, api):
        await queue_reply(db, account="unit2")
        await queue_reply(db, account="gone", openid="oOther")
        await drain(w, db)
    assert api.tokens_issued == [f"TOKEN-1-{UNIT_APP_ID}"]
    assert [r[0] + ":" + r[2] for r in await rows(db)] == ["unit2:delivered", "gone:undeliverable"]
    assert (await rows(db))[1][4] == "no WeChat account named 'gone'"


async def test_a_claim_left_by_a_dead_worker_lapses(db):
    async with worker(db) as (w, api):
        await queue_reply(db)
        async with db.session() as session, session.begin():
            await session.execute(update(Delivery).values(
                status=SENDING, attempts=1, next_attempt_at=utcnow() - timedelta(seconds=1)))
        await drain(w, db)
    assert [s["content"] for s in api.sent] == [ANSWER]
    assert (await rows(db))[0][2:4] == ("delivered", 2)


async def test_two_workers_on_one_database_send_each_reply_once(db):
    async with worker(db) as (w1, api), aiohttp.ClientSession() as http:
        w2 = DeliveryWorker(db, w1.config, WechatApi(w1.api.base_url, http))
        api.delay = 0.02        # so the two overlap
        expected = {}
        for citizen in range(8):
            openid = f"oCitizen{citizen}"
            expected[openid] = [f"{openid} 第一条。", f"{openid} 第二条。"]
            for text in expected[openid]:
                await queue_reply(db, text, openid=openid)
        await asyncio.gather(drain(w1, db), drain(w2, db))
    assert len(api.sent) == 16
    for openid, texts in expected.items():       # once each, and in order per citizen
        assert [s["content"] for s in api.sent if s["touser"] == openid] == texts
    assert {r[2:4] for r in await rows(db)} == {("delivered", 1)}


# --- splitting and settings -----------------------------------------------------------------

def test_split_text_at_sentence_ends():
    assert split_text("  短答复。 ") == ["短答复。"]
    assert split_text("") == []
    parts = split_text(LONG)
    assert [len(p) for p in parts] == [600, 600, 300] and "".join(parts) == LONG
    # A closing quote stays with its sentence; line breaks end sentences too.
    text = "甲" * 590 + "。”" + "乙" * 20 + "\n" + "丙" * 10
    assert split_text(text) == ["甲" * 590 + "。”", "乙" * 20 + "\n" + "丙" * 10]
    # A sentence longer than a message is cut at a comma, else at the limit.
    assert split_text("甲" * 400 + "，" + "乙" * 400) == ["甲" * 400 + "，", "乙" * 400]
    assert [len(p) for p in split_text("丁" * 1300)] == [600, 600, 100]


def test_wechat_api_settings():
    config = load_config({"WECHAT_API_BASE": "http://127.0.0.1:9/", "WECHAT_DELIVERY_ATTEMPTS": "3"})
    assert (config.wechat_api_base, config.wechat_delivery_attempts) == ("http://127.0.0.1:9", 3)
    default = load_config({})
    assert default.wechat_api_base == "https://api.weixin.qq.com"
    assert (default.wechat_delivery_backoff, default.wechat_delivery_attempts) == (2.0, 6)
