"""Timeliness measures read from the event log, as observations a report groups by any cut.

Every measure becomes `Observation`s: one value (a wait, an on-time flag, a count) with the
moment that puts it in a period and the dimensions a report cuts by (unit, category, case type,
channel/account). `collect` reads them for a window; `casework.report.cut` groups them. The
heavy tables (bot replies, conversations) are aggregated in SQL per China day before they reach
Python; working time is computed in Python per case or hand-off (docs/timeliness.md).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, case, cast, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Conversation
from casework import events as ev
from casework.calendar import WorkCalendar, china_date, load_calendar
from casework.measures import Interval, calendar_days, duty_hours, paused_workdays, working_days, \
    working_seconds
from casework.models import DISPATCHED, IN_PROGRESS, REOPENED, Case, Category, Event, Unit
from knowledge_base.models import ANSWERED, CHOSEN, Query
from server.db import CHINA

SATISFIED = 4                         # 满意 (4) and 非常满意 (5); lifecycle.rate stores 1–5
OPEN = (DISPATCHED, IN_PROGRESS, REOPENED)
NO_CONVERSATION = "（无会话）"        # imported or walk-in cases: no channel
# Staff accounts (admin.models.User), named here without importing the consoles' package.
USERS = table("users", column("username"), column("unit_id"))


@dataclass(frozen=True)
class Dims:
    """What an observation is about; None where the measure has no such dimension."""
    unit: str | None = None
    category: str | None = None
    case_type: str | None = None
    channel: str | None = None            # "wechat/default", "webchat", NO_CONVERSATION


@dataclass(frozen=True)
class Observation:
    """One measured value. `value` over `n` items (n > 1 when SQL summed a day's rows);
    `at` None: a snapshot of now (overdue cases), in no period."""
    measure: str
    at: date | None                        # China date
    dims: Dims
    value: float
    n: int = 1


def window_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """China dates [first, last] as aware UTC-comparable datetimes [start, end)."""
    return (datetime.combine(first, time(), CHINA),
            datetime.combine(last + timedelta(days=1), time(), CHINA))


def _channel(channel: str | None, account: str | None) -> str:
    if not channel:
        return NO_CONVERSATION
    return f"{channel}/{account}" if account else channel


def _china_day(session: AsyncSession, moment):
    """The China date of a timestamp column, in SQL."""
    if session.bind.dialect.name == "postgresql":
        return cast(func.timezone("Asia/Shanghai", moment), Date)
    return func.date(moment, "+8 hours")


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def collect(session: AsyncSession, first: date, last: date, *, now: datetime,
                  calendar: WorkCalendar | None = None) -> list[Observation]:
    """Every observation of the window [first, last] (China dates) but the cases' own (reports
    read those from casework.facts, which keeps what `case_measures` computes), and the overdue
    snapshot."""
    calendar = calendar or await load_calendar(session)
    start, end = window_bounds(first, last)
    found: list[Observation] = []
    found += await overdue_now(session, now, calendar)
    found += await handoff_waits(session, start, end, calendar)
    found += await bot_reply_latency(session, start, end)
    found += await consultations(session, start, end)
    found += await conversation_ratings(session, start, end)
    found += await delivery_failures(session, start, end)
    return found


# Cases -------------------------------------------------------------------------------------

CASE_EVENTS = (ev.CASE_SUBMITTED, ev.CASE_DISPATCHED, ev.CASE_ACCEPTED, ev.CASE_REPLIED,
               ev.CASE_REOPENED, ev.EXTENSION_APPROVED, ev.CASE_CLOSED, ev.RATING_GIVEN,
               ev.CASE_WAITING_CITIZEN, ev.CASE_CITIZEN_ANSWERED)
# A case is in the window when one of these happened in it.
MEASURED = (ev.CASE_ACCEPTED, ev.CASE_REPLIED, ev.CASE_CLOSED, ev.RATING_GIVEN)
SETS_DEADLINE = (ev.CASE_DISPATCHED, ev.EXTENSION_APPROVED, ev.CASE_REOPENED)


def _case_dims(session_row) -> Dims:
    r = session_row
    return Dims(unit=r.unit_id, category=r.category, case_type=r.case_type,
                channel=_channel(r.channel, r.account))


def _case_query(ids):
    return (select(Case.id, Case.unit_id, Case.case_type, Case.created_at, Case.deadline,
                   Category.name.label("category"), Conversation.channel, Conversation.account)
            .outerjoin(Category, Category.id == Case.category_id)
            .outerjoin(Conversation, Conversation.id == Case.conversation_id)
            .where(Case.id.in_(ids)))


def citizen_waits(trail, until: datetime) -> list[Interval]:
    """The intervals a case waited for the citizen; one still open ends at `until`."""
    waits, since = [], None
    for e in trail:
        if e.name == ev.CASE_WAITING_CITIZEN and since is None:
            since = e.at
        elif e.name == ev.CASE_CITIZEN_ANSWERED and since is not None:
            waits.append((since, e.at))
            since = None
    if since is not None:
        waits.append((since, until))
    return waits


def case_measures(case, trail, calendar: WorkCalendar, start: datetime,
                  end: datetime) -> list[Observation]:
    """The observations of one case that fall in [start, end). `case` has unit_id, case_type,
    created_at, deadline, category, channel, account; `trail` its events (name, at, detail) in
    order."""
    dims = _case_dims(case)
    submitted = next((e.at for e in trail if e.name == ev.CASE_SUBMITTED), case.created_at)
    waits = citizen_waits(trail, end)
    out: list[Observation] = []

    def observe(measure: str, at: datetime, value: float, unit: str | None = None) -> None:
        if start <= at < end:
            d = Dims(unit or dims.unit, dims.category, dims.case_type, dims.channel)
            out.append(Observation(measure, china_date(at), d, float(value)))

    deadline: date | None = None
    leg_start, dispatched_at, first_reply = submitted, None, True
    replies = [e for e in trail if e.name == ev.CASE_REPLIED]
    for e in trail:
        detail = e.detail or {}
        if e.name in SETS_DEADLINE and detail.get("deadline"):
            deadline = date.fromisoformat(detail["deadline"])
        if e.name == ev.CASE_DISPATCHED:
            dispatched_at = e.at
        elif e.name == ev.CASE_REOPENED:
            leg_start = e.at
        elif e.name == ev.CASE_ACCEPTED and dispatched_at is not None:
            observe("acceptance_wd", e.at, working_days(calendar, dispatched_at, e.at, waits),
                    detail.get("unit_id"))
        elif e.name == ev.CASE_REPLIED:
            unit = detail.get("unit_id")
            due = deadline or case.deadline
            if due is not None:
                # The deadline in force (extensions approved), moved by the working days the
                # case waited for the citizen since this leg began.
                moved = paused_workdays(calendar, [(max(a, leg_start), min(b, e.at))
                                                   for a, b in waits])
                observe("on_time", e.at, china_date(e.at) <= calendar.add_workdays(due, moved), unit)
            later = [r.at for r in replies if r.at > e.at]
            rated = any(r.name == ev.RATING_GIVEN and e.at <= r.at and (not later or r.at < later[0])
                        for r in trail)
            observe("rating_coverage", e.at, rated, unit)
            observe("replies", e.at, 1, unit)
            if first_reply:
                observe("first_reply_wd", e.at, working_days(calendar, submitted, e.at, waits), unit)
                observe("first_reply_days", e.at, calendar_days(submitted, e.at), unit)
                first_reply = False
        elif e.name == ev.CASE_CLOSED:
            observe("resolution_wd", e.at, working_days(calendar, submitted, e.at, waits))
        elif e.name == ev.RATING_GIVEN and detail.get("score") is not None:
            observe("satisfaction", e.at, int(detail["score"]) >= SATISFIED)
    return out


async def overdue_now(session: AsyncSession, now: datetime,
                      calendar: WorkCalendar) -> list[Observation]:
    """Cases still with a unit past their deadline (moved by the citizen's waits) today; a case
    waiting for the citizen now is not overdue."""
    today = china_date(now)
    late = select(Case.id).where(Case.status.in_(OPEN), Case.deadline < today).scalar_subquery()
    cases = {r.id: r for r in await session.execute(_case_query(late))}
    trails: dict[int, list] = defaultdict(list)
    for r in await session.execute(
            select(Event.case_id, Event.name, Event.at).where(
                Event.case_id.in_(late),
                Event.name.in_((ev.CASE_WAITING_CITIZEN, ev.CASE_CITIZEN_ANSWERED, ev.CASE_REOPENED)))
            .order_by(Event.case_id, Event.at, Event.id)):
        trails[r.case_id].append(r)
    found = []
    for case_id, case in cases.items():
        trail = trails[case_id]
        reopened = [e.at for e in trail if e.name == ev.CASE_REOPENED]
        waits = [(max(a, reopened[-1]), b) if reopened else (a, b)
                 for a, b in citizen_waits(trail, now)]
        if trail and any(b == now for _, b in waits):
            continue                                   # waiting for the citizen right now
        if today > calendar.add_workdays(case.deadline, paused_workdays(calendar, waits)):
            found.append(Observation("overdue_now", None, _case_dims(case), 1.0))
    return found


# Conversations -----------------------------------------------------------------------------

async def handoff_waits(session: AsyncSession, start: datetime, end: datetime,
                        calendar: WorkCalendar) -> list[Observation]:
    """Hand-off to staff's first reply in working minutes, inside the duty hours of the
    replying staff member's unit (the default duty hours without one)."""
    rows = await session.execute(
        select(Event.at, Event.value_seconds, Conversation.channel, Conversation.account,
               USERS.c.unit_id, Unit.duty_start, Unit.duty_end)
        .join(Conversation, Conversation.id == Event.conversation_id)
        .outerjoin(USERS, USERS.c.username == Event.actor)
        .outerjoin(Unit, Unit.id == USERS.c.unit_id)
        .where(Event.name == ev.STAFF_FIRST_REPLY, Event.at >= start, Event.at < end))
    found = []
    for r in rows:
        requested = r.at - timedelta(seconds=r.value_seconds or 0)
        minutes = working_seconds(calendar, requested, r.at, duty_hours(r.duty_start, r.duty_end)) / 60
        found.append(Observation("handoff_wait_min", china_date(r.at),
                                 Dims(unit=r.unit_id, channel=_channel(r.channel, r.account)), minutes))
    return found


async def bot_reply_latency(session: AsyncSession, start: datetime, end: datetime) -> list[Observation]:
    """Seconds from a citizen's message to the bot's reply, summed per China day and channel in SQL."""
    day = _china_day(session, Event.at).label("day")
    rows = await session.execute(
        select(day, Conversation.channel, Conversation.account,
               func.sum(Event.value_seconds), func.count())
        .join(Conversation, Conversation.id == Event.conversation_id)
        .where(Event.name == ev.BOT_REPLIED, Event.at >= start, Event.at < end,
               Event.value_seconds.is_not(None))
        .group_by(day, Conversation.channel, Conversation.account))
    return [Observation("bot_reply_s", _as_date(d), Dims(channel=_channel(c, a)), float(total), n)
            for d, c, a, total, n in rows]


async def consultations(session: AsyncSession, start: datetime, end: datetime) -> list[Observation]:
    """A consultation is a conversation on one China day with a citizen message. It was handed
    off when a hand-off was requested that day; unanswered when the Q&A base was searched that
    day, answered none of it (no answer, no candidate chosen) and nobody handed it off; else
    the bot resolved it. Counted in SQL per China day and channel (a quarter holds ~60,000)."""
    def days(name: str):
        day = _china_day(session, Event.at)
        return (select(Event.conversation_id.label("c"), day.label("d"))
                .where(Event.name == name, Event.at >= start, Event.at < end)
                .group_by(Event.conversation_id, day))

    active, handed = days(ev.MESSAGE_RECEIVED).cte("active"), days(ev.HANDOFF_REQUESTED).cte("handed")
    q_day = _china_day(session, Query.at)
    searched = (select(Query.conversation_id.label("c"), q_day.label("d"),
                       func.max(case((Query.outcome.in_((ANSWERED, CHOSEN)), 1), else_=0)).label("a"))
                .where(Query.at >= start, Query.at < end, Query.conversation_id.is_not(None))
                .group_by(Query.conversation_id, q_day).cte("searched"))
    keys = select(active.c.c, active.c.d).union(select(handed.c.c, handed.c.d)).cte("keys")
    off = handed.c.c.is_not(None)
    unanswered = ~off & searched.c.c.is_not(None) & (searched.c.a == 0)
    rows = await session.execute(
        select(keys.c.d, Conversation.channel, Conversation.account, func.count(),
               func.sum(case((off, 1), else_=0)), func.sum(case((unanswered, 1), else_=0)),
               func.count(searched.c.c))
        .select_from(keys)
        .outerjoin(handed, (handed.c.c == keys.c.c) & (handed.c.d == keys.c.d))
        .outerjoin(searched, (searched.c.c == keys.c.c) & (searched.c.d == keys.c.d))
        .outerjoin(Conversation, Conversation.id == keys.c.c)
        .group_by(keys.c.d, Conversation.channel, Conversation.account))
    found = []
    for day, channel, account, n, n_off, n_unanswered, n_searched in rows:
        dims, day = Dims(channel=_channel(channel, account)), _as_date(day)
        found.append(Observation("handed_off", day, dims, float(n_off), n))
        found.append(Observation("bot_resolved", day, dims, float(n - n_off - n_unanswered), n))
        if n_searched:
            found.append(Observation("unanswered", day, dims, float(n_unanswered), n_searched))
    return found


def _chunks(ids: list[int], size: int = 5000):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


async def conversation_ratings(session: AsyncSession, start: datetime,
                               end: datetime) -> list[Observation]:
    """Ratings given in a conversation about no case (the bot's service)."""
    rows = await session.execute(
        select(Event.at, Event.detail, Conversation.channel, Conversation.account)
        .outerjoin(Conversation, Conversation.id == Event.conversation_id)
        .where(Event.name == ev.RATING_GIVEN, Event.case_id.is_(None),
               Event.at >= start, Event.at < end))
    return [Observation("satisfaction", china_date(r.at), Dims(channel=_channel(r.channel, r.account)),
                        int(r.detail["score"]) >= SATISFIED)
            for r in rows if (r.detail or {}).get("score") is not None]


async def delivery_failures(session: AsyncSession, start: datetime, end: datetime) -> list[Observation]:
    """Replies that never reached the citizen (WeChat's 48-hour window closed, …), per day."""
    day = _china_day(session, Event.at).label("day")
    rows = await session.execute(
        select(day, Conversation.channel, Conversation.account, func.count())
        .outerjoin(Conversation, Conversation.id == Event.conversation_id)
        .where(Event.name == ev.DELIVERY_FAILED, Event.at >= start, Event.at < end)
        .group_by(day, Conversation.channel, Conversation.account))
    return [Observation("delivery_failures", _as_date(d), Dims(channel=_channel(c, a)), float(n), n)
            for d, c, a, n in rows]

