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


# Later messages: what the page polls for (GET /api/chat/updates).

async def updates(client, expect: int = 200, **query) -> dict:
    resp = await client.get("/api/chat/updates", params=query)
    data = await resp.json()
    assert resp.status == expect, data
    return data


async def conversation_of(db, sender: str, channel: str = "webchat") -> int:
    async with db.session() as session:
        return await session.scalar(select(Conversation.id).where(
            Conversation.channel == channel, Conversation.sender == sender))


async def test_updates_are_this_senders_later_messages_oldest_first(answering, db):
    from bot.outbox import Outbox
    from server.outbox import build_outbox

    reply = (await post(answering, 200, sender="web-u1", text="社保卡丢了"))["replies"][0]
    await post(answering, 200, sender="web-u2", text="社保卡丢了")
    mine, theirs = await conversation_of(db, "web-u1"), await conversation_of(db, "web-u2")
    outbox = build_outbox(db)
    unit = await outbox.send(mine, "您反映的问题已处理完毕。", source="unit", kind="case",
                             meta={"case_no": "ZJ20261127-0001"})
    other = await outbox.send(theirs, "别人的通知", source="system")
    status = await outbox.send(mine, "您的办件已办结。", source="system", kind="info")
    # The same sender name on WeChat is another citizen's conversation.
    wechat = await bot_api.open_conversation(db, "wechat", "", "web-u1")
    await Outbox(db, {}).send(wechat.id, "公众号消息", source="staff")

    resp = await answering.get("/api/chat/updates", params={"sender": "web-u1"})
    assert resp.headers["Cache-Control"] == "no-store"
    data = await resp.json()
    assert [m.pop("at")[-6:] for m in data["messages"]] == ["+08:00", "+08:00"]
    assert data == {"messages": [
        {"id": unit, "text": "您反映的问题已处理完毕。", "kind": "case", "source": "unit",
         "case_no": "ZJ20261127-0001"},
        {"id": status, "text": "您的办件已办结。", "kind": "info", "source": "system"}],
        "last_id": status}
    assert reply["id"] < unit      # the reply to the citizen's own question is not an update

    later = await updates(answering, sender="web-u1", after=str(unit))
    assert [m["id"] for m in later["messages"]] == [status] and later["last_id"] == status
    assert await updates(answering, sender="web-u1", after=str(status)) == {
        "messages": [], "last_id": status}
    assert [m["id"] for m in (await updates(answering, sender="web-u2"))["messages"]] == [other]


async def test_updates_come_fifty_at_a_time(client, db):
    from server.outbox import build_outbox

    conv = await bot_api.open_conversation(db, "webchat", "", "web-u3")
    outbox = build_outbox(db)
    ids = [await outbox.send(conv.id, f"通知{i}", source="system") for i in range(53)]
    first = await updates(client, sender="web-u3")
    assert [m["id"] for m in first["messages"]] == ids[:50] and first["last_id"] == ids[49]
    rest = await updates(client, sender="web-u3", after=str(first["last_id"]))
    assert [m["text"] for m in rest["messages"]] == ["通知50", "通知51", "通知52"]


async def test_an_unknown_sender_gets_an_empty_list_and_nothing_is_created(client, db):
    assert await updates(client, sender="web-nobody", after="7") == {"messages": [], "last_id": 7}
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0


@pytest.mark.parametrize("query, words", [
    ({}, "会话标识"),
    ({"sender": ""}, "会话标识"),
    ({"sender": "a b<script>"}, "会话标识"),
    ({"sender": "x" * 65}, "会话标识"),
    ({"sender": "web-u4", "after": ""}, "请求格式不正确"),
    ({"sender": "web-u4", "after": "-1"}, "请求格式不正确"),
    ({"sender": "web-u4", "after": "1.5"}, "请求格式不正确"),
    ({"sender": "web-u4", "after": "abc"}, "请求格式不正确"),
    ({"sender": "web-u4", "after": "+3"}, "请求格式不正确"),
    ({"sender": "web-u4", "after": "99999999999"}, "请求格式不正确"),
])
async def test_malformed_update_queries_are_refused_in_chinese(client, query, words):
    assert words in (await updates(client, 400, **query))["error"]


async def test_rasa_down_a_question_the_qa_base_answers_is_still_answered(client, db):
    """Rasa down: what the Q&A base answers confidently is answered from it, said so, and the
    citizen stays with the bot; anything else gets the apology and a person, as before."""
    from casework.models import Event
    from knowledge_base import api as kb_api
    from bot.actions.faq import WITHOUT_BOT_MAX_CHARS
    from knowledge_base.models import Query
    from server.appkeys import KB

    async with db.session() as session, session.begin():
        await kb_api.import_rows(session, kb_api.read_table(kb_api.DEMO_QA), actor="test", publish=True)
    await client.app[KB].refresh()

    data = await post(client, 200, sender="web-kb", text="居住证怎么办理")
    [reply] = data["replies"]
    assert data["status"] == "bot" and reply["kind"] == "answer" and reply["qa_id"] == "HJ-005"
    assert "以上答复来自问答库" in reply["text"] and "转人工" in reply["text"]
    async with db.session() as session:
        conv = await session.scalar(select(Conversation).where(Conversation.sender == "web-kb"))
        inbound = await session.scalar(select(Message).where(Message.direction == "in"))
        names = (await session.scalars(select(Event.name).where(
            Event.conversation_id == conv.id))).all()
        logged = (await session.scalars(select(Query.entry_id))).all()
    assert conv.state == "bot" and inbound.status == "answered"
    assert "answered_without_bot" in names and "bot_unavailable" not in names
    assert logged == ["HJ-005"]            # the curation loop counts the hit

    # Not a question the base answers outright, or a letter rather than a question: a person.
    # Over WITHOUT_BOT_MAX_CHARS it is a letter, even one that asks the question again and again.
    letter = "您好，" + "我想问居住证怎么办理，" * 6
    assert len(letter) > WITHOUT_BOT_MAX_CHARS
    for text in ("有人吗", letter):
        other = await post(client, 200, sender="web-kb", text=text)
        assert other == {"replies": [{"text": APOLOGY, "kind": "handoff",
                                      "id": other["replies"][0]["id"]}], "status": "with_staff"}
