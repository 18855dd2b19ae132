"""The staff inbox's data: handed-off conversations, who answers them, their history and notes.

Consoles read and change the conversation log only through here (house convention 2). One staff
member owns a conversation at a time: `claim` is a conditional UPDATE, so of two agents clicking
at once one wins and the other learns who has it. Replies go out through the outbox (stored in
the conversation, then queued on its channel); notes stay in `conversation_notes` and are never
sent. Giving a conversation back to the bot — returned or resolved — clears the owner and tells
the citizen; a resolution and the first staff reply are events the timeliness reports read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import aliased

from bot import api
from bot.models import STAFF, Conversation, ConversationNote, Message
from bot.outbox import Outbox
from casework import events
from casework.events import HANDOFF_RESOLVED, STAFF_FIRST_REPLY
from server.db import Database, utcnow

BACK_TO_BOT = "已为您转回智能助手"
MAX_REPLY = 2000
MAX_NOTE = 2000
_QA_REF = re.compile(r"^qa:(?P<entry>[^@]+)@(?P<version>\d+)$")


class HandoffRefused(Exception):
    """The action cannot be done; `zh` says why, for staff."""

    def __init__(self, zh: str) -> None:
        super().__init__(zh)
        self.zh = zh


class NotFound(HandoffRefused):
    def __init__(self) -> None:
        super().__init__("没有找到这个会话")


class Taken(HandoffRefused):
    """Another staff member owns the conversation."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"该会话已由 {owner} 接管")
        self.owner = owner


@dataclass(frozen=True)
class Waiting:
    """A conversation with staff, as the inbox lists it."""
    id: int
    channel: str
    handoff_reason: str | None
    handoff_at: datetime | None
    assigned_to: str | None
    last_text: str
    last_at: datetime | None
    last_source: str | None

    def waiting_seconds(self, now: datetime) -> int:
        return max(0, int((now - self.handoff_at).total_seconds())) if self.handoff_at else 0


@dataclass(frozen=True)
class Item:
    """One message of a conversation's history."""
    id: int
    direction: str
    source: str              # citizen, bot, staff, system
    kind: str | None
    text: str
    at: datetime
    source_ref: str | None

    @property
    def qa(self) -> tuple[str, int] | None:
        """(entry id, version) for a bot answer from the Q&A base."""
        match = _QA_REF.match(self.source_ref or "")
        return (match["entry"], int(match["version"])) if match else None

    @property
    def staff(self) -> str | None:
        """The username of the staff member who sent it."""
        ref = self.source_ref or ""
        return ref[len("staff:"):] if ref.startswith("staff:") else None


async def waiting(db: Database, *, owner: str | None = None) -> list[Waiting]:
    """Conversations with staff, longest waiting first; only `owner`'s when given."""
    last = (select(Message.conversation_id, func.max(Message.id).label("last_id"))
            .group_by(Message.conversation_id).subquery())
    message = aliased(Message)
    query = (select(Conversation, message)
             .outerjoin(last, last.c.conversation_id == Conversation.id)
             .outerjoin(message, message.id == last.c.last_id)
             .where(Conversation.state == STAFF)
             .order_by(Conversation.handoff_at, Conversation.id))
    if owner is not None:
        query = query.where(Conversation.assigned_to == owner)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [Waiting(c.id, c.channel, c.handoff_reason, c.handoff_at, c.assigned_to,
                    m.text if m else "", m.created_at if m else None, m.source if m else None)
            for c, m in rows]


async def conversation(db: Database, conversation_id: int) -> Conversation:
    async with db.session() as session:
        conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound()
    return conv


async def history(db: Database, conversation_id: int, after: int = 0) -> list[Item]:
    """Every message of the conversation (after id `after`), oldest first."""
    async with db.session() as session:
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id, Message.id > after)
            .order_by(Message.created_at, Message.id))
        return [Item(m.id, m.direction, m.source, m.kind, m.text, m.created_at, m.source_ref)
                for m in rows]


async def notes(db: Database, conversation_id: int) -> list[ConversationNote]:
    async with db.session() as session:
        return list(await session.scalars(
            select(ConversationNote).where(ConversationNote.conversation_id == conversation_id)
            .order_by(ConversationNote.created_at, ConversationNote.id)))


async def claim(db: Database, conversation_id: int, username: str,
                now: datetime | None = None) -> None:
    """Make `username` the owner; Taken when someone else already is."""
    now = now or utcnow()
    async with db.session() as session, session.begin():
        result = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state == STAFF,
                   or_(Conversation.assigned_to.is_(None), Conversation.assigned_to == username))
            .values(assigned_to=username, assigned_at=now))
        if result.rowcount == 1:
            return
    await _refuse(db, conversation_id, username)


async def release(db: Database, conversation_id: int, username: str) -> None:
    """Give the conversation back to the queue; only its owner may."""
    async with db.session() as session, session.begin():
        result = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state == STAFF,
                   Conversation.assigned_to == username)
            .values(assigned_to=None, assigned_at=None))
        if result.rowcount == 1:
            return
    await _refuse(db, conversation_id, username, need_owner=True)


async def _refuse(db: Database, conversation_id: int, username: str, *,
                  need_owner: bool = False) -> None:
    """Raise why `username` may not act on the conversation."""
    conv = await conversation(db, conversation_id)
    if conv.state != STAFF:
        raise HandoffRefused("该会话已转回智能助手，无需人工处理")
    if conv.assigned_to and conv.assigned_to != username:
        raise Taken(conv.assigned_to)
    if need_owner:
        raise HandoffRefused("请先接管该会话")
    raise HandoffRefused("操作未完成，请刷新页面后重试")


def _text(text: str, limit: int, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise HandoffRefused(f"{what}不能为空")
    if len(text) > limit:
        raise HandoffRefused(f"{what}请在{limit}字以内")
    return text


async def reply(db: Database, outbox: Outbox, conversation_id: int, username: str,
                text: str) -> int:
    """Send the owner's reply to the citizen through the outbox; the stored message's id.

    The first staff reply since the hand-off is recorded (value: seconds since the hand-off).
    """
    text = _text(text, MAX_REPLY, "回复内容")
    conv = await conversation(db, conversation_id)
    if conv.state != STAFF or conv.assigned_to != username:
        await _refuse(db, conversation_id, username, need_owner=True)
    message_id = await outbox.send(conversation_id, text, source="staff", kind="info",
                                   source_ref=f"staff:{username}")
    async with db.session() as session, session.begin():
        stored = await session.get(Message, message_id)
        earlier = await session.scalar(
            select(func.count()).select_from(Message)
            .where(Message.conversation_id == conversation_id, Message.source == "staff",
                   Message.id < message_id, Message.created_at >= conv.handoff_at))
        if not earlier:
            events.record(session, STAFF_FIRST_REPLY, at=stored.created_at, since=conv.handoff_at,
                          conversation_id=conversation_id, channel=conv.channel, actor=username,
                          message_id=message_id)
    return message_id


async def add_note(db: Database, conversation_id: int, username: str, text: str) -> int:
    """An internal note; any staff member who may open the inbox may write one."""
    text = _text(text, MAX_NOTE, "备注")
    await conversation(db, conversation_id)
    async with db.session() as session, session.begin():
        note = ConversationNote(conversation_id=conversation_id, author=username, text=text,
                                created_at=utcnow())
        session.add(note)
        await session.flush()
        return note.id


async def give_back(db: Database, outbox: Outbox, conversation_id: int, username: str, *,
                    resolved: bool, now: datetime | None = None) -> float:
    """Return the conversation to the bot (its owner, or anyone while unclaimed), clear the
    owner and tell the citizen; `resolved` also records the resolution. Seconds waited since
    the hand-off."""
    now = now or utcnow()
    async with db.session() as session, session.begin():
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise NotFound()
        handoff_at = conv.handoff_at
        result = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state == STAFF,
                   or_(Conversation.assigned_to.is_(None), Conversation.assigned_to == username))
            .values(assigned_to=None, assigned_at=None))
        if result.rowcount == 1:
            await api.return_to_bot(session, conversation_id)
            if resolved:
                events.record(session, HANDOFF_RESOLVED, at=now, since=handoff_at,
                              conversation_id=conversation_id, channel=conv.channel,
                              actor=username, reason=conv.handoff_reason)
    if result.rowcount != 1:
        await _refuse(db, conversation_id, username)
    await outbox.send(conversation_id, BACK_TO_BOT, source="system", kind="info",
                      source_ref=f"staff:{username}")
    return (now - handoff_at).total_seconds() if handoff_at else 0.0
