"""The event log: one row per timestamped fact, with its duration computed when written."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import Event
from server.db import utcnow

# Event names, one place: reports query by these.
MESSAGE_RECEIVED = "message_received"
BOT_REPLIED = "bot_replied"              # value: seconds from the citizen's message to the reply
BOT_UNAVAILABLE = "bot_unavailable"      # Rasa down or too slow; apology sent, queued for staff
ANSWERED_WITHOUT_BOT = "answered_without_bot"   # Rasa down or too slow; the Q&A base answered
HANDOFF_REQUESTED = "handoff_requested"
STAFF_FIRST_REPLY = "staff_first_reply"  # value: seconds from the hand-off to staff's first reply
HANDOFF_RESOLVED = "handoff_resolved"    # value: seconds from the hand-off to its end
CASE_SUBMITTED = "case_submitted"
CASE_LINKED = "case_linked"              # a near-identical resubmission added to an earlier case
# The case lifecycle (casework/lifecycle.py); detail names the unit and the reason.
CASE_DISPATCHED = "case_dispatched"
CASE_ACCEPTED = "case_accepted"
CASE_RETURNED = "case_returned"          # misrouted, back to the dispatcher
EXTENSION_REQUESTED = "case_extension_requested"
EXTENSION_APPROVED = "case_extension_approved"
EXTENSION_REFUSED = "case_extension_refused"
CASE_REPLIED = "case_replied"            # value: seconds since submission
# The unit asked the citizen something (补充材料); the timeliness clock stops until they answer.
CASE_WAITING_CITIZEN = "case_waiting_citizen"
CASE_CITIZEN_ANSWERED = "case_citizen_answered"   # value: seconds the case waited
CASE_REOPENED = "case_reopened"          # the citizen was dissatisfied
CASE_CLOSED = "case_closed"
CASE_DUE_SOON = "case_due_soon"          # the case job: the deadline is the next working day
CASE_OVERDUE = "case_overdue"            # the case job: deadline passed without a reply
RATING_GIVEN = "rating_given"
REPLY_DELIVERED = "reply_delivered"      # sent later (WeChat 客服消息); value: seconds since the reply was stored
DELIVERY_FAILED = "delivery_failed"      # never reached the citizen; detail: reason ("window closed", …)


def record(
    session: AsyncSession,
    name: str,
    *,
    at: datetime | None = None,
    since: datetime | None = None,
    conversation_id: int | None = None,
    case_id: int | None = None,
    channel: str | None = None,
    actor: str | None = None,
    **detail,
) -> Event:
    """Add an event to the caller's transaction; `since` gives its value in seconds."""
    at = at or utcnow()
    event = Event(
        name=name, at=at,
        value_seconds=(at - since).total_seconds() if since else None,
        conversation_id=conversation_id, case_id=case_id, channel=channel, actor=actor,
        detail=detail,
    )
    session.add(event)
    return event


async def find(session: AsyncSession, name: str, since: datetime | None = None) -> list[Event]:
    """Events of one name, oldest first (optionally from `since` on)."""
    from sqlalchemy import select

    query = select(Event).where(Event.name == name)
    if since is not None:
        query = query.where(Event.at >= since)
    return list(await session.scalars(query.order_by(Event.at)))


# What staff and inspectors read for each event name (case pages, spot check trails).
# admin/case_pages.py still holds its own copy of the case part; it should import this one.
EVENT_NAMES = {
    "message_received": "收到群众消息", "bot_replied": "机器人回复",
    "bot_unavailable": "机器人无响应，已转人工", "answered_without_bot": "机器人无响应，已由问答库答复",
    "handoff_requested": "转人工",
    "staff_first_reply": "客服首次回复", "handoff_resolved": "人工服务结束",
    "case_submitted": "受理", "case_linked": "群众重复提交（已并入本件）", "case_dispatched": "派单",
    "case_accepted": "签收", "case_returned": "退回（非本单位职责）",
    "case_extension_requested": "申请延期", "case_extension_approved": "批准延期",
    "case_extension_refused": "不予延期", "case_replied": "答复",
    "case_waiting_citizen": "请群众补充材料", "case_citizen_answered": "群众已补充",
    "case_reopened": "重新办理", "case_closed": "办结", "case_due_soon": "临期提醒",
    "case_overdue": "超期督办", "rating_given": "群众评价", "reply_delivered": "答复已送达",
    "delivery_failed": "答复未送达",
}
