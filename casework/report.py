"""Timeliness reports: observations grouped by a cut, with the previous period beside them.

One `Report` of plain rows renders as a page, JSON, CSV and XLSX alike (`columns`/`cells` give
the same header and cells to every format). The measures and their Chinese headers, with the
unit in the header, are the table MEASURES; docs/timeliness.md defines each.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from casework import facts
from casework.calendar import ONE_DAY, load_calendar
from casework.measures import GRAINS, mean, percentile, period_of, previous_window
from casework.models import Unit
from casework.timeliness import Observation, collect


@dataclass(frozen=True)
class Measure:
    key: str                # a column of Row.values
    source: str             # the Observation.measure it aggregates
    how: str                # mean, median, p90, rate (% of true), count (sum), n (items)
    header: str             # Chinese, with the unit


MEASURES = (
    Measure("bot_reply_s", "bot_reply_s", "mean", "机器人首次回复平均用时（秒）"),
    Measure("handoff_wait_min", "handoff_wait_min", "mean", "转人工等待平均（工作分钟）"),
    Measure("handoff_wait_p90_min", "handoff_wait_min", "p90", "转人工等待90分位（工作分钟）"),
    Measure("acceptance_wd", "acceptance_wd", "mean", "签收平均用时（工作日）"),
    Measure("replies", "replies", "count", "答复件数（件）"),
    Measure("first_reply_wd", "first_reply_wd", "mean", "首次答复平均用时（工作日）"),
    Measure("first_reply_median_wd", "first_reply_wd", "median", "首次答复用时中位数（工作日）"),
    Measure("first_reply_p90_wd", "first_reply_wd", "p90", "首次答复用时90分位（工作日）"),
    Measure("first_reply_median_days", "first_reply_days", "median", "首次答复用时中位数（自然日）"),
    Measure("first_reply_p90_days", "first_reply_days", "p90", "首次答复用时90分位（自然日）"),
    Measure("resolution_wd", "resolution_wd", "mean", "办结平均用时（工作日）"),
    Measure("on_time_rate", "on_time", "rate", "按期答复率（%）"),
    Measure("overdue_now", "overdue_now", "count", "当前超期件数（件）"),
    Measure("satisfaction_rate", "satisfaction", "rate", "满意率（%）"),
    Measure("ratings", "satisfaction", "n", "评价数（个）"),
    Measure("rating_coverage", "rating_coverage", "rate", "评价覆盖率（%）"),
    Measure("consultations", "handed_off", "n", "咨询会话数（个）"),
    Measure("bot_resolved_share", "bot_resolved", "rate", "机器人解决占比（%）"),
    Measure("handed_off_share", "handed_off", "rate", "转人工占比（%）"),
    Measure("unanswered_rate", "unanswered", "rate", "未解答率（%）"),
    Measure("delivery_failures", "delivery_failures", "count", "送达失败（条）"),
)
MEASURE_KEYS = tuple(m.key for m in MEASURES)
# What a median or percentile is taken of: read one value per item, never pre-summed.
PERCENTILE_SOURCES = frozenset(m.source for m in MEASURES if m.how in ("median", "p90"))
CUTS = ("unit", "category", "channel", "case_type", *GRAINS)
CUT_NAMES = {"unit": "按单位", "category": "按类别", "channel": "按渠道", "case_type": "按办件类型",
             "day": "按日", "week": "按周", "month": "按月", "quarter": "按季度", "year": "按年"}
TOTAL = "合计"


@dataclass
class Row:
    key: str                                   # unit id, category, channel, type, period label, 合计
    label: str                                 # what a reader sees (the unit's name …)
    values: dict[str, float | None]
    previous: dict[str, float | None]          # the same measures over the previous period
    parent: str | None = None                  # the parent unit, for the unit cut


@dataclass
class Report:
    first: date
    last: date
    previous_first: date
    previous_last: date
    by: str | None
    rows: list[Row] = field(default_factory=list)
    total: Row | None = None
    generated_at: datetime | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def aggregate(observations: Iterable[Observation]) -> dict[str, float | None]:
    """Every measure of MEASURES over these observations (None where there is none)."""
    by_source: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_source[o.measure].append(o)
    values = {}
    for m in MEASURES:
        got = by_source.get(m.source, [])
        if m.how == "count":
            values[m.key] = int(sum(o.value for o in got))
        elif m.how == "n":
            values[m.key] = sum(o.n for o in got)
        elif not got:
            values[m.key] = None
        elif m.how in ("mean", "rate"):
            total = sum(o.value for o in got) / sum(o.n for o in got)
            values[m.key] = 100 * total if m.how == "rate" else total
        else:
            values[m.key] = percentile([o.value for o in got], 50 if m.how == "median" else 90)
    return values


def _keys(o: Observation, by: str, ancestors: dict[str, list[str]]) -> list[str]:
    """The groups an observation counts in: a unit's counts in each unit above it too."""
    if by in GRAINS:
        return [period_of(o.at, by).label] if o.at else []
    if by == "unit":
        return [o.dims.unit, *ancestors.get(o.dims.unit, [])] if o.dims.unit else []
    value = getattr(o.dims, by)
    return [value] if value else []


def cut(observations: list[Observation], by: str | None, first: date, last: date,
        prev_first: date, prev_last: date, units: dict[str, Unit] | None = None) -> Report:
    """Group observations of [prev_first, last] by `by`: each row over the window, and over
    the previous period (for a period cut: the period before that row's)."""
    if by is not None and by not in CUTS:
        raise ValueError(f"cut must be one of {', '.join(CUTS)}, not {by!r}")
    units = units or {}
    ancestors = {uid: _ancestors(uid, units) for uid in units}
    now_or_in = [o for o in observations if o.at is None or first <= o.at <= last]
    before = [o for o in observations if o.at is not None and prev_first <= o.at <= prev_last]
    report = Report(first, last, prev_first, prev_last, by)
    report.total = Row(TOTAL, TOTAL, aggregate(now_or_in), aggregate(before))
    if by is None:
        return report
    groups: dict[str, list[Observation]] = defaultdict(list)
    for o in (observations if by in GRAINS else now_or_in):
        for key in _keys(o, by, ancestors):
            groups[key].append(o)
    previous: dict[str, list[Observation]] = defaultdict(list)
    for o in before:
        for key in _keys(o, by, ancestors):
            previous[key].append(o)
    if by in GRAINS:
        labels = _periods(first, last, by)
        for label, period in labels:
            earlier = period_of(period.first - ONE_DAY, by)
            report.rows.append(Row(label, label, aggregate(groups.get(label, [])),
                                   aggregate(groups.get(earlier.label, []))))
        return report
    for key in sorted(groups, key=lambda k: (_depth(k, ancestors), k) if by == "unit" else k):
        unit = units.get(key)
        report.rows.append(Row(key, unit.name if unit else key, aggregate(groups[key]),
                               aggregate(previous.get(key, [])),
                               parent=unit.parent_id if unit else None))
    return report


async def unit_and_below(session: AsyncSession, unit_id: str) -> set[str]:
    """A unit and every unit under it (through units.parent_id): what its handlers may see."""
    children: dict[str | None, list[str]] = defaultdict(list)
    for uid, parent in await session.execute(select(Unit.id, Unit.parent_id)):
        children[parent].append(uid)
    found, todo = set(), [unit_id]
    while todo:
        uid = todo.pop()
        if uid not in found:
            found.add(uid)
            todo.extend(children.get(uid, []))
    return found


def _ancestors(unit_id: str, units: dict[str, Unit]) -> list[str]:
    chain, seen = [], {unit_id}
    parent = units[unit_id].parent_id if unit_id in units else None
    while parent and parent not in seen:          # a cycle in the directory stops here
        chain.append(parent)
        seen.add(parent)
        parent = units[parent].parent_id if parent in units else None
    return chain


def _depth(unit_id: str, ancestors: dict[str, list[str]]) -> int:
    return len(ancestors.get(unit_id, []))


def _periods(first: date, last: date, grain: str):
    found, day = [], first
    while day <= last:
        period = period_of(day, grain)
        found.append((period.label, period))
        day = period.last + ONE_DAY
    return found


async def timeliness_report(session: AsyncSession, first: date, last: date, by: str | None = None,
                            *, now: datetime, units: Iterable[str] | None = None) -> Report:
    """The timeliness report of [first, last] (China dates), cut `by` one of CUTS or only the
    total, with the previous period (casework.measures.previous_window) beside it."""
    return (await all_cuts(session, first, last, [by], now=now, units=units))[by]


async def all_cuts(session: AsyncSession, first: date, last: date, cuts: Iterable[str | None], *,
                   now: datetime, units: Iterable[str] | None = None) -> dict[str | None, Report]:
    """Several cuts of one window from one read of the log. With `units` (a unit and the units
    under it, see `unit_and_below`), only what those units did: measures without a unit (the
    bot's latency, consultations, deliveries) are left out, and the unit cut shows those units."""
    cuts = list(cuts)
    if last < first:
        raise ValueError(f"the report ends ({last}) before it starts ({first})")
    for by in cuts:
        if by is not None and by not in CUTS:
            raise ValueError(f"cut must be one of {', '.join(CUTS)}, not {by!r}")
    prev_first, prev_last = previous_window(first, last)
    # A period cut compares its first period with the one before, which may start earlier.
    earliest = min([prev_first] + [period_of(period_of(first, c).first - ONE_DAY, c).first
                                    for c in cuts if c in GRAINS])
    calendar = await load_calendar(session)
    await facts.refresh_apart(session, calendar, now=now)
    # Read once for every cut: the log's per-day observations and the facts percentiles need.
    units = set(units) if units is not None else None
    shared = await collect(session, earliest, last, now=now, calendar=calendar)
    if units is not None:
        shared = [o for o in shared if o.dims.unit in units]
    shared += await facts.single(session, earliest, last, PERCENTILE_SOURCES, units)
    directory = {u.id: u for u in await session.scalars(select(Unit))}
    reports = {}
    for by in cuts:
        # The case facts summed in SQL as finely as this cut needs, and no finer.
        if by in GRAINS:
            case_facts = await facts.summed(session, [(earliest, last)], dimensions=(), by_day=True,
                                            leave_out=PERCENTILE_SOURCES, units=units)
        else:
            case_facts = await facts.summed(session, [(prev_first, prev_last), (first, last)],
                                            dimensions=[by] if by else [], by_day=False,
                                            leave_out=PERCENTILE_SOURCES, units=units)
        reports[by] = cut(shared + case_facts, by, first, last, prev_first, prev_last, directory)
        if by == "unit" and units is not None:      # not the parents the roll-up reached
            reports[by].rows = [row for row in reports[by].rows if row.key in units]
        reports[by].generated_at = now
    return reports


# Rendering: one header and one list of cells per row, for every format.

PREVIOUS = "（上期）"


def columns(by: str | None) -> list[str]:
    group = CUT_NAMES.get(by, "范围").removeprefix("按") if by else "范围"
    headers = [group, "上级单位"] if by == "unit" else [group]
    for m in MEASURES:
        headers += [m.header, m.header.replace("（", PREVIOUS + "（", 1)]
    return headers


def cells(row: Row, by: str | None, digits: int = 2) -> list:
    out: list = [row.label, row.parent or ""] if by == "unit" else [row.label]
    for key in MEASURE_KEYS:
        out += [_rounded(row.values.get(key), digits), _rounded(row.previous.get(key), digits)]
    return out


def _rounded(value, digits: int):
    if value is None:
        return None
    return round(value, digits) if isinstance(value, float) and not value.is_integer() else int(value)


def table(report: Report) -> tuple[list[str], list[list]]:
    """The header and rows of one report, its total last."""
    rows = [cells(r, report.by) for r in report.rows]
    if report.total is not None:
        rows.append(cells(report.total, report.by))
    return columns(report.by), rows
