"""The arithmetic of timeliness, free of the database: working time with the citizen's waits
taken out, percentiles, and report periods.

casework/timeliness.py reads the facts and calls these per case or hand-off; tests call them
directly with literal datetimes.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from casework.calendar import DutyHours, WorkCalendar, china_date

Interval = tuple[datetime, datetime]
DAY_SECONDS = 86400.0
GRAINS = ("day", "week", "month", "quarter", "year")


def duty_hours(start: str | None, end: str | None) -> DutyHours:
    """A unit's duty hours from its "08:30"/"17:30" columns; the default when either is unset."""
    if not start or not end:
        return DutyHours()
    return DutyHours(time.fromisoformat(start), time.fromisoformat(end))


def merged(pauses: Iterable[Interval]) -> list[Interval]:
    """`pauses` in order, overlapping ones joined (an interval not yet ended is not passed)."""
    joined: list[Interval] = []
    for a, b in sorted(p for p in pauses if p[1] > p[0]):
        if joined and a <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(b, joined[-1][1]))
        else:
            joined.append((a, b))
    return joined


def clipped(pauses: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of `pauses` inside [start, end], merged, in order."""
    return merged((max(a, start), min(b, end)) for a, b in pauses)


def working_seconds(calendar: WorkCalendar, start: datetime, end: datetime,
                    duty: DutyHours | None = None, pauses: Iterable[Interval] = ()) -> float:
    """Seconds of duty time on working days from `start` to `end`, less those inside `pauses`
    (the case waited for the citizen)."""
    total = calendar.working_seconds(start, end, duty)
    for a, b in clipped(pauses, start, end):
        total -= calendar.working_seconds(a, b, duty)
    return max(total, 0.0)


def working_days(calendar: WorkCalendar, start: datetime, end: datetime,
                 pauses: Iterable[Interval] = ()) -> int:
    """Working days elapsed from `start` to `end` (WorkCalendar.workdays_between: the day after
    the start is the first), less the working days elapsed inside each pause."""
    total = calendar.workdays_between(start, end)
    for a, b in clipped(pauses, start, end):
        total -= calendar.workdays_between(a, b)
    return max(total, 0)


def paused_workdays(calendar: WorkCalendar, pauses: Iterable[Interval]) -> int:
    """Working days the case spent waiting for the citizen: what its deadline moves by."""
    return sum(calendar.workdays_between(a, b) for a, b in merged(pauses))


def calendar_days(start: datetime, end: datetime) -> float:
    """Elapsed time in days of 24 hours (the Teddy Cup file's reply_days_derived)."""
    return (end - start).total_seconds() / DAY_SECONDS


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation between the closest ranks (as
    numpy's default and statistics.quantiles(method="inclusive")); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def share(part: int, whole: int) -> float | None:
    """part / whole as a percentage; None when there is nothing to divide."""
    return 100.0 * part / whole if whole else None


# Report periods, as China dates. Labels as knowledge_base.curation.period_label writes them.

@dataclass(frozen=True)
class Period:
    label: str
    first: date      # inclusive
    last: date       # inclusive


def period_of(day: date | datetime, grain: str) -> Period:
    """The day, ISO week, month, quarter or year a China date (or aware datetime) falls in."""
    day = china_date(day)
    if grain == "day":
        return Period(day.isoformat(), day, day)
    if grain == "week":
        year, week, weekday = day.isocalendar()
        monday = day - timedelta(days=weekday - 1)
        return Period(f"{year}-W{week:02d}", monday, monday + timedelta(days=6))
    if grain == "month":
        first = day.replace(day=1)
        return Period(f"{day.year}-{day.month:02d}", first, _next_month(first) - timedelta(days=1))
    if grain == "quarter":
        q = (day.month - 1) // 3
        first = date(day.year, 3 * q + 1, 1)
        last = _next_month(date(day.year, 3 * q + 3, 1)) - timedelta(days=1)
        return Period(f"{day.year}-Q{q + 1}", first, last)
    if grain == "year":
        return Period(str(day.year), date(day.year, 1, 1), date(day.year, 12, 31))
    raise ValueError(f"period must be one of {', '.join(GRAINS)}, not {grain!r}")


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def previous_window(first: date, last: date) -> tuple[date, date]:
    """The window before [first, last] to compare with: the previous whole month, quarter or
    year when the window is one, else the same number of days just before."""
    for grain in ("month", "quarter", "year"):
        whole = period_of(first, grain)
        if (whole.first, whole.last) == (first, last):
            before = period_of(first - timedelta(days=1), grain)
            return before.first, before.last
    length = last - first + timedelta(days=1)
    return first - length, last - length
