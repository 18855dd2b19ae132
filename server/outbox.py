"""The outbox wired to the channels that deliver later (server/ is where packages meet)."""
from __future__ import annotations

from bot.models import Conversation
from bot.outbox import Outbox
from channels.wechat import delivery as wechat_delivery
from server.db import Database


async def _wechat(db: Database, conv: Conversation, message_ids: list[int]) -> None:
    # Any server instance's delivery worker sends it (within WECHAT_DELIVERY_POLL seconds).
    await wechat_delivery.enqueue(db, message_ids, account=conv.account, to_user=conv.sender)


def build_outbox(db: Database) -> Outbox:
    """The web chat needs no queue: its page reads the conversation (GET /api/chat/updates)."""
    return Outbox(db, {wechat_delivery.CHANNEL: _wechat})
