"""The staff hand-off inbox over the real app: claim, reply, notes, return to bot, resolve."""
from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from admin.models import AuditEntry
from bot import api as bot_api
from bot import handoff
from bot.models import Conversation, ConversationNote, Message
from casework.models import Event
from channels.wechat.models import Delivery
from server.app import create_app
from server.config import Config
from tests.admin.conftest import PASSWORD, add_user, csrf_of

BOT_SAYS = "您好，我是智能助手。"


@pytest.fixture
async def site(db, tmp_path):
    """The whole app (web chat, consoles) with a fake Rasa that answers every message."""
    async def webhook(request):
        return web.json_response([{"custom": {"kind": "answer", "text": BOT_SAYS,
                                              "source_ref": "qa:SB-001@3"}}])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
        async with TestClient(TestServer(create_app(config))) as citizen:
            yield citizen


class Staff:
    """A signed-in browser of its own (cookie jar) on the same server."""

    def __init__(self, session: aiohttp.ClientSession, csrf: str) -> None:
        self.session, self.csrf = session, csrf

    async def get(self, path: str, **kw):
        return await self.session.get(path, allow_redirects=False, **kw)

    async def post(self, path: str, **data):
        return await self.session.post(path, data={"_csrf": self.csrf, **data},
                                       allow_redirects=False)


@pytest.fixture
async def staff(site, db):
    sessions = []

    async def make(username: str, role: str = "agent") -> Staff:
        await add_user(db, username, role)
        session = aiohttp.ClientSession(base_url=str(site.make_url("/")),
                                        cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        resp = await session.post("/admin/login", data={"username": username, "password": PASSWORD},
                                  allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return Staff(session, await csrf_of(session))

    yield make
    for session in sessions:
        await session.close()


async def chat(citizen: TestClient, sender: str, text: str) -> dict:
    resp = await citizen.post("/api/chat", json={"sender": sender, "text": text})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def handed_off(db, citizen: TestClient, sender: str, *texts: str) -> int:
    """A web chat conversation the bot answered once, then handed to staff; its id."""
    await chat(citizen, sender, "你好")
    async with db.session() as session:
        conv_id = await session.scalar(select(Conversation.id).where(Conversation.sender == sender))
    assert await bot_api.request_handoff(db, conv_id, bot_api.CITIZEN_REQUEST)
    for text in texts:
        assert (await chat(citizen, sender, text)) == {"replies": [], "status": "with_staff"}
    return conv_id


async def flashes(agent: Staff, path: str) -> list[str]:
    html = await (await agent.get(path)).text()
    return re.findall(r'<div class="flash" role="status">([^<]*)</div>', html)


async def audit_actions(db) -> list[tuple[str, str]]:
    async with db.session() as session:
        rows = await session.execute(select(AuditEntry.actor, AuditEntry.action)
                                     .where(AuditEntry.action.like("inbox.%"))
                                     .where(AuditEntry.action != "inbox.view")
                                     .order_by(AuditEntry.id))
        return [tuple(r) for r in rows]


async def test_a_handed_off_conversation_is_listed_with_its_last_message(site, db, staff):
    conv_id = await handed_off(db, site, "web-list", "我要找人工，电话13812345678")
    await chat(site, "web-bot", "你好")          # stays with the bot: not listed
    agent = await staff("li.na")
    resp = await agent.get("/admin/inbox")
    html = await resp.text()
    assert resp.status == 200
    assert f'<tr data-id="{conv_id}">' in html and "群众要求人工" in html
    assert "群众：我要找人工，电话138****5678" in html and "未接管" in html
    assert html.count("<tr data-id=") == 1
    data = await (await agent.get("/admin/inbox/updates")).json()
    assert [(r["id"], r["owner"], r["channel"]) for r in data["rows"]] == [(conv_id, "", "网页")]
    # Mine: nothing until claimed.
    assert "您当前没有接管的会话" in await (await agent.get("/admin/inbox?mine=1")).text()
    await agent.post(f"/admin/inbox/{conv_id}/claim")
    data = await (await agent.get("/admin/inbox/updates?mine=1")).json()
    assert [(r["id"], r["owner"], r["mine"]) for r in data["rows"]] == [(conv_id, "li.na", True)]


async def test_two_agents_claiming_at_once_get_one_owner(site, db, staff):
    conv_id = await handed_off(db, site, "web-race", "在吗")
    a, b = await staff("agent.a"), await staff("agent.b")
    results = await asyncio.gather(*(x.post(f"/admin/inbox/{conv_id}/claim") for x in (a, b)))
    assert [r.status for r in results] == [303, 303]
    async with db.session() as session:
        owner = await session.scalar(select(Conversation.assigned_to)
                                     .where(Conversation.id == conv_id))
    assert owner in ("agent.a", "agent.b")
    loser = b if owner == "agent.a" else a
    assert await flashes(loser, f"/admin/inbox/{conv_id}") == [f"该会话已由 {owner} 接管"]
    # The loser may neither reply nor return it.
    resp = await loser.post(f"/admin/inbox/{conv_id}/reply", text="我来回答")
    assert resp.status == 409 and f"该会话已由 {owner} 接管" in await resp.text()
    await loser.post(f"/admin/inbox/{conv_id}/return")
    async with db.session() as session:
        assert (await session.get(Conversation, conv_id)).state == "staff"
        assert await session.scalar(select(func.count()).select_from(Message)
                                    .where(Message.source == "staff")) == 0


async def test_only_the_owner_replies_and_the_citizen_gets_it(site, db, staff):
    conv_id = await handed_off(db, site, "web-reply", "社保卡怎么补？")
    agent = await staff("li.na")
    # Not claimed yet: no reply.
    resp = await agent.post(f"/admin/inbox/{conv_id}/reply", text="您好")
    assert resp.status == 400 and "请先接管该会话" in await resp.text()
    assert (await agent.post(f"/admin/inbox/{conv_id}/claim")).status == 303
    resp = await agent.post(f"/admin/inbox/{conv_id}/reply", text="您好，请带身份证到社保中心补办。")
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/inbox/{conv_id}"
    async with db.session() as session:
        row = await session.scalar(select(Message).where(Message.source == "staff"))
    assert (row.text, row.source_ref, row.direction) == (
        "您好，请带身份证到社保中心补办。", "staff:li.na", "out")
    updates = await (await site.get("/api/chat/updates?sender=web-reply&after=0")).json()
    assert [(m["text"], m["source"]) for m in updates["messages"]] == [
        ("您好，请带身份证到社保中心补办。", "staff")]
    # The history shows every turn, oldest first, with the Q&A version of the bot's answer.
    html = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    order = [html.index(t) for t in ("你好", BOT_SAYS, "社保卡怎么补？", "请带身份证")]
    assert order == sorted(order)
    assert "问答 SB-001 第3版" in html and "客服 li.na" in html
    # The first staff reply is an event; the second is not.
    await agent.post(f"/admin/inbox/{conv_id}/reply", text="还有别的问题吗？")
    async with db.session() as session:
        firsts = (await session.scalars(select(Event).where(
            Event.name == handoff.STAFF_FIRST_REPLY))).all()
    assert [(e.conversation_id, e.actor) for e in firsts] == [(conv_id, "li.na")]
    assert firsts[0].value_seconds >= 0
    assert ("li.na", "inbox.reply") in await audit_actions(db)


async def test_a_wechat_reply_is_queued_for_delivery_and_its_state_shown(site, db, staff):
    conv = await bot_api.open_conversation(db, "wechat", "gov", "openid-1")
    assert await bot_api.request_handoff(db, conv.id, bot_api.CITIZEN_REQUEST)
    agent = await staff("li.na")
    await agent.post(f"/admin/inbox/{conv.id}/claim")
    await agent.post(f"/admin/inbox/{conv.id}/reply", text="已收到您的留言。")
    async with db.session() as session:
        message_id = await session.scalar(select(Message.id).where(Message.source == "staff"))
        deliveries = (await session.scalars(select(Delivery))).all()
    assert [(d.message_id, d.account, d.to_user) for d in deliveries] == [
        (message_id, "gov", "openid-1")]
    data = await (await agent.get(f"/admin/inbox/updates?conversation={conv.id}")).json()
    # The app's worker may already have tried (there is no account "gov"): either state is shown.
    label = data["deliveries"][str(message_id)]
    assert label == "待发送" or label.startswith("未送达："), label


async def test_notes_are_kept_and_never_sent(site, db, staff):
    conv_id = await handed_off(db, site, "web-note", "问题")
    agent = await staff("li.na")
    resp = await agent.post(f"/admin/inbox/{conv_id}/note", text="群众情绪激动，注意安抚<b>")
    assert resp.status == 303
    async with db.session() as session:
        notes = (await session.scalars(select(ConversationNote))).all()
        outs = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conv_id, Message.direction == "out"))
    assert [(n.author, n.text) for n in notes] == [("li.na", "群众情绪激动，注意安抚<b>")]
    assert outs == 1          # the bot's answer to 你好 only
    html = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    assert "群众情绪激动，注意安抚&lt;b&gt;" in html
    updates = await (await site.get("/api/chat/updates?sender=web-note&after=0")).json()
    assert updates["messages"] == []


async def test_return_to_bot_tells_the_citizen_and_the_bot_answers_again(site, db, staff):
    conv_id = await handed_off(db, site, "web-back", "人工")
    agent = await staff("li.na")
    await agent.post(f"/admin/inbox/{conv_id}/claim")
    resp = await agent.post(f"/admin/inbox/{conv_id}/return")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/inbox"
    async with db.session() as session:
        conv = await session.get(Conversation, conv_id)
        resolved = await session.scalar(select(func.count()).select_from(Event)
                                        .where(Event.name == handoff.HANDOFF_RESOLVED))
    assert (conv.state, conv.assigned_to, conv.handoff_at) == ("bot", None, None)
    assert resolved == 0
    updates = await (await site.get("/api/chat/updates?sender=web-back&after=0")).json()
    assert [m["text"] for m in updates["messages"]] == [handoff.BACK_TO_BOT]
    data = await chat(site, "web-back", "再问一个问题")
    assert data["status"] == "bot" and data["replies"][0]["text"] == BOT_SAYS
    assert await audit_actions(db) == [("li.na", "inbox.claim"), ("li.na", "inbox.return")]


async def test_resolve_records_the_resolution_with_the_waiting_time(site, db, staff):
    conv_id = await handed_off(db, site, "web-done", "投诉")
    agent = await staff("li.na")
    await agent.post(f"/admin/inbox/{conv_id}/claim")
    await agent.post(f"/admin/inbox/{conv_id}/reply", text="已为您登记。")
    resp = await agent.post(f"/admin/inbox/{conv_id}/resolve")
    assert resp.status == 303
    assert (await flashes(agent, "/admin/inbox"))[-1] == "会话已办结，已转回智能助手"
    async with db.session() as session:
        rows = (await session.scalars(select(Event).where(Event.name.in_(
            (handoff.HANDOFF_RESOLVED, handoff.STAFF_FIRST_REPLY))).order_by(Event.id))).all()
        conv = await session.get(Conversation, conv_id)
    assert [(e.name, e.conversation_id, e.actor, e.channel) for e in rows] == [
        ("staff_first_reply", conv_id, "li.na", "webchat"),
        ("handoff_resolved", conv_id, "li.na", "webchat")]
    assert rows[1].value_seconds >= rows[0].value_seconds >= 0
    assert conv.state == "bot"
    # Resolved once: a second click is refused and records nothing more.
    await agent.post(f"/admin/inbox/{conv_id}/resolve")
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Event)
                                    .where(Event.name == handoff.HANDOFF_RESOLVED)) == 1


async def test_citizen_markup_is_shown_as_text(site, db, staff):
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    conv_id = await handed_off(db, site, "web-xss", payload)
    agent = await staff("li.na")
    html = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    assert payload not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<img src=x" not in await (await agent.get("/admin/inbox")).text()


@pytest.mark.parametrize("role", ["unit_handler", "reviewer", "dispatcher"])
async def test_other_roles_are_refused(site, db, staff, role):
    conv_id = await handed_off(db, site, f"web-{role}", "在吗")
    other = await staff(f"x.{role}", role)
    for path in ("/admin/inbox", "/admin/inbox/updates", f"/admin/inbox/{conv_id}"):
        assert (await other.get(path)).status == 403, path
    for action in ("claim", "reply", "note", "return", "resolve", "release"):
        assert (await other.post(f"/admin/inbox/{conv_id}/{action}", text="x")).status == 403
    async with db.session() as session:
        conv = await session.get(Conversation, conv_id)
    assert (conv.state, conv.assigned_to) == ("staff", None)


async def test_an_admin_may_work_the_inbox_and_unknown_ids_are_404(site, db, staff):
    admin = await staff("boss", "admin")
    assert (await admin.get("/admin/inbox")).status == 200
    assert (await admin.get("/admin/inbox/424242")).status == 404
    assert (await admin.post("/admin/inbox/424242/claim")).status == 404
    assert (await admin.get("/admin/inbox/updates?conversation=424242")).status == 404
