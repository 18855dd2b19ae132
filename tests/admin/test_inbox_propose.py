"""提议加入问答库: a staff reply in the inbox becomes a draft Q&A entry for review."""
from __future__ import annotations

from sqlalchemy import select

from admin.models import AuditEntry
from bot.models import Message
from knowledge_base import workflow
from tests.admin.test_inbox import flashes, handed_off, site, staff  # noqa: F401  (fixtures)

ASKED = "社保卡丢了怎么补办？我的电话13812345678"
ANSWER = "请带身份证到社保中心补办，当场可取。"


async def messages(db, conv_id: int) -> dict[str, int]:
    """source → the id of the conversation's last message from it."""
    async with db.session() as session:
        rows = await session.execute(select(Message.source, Message.id)
                                     .where(Message.conversation_id == conv_id).order_by(Message.id))
        return dict(rows.all())


async def audit_rows(db, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def test_a_staff_reply_becomes_a_draft_entry_with_the_question_it_answered(site, db, staff):
    conv_id = await handed_off(db, site, "web-propose", "你好呀", ASKED)
    agent = await staff("li.na")
    await agent.post(f"/admin/inbox/{conv_id}/claim")
    await agent.post(f"/admin/inbox/{conv_id}/reply", text=ANSWER)
    reply_id = (await messages(db, conv_id))["staff"]
    page = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    assert page.count("提议加入问答库") == 1            # on the staff reply only
    assert f"/admin/inbox/{conv_id}/messages/{reply_id}/propose" in page

    resp = await agent.post(f"/admin/inbox/{conv_id}/messages/{reply_id}/propose")
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/kb/STAFF-{reply_id}"
    async with db.session() as session:
        [version] = await workflow.versions(session, f"STAFF-{reply_id}")
    assert (version.status, version.author) == ("draft", "li.na")
    assert version.question == "社保卡丢了怎么补办？我的电话138****5678"    # the latest ask, masked
    assert version.answer == ANSWER
    [row] = await audit_rows(db, "inbox.propose")
    assert (row.actor, row.target) == ("li.na", f"conversation:{conv_id}")
    assert row.detail["message_id"] == reply_id and row.detail["entry"] == f"STAFF-{reply_id}@1"
    assert len(await audit_rows(db, "kb.draft")) == 1
    entry = await (await agent.get(f"/admin/kb/STAFF-{reply_id}")).text()
    assert "已生成问答草稿" in entry and "草稿" in entry

    # Proposing again finds the same entry; nothing new is made.
    resp = await agent.post(f"/admin/inbox/{conv_id}/messages/{reply_id}/propose")
    assert resp.headers["Location"] == f"/admin/kb/STAFF-{reply_id}"
    assert len(await audit_rows(db, "kb.draft")) == 1


async def test_a_bot_message_or_an_unknown_conversation_is_refused(site, db, staff):
    conv_id = await handed_off(db, site, "web-bot-msg", ASKED)
    agent = await staff("li.na")
    ids = await messages(db, conv_id)
    for not_staff in (ids["bot"], ids["citizen"]):
        resp = await agent.post(f"/admin/inbox/{conv_id}/messages/{not_staff}/propose")
        assert resp.status == 303 and resp.headers["Location"] == f"/admin/inbox/{conv_id}"
        assert "只能将工作人员的回复提议加入问答库" in await flashes(agent, f"/admin/inbox/{conv_id}")
    assert len(await audit_rows(db, "inbox.propose.refused")) == 2
    resp = await agent.post(f"/admin/inbox/999999/messages/{ids['bot']}/propose")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/inbox"
    assert "会话不存在，无法提议加入问答库" in await flashes(agent, "/admin/inbox")
    assert await audit_rows(db, "inbox.propose") == [] and await audit_rows(db, "kb.draft") == []
    # Roles: a reviewer edits Q&A but does not work the inbox.
    reviewer = await staff("shen", "reviewer")
    resp = await reviewer.post(f"/admin/inbox/{conv_id}/messages/{ids['bot']}/propose")
    assert resp.status == 403
