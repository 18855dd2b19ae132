"""Two server instances on one PostgreSQL database: WeChat's retries of one message, spread over
both, are processed once — one stored message, one call to the bot, the same reply to every
try that gets one, and a late reply sent once although both instances run a delivery worker.

PostgreSQL only: SQLite deployments are single-instance.
"""
from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.models import Message
from casework.models import Event
from channels.wechat.models import Delivery, WechatToken
from server.app import create_app
from server.config import Config
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import APP_ID, OPENID, TOKEN, FakeRasa, WeChat, text_msg

ANSWER = "携带身份证到派出所申请。"
TRIES = 3      # WeChat tries a message three times when it gets no answer


@pytest.fixture
def pg(db):
    if db.dialect != "postgresql":
        pytest.skip("several instances share a database only on PostgreSQL")
    return db


@contextlib.asynccontextmanager
async def two_instances(db, tmp_path, *, budget: float, rasa_delay: float):
    """Two apps, each with its own engine and delivery worker, on two ports; one slow fake Rasa
    (so that the tries overlap) and one fake WeChat API behind both."""
    rasa = FakeRasa()
    rasa.delay = rasa_delay
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    async with fake_wechat_api.serve({APP_ID: "s1"}) as (api, api_base), \
            TestServer(rasa_app, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"),
                        wechat_app_id=APP_ID, wechat_app_secret="s1", wechat_token=TOKEN,
                        wechat_reply_budget=budget, wechat_api_base=api_base,
                        wechat_delivery_poll=0.05, wechat_delivery_backoff=0.05)
        async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as one, \
                TestClient(TestServer(create_app(config), host="127.0.0.1")) as two:
            assert one.port != two.port
            yield [WeChat(one, "/wechat", TOKEN, APP_ID), WeChat(two, "/wechat", TOKEN, APP_ID)], rasa, api


async def retried(instances: list[WeChat], fields: dict, stagger: float = 0.0) -> list[str]:
    """The same signed message to both instances, three overlapping tries (one, two, one);
    `stagger` apart, so that later tries find the first one stored and in flight."""
    async def attempt(i: int) -> str:
        await asyncio.sleep(i * stagger)
        return await instances[i % 2].send(fields)
    return await asyncio.gather(*(attempt(i) for i in range(TRIES)))


async def count(db, model, *where) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("stagger", [0.0, 0.2])
async def test_retries_over_two_instances_are_processed_once(pg, tmp_path, stagger):
    async with two_instances(pg, tmp_path, budget=3.0, rasa_delay=0.8) as (instances, rasa, api):
        replies = await retried(instances, text_msg("居住证怎么办理", msg_id="6900000000000000001"),
                                stagger)
        assert replies == [ANSWER] * TRIES      # the first try's answer, replayed to the others
        assert rasa.calls == ["居住证怎么办理"]
        assert api.sent == []                   # passive: nothing through the customer-service API
    assert await count(pg, Message, Message.direction == "in") == 1
    assert await count(pg, Message, Message.direction == "out") == 1
    assert await count(pg, Event, Event.name == "message_received") == 1
    assert await count(pg, Event, Event.name == "bot_replied") == 1


@pytest.mark.parametrize("stagger", [0.0, 0.1])
async def test_a_late_reply_is_delivered_once_by_one_of_two_workers(pg, tmp_path, stagger):
    async with two_instances(pg, tmp_path, budget=0.3, rasa_delay=1.0) as (instances, rasa, api):
        replies = await retried(instances, text_msg("居住证怎么办理", msg_id="6900000000000000002"),
                                stagger)
        assert replies == ["success"] * TRIES
        for _ in range(100):
            if api.sent:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)      # both workers poll every 0.05 s: a second send would be here
        assert [(s["touser"], s["content"]) for s in api.sent] == [(OPENID, ANSWER)]
        assert api.send_calls == 1
        assert len(api.tokens_issued) == 1      # the token is fetched once and shared
        assert rasa.calls == ["居住证怎么办理"]
    assert await count(pg, Message, Message.direction == "in") == 1
    assert await count(pg, Message, Message.direction == "out") == 1
    assert await count(pg, Delivery, Delivery.status == "delivered") == 1
    assert await count(pg, Delivery) == 1
    assert await count(pg, WechatToken) == 1
    assert await count(pg, Event, Event.name == "reply_delivered") == 1


async def test_many_messages_over_two_instances_each_get_one_late_reply(pg, tmp_path):
    # Several citizens' messages at once, every one retried over both instances: the two workers
    # compete for the queue and the token, and still send each reply exactly once.
    async with two_instances(pg, tmp_path, budget=0.3, rasa_delay=0.6) as (instances, rasa, api):
        citizens = [f"oCitizen{n:02d}" for n in range(6)]
        tries = await asyncio.gather(*(
            retried(instances, text_msg("居住证怎么办理", msg_id=f"69000000000000001{n:02d}", user=user))
            for n, user in enumerate(citizens)))
        assert tries == [["success"] * TRIES] * len(citizens)
        for _ in range(200):
            if len(api.sent) >= len(citizens):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert sorted(s["touser"] for s in api.sent) == citizens
        assert len(rasa.calls) == len(citizens)
        assert len(api.tokens_issued) == 1
    assert await count(pg, Message, Message.direction == "in") == len(citizens)
    assert await count(pg, Delivery, Delivery.status == "delivered") == len(citizens)
