"""统计报表 (issue 7): the timeliness report of a window, cut one way, as a page and as files.

Everything on the page comes from one `casework.report.table(report)`: the summary cards read
the 合计 row, the bar chart reads one column of the other rows, the trend reads the month cut's
table, and the CSV/XLSX downloads are casework/report_files.py's, as the CLI writes them. So the
chart, the table and the exports cannot disagree (tests/admin/test_report_pages.py checks it).
Admins, dispatchers and reviewers read every unit's numbers; unit handlers are not given the
page (the report has no per-unit filter yet, and its 合计 and other cuts count every unit).
"""
from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

from aiohttp import web
from multidict import MultiMapping

from admin.auth import render
from admin.charts import bar_chart, histogram, line_chart
from admin.permissions import allow
from casework import assessment, report_files
from casework.calendar import load_calendar
from casework.measures import period_of
from casework.report import CUT_NAMES, CUTS, MEASURES, table, unit_and_below
from casework.report_cache import ReportCache, keep_warm
from casework.timeliness import handoff_waits, window_bounds
from server.appkeys import DB, REPORT_CACHE
from server.db import CHINA, utcnow

READERS = ("admin", "dispatcher", "reviewer")
MAX_DAYS = 731                      # two years: a longer window is refused, not silently cut
HEADERS = {m.key: m.header for m in MEASURES}
# The summary cards: measure, and whether a higher value is better (colours the change).
CARDS = (("on_time_rate", True), ("satisfaction_rate", True), ("first_reply_wd", False),
         ("handoff_wait_min", False), ("bot_reply_s", False), ("unanswered_rate", False),
         ("overdue_now", False))
SNAPSHOTS = frozenset({"overdue_now"})          # counted as of now: no previous period
TREND = ("on_time_rate", "satisfaction_rate")
# Hand-off waits (working minutes): upper bound of each bucket, inclusive; None: no bound.
WAIT_BUCKETS = ((1, "1分钟内"), (5, "1–5分钟"), (15, "5–15分钟"), (30, "15–30分钟"),
                (60, "30–60分钟"), (240, "1–4小时"), (None, "4小时以上"))
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
BOM = "\ufeff"                      # so that Excel reads the CSV's Chinese as UTF-8


class QueryRefused(ValueError):
    """A report query the page cannot answer, with the reason in Chinese."""

    def __init__(self, zh: str) -> None:
        super().__init__(zh)
        self.zh = zh


@dataclass(frozen=True)
class Query:
    first: date
    last: date
    by: str
    measure: str


def china_today() -> date:
    return utcnow().astimezone(CHINA).date()


def parse_query(params: MultiMapping[str], today: date) -> Query:
    """The window (default: this quarter to today), the cut and the charted measure."""
    try:
        first = date.fromisoformat(params.get("from") or period_of(today, "quarter").first.isoformat())
        last = date.fromisoformat(params.get("to") or today.isoformat())
    except ValueError:
        raise QueryRefused("日期格式应为 年-月-日，例如 2026-10-01") from None
    if last < first:
        raise QueryRefused(f"结束日期 {last} 早于开始日期 {first}")
    if last - first >= timedelta(days=MAX_DAYS):
        raise QueryRefused(f"时间跨度不能超过两年（{MAX_DAYS} 天），请缩小范围或分段导出")
    by = params.get("by") or "unit"
    if by not in CUTS:
        raise QueryRefused("分组方式无效")
    measure = params.get("measure") or "on_time_rate"
    if measure not in HEADERS:
        raise QueryRefused("图表指标无效")
    return Query(first, last, by, measure)


def column(headers: list[str], key: str) -> int:
    """Where a measure's value (not its previous-period value) sits in table(report)."""
    return headers.index(HEADERS[key])


def shown(value) -> str:
    """A cell as the table prints it (cells are already rounded by casework.report.cells)."""
    return "—" if value is None else str(value)


def cards(headers: list[str], total: list) -> list[dict]:
    found = []
    for key, higher_is_better in CARDS:
        i = column(headers, key)
        value, before = total[i], total[i + 1]
        card = {"key": key, "header": HEADERS[key], "value": shown(value), "previous": None,
                "change": None, "trend": ""}
        if key not in SNAPSHOTS:
            card["previous"] = shown(before)
            if value is not None and before is not None:
                change = round(value - before, 2)
                arrow = "↑" if change > 0 else "↓" if change < 0 else "持平"
                card["change"] = arrow if not change else f"{arrow}{abs(change):g}"
                card["trend"] = "same" if not change else (
                    "better" if (change > 0) == higher_is_better else "worse")
        found.append(card)
    return found


def wait_buckets(minutes: list[float]) -> list[tuple[str, int]]:
    counts = [0] * len(WAIT_BUCKETS)
    for m in minutes:
        counts[next(i for i, (bound, _) in enumerate(WAIT_BUCKETS) if bound is None or m <= bound)] += 1
    return [(label, n) for (_, label), n in zip(WAIT_BUCKETS, counts)]


def attachment(ascii_name: str, zh_name: str) -> str:
    """Content-Disposition for a download: a plain name for old clients, the Chinese one (RFC
    5987) for the rest."""
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(zh_name)}"


def download(fmt: str, data: str | bytes, ascii_name: str, zh_name: str) -> web.Response:
    body = (BOM + data).encode("utf-8") if isinstance(data, str) else data
    return web.Response(body=body, headers={
        "Content-Type": CONTENT_TYPES[fmt],
        "Content-Disposition": attachment(f"{ascii_name}.{fmt}", f"{zh_name}.{fmt}")})


def export_format(request: web.Request) -> str:
    fmt = request.query.get("format", "csv")
    if fmt not in CONTENT_TYPES:
        raise web.HTTPBadRequest(text="格式应为 csv 或 xlsx")
    return fmt


def _form(params: MultiMapping[str], query: Query | None) -> dict:
    if query is None:                              # shown again as typed, with the error
        return {k: params.get(k, "") for k in ("from", "to", "by", "measure")}
    return {"from": query.first.isoformat(), "to": query.last.isoformat(), "by": query.by,
            "measure": query.measure}


async def visible_units(request: web.Request) -> set[str] | None:
    """A unit handler sees their unit and the units under it; other readers see everything."""
    user = request["user"]
    if user.role != "unit_handler":
        return None
    async with request.app[DB].session() as session:
        return await unit_and_below(session, user.unit_id)


async def reports_page(request: web.Request) -> web.Response:
    try:
        query = parse_query(request.query, china_today())
    except QueryRefused as exc:
        return await render(request, "report_timeliness.html", {
            "error": exc.zh, "form": _form(request.query, None), "cut_names": CUT_NAMES,
            "measures": MEASURES, "report": None}, status=400)
    start, end = window_bounds(query.first, query.last)
    units = await visible_units(request)
    reports = await request.app[REPORT_CACHE].get(request.app[DB], query.first, query.last,
                                                  [query.by, "month"], units=units,
                                                  fresh=request.query.get("fresh") == "1")
    async with request.app[DB].session() as session:
        waits = await handoff_waits(session, start, end, await load_calendar(session))
        if units is not None:
            waits = [o for o in waits if o.dims.unit in units]
        target = next((i for i in await assessment.indicators(session) if i.measure == query.measure),
                      None) if query.by == "unit" else None
    report = reports[query.by]
    headers, rows = table(report)
    i = column(headers, query.measure)
    bad = None                                      # red: worse than the assessment's target
    if target is not None:
        bad = (lambda v: v < target.target) if target.higher_is_better else (lambda v: v > target.target)
    bars = bar_chart([(row[0], row[i]) for row in rows[:-1]], title=HEADERS[query.measure],
                     fmt=str, target=target.target if target else None, bad=bad)
    month_headers, month_rows = table(reports["month"])
    trend = line_chart([row[0] for row in month_rows[:-1]],
                       {HEADERS[k]: [row[column(month_headers, k)] for row in month_rows[:-1]]
                        for k in TREND}, title="按期答复率和满意率（按月）", fmt=str)
    spread = histogram(wait_buckets([o.value for o in waits]), title="转人工等待分布（工作分钟）")
    link = {k: v for k, v in _form(request.query, query).items() if k != "measure"}
    export = request.app.router["report-export"].url_for()
    return await render(request, "report_timeliness.html", {
        "error": None, "form": _form(request.query, query), "cut_names": CUT_NAMES,
        "measures": MEASURES, "report": report, "cards": cards(headers, rows[-1]),
        "headers": headers, "rows": rows,
        "bars": bars, "trend": trend, "spread": spread, "waits": len(waits), "target": target,
        "measure_header": HEADERS[query.measure], "cut_name": CUT_NAMES[query.by],
        "scoped": units is not None,
        "computed": report.generated_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
        "fresh_url": request.rel_url.update_query({"fresh": "1"}),
        "csv_url": export.with_query({**link, "format": "csv"}),
        "xlsx_url": export.with_query({**link, "format": "xlsx"}),
    })


async def reports_export(request: web.Request) -> web.Response:
    fmt = export_format(request)
    try:
        query = parse_query(request.query, china_today())
    except QueryRefused as exc:
        raise web.HTTPBadRequest(text=exc.zh) from None
    reports = await request.app[REPORT_CACHE].get(request.app[DB], query.first, query.last, [query.by],
                                                  units=await visible_units(request))
    names = (f"timeliness-{query.first}-{query.last}-{query.by}",
             f"时效报表_{query.first}至{query.last}_{CUT_NAMES[query.by]}")
    if fmt == "csv":
        return download(fmt, report_files.to_csv(reports[query.by]), *names)
    out = io.BytesIO()
    report_files.write_xlsx(out, reports)
    return download(fmt, out.getvalue(), *names)


async def report_warmer(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context of the served app (server/app.py): the page's default view kept warm."""
    task = asyncio.create_task(keep_warm(app[REPORT_CACHE], app[DB]))
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def setup_report_pages(app: web.Application) -> None:
    app[REPORT_CACHE] = ReportCache()
    r = app.router
    r.add_get("/admin/reports", reports_page, name="report-timeliness")
    r.add_get("/admin/reports/export", reports_export, name="report-export")
    for name in ("report-timeliness", "report-export"):       # handlers: their own units only
        allow(name, *READERS, "unit_handler")
