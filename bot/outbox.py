"""Messages the citizen did not just ask for: a unit's reply to a case, a status change, a staff
answer. Each is stored in the conversation first (so it is never lost and the history shows
it), then handed to the conversation's channel to deliver — for WeChat, the persisted
customer-service queue, which any running server instance sends.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.models import Conversation, Message
from server import metrics
from server.db import Database, utcnow

# A channel's delivery: queue these stored messages for this conversation's citizen.
Queue = Callable[[Database, Conversation, list[int]], Awaitable[None]]


class Outbox:
    def __init__(self, db: Database, queues: dict[str, Queue]) -> None:
        self.db = db
        self.queues = queues

    async def send(self, conversation_id: int, text: str, *, source: str, kind: str = "info",
                   source_ref: str | None = None, meta: dict | None = None) -> int:
        """Store the message in the conversation, then queue it on its channel; its id."""
        async with self.db.session() as session, session.begin():
            conv = await session.get(Conversation, conversation_id)
            if conv is None:
                raise LookupError(f"no conversation {conversation_id}")
            row = Message(conversation_id=conv.id, channel=conv.channel, account=conv.account,
                          direction="out", source=source, kind=kind, text=text,
                          source_ref=source_ref, meta=meta or {}, created_at=utcnow())
            session.add(row)
            await session.flush()
            message_id = row.id
        metrics.sent(conv.channel, source)
        queue = self.queues.get(conv.channel)
        if queue is not None:
            await queue(self.db, conv, [message_id])
        return message_id
