"""The web chat API in-process, with Rasa not running: limits, errors, nothing lost."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import api as bot_api
from bot.gateway import APOLOGY
from bot.models import Conversation, Message
from server.app import create_app
from server.config import Config
from tests.conftest import free_port


@pytest.fixture
async def client(db, tmp_path):
    # Nothing listens on this port: Rasa is down, as far as the server can tell.
    config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                    rasa_url=f"http://127.0.0.1:{free_port()}", rate_limit_per_minute=5)
    async with TestClient(TestServer(create_app(config))) as client:
        yield client


async def post(client, expect: int, **body) -> dict:
    resp = await client.post("/api/chat", json=body)
    data = await resp.json()
    assert resp.status == expect, data
    return data


async def test_rasa_down_gives_an_apology_and_keeps_the_message(client, db):
    data = await post(client, 200, sender="web-a", text="居住证怎么办理")
    async with db.session() as session:
        rows = (await session.scalars(select(Message).order_by(Message.id))).all()
        conv = await session.scalar(select(Conversation))
    assert data == {"replies": [{"text": APOLOGY, "kind": "handoff", "id": rows[1].id}],
                    "status": "with_staff"}
    assert [(m.direction, m.text, m.status) for m in rows] == [
        ("in", "居住证怎么办理", "queued_for_staff"), ("out", APOLOGY, None)]
    assert conv.state == "staff" and conv.handoff_reason == "bot_unavailable"


async def test_staff_held_conversation_gets_no_bot_reply(client, db):
    await post(client, 200, sender="web-b", text="第一条")
    async with db.session() as session:
        conv = await session.scalar(select(Conversation).where(Conversation.sender == "web-b"))
    # Staff take it over (citizen asked for a person): the bot must not even try.
    async with db.session() as session, session.begin():
        await bot_api.return_to_bot(session, conv.id)
    assert await bot_api.request_handoff(db, conv.id, bot_api.CITIZEN_REQUEST)
    assert not await bot_api.request_handoff(db, conv.id, bot_api.CITIZEN_REQUEST)
    data = await post(client, 200, sender="web-b", text="还在吗")
    assert data == {"replies": [], "status": "with_staff"}


async def test_a_retry_returns_the_stored_replies_without_a_second_answer(client, db):
    first = await post(client, 200, sender="web-c", text="护照怎么办", message_id="m-1")
    again = await post(client, 200, sender="web-c", text="护照怎么办", message_id="m-1")
    assert again == first
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2


@pytest.mark.parametrize("body, status, words", [
    ({"sender": "web-d", "text": ""}, 400, "为空"),
    ({"sender": "web-d", "text": "  \n "}, 400, "为空"),
    ({"sender": "web-d", "text": "长" * 501}, 413, "500字以内"),
    ({"sender": "", "text": "你好"}, 400, "会话标识"),
    ({"sender": "a b<script>", "text": "你好"}, 400, "会话标识"),
    ({"text": "你好"}, 400, "会话标识"),
    ({"sender": "web-d", "text": 12}, 400, "为空"),
    ({"sender": "web-d", "text": "你好", "message_id": "x" * 65}, 400, "消息编号"),
])
async def test_bad_input_is_refused_in_chinese_and_not_stored(client, db, body, status, words):
    data = await post(client, status, **body)
    assert words in data["error"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_non_json_and_oversized_bodies(client):
    resp = await client.post("/api/chat", data="{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "格式" in (await resp.json())["error"]
    resp = await client.post("/api/chat", data="x" * 20000, headers={"Content-Type": "application/json"})
    assert resp.status == 413 and "太长" in (await resp.json())["error"]


async def test_rate_limit_per_sender(client):
    for i in range(5):
        await post(client, 200, sender="web-e", text=f"问题{i}")
    data = await post(client, 429, sender="web-e", text="再问一个")
    assert "太频繁" in data["error"]
    await post(client, 200, sender="web-f", text="别人不受影响")


async def test_unknown_api_path_is_json_and_pages_are_chinese(client):
    resp = await client.get("/api/nothing")
    assert resp.status == 404 and "不存在" in (await resp.json())["error"]
    resp = await client.get("/nothing")
    assert resp.status == 404 and "不存在" in await resp.text()


async def test_health_names_what_is_down(client):
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 503
    assert body["database"] == "ok" and body["server"] == "ok"
    assert body["rasa"].startswith("unreachable")


async def test_the_chat_page_loads_only_its_own_files(client):
    resp = await client.get("/")
    page = await resp.text()
    assert resp.status == 200 and 'lang="zh-CN"' in page
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("/static/webchat/chat.js", "/static/webchat/chat.css"):
        assert asset in page
        assert (await client.get(asset)).status == 200


async def test_a_retry_is_replayed_even_at_the_rate_limit(client):
    first = await post(client, 200, sender="web-g", text="问题0", message_id="g-0")
    for i in range(1, 5):
        await post(client, 200, sender="web-g", text=f"问题{i}", message_id=f"g-{i}")
    assert await post(client, 200, sender="web-g", text="问题0", message_id="g-0") == first
