"""The curation loop: what citizens asked, how it ended, and what they thought of the answer.

The consult action logs every searched question (`log_query`) and the gateway settles a
clarification (`mark_chosen`, `mark_abandoned`); citizens vote on answers (`record_feedback`).
Admins read `hits` (per entry and period) and `gap_queries` (what the base could not answer,
which `gaps.cluster` groups). Every function runs in the caller's transaction.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Message
from knowledge_base.models import (ABANDONED, ANSWERED, CHOSEN, CLARIFIED, UNANSWERED, Entry,
                                   Feedback, Query, Version)
from knowledge_base.search import ANSWER, CLARIFY, Decision
from server.db import CHINA, utcnow

MAX_QUERY_CHARS = 500            # the longest citizen message the gateway accepts by default
PERIODS = ("day", "week", "month", "quarter")
_QA_REF = re.compile(r"^qa:(?P<entry>[^@]+)@(?P<number>\d+)$")
# Outcomes that began as a clarification: the latest one tells whether a choice is pending.
_CLARIFICATIONS = (CLARIFIED, CHOSEN, ABANDONED)


class NotAnAnswer(ValueError):
    """Feedback was given on a message that is not an answer from the Q&A base."""


@dataclass(frozen=True)
class HitRow:
    entry_id: str
    period: str           # "2026-03-01", "2026-W09", "2026-03" or "2026-Q1", Shanghai time
    answered: int         # answered outright or chosen after a clarification
    up: int
    down: int


def log_query(session: AsyncSession, conversation_id: int | None, text: str, decision: Decision,
              at: datetime | None = None) -> Query:
    """Record one searched question and how the search decided."""
    best = decision.best
    if decision.kind == ANSWER and best is not None:
        row = Query(outcome=ANSWERED, entry_id=best.qa.entry_id, version_id=best.qa.version_id,
                    score=best.score)
    elif decision.kind == CLARIFY and best is not None:
        # No entry yet: it becomes the chosen one, or the query a gap.
        row = Query(outcome=CLARIFIED, score=best.score)
    else:
        row = Query(outcome=UNANSWERED, score=best.score if best else None)
    row.at = at or utcnow()
    row.conversation_id = conversation_id
    row.text = (text or "").strip()[:MAX_QUERY_CHARS]
    session.add(row)
    return row


async def _pending_clarification(session: AsyncSession, conversation_id: int) -> int | None:
    """The id of the conversation's latest clarification if the citizen has not settled it."""
    latest = await session.execute(
        select(Query.id, Query.outcome)
        .where(Query.conversation_id == conversation_id, Query.outcome.in_(_CLARIFICATIONS))
        .order_by(Query.id.desc()).limit(1))
    row = latest.first()
    return row.id if row and row.outcome == CLARIFIED else None


async def _settle(session: AsyncSession, conversation_id: int, **values) -> bool:
    query_id = await _pending_clarification(session, conversation_id)
    if query_id is None:
        return False
    # Conditional on still being CLARIFIED, so two racing messages settle it once.
    result = await session.execute(
        update(Query).where(Query.id == query_id, Query.outcome == CLARIFIED).values(**values))
    return result.rowcount == 1


async def mark_chosen(session: AsyncSession, conversation_id: int, entry_id: str,
                      version_id: int) -> bool:
    """The citizen picked a candidate; False when no clarification was pending."""
    return await _settle(session, conversation_id, outcome=CHOSEN, entry_id=entry_id,
                         version_id=version_id)


async def mark_abandoned(session: AsyncSession, conversation_id: int) -> bool:
    """The citizen moved on without picking; False when no clarification was pending."""
    return await _settle(session, conversation_id, outcome=ABANDONED)


async def record_feedback(session: AsyncSession, message_id: int, helpful: bool,
                          at: datetime | None = None) -> Feedback:
    """Store a thumbs up/down on one answer, against the version that answered.

    One vote per reply: voting again changes it. Raises NotAnAnswer for any other message.
    """
    message = await session.get(Message, message_id)
    ref = _QA_REF.match(message.source_ref or "") if message and message.direction == "out" else None
    if ref is None:
        raise NotAnAnswer(f"message {message_id} is not an answer from the Q&A base")
    version_id = await session.scalar(
        select(Version.id).join(Entry, Entry.id == Version.entry_id)
        .where(Entry.external_id == ref["entry"], Version.number == int(ref["number"])))
    if version_id is None:
        raise NotAnAnswer(f"message {message_id} refers to {ref['entry']}@{ref['number']}, which does not exist")
    values = dict(message_id=message_id, version_id=version_id, entry_id=ref["entry"],
                  helpful=bool(helpful), at=at or utcnow())
    # A real upsert (both dialects spell it the same way), so a double click cannot race.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(Feedback).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=[Feedback.message_id],
                                      set_={"helpful": stmt.excluded.helpful, "at": stmt.excluded.at})
    await session.execute(stmt)
    return await session.scalar(select(Feedback).where(Feedback.message_id == message_id)
                                .execution_options(populate_existing=True))


def period_label(at: datetime, period: str) -> str:
    """The Shanghai-time day, ISO week, month or quarter `at` falls in."""
    local = at.astimezone(CHINA)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


async def hits(session: AsyncSession, since: datetime, until: datetime | None = None,
               period: str = "month") -> list[HitRow]:
    """Answers and votes per entry and period in [since, until); periods in order, most
    answered entry first within each. Grouped in Python: portable, and the volumes are small."""
    period_label(since, period)      # refuse an unknown period before reading anything
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    answered = select(Query.entry_id, Query.at).where(
        Query.outcome.in_((ANSWERED, CHOSEN)), Query.entry_id.is_not(None), Query.at >= since)
    votes = select(Feedback.entry_id, Feedback.at, Feedback.helpful).where(Feedback.at >= since)
    if until is not None:
        answered = answered.where(Query.at < until)
        votes = votes.where(Feedback.at < until)
    for entry_id, at in await session.execute(answered):
        counts[(period_label(at, period), entry_id)][0] += 1
    for entry_id, at, helpful in await session.execute(votes):
        counts[(period_label(at, period), entry_id)][1 if helpful else 2] += 1
    rows = [HitRow(entry_id, label, *c) for (label, entry_id), c in counts.items()]
    return sorted(rows, key=lambda r: (r.period, -r.answered, r.down - r.up, r.entry_id))


async def gap_queries(session: AsyncSession, since: datetime) -> list[str]:
    """What citizens asked that the base did not answer: no match, or a clarification they left."""
    return list(await session.scalars(
        select(Query.text).where(Query.outcome.in_((UNANSWERED, ABANDONED)), Query.at >= since)
        .order_by(Query.at, Query.id)))
