"""The load benchmark's audit: what the database says happened to every message WeChat sent.

Nothing here trusts the server's own counts. For each MsgId the generator got an HTTP answer
for (passive reply or `success`), the stored rows must show one inbound message, settled, with
its replies or a hand-off; a reply that WeChat did not get passively must have been delivered
through the customer-service API (the fake API's log is compared with the `deliveries` table).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from bot.models import ANSWERED, QUEUED, RECEIVED, Conversation, Message
from casework.models import Case
from channels.wechat.models import DELIVERED, Delivery
from server.db import Database

CHANNEL, ACCOUNT = "wechat", "default"      # plain /wechat: the account from WECHAT_* settings
PASSIVE, SUCCESS = "passive", "success"     # what WeChat got in the HTTP answer


@dataclass
class Audit:
    lost: list[str] = field(default_factory=list)           # "MsgId: why"
    duplicated: list[str] = field(default_factory=list)
    late_uncovered: list[str] = field(default_factory=list)
    handed_off: int = 0
    cases: int = 0
    deliveries_sent: int = 0          # sends the fake WeChat API accepted for these citizens


async def audit(database_url: str, answers: dict[str, tuple[str, str | None]],
                fake_sent: list[dict]) -> Audit:
    """`answers`: MsgId → (openid, PASSIVE | SUCCESS | None when WeChat got no answer at all)."""
    result = Audit()
    openids = {openid for openid, _ in answers.values()}
    db = Database(database_url)
    try:
        async with db.session() as session:
            inbound = (await session.scalars(select(Message).where(
                Message.channel == CHANNEL, Message.account == ACCOUNT, Message.direction == "in",
                Message.external_id.in_(list(answers))))).all() if answers else []
            ids = [m.id for m in inbound]
            replies = (await session.scalars(select(Message).where(
                Message.in_reply_to_id.in_(ids)))).all() if ids else []
            deliveries = (await session.scalars(select(Delivery).where(
                Delivery.message_id.in_([r.id for r in replies])))).all() if replies else []
            conv_ids = (await session.scalars(select(Conversation.id).where(
                Conversation.channel == CHANNEL, Conversation.account == ACCOUNT,
                Conversation.sender.in_(list(openids))))).all() if openids else []
            case_counts = (await session.execute(
                select(Case.conversation_id, func.count()).where(Case.conversation_id.in_(conv_ids))
                .group_by(Case.conversation_id))).all() if conv_ids else []
    finally:
        await db.dispose()

    by_msg_id = defaultdict(list)
    for row in inbound:
        by_msg_id[row.external_id].append(row)
    replies_of = defaultdict(list)
    for row in replies:
        replies_of[row.in_reply_to_id].append(row)
    deliveries_of = defaultdict(list)
    for row in deliveries:
        deliveries_of[row.message_id].append(row)

    for msg_id, (_, answer) in answers.items():
        rows = by_msg_id.get(msg_id, [])
        if len(rows) > 1:
            result.duplicated.append(f"{msg_id}: stored {len(rows)} times")
        if answer is not None and not rows:
            result.lost.append(f"{msg_id}: answered {answer} but never stored")
            continue
        if not rows:
            continue             # WeChat gave up and nothing was stored: nothing owed
        row, out = rows[0], replies_of[rows[0].id]
        if row.status == RECEIVED:
            result.lost.append(f"{msg_id}: stored but never settled")
        elif row.status == ANSWERED and not out:
            result.lost.append(f"{msg_id}: answered without a reply")
        elif row.status == QUEUED:
            result.handed_off += 1
        if len({r.created_at for r in out}) > 1:
            result.duplicated.append(f"{msg_id}: replied in {len({r.created_at for r in out})} batches")
        for reply in out:
            sends = deliveries_of[reply.id]
            if len(sends) > 1:
                result.duplicated.append(f"{msg_id}: reply {reply.id} queued {len(sends)} times")
            delivered = any(d.status == DELIVERED for d in sends)
            if answer == PASSIVE and sends:
                result.duplicated.append(f"{msg_id}: reply {reply.id} passive and queued for delivery")
            elif answer != PASSIVE and not delivered:
                # `success` (or no answer at all) and the reply never reached WeChat's API.
                state = sends[0].status if sends else "not queued"
                result.late_uncovered.append(f"{msg_id}: reply {reply.id} {state} after {answer}")

    # Every accepted send on the fake must match a delivered part, no more.
    parts = Counter()
    for rows in deliveries_of.values():
        for d in rows:
            if d.status == DELIVERED:
                parts[d.to_user] += d.parts_sent
    sent = Counter(m["touser"] for m in fake_sent if m["touser"] in openids)
    result.deliveries_sent = sum(sent.values())
    for openid, count in sent.items():
        if count > parts[openid]:
            result.duplicated.append(f"{openid}: the API received {count} sends for {parts[openid]} parts")
    for conversation_id, count in case_counts:
        result.cases += count
        if count > 1:     # every simulated citizen goes through at most one intake
            result.duplicated.append(f"conversation {conversation_id}: {count} cases")
    return result
