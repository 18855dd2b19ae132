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


async def post(client, expect: int, path: str = "/api/chat", **body) -> dict:
    resp = await client.post(path, json=body)
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


# Rasa as far as the chat API sees it: an answer from the Q&A base, or a clarification.
RASA_SAYS = {
    "社保卡丢了": [{"custom": {"kind": "answer", "text": "先挂失，再补卡。", "qa_id": "SB-001",
                             "source_ref": "qa:SB-001@1"}}],
    "居住证": [{"custom": {"kind": "clarify", "text": "您是想问哪个？", "options": [
        {"title": "居住证怎么办理？", "payload": "1", "faq_id": "HJ-005"}]}}],
}


@pytest.fixture
async def answering(db, tmp_path):
    """The app with a fake Rasa on loopback and SB-001 published."""
    from aiohttp import web

    from knowledge_base import api as kb

    async with db.session() as session, session.begin():
        await kb.import_rows(session, [kb.Row("SB-001", "社保卡丢了怎么补办？", (), "先挂失，再补卡。",
                                              "社保", "社保中心")], actor="test", publish=True)

    async def webhook(request):
        return web.json_response(RASA_SAYS[(await request.json())["message"]])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
        async with TestClient(TestServer(create_app(config))) as client:
            yield client


async def vote(client, expect: int, **body) -> dict:
    return await post(client, expect, "/api/chat/feedback", **body)


async def test_a_vote_on_an_answer_is_stored_against_its_version_and_can_be_changed(answering, db):
    from knowledge_base.models import Feedback, Version

    reply = (await post(answering, 200, sender="web-h", text="社保卡丢了"))["replies"][0]
    assert reply["kind"] == "answer" and isinstance(reply["id"], int)
    assert await vote(answering, 200, sender="web-h", reply_id=reply["id"], helpful=True) == {"ok": True}
    assert await vote(answering, 200, sender="web-h", reply_id=reply["id"], helpful=False) == {"ok": True}
    async with db.session() as session:
        votes = (await session.scalars(select(Feedback))).all()
        version = await session.scalar(select(Version))
    assert [(v.message_id, v.entry_id, v.version_id, v.helpful) for v in votes] == [
        (reply["id"], "SB-001", version.id, False)]


async def test_only_the_citizen_who_got_the_reply_may_rate_it(answering, db):
    from knowledge_base.models import Feedback

    reply = (await post(answering, 200, sender="web-i", text="社保卡丢了"))["replies"][0]
    async with db.session() as session:
        question = await session.scalar(select(Message.id).where(Message.direction == "in"))
    for sender, reply_id in (("web-j", reply["id"]), ("web-i", reply["id"] + 100), ("web-i", question)):
        data = await vote(answering, 404, sender=sender, reply_id=reply_id, helpful=True)
        assert data["error"] == "没有找到这条回复，请刷新页面后重试。"
    clarify = (await post(answering, 200, sender="web-i", text="居住证"))["replies"][0]
    data = await vote(answering, 400, sender="web-i", reply_id=clarify["id"], helpful=True)
    assert "问答库的答复" in data["error"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Feedback)) == 0


@pytest.mark.parametrize("body", [
    {"reply_id": 1, "helpful": True},
    {"sender": "a b", "reply_id": 1, "helpful": True},
    {"sender": "web-k", "reply_id": "1", "helpful": True},
    {"sender": "web-k", "reply_id": True, "helpful": True},
    {"sender": "web-k", "reply_id": 0, "helpful": True},
    {"sender": "web-k", "reply_id": 1, "helpful": "yes"},
    {"sender": "web-k", "reply_id": 1},
    ["web-k", 1, True],
])
async def test_a_malformed_vote_is_refused_in_chinese(client, body):
    resp = await client.post("/api/chat/feedback", json=body)
    assert resp.status == 400 and (await resp.json())["error"] == "请求格式不正确，请刷新页面后重试。"


async def test_a_vote_that_is_not_json_is_refused(client):
    resp = await client.post("/api/chat/feedback", data="{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "格式" in (await resp.json())["error"]
