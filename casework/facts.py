"""Case facts: every case's timeliness observations kept in a table, so a report groups rows in
SQL instead of replaying each case's events (the pre-aggregation behind docs/timeliness.md's
benchmark: a quarter of 25,000 cases goes from ~40 s to seconds).

`refresh` brings `case_facts` up to date before a report: it recomputes the facts of every case
with an event newer than the mark in `fact_marks` (or written in the last RECENT minutes, which
covers a transaction that committed an older event id late), and of all cases when the
working-day calendar changed. Refreshes are serialised by locking the mark row, so two server
instances never write the same case's facts twice. The observations are the ones
`casework.timeliness.case_measures` computes: one definition of every measure.

`summed` reads them back for a window, summed per (measure, window or day, the dimensions a
cut needs); `single` reads the measures a report takes a median or percentile of, one row each.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import Date, case, delete, func, insert, literal, literal_column, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from casework.calendar import WorkCalendar
from casework.models import Case, CaseFact, Event, FactMark
from casework.timeliness import (CASE_EVENTS, Dims, Observation, _case_query, _chunks,
                                 case_measures)

MARK = "case_facts"
RECENT = timedelta(minutes=10)
FAR_PAST = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
DIMENSIONS = ("unit", "category", "case_type", "channel")
COLUMNS = {"unit": CaseFact.unit_id, "category": CaseFact.category,
           "case_type": CaseFact.case_type, "channel": CaseFact.channel}
CHUNK = 2000


def calendar_key(calendar: WorkCalendar) -> str:
    """What of the calendar the facts depend on: the admin's overrides (the statutory data
    changes only with the package, and `setup` rebuilds then — see `rebuild`)."""
    text = ";".join(f"{day.isoformat()}={int(work)}" for day, work in sorted(calendar.overrides.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def _mark(session: AsyncSession) -> FactMark:
    mark = await session.get(FactMark, MARK, with_for_update=True)
    if mark is not None:
        return mark
    try:
        async with session.begin_nested():
            session.add(FactMark(name=MARK, event_id=0, calendar_key=""))
    except IntegrityError:            # another instance created it first
        pass
    return await session.get(FactMark, MARK, with_for_update=True, populate_existing=True)


async def refresh(session: AsyncSession, calendar: WorkCalendar, *, now: datetime) -> int:
    """Recompute the facts of cases with new events, in the caller's transaction; returns how
    many cases were recomputed."""
    mark = await _mark(session)
    key = calendar_key(calendar)
    top = await session.scalar(select(func.max(Event.id))) or 0
    if key != mark.calendar_key:
        await session.execute(delete(CaseFact))
        ids = list(await session.scalars(select(Case.id).order_by(Case.id)))
    else:
        ids = sorted(set(await session.scalars(
            select(Event.case_id).where(Event.case_id.is_not(None),
                                        (Event.id > mark.event_id)
                                        | Event.at.between(now - RECENT, now))
            .distinct())))
    for chunk in _chunks(ids, CHUNK):
        await _recompute(session, chunk, calendar)
    mark.event_id, mark.calendar_key, mark.refreshed_at = top, key, now
    await session.flush()
    return len(ids)


async def refresh_apart(session: AsyncSession, calendar: WorkCalendar, *, now: datetime) -> int:
    """`refresh` in a transaction of its own (committed), beside the caller's read-only one."""
    async with AsyncSession(session.bind, expire_on_commit=False) as own, own.begin():
        return await refresh(own, calendar, now=now)


async def rebuild(session: AsyncSession, calendar: WorkCalendar, *, now: datetime) -> int:
    """Recompute every case's facts (after a calendar package upgrade or a history import)."""
    mark = await _mark(session)
    mark.calendar_key = ""
    return await refresh(session, calendar, now=now)


async def _recompute(session: AsyncSession, ids: list[int], calendar: WorkCalendar) -> None:
    cases = {r.id: r for r in await session.execute(_case_query(ids))}
    trails: dict[int, list] = defaultdict(list)
    for r in await session.execute(
            select(Event.case_id, Event.name, Event.at, Event.detail)
            .where(Event.case_id.in_(ids), Event.name.in_(CASE_EVENTS))
            .order_by(Event.case_id, Event.at, Event.id)):
        trails[r.case_id].append(r)
    await session.execute(delete(CaseFact).where(CaseFact.case_id.in_(ids)))
    rows = [{"case_id": case_id, "measure": o.measure, "day": o.at, "unit_id": o.dims.unit,
             "category": o.dims.category, "case_type": o.dims.case_type, "channel": o.dims.channel,
             "value": o.value}
            for case_id, c in cases.items()
            for o in case_measures(c, trails[case_id], calendar, FAR_PAST, FAR_FUTURE)]
    if rows:
        await session.execute(insert(CaseFact), rows)


async def summed(session: AsyncSession, windows: list[tuple[date, date]], *,
                 dimensions: Iterable[str], by_day: bool, leave_out: Iterable[str] = (),
                 units: Iterable[str] | None = None) -> list[Observation]:
    """Observations of the facts inside `windows` ([first, last] China dates, not overlapping),
    summed per measure, per window (or per day when `by_day`) and per the `dimensions` asked for
    (the others come back None). Measures in `leave_out` are not read (see `single`); with
    `units`, only those units' facts."""
    dims = [d for d in DIMENSIONS if d in set(dimensions)]
    in_windows = or_(*[CaseFact.day.between(a, b) for a, b in windows])
    if by_day:
        when = CaseFact.day
    else:        # each fact dated by the first day of its window: cut() only compares windows
        when = case(*[(CaseFact.day.between(a, b), literal(a, Date)) for a, b in windows])
    columns = [CaseFact.measure, when.label("at"), *[COLUMNS[d] for d in dims]]
    # Grouped by the label: PostgreSQL would see the CASE's parameters in SELECT and GROUP BY
    # as two different expressions.
    group = [CaseFact.measure, literal_column("at"), *[COLUMNS[d] for d in dims]]
    conn = await session.connection()        # Core rows, without the ORM's per-row cost
    query = (select(*columns, func.sum(CaseFact.value), func.count())
             .where(in_windows, CaseFact.measure.not_in(list(leave_out))).group_by(*group))
    if units is not None:
        query = query.where(CaseFact.unit_id.in_(list(units)))
    rows = await conn.execute(query)
    return [Observation(measure, _as_date(at), Dims(**dict(zip(dims, values))), float(total), n)
            for measure, at, *values, total, n in rows]


async def single(session: AsyncSession, first: date, last: date, measures: Iterable[str],
                 units: Iterable[str] | None = None) -> list[Observation]:
    """One observation per fact of these measures in [first, last], with every dimension: what
    a median or percentile is taken of (a quarter holds ~50,000), usable by any cut."""
    conn = await session.connection()
    query = (select(CaseFact.measure, CaseFact.day, CaseFact.unit_id, CaseFact.category,
                    CaseFact.case_type, CaseFact.channel, CaseFact.value)
             .where(CaseFact.day.between(first, last), CaseFact.measure.in_(list(measures))))
    if units is not None:
        query = query.where(CaseFact.unit_id.in_(list(units)))
    rows = await conn.execute(query)
    return [Observation(measure, _as_date(day), Dims(unit, category, case_type, channel), float(value))
            for measure, day, unit, category, case_type, channel, value in rows]


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
