"""The database audit every fault test ends with: each accepted citizen message has its reply or
its recorded hand-off, and nothing happened twice. Counted from the database, not trusted from
the server or the test's own bookkeeping.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from bot.models import ANSWERED, QUEUED, Conversation, Message
from casework import events
from casework.models import Event
from channels.wechat.models import DELIVERED, UNDELIVERABLE, Delivery
from server.db import Database


@dataclass
class Audit:
    inbound: int = 0
    answered: int = 0           # by the bot (or its apology)
    queued: int = 0             # handed to staff
    replies: int = 0
    delivered: int = 0          # late replies sent through WeChat's customer-service API
    undeliverable: int = 0      # recorded as such, with a delivery_failed event
    problems: list[str] = field(default_factory=list)


async def audit(db: Database, accepted: Iterable[tuple[str, str, str]] = (), *,
                deliveries_settled: bool = True) -> Audit:
    """Check the promise over the whole database and return the counts.

    `accepted`: (channel, account, external id) of every message a client was told was received
    (a 200 answer): each must be stored exactly once. With `deliveries_settled`, no WeChat
    delivery may still be waiting. Raises AssertionError listing every problem found.
    """
    found = Audit()
    async with db.session() as session:
        messages = list(await session.scalars(select(Message).order_by(Message.id)))
        convs = {c.id: c for c in await session.scalars(select(Conversation))}
        all_events = list(await session.scalars(select(Event).order_by(Event.id)))
        deliveries = list(await session.scalars(select(Delivery)))
    inbound = [m for m in messages if m.direction == "in"]
    replies_to: dict[int, list[Message]] = {}
    for m in messages:
        if m.direction == "out" and m.in_reply_to_id is not None:
            replies_to.setdefault(m.in_reply_to_id, []).append(m)
    named = Counter(e.name for e in all_events)
    handed_off = {e.conversation_id for e in all_events if e.name == events.HANDOFF_REQUESTED}
    bad = found.problems.append

    found.inbound = len(inbound)
    for m in inbound:
        replies = replies_to.get(m.id, [])
        if m.status == ANSWERED:
            found.answered += 1
            if not replies:
                bad(f"message {m.id} ({m.text!r}) is answered without a stored reply")
        elif m.status == QUEUED:
            found.queued += 1
            if m.conversation_id not in handed_off:
                bad(f"message {m.id} is queued for staff but its conversation was never handed off")
        else:
            bad(f"message {m.id} ({m.text!r}, {m.external_id}) was accepted but left {m.status!r}:"
                " neither answered nor handed to staff")
        for text, times in Counter(r.text for r in replies).items():
            if times > 1:
                bad(f"message {m.id} has the reply {text[:30]!r} {times} times")
    found.replies = sum(len(r) for r in replies_to.values())

    ids = Counter((m.channel, m.account, m.external_id) for m in inbound if m.external_id)
    for key in accepted:
        if ids[tuple(key)] != 1:
            bad(f"accepted message {key} is stored {ids[tuple(key)]} times")
    if named[events.MESSAGE_RECEIVED] != len(inbound):
        bad(f"{named[events.MESSAGE_RECEIVED]} message_received events for {len(inbound)} messages")
    bot_answered = sum(1 for m in inbound if any(r.source == "bot" for r in replies_to.get(m.id, [])))
    if named[events.BOT_REPLIED] != bot_answered:
        bad(f"{named[events.BOT_REPLIED]} bot_replied events for {bot_answered} messages the bot answered")

    outcome_events = Counter((e.name, (e.detail or {}).get("message_id")) for e in all_events
                             if e.name in (events.REPLY_DELIVERED, events.DELIVERY_FAILED))
    for d in deliveries:
        if d.status == DELIVERED:
            found.delivered += 1
            if outcome_events[(events.REPLY_DELIVERED, d.message_id)] != 1:
                bad(f"delivery of message {d.message_id} has "
                    f"{outcome_events[(events.REPLY_DELIVERED, d.message_id)]} reply_delivered events")
        elif d.status == UNDELIVERABLE:
            found.undeliverable += 1
            if outcome_events[(events.DELIVERY_FAILED, d.message_id)] != 1:
                bad(f"undeliverable message {d.message_id} has "
                    f"{outcome_events[(events.DELIVERY_FAILED, d.message_id)]} delivery_failed events")
        elif deliveries_settled:
            bad(f"delivery of message {d.message_id} still {d.status} ({d.last_error})")
    for (name, message_id), times in outcome_events.items():
        if times > 1:
            bad(f"{name} recorded {times} times for message {message_id}")
    assert not found.problems, "database audit failed:\n  " + "\n  ".join(found.problems)
    return found
