"""What the rest of govchat may ask of the conversation log and the hand-off lock."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import BOT, STAFF, Conversation, Message
from casework import events
from server import metrics
from server.db import Database, utcnow

# Why a conversation went to staff.
CITIZEN_REQUEST = "citizen_request"
BOT_UNAVAILABLE = "bot_unavailable"


async def open_conversation(db: Database, channel: str, account: str, sender: str) -> Conversation:
    """The citizen's conversation on this channel, created on first contact (race-safe)."""
    where = (Conversation.channel == channel, Conversation.account == account,
             Conversation.sender == sender)
    async with db.session() as session:
        conv = await session.scalar(select(Conversation).where(*where))
    if conv is not None:
        return conv
    try:
        async with db.session() as session, session.begin():
            conv = Conversation(channel=channel, account=account, sender=sender)
            session.add(conv)
        return conv
    except IntegrityError:  # another request opened it a moment ago
        async with db.session() as session:
            return await session.scalar(select(Conversation).where(*where))


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation | None:
    return await session.get(Conversation, conversation_id)


async def request_handoff(
    db: Database, conversation_id: int, reason: str, now: datetime | None = None
) -> bool:
    """Give the conversation to staff; the bot stays silent from now on.

    Returns False when it was already with staff, so a hand-off is recorded once.
    """
    now = now or utcnow()
    async with db.session() as session, session.begin():
        result = await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.state == BOT)
            .values(state=STAFF, handoff_reason=reason, handoff_at=now)
        )
        if result.rowcount != 1:
            return False
        conv = await session.get(Conversation, conversation_id)
        events.record(session, events.HANDOFF_REQUESTED, at=now, conversation_id=conversation_id,
                      channel=conv.channel, reason=reason)
    metrics.handed_off(reason)
    return True


async def return_to_bot(session: AsyncSession, conversation_id: int) -> None:
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id)
        .values(state=BOT, handoff_reason=None, handoff_at=None)
    )


async def last_bot_reply(session: AsyncSession, conversation_id: int) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "out")
        .order_by(Message.id.desc())
        .limit(1)
    )


async def media_since(session: AsyncSession, conversation_id: int, since: datetime) -> list[Message]:
    """Images, videos, links and locations the citizen sent from `since` on, oldest first."""
    rows = await session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.direction == "in",
        Message.created_at >= since).order_by(Message.id))
    return [m for m in rows if (m.meta or {}).get("media")]


async def updates_for(session: AsyncSession, channel: str, account: str, sender: str, after: int,
                      limit: int) -> list[Message]:
    """Messages the citizen did not just ask for (not replies to their own), id > `after`,
    oldest first; none for a sender without a conversation."""
    return list(await session.scalars(
        select(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Conversation.channel == channel, Conversation.account == account,
               Conversation.sender == sender, Message.direction == "out",
               Message.in_reply_to_id.is_(None), Message.id > after)
        .order_by(Message.id)
        .limit(limit)))
