"""Working days on the Chinese statutory calendar, case deadlines and working time.

The State Council's yearly notice moves days around: holidays (放假) and make-up workdays (调休,
usually a Saturday or Sunday). The package `chinesecalendar` carries those notices; an admin can
override any day (a local holiday, a notice the package does not have yet) in `workday_overrides`.
A year the package does not cover falls back to Monday–Friday, and `covers(year)` says so, so that
reports can warn that next year's calendar is missing.

Conventions (the docstrings of `add_workdays` and `workdays_between` say them precisely):
a case's first working day is the working day *after* the day it was submitted; a deadline of
n working days is the n-th such day. Dates are China dates (`server.db.CHINA`).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache

import chinese_calendar
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import CaseDeadline, WorkdayOverride
from server.db import CHINA, utcnow

# Working days from submission to the reply being due, per case type (DESIGN.md, "Cases");
# CASE_DEADLINE_DAYS changes them (server/config.py).
DEFAULT_DEADLINE_DAYS = {"consultation": 3, "complaint": 5, "report": 5}

ONE_DAY = timedelta(days=1)


def _covered_years() -> range:
    years = [d.year for d in chinese_calendar.constants.holidays]
    return range(min(years), max(years) + 1)


COVERED_YEARS = _covered_years()


@cache
def _statutory_workday(day: date) -> bool:
    # The package scans all its years on every call; deadlines ask about the same days often.
    return chinese_calendar.is_workday(day)


def china_date(moment: date | datetime) -> date:
    """The China date of a date (as is) or of an aware datetime (converted to China time)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: give an aware one (UTC or China time)")
        return moment.astimezone(CHINA).date()
    return moment


def _china_time(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware one (UTC or China time)")
    return moment.astimezone(CHINA)


@dataclass(frozen=True)
class DutyHours:
    """The hours staff are on duty on a working day, in China time.

    `start` < `end` is a day shift (08:30–17:30 by default). `start` > `end` is a shift crossing
    midnight: 20:00–08:00 is the shift that *starts* on a working day's evening and runs into the
    next morning, whatever that next day is.
    """

    start: time = time(8, 30)
    end: time = time(17, 30)

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("duty hours must start and end at different times")

    def shift(self, day: date) -> tuple[datetime, datetime]:
        """The shift that starts on `day`, as aware China-time datetimes."""
        begin = datetime.combine(day, self.start, CHINA)
        finish = datetime.combine(day, self.end, CHINA)
        if self.end < self.start:
            finish += ONE_DAY
        return begin, finish


class WorkCalendar:
    """The statutory calendar with an admin's overrides ({day: is_workday}) on top.

    `deadline_days` holds the case-type deadlines set on the settings page (`case_deadlines`),
    which `deadline_for` prefers to everything else; `load_calendar` fills both.
    """

    def __init__(self, overrides: Mapping[date, bool] | None = None,
                 deadline_days: Mapping[str, int] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.deadline_days = dict(deadline_days or {})

    def covers(self, year: int) -> bool:
        """Whether `chinesecalendar` knows this year's holidays (else: Mon–Fri is assumed)."""
        return year in COVERED_YEARS

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        if not self.covers(day.year):
            return day.weekday() < 5
        return _statutory_workday(day)

    def workdays_after(self, day: date) -> Iterator[date]:
        """The working days after `day`, in order, without end."""
        while True:
            day += ONE_DAY
            if self.is_workday(day):
                yield day

    def add_workdays(self, start: date | datetime, n: int) -> date:
        """The deadline of something submitted at `start` and due in `n` working days.

        Counting starts on the first working day *after* the submission day, whatever the day
        and hour of submission: submitted on a working Wednesday, Thursday is day 1; submitted on
        a Saturday or during the National Day holiday, the first working day after it is day 1. A
        make-up Saturday (调休) is a working day like any other. The result is the n-th working
        day, the last day on which the work is on time; n = 0 gives the submission day itself.
        """
        if n < 0:
            raise ValueError(f"a number of working days cannot be negative, got {n}")
        day = china_date(start)
        days = self.workdays_after(day)
        for _ in range(n):
            day = next(days)
        return day

    def workdays_between(self, start: date | datetime, end: date | datetime) -> int:
        """Working days elapsed from `start`'s date to `end`'s date: those after the first and
        up to and including the second. 0 on the same day (or across a weekend), 1 from a
        working Friday to Monday; negative when `end` is before `start`.

        The inverse of `add_workdays`: workdays_between(s, add_workdays(s, n)) == n, so
        "on time" is workdays_between(submitted, replied) <= n.
        """
        first, last = china_date(start), china_date(end)
        if last < first:
            return -self.workdays_between(last, first)
        count, day = 0, first
        while day < last:
            day += ONE_DAY
            count += self.is_workday(day)
        return count

    def working_seconds(self, start: datetime, end: datetime, duty: DutyHours | None = None) -> float:
        """Seconds between `start` and `end` that fall inside duty hours of a shift starting on a
        working day (China time). 0 when `end` is not after `start`."""
        duty = duty or DutyHours()
        start, end = _china_time(start), _china_time(end)
        if end <= start:
            return 0.0
        total = 0.0
        day = start.date() - ONE_DAY          # yesterday's night shift may still be running
        while day <= end.date():
            if self.is_workday(day):
                begin, finish = duty.shift(day)
                overlap = (min(end, finish) - max(start, begin)).total_seconds()
                total += max(overlap, 0.0)
            day += ONE_DAY
        return total

    def special_days(self, year: int) -> list[tuple[date, bool, str]]:
        """(day, is_workday, holiday name or "") for the days of `year` the statutory calendar
        names (holidays and make-up workdays) and the overridden days, in order."""
        rows = []
        day = date(year, 1, 1)
        while day.year == year:
            name = chinese_calendar.get_holiday_detail(day)[1] if self.covers(year) else None
            if name or day in self.overrides:
                rows.append((day, self.is_workday(day), name or ""))
            day += ONE_DAY
        return rows


# Where a case type's deadline comes from, strongest first (the settings page names them).
PAGE, ENV, DEFAULT = "page", "env", "default"
SOURCE_NAMES = {PAGE: "页面设置", ENV: "环境变量", DEFAULT: "默认"}


def deadline_days(case_type: str, calendar: WorkCalendar,
                  days: Mapping[str, int] | None = None) -> tuple[int, str]:
    """(working days, source) for a case type. Precedence: the calendar's `deadline_days` (rows of
    `case_deadlines`, set on the settings page) → `days` (CASE_DEADLINE_DAYS) →
    DEFAULT_DEADLINE_DAYS; the source is PAGE, ENV or DEFAULT."""
    for source, limits in ((PAGE, calendar.deadline_days), (ENV, days or {}),
                           (DEFAULT, DEFAULT_DEADLINE_DAYS)):
        if case_type in limits:
            return limits[case_type], source
    known = sorted({*DEFAULT_DEADLINE_DAYS, *(days or {}), *calendar.deadline_days})
    raise ValueError(f"no deadline for case type {case_type!r}; known: {', '.join(known)}")


def deadline_for(case_type: str, submitted_at: date | datetime, calendar: WorkCalendar,
                 days: Mapping[str, int] | None = None) -> date:
    """The reply deadline of a case, counted as `WorkCalendar.add_workdays` does.

    How many working days: the calendar's own `deadline_days` first (the settings page's
    `case_deadlines` rows, loaded by `load_calendar`), then `days` (CASE_DEADLINE_DAYS), then
    DEFAULT_DEADLINE_DAYS — so a change on the page applies to the next case without any caller
    passing it along."""
    return calendar.add_workdays(submitted_at, deadline_days(case_type, calendar, days)[0])


async def load_calendar(session: AsyncSession) -> WorkCalendar:
    """The overrides and the case-type deadlines as stored now."""
    rows = await session.scalars(select(WorkdayOverride))
    limits = await session.scalars(select(CaseDeadline))
    return WorkCalendar({row.day: row.is_workday for row in rows},
                        {row.case_type: row.working_days for row in limits})


# Case-type deadlines (the settings page) -----------------------------------------------------

MAX_DEADLINE_DAYS = 60


async def case_deadlines(session: AsyncSession) -> dict[str, CaseDeadline]:
    return {row.case_type: row for row in await session.scalars(select(CaseDeadline))}


async def set_case_deadline(session: AsyncSession, case_type: str, working_days: int,
                            actor: str) -> CaseDeadline:
    """Store the working days for a case type (one of DEFAULT_DEADLINE_DAYS)."""
    if case_type not in DEFAULT_DEADLINE_DAYS:
        raise ValueError(f"unknown case type {case_type!r}")
    if not 1 <= working_days <= MAX_DEADLINE_DAYS:
        raise ValueError(f"working days must be 1–{MAX_DEADLINE_DAYS}, got {working_days}")
    row = await session.get(CaseDeadline, case_type)
    if row is None:
        row = CaseDeadline(case_type=case_type)
        session.add(row)
    row.working_days, row.updated_by, row.updated_at = working_days, actor, utcnow()
    await session.flush()
    return row


async def remove_case_deadline(session: AsyncSession, case_type: str) -> bool:
    """Back to CASE_DEADLINE_DAYS or the default; False when nothing was set."""
    result = await session.execute(delete(CaseDeadline).where(CaseDeadline.case_type == case_type))
    return result.rowcount > 0


async def overrides(session: AsyncSession, year: int | None = None) -> list[WorkdayOverride]:
    query = select(WorkdayOverride).order_by(WorkdayOverride.day)
    if year is not None:
        query = query.where(WorkdayOverride.day.between(date(year, 1, 1), date(year, 12, 31)))
    return list(await session.scalars(query))


async def set_override(session: AsyncSession, day: date, is_workday: bool, note: str = "") -> None:
    """Make `day` a working day or a holiday whatever the statutory calendar says."""
    row = await session.get(WorkdayOverride, day)
    if row is None:
        session.add(WorkdayOverride(day=day, is_workday=is_workday, note=note))
    else:
        row.is_workday, row.note = is_workday, note
    await session.flush()


async def remove_override(session: AsyncSession, day: date) -> bool:
    """Back to the statutory calendar for `day`; False when there was no override."""
    result = await session.execute(delete(WorkdayOverride).where(WorkdayOverride.day == day))
    return result.rowcount > 0
