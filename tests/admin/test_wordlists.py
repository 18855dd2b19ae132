"""Word lists (art. 20–21, 24): matching, the admin page, the staff reply's content check, and
harmful citizen messages flagged in the inbox and never repeated by the bot."""
from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from admin import wordlists
from admin.models import AuditEntry, MessageFlag, WordListEntry
from bot.models import Conversation, Message
from channels.wechat.models import Delivery
from server.app import create_app
from server.bootstrap import load_demo_content
from server.config import Config
from tests.admin.conftest import PASSWORD, add_user, csrf_of, signed_in

HARMFUL_TERM = "违禁词甲"      # a stand-in: the repository ships no real harmful terms
CAUTION_TERM = "最便宜"


@pytest.fixture(autouse=True)
def fresh_matchers():
    """Each test starts and ends with no cached matcher (the database is emptied between tests)."""
    wordlists.invalidate()
    yield
    wordlists.invalidate()


async def add_words(db, kind: str, *words: str) -> None:
    async with db.session() as session, session.begin():
        for word in words:
            await wordlists.add(session, kind, word, actor="test")
    wordlists.invalidate()


# ---------------------------------------------------------------- matching

def test_matcher_finds_masks_and_highlights_longest_first_ignoring_case():
    m = wordlists.compile_words(["最便宜", "便宜", "VIP通道", "a.b"])
    text = "这里最便宜，走vip通道，a.b 不是 axb"
    assert m.find(text) == ["最便宜", "vip通道", "a.b"]
    assert m.mask(text) == "这里＊＊＊，走＊＊＊＊＊，＊＊＊ 不是 axb"
    assert m.segments("价格最便宜了") == [("价格", False), ("最便宜", True), ("了", False)]
    empty = wordlists.compile_words([])
    assert empty.find(text) == [] and empty.mask(text) == text
    assert empty.segments("x") == [("x", False)]


async def test_the_cached_matcher_follows_changes_made_elsewhere(db, monkeypatch):
    assert await wordlists.harmful_terms(db, f"含有{HARMFUL_TERM}") == []
    async with db.session() as session, session.begin():     # another process: no invalidate
        session.add(WordListEntry(kind="harmful", word=HARMFUL_TERM, created_by="cli"))
    monkeypatch.setattr(wordlists, "CHECK_EVERY", 0.0)
    assert await wordlists.harmful_terms(db, f"含有{HARMFUL_TERM}") == [HARMFUL_TERM]
    async with db.session() as session, session.begin():
        await session.execute(WordListEntry.__table__.delete())
    assert await wordlists.harmful_terms(db, f"含有{HARMFUL_TERM}") == []


async def test_demo_content_brings_neutral_caution_words_and_no_harmful_ones(db):
    await load_demo_content(db)
    async with db.session() as session:
        counts = await wordlists.counts(session)
    assert counts["harmful"] == 0 and counts["staff_caution"] == len(wordlists.DEMO_CAUTION)
    assert await wordlists.caution_terms(db, "我个人认为这个保证办成") == ["我个人认为", "保证办成"]


# ---------------------------------------------------------------- the admin page

async def audit_rows(db, prefix: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action.like(f"{prefix}%")).order_by(AuditEntry.id)))


async def test_admins_add_import_and_remove_words_and_every_change_is_audited(make_client, db):
    client, csrf = await signed_in(make_client, db, "root", "admin")
    resp = await client.post("/admin/words", data={"_csrf": csrf, "kind": "staff_caution",
                                                   "word": "  价格 最低 ", "note": "广告用语"},
                             allow_redirects=False)
    assert resp.status == 303
    # A duplicate is refused in words; a bad kind too.
    resp = await client.post("/admin/words", data={"_csrf": csrf, "kind": "staff_caution",
                                                   "word": "价格 最低"})
    assert resp.status == 400 and "已在客服回复提示词中" in await resp.text()
    resp = await client.post("/admin/words", data={"_csrf": csrf, "kind": "other", "word": "x"})
    assert resp.status == 400 and "未知的词表类型" in await resp.text()
    resp = await client.post("/admin/words/import", data={
        "_csrf": csrf, "kind": "harmful", "lines": f"{HARMFUL_TERM}\n\n<b>词乙</b>\n{HARMFUL_TERM}\n"},
        allow_redirects=False)
    assert resp.status == 303
    html = await (await client.get("/admin/words")).text()
    assert "已导入 2 个词语，1 个已存在未重复添加" in html
    assert "&lt;b&gt;词乙&lt;/b&gt;" in html and "<b>词乙</b>" not in html
    assert "价格 最低" in html and "广告用语" in html
    async with db.session() as session:
        entries = {(e.kind, e.word): e for e in await wordlists.entries(session)}
    assert set(entries) == {("staff_caution", "价格 最低"), ("harmful", HARMFUL_TERM),
                            ("harmful", "<b>词乙</b>")}
    assert entries[("harmful", HARMFUL_TERM)].created_by == "root"
    # The matchers see the change at once.
    assert await wordlists.caution_terms(db, "本店价格 最低") == ["价格 最低"]
    gone = entries[("staff_caution", "价格 最低")]
    resp = await client.post(f"/admin/words/{gone.id}/remove", data={"_csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    assert await wordlists.caution_terms(db, "本店价格 最低") == []
    assert (await client.post("/admin/words/999999/remove", data={"_csrf": csrf})).status == 404
    rows = await audit_rows(db, "words.")
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("root", "words.add", "staff_caution:价格 最低"),
        ("root", "words.import", "harmful"),
        ("root", "words.remove", "staff_caution:价格 最低")]
    assert rows[1].detail["added"] == [HARMFUL_TERM, "<b>词乙</b>"]
    assert rows[2].detail["before"]["note"] == "广告用语"


@pytest.mark.parametrize("role", ["agent", "reviewer", "dispatcher", "unit_handler"])
async def test_only_admins_manage_words(make_client, db, role):
    client, csrf = await signed_in(make_client, db, f"u-{role}", role)
    assert (await client.get("/admin/words")).status == 403
    resp = await client.post("/admin/words", data={"_csrf": csrf, "kind": "harmful", "word": "x"})
    assert resp.status == 403
    async with db.session() as session:
        assert await wordlists.entries(session) == []


# ---------------------------------------------------------------- inbox and bot, over the real app

async def echo_webhook(request):
    """A Rasa whose case form reads back what the citizen wrote."""
    body = await request.json()
    return web.json_response([{"custom": {
        "kind": "form", "text": f"请核对您的投诉内容：\n事项：{body['message']}",
        "options": [{"title": body["message"], "payload": "/x", "faq_id": "X"}]}}])


@pytest.fixture
async def site(db, tmp_path):
    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", echo_webhook)
    async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
        async with TestClient(TestServer(create_app(config))) as citizen:
            yield citizen


@pytest.fixture
async def agent(site, db):
    await add_user(db, "li.na", "agent")
    async with aiohttp.ClientSession(base_url=str(site.make_url("/")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        resp = await session.post("/admin/login", data={"username": "li.na", "password": PASSWORD},
                                  allow_redirects=False)
        assert resp.status == 303
        session.headers["X-CSRF-Token"] = await csrf_of(session)
        yield session


async def chat(site, sender: str, text: str) -> dict:
    resp = await site.post("/api/chat", json={"sender": sender, "text": text})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def conversation_of(db, sender: str) -> int:
    async with db.session() as session:
        return await session.scalar(select(Conversation.id).where(Conversation.sender == sender))


async def test_a_caution_term_holds_the_staff_reply_until_confirmed(site, db, agent):
    from bot import api as bot_api
    await add_words(db, "staff_caution", CAUTION_TERM, "我个人认为")
    await chat(site, "web-c", "你好")
    cid = await conversation_of(db, "web-c")
    assert await bot_api.request_handoff(db, cid, bot_api.CITIZEN_REQUEST)
    assert (await agent.post(f"/admin/inbox/{cid}/claim", allow_redirects=False)).status == 303
    text = "我个人认为<i>这家</i>最便宜"
    resp = await agent.post(f"/admin/inbox/{cid}/reply", data={"text": text}, allow_redirects=False)
    html = await resp.text()
    assert resp.status == 200 and 'id="reply-held"' in html and "仍然发送" in html
    assert "<mark>我个人认为</mark>&lt;i&gt;这家&lt;/i&gt;<mark>最便宜</mark>" in html
    assert re.search(r'<textarea name="text"[^>]*>我个人认为&lt;i&gt;这家&lt;/i&gt;最便宜</textarea>', html)

    async def staff_rows():
        async with db.session() as session:
            return (await session.scalar(select(func.count()).select_from(Message)
                                         .where(Message.source == "staff")),
                    await session.scalar(select(func.count()).select_from(Delivery)))
    assert await staff_rows() == (0, 0)
    updates = await (await site.get("/api/chat/updates?sender=web-c&after=0")).json()
    assert updates["messages"] == []
    # Without a caution term a reply goes straight out; with the confirmation, this one too.
    resp = await agent.post(f"/admin/inbox/{cid}/reply", data={"text": text, "confirm": "1"},
                            allow_redirects=False)
    assert resp.status == 303
    assert (await staff_rows())[0] == 1
    updates = await (await site.get("/api/chat/updates?sender=web-c&after=0")).json()
    assert [m["text"] for m in updates["messages"]] == [text]
    rows = await audit_rows(db, "inbox.reply")
    assert [(r.action, r.detail.get("caution_terms"), r.detail.get("confirmed")) for r in rows] == [
        ("inbox.reply.held", ["我个人认为", "最便宜"], None),
        ("inbox.reply", ["我个人认为", "最便宜"], True)]
    resp = await agent.post(f"/admin/inbox/{cid}/reply", data={"text": "请稍候"},
                            allow_redirects=False)
    assert resp.status == 303
    assert (await audit_rows(db, "inbox.reply"))[-1].detail.get("caution_terms") is None


async def test_a_harmful_message_is_flagged_shown_flagged_and_never_repeated(site, db, agent):
    from bot import api as bot_api
    await add_words(db, "harmful", HARMFUL_TERM)
    out = await chat(site, "web-h", f"我要投诉楼下有人卖{HARMFUL_TERM}")
    # The bot's read-back masks the term, in what is sent and in what is stored.
    assert out["replies"][0]["text"] == "请核对您的投诉内容：\n事项：我要投诉楼下有人卖＊＊＊＊"
    assert out["replies"][0]["options"][0]["title"] == "我要投诉楼下有人卖＊＊＊＊"
    async with db.session() as session:
        bot_texts = list(await session.scalars(select(Message.text).where(Message.source == "bot")))
        flags = list(await session.scalars(select(MessageFlag)))
        citizen = await session.scalar(select(Message).where(Message.direction == "in"))
    assert all(HARMFUL_TERM not in t for t in bot_texts) and len(bot_texts) == 1
    assert [(f.message_id, f.terms) for f in flags] == [(citizen.id, [HARMFUL_TERM])]
    assert citizen.text.endswith(HARMFUL_TERM)          # the citizen's own message is kept as sent
    await chat(site, "web-h", "正常的问题")                # not flagged
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(MessageFlag)) == 1
    # The inbox shows the flag on that message, for a person.
    cid = await conversation_of(db, "web-h")
    assert await bot_api.request_handoff(db, cid, bot_api.CITIZEN_REQUEST)
    html = await (await agent.get(f"/admin/inbox/{cid}")).text()
    assert html.count('class="msg msg-citizen flagged"') == 1
    assert f"疑似有害信息（{HARMFUL_TERM}）" in html
