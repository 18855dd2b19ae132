"""Alerts for the admin home page: what needs someone's attention now.

Each source is `async def source(session, today) -> list[Alert]` and is listed in SOURCES;
`alerts(session, today)` runs them all, most urgent first. Content and calendar alerts live
here; the timeliness thresholds (a unit's on-time or satisfaction rate below its target) are
another source of the same shape, added to SOURCES next to the measures.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework import assessment
from casework.calendar import load_calendar, overrides
from casework.measures import period_of
from casework.models import Event
from casework.report import timeliness_report
from knowledge_base import listing
from knowledge_base.models import PUBLISHED, Version
from server.db import CHINA, utcnow

DANGER, WARNING = "danger", "warning"
REVIEW_DAYS = 30          # a served entry expiring within this many days is due for review
STALE_DAYS = 14           # art. 14: the content is kept up to date; two weeks without news warns
CALENDAR_FROM = (10, 1)   # next year's holiday notice is due from October (usually November)
SHOWN = 5                 # entry ids named in a message


@dataclass(frozen=True)
class Alert:
    kind: str                     # kb_expired, kb_review_due, kb_stale, calendar_missing, …
    level: str                    # danger, warning
    message: str                  # Chinese, for staff
    route: str | None = None      # the console page that deals with it (a route name)
    query: dict = field(default_factory=dict)   # its query string


def _named(ids: list[str]) -> str:
    return "、".join(ids[:SHOWN]) + ("等" if len(ids) > SHOWN else "")


async def qa_alerts(session: AsyncSession, today: date) -> list[Alert]:
    """Served Q&A expired or expiring soon, and no new published content for STALE_DAYS."""
    found = []
    served, _ = await listing.latest_versions(session, status=PUBLISHED, today=today, limit=100_000)
    expired = [r.entry_id for r in served if r.valid_to and r.valid_to < today]
    due = [r.entry_id for r in served
           if r.valid_to and today <= r.valid_to <= today + timedelta(days=REVIEW_DAYS)]
    if expired:
        found.append(Alert("kb_expired", DANGER,
                           f"{len(expired)} 条问答已过期，已停止向群众提供：{_named(expired)}。"
                           "请更新有效期或下线。", "kb-list", {"expired": "1"}))
    if due:
        found.append(Alert("kb_review_due", WARNING,
                           f"{len(due)} 条问答将在 {REVIEW_DAYS} 天内过期，请复核：{_named(due)}。",
                           "kb-list", {"status": PUBLISHED}))
    # listing.py has no query for this; the newest publication of any version, retired or not.
    last = await session.scalar(select(func.max(Version.published_at)))
    if last is None:
        found.append(Alert("kb_stale", WARNING, "问答库尚无已发布的内容。", "kb-list"))
    else:
        last_day = last.astimezone(CHINA).date() if last.tzinfo else last.date()
        if (today - last_day).days >= STALE_DAYS:
            found.append(Alert("kb_stale", WARNING,
                               f"问答库已 {(today - last_day).days} 天没有发布新内容（最近一次 "
                               f"{last_day.isoformat()}），请及时更新（第十四条）。", "kb-list"))
    return found


async def calendar_alerts(session: AsyncSession, today: date) -> list[Alert]:
    """This year's statutory holidays missing (danger), or next year's from October (warning)."""
    calendar = await load_calendar(session)
    years = [(today.year, DANGER)]
    if (today.month, today.day) >= CALENDAR_FROM:
        years.append((today.year + 1, WARNING))
    found = []
    for year, level in years:
        if calendar.covers(year):
            continue
        manual = len(await overrides(session, year))
        found.append(Alert(
            "calendar_missing", level,
            f"工作日历缺少 {year} 年的法定节假日和调休数据，办理期限将按周一至周五计算"
            f"（已手工设置 {manual} 天）。请按国务院办公厅通知用 govchat calendar override "
            "补录，或升级 chinesecalendar。"))
    return found


async def content_alerts(session: AsyncSession, today: date) -> list[Alert]:
    """Every alert that does not depend on the timeliness measures: calendar, then Q&A."""
    return [*await calendar_alerts(session, today), *await qa_alerts(session, today)]


Source = Callable[[AsyncSession, date], Awaitable[list[Alert]]]
MIN_ITEMS = 5                 # replies (or ratings) before a unit's rate is worth an alert
THRESHOLDS = {"on_time_rate": 90.0, "satisfaction_rate": 85.0}   # unless the assessment sets targets
COUNTED_BY = {"on_time_rate": "replies", "satisfaction_rate": "ratings"}
UNIT_ALERT_SECONDS = 600      # the quarter's report is read at most this often per database
_unit_alerts_cache: dict[tuple, tuple[float, list[Alert]]] = {}


async def unit_alerts(session: AsyncSession, today: date) -> list[Alert]:
    """Units whose on-time or satisfaction rate this quarter (to today) is below its threshold:
    the assessment table's target for that measure, else THRESHOLDS. Units with fewer than
    MIN_ITEMS replies (ratings) are not judged yet."""
    # Cached while nothing new happened (same newest event) for up to UNIT_ALERT_SECONDS.
    key = (str(session.bind.url), today, await session.scalar(select(func.max(Event.id))))
    cached = _unit_alerts_cache.get(key)
    if cached and time.monotonic() - cached[0] < UNIT_ALERT_SECONDS:
        return cached[1]
    quarter = period_of(today, "quarter")
    report = await timeliness_report(session, quarter.first, today, "unit", now=utcnow())
    targets = {**THRESHOLDS, **{i.measure: i.target for i in await assessment.indicators(session)
                                if i.measure in THRESHOLDS}}
    found = []
    for measure, name in (("on_time_rate", "按期答复率"), ("satisfaction_rate", "满意率")):
        low = [(row.label, row.values[measure]) for row in report.rows
               if (row.values.get(COUNTED_BY[measure]) or 0) >= MIN_ITEMS
               and row.values.get(measure) is not None and row.values[measure] < targets[measure]]
        if low:
            low.sort(key=lambda pair: pair[1])
            named = "、".join(f"{label}（{value:.1f}%）" for label, value in low[:SHOWN])
            found.append(Alert(f"unit_{measure}", WARNING,
                               f"本季度 {len(low)} 个单位{name}低于 {targets[measure]:g}%：{named}"
                               f"{'等' if len(low) > SHOWN else ''}。",
                               "report-timeliness", {"from": quarter.first.isoformat(),
                                                     "to": today.isoformat(), "by": "unit"}))
    _unit_alerts_cache[key] = (time.monotonic(), found)
    return found


SOURCES: list[Source] = [content_alerts, unit_alerts]
_LEVELS = {DANGER: 0, WARNING: 1}


async def alerts(session: AsyncSession, today: date) -> list[Alert]:
    """Every source's alerts, dangers first, otherwise in SOURCES order."""
    found = [alert for source in SOURCES for alert in await source(session, today)]
    return sorted(found, key=lambda a: _LEVELS.get(a.level, 2))
