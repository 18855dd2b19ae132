"""Hostile citizen input through the web chat API (/api/chat): SQL and markup payloads, control
characters, emoji, mixed scripts, overlong text and characters no database can hold. Stored and
answered exactly as typed, refused in Chinese when it cannot be, never a 500.

One server and one database for the module (hypothesis runs many examples): SQLite and PostgreSQL.
"""
from __future__ import annotations

import itertools
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.models import Conversation, Message
from casework.models import Event
from server.app import create_app
from server.config import Config
from server.errors import error_middleware
from tests.fuzzing import PAYLOADS, fuzz, table_counts, fuzz_db  # noqa: F401 (a fixture)

TABLES = (Message, Conversation, Event)
MAX_CHARS = 500         # Config.max_message_chars's default: the citizen is told this number
_senders = (f"web-fuzz-{n}" for n in itertools.count())    # one per example: no rate limit


@pytest.fixture(scope="module")
async def http(fuzz_db, tmp_path_factory):
    """The whole app; Rasa (fake) repeats what it was told, so the reply carries the payload too."""
    async def webhook(request):
        return web.json_response([{"text": "收到：" + (await request.json())["message"]}])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=fuzz_db.url, rasa_manage=False, embedder="none",
                        var_dir=tmp_path_factory.mktemp("var"),
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
        async with TestClient(TestServer(create_app(config))) as client:
            yield client


async def stored_texts(db, sender: str) -> list[tuple[str, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Message.direction, Message.text).join(Conversation)
            .where(Conversation.sender == sender).order_by(Message.id))
        return [tuple(r) for r in rows]


async def send(http, text, sender: str | None = None):
    return await http.post("/api/chat", json={"sender": sender or next(_senders), "text": text})


@fuzz(60)
@given(text=st.one_of(st.sampled_from(PAYLOADS),
                      st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                              min_size=1, max_size=80)))
async def test_any_text_is_stored_and_answered_exactly_as_typed(http, fuzz_db, text):
    sender = next(_senders)
    before = await table_counts(fuzz_db, *TABLES)
    resp = await send(http, text, sender)
    data = await resp.json()
    if not text.strip():
        assert resp.status == 400 and "为空" in data["error"]
        assert await table_counts(fuzz_db, *TABLES) == before
        return
    assert resp.status == 200, data
    assert [r["text"] for r in data["replies"]] == ["收到：" + text.strip()]
    assert await stored_texts(fuzz_db, sender) == [("in", text.strip()), ("out", "收到：" + text.strip())]


async def test_sql_payloads_do_not_touch_other_rows(http, fuzz_db):
    """After every SQL payload the tables still hold what they held plus this conversation."""
    for payload in PAYLOADS[:6]:
        before = await table_counts(fuzz_db, *TABLES)
        assert (await send(http, payload)).status == 200
        after = await table_counts(fuzz_db, *TABLES)
        assert after["messages"] == before["messages"] + 2
        assert after["conversations"] == before["conversations"] + 1


@pytest.mark.parametrize("length, status", [(MAX_CHARS, 200), (MAX_CHARS + 1, 413), (5000, 413)])
async def test_overlong_text_is_refused_in_chinese_and_not_stored(http, fuzz_db, length, status):
    before = await table_counts(fuzz_db, *TABLES)
    resp = await send(http, "长" * length)
    data = await resp.json()
    assert resp.status == status, data
    if status == 413:       # the body limit (16 KB) speaks first for the longest
        assert "消息太长了" in data["error"] and "请精简" in data["error"]
        if length == MAX_CHARS + 1:
            assert f"请精简到{MAX_CHARS}字以内" in data["error"]
        assert await table_counts(fuzz_db, *TABLES) == before


async def test_a_body_over_the_limit_is_refused_before_it_is_read(http, fuzz_db):
    async def chunks():     # no Content-Length: refused once too much has arrived
        yield b'{"sender": "web-big", "text": "'
        for _ in range(200):
            yield b"x" * 65536
        yield b'"}'

    before = await table_counts(fuzz_db, *TABLES)
    resp = await http.post("/api/chat", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413 and "太" in (await resp.json())["error"]
    resp = await http.post("/api/chat", data=b"x" * (20 * 1024),
                           headers={"Content-Type": "application/json"})
    assert resp.status == 413 and "消息太长了" in (await resp.json())["error"]
    assert await table_counts(fuzz_db, *TABLES) == before


async def test_nul_characters_are_dropped_not_a_database_error(http, fuzz_db):
    # PostgreSQL's text cannot hold U+0000 (asyncpg refuses it: once a 503 "系统繁忙").
    sender = next(_senders)
    resp = await send(http, "社保\x00卡\x00补办", sender)
    assert resp.status == 200, await resp.text()
    assert await stored_texts(fuzz_db, sender) == [("in", "社保卡补办"), ("out", "收到：社保卡补办")]
    before = await table_counts(fuzz_db, *TABLES)
    resp = await send(http, "\x00\x00 ")
    assert resp.status == 400 and "为空" in (await resp.json())["error"]
    assert await table_counts(fuzz_db, *TABLES) == before


@pytest.mark.parametrize("raw", ['"\\ud800"', '"社保\\udfff卡"', '"\\udc00\\ud800"'])
async def test_lone_surrogates_are_refused_in_chinese(http, fuzz_db, raw):
    # Valid JSON, but no UTF-8 text: neither database can store it (once a 500).
    before = await table_counts(fuzz_db, *TABLES)
    body = '{"sender": "web-surrogate", "text": %s}' % raw
    resp = await http.post("/api/chat", data=body, headers={"Content-Type": "application/json"})
    data = await resp.json()
    assert resp.status == 400 and "无法识别的字符" in data["error"], data
    assert await table_counts(fuzz_db, *TABLES) == before


@fuzz(60)
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["sender", "text", "message_id", "reply_id", "helpful", "x"]), inner, max_size=5),
    max_leaves=12))
async def test_any_json_body_is_answered_cleanly(http, fuzz_db, body):
    for path in ("/api/chat", "/api/chat/feedback"):
        resp = await http.post(path, data=json.dumps(body),
                               headers={"Content-Type": "application/json"})
        assert resp.status in (200, 400, 404, 413, 429), (path, resp.status, await resp.text())
        assert "error" in await resp.json() or resp.status == 200


@fuzz(40)
@given(sender=st.text(max_size=80), after=st.text(max_size=30))
async def test_the_updates_query_never_fails(http, sender, after):
    resp = await http.get("/api/chat/updates", params={"sender": sender, "after": after})
    assert resp.status in (200, 400), (resp.status, await resp.text())


async def test_a_value_the_database_refuses_is_a_400_not_busy(fuzz_db):
    """The safety net behind the doors: a DataError (a string over its column on PostgreSQL)
    says the input cannot be stored, not "系统繁忙" (a 503 makes WeChat and clients retry)."""
    async def too_long(request):
        async with fuzz_db.session() as session, session.begin():
            session.add(Conversation(channel="webchat", account="", sender=next(_senders) * 20))
        return web.Response(text="stored")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/api/too-long", too_long)
    app.router.add_post("/page", too_long)
    async with TestClient(TestServer(app)) as client:
        api, page = await client.post("/api/too-long"), await client.post("/page")
        if fuzz_db.dialect == "sqlite":     # SQLite keeps any length: nothing to refuse
            assert api.status == page.status == 200
            return
        assert api.status == page.status == 400
        assert "无法保存" in (await api.json())["error"] and "无法保存" in await page.text()
