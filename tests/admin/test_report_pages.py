"""统计报表 and 年度考核 over HTTP: the page's table, charts and files are casework.report's table."""
from __future__ import annotations

import html
import io
import re
from datetime import date
from urllib.parse import quote

from openpyxl import load_workbook
from sqlalchemy import select

from admin.models import AuditEntry
from admin.report_pages import BOM, HEADERS, column, shown
from casework import events, report_files
from casework.assessment import DEFAULT_INDICATORS, assess, assessment_table, indicators
from casework.report import all_cuts, table
from server.db import utcnow
from tests.admin.conftest import signed_in
from tests.casework.test_timeliness import build_history, china

WINDOW = {"from": "2026-10-01", "to": "2026-11-30"}


async def history_with_handoffs(db) -> None:
    """Cases A–E of tests/casework/test_timeliness.py, and hand-offs answered by 住建局 (08:30–17:30)
    after 60 working minutes (Thu 17:00 → Fri 09:00) and by 夜间热线 after 600 (its night shifts)."""
    from bot import api as bot_api

    await build_history(db)
    waits = (("c-day", china(2026, 11, 26, 17), china(2026, 11, 27, 9), "zjj-agent"),
             ("c-night", china(2026, 11, 27, 23), china(2026, 11, 30, 21), "night-agent"))
    for sender, since, at, actor in waits:
        conv = await bot_api.open_conversation(db, "webchat", "", sender)
        async with db.session() as session, session.begin():
            events.record(session, events.STAFF_FIRST_REPLY, at=at, since=since,
                          conversation_id=conv.id, actor=actor)


async def expected(db, by: str):
    async with db.session() as session:
        reports = await all_cuts(session, date(2026, 10, 1), date(2026, 11, 30), [by], now=utcnow())
    return reports


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</svg>", start) if "chart" in element_id else page.index("</table>", start)]


def table_cells(page: str, element_id: str) -> tuple[list[str], list[list[str]]]:
    body = section(page, element_id)
    headers = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", body)]
    rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1], re.S)]
    return headers, rows


def sheet_rows(sheet) -> list[list]:
    return [[c.value for c in r] for r in sheet.iter_rows()]


def as_written(rows: list[list]) -> list[list]:
    """Table rows as openpyxl reads them back: an empty string cell is an empty cell (None)."""
    return [[None if v == "" else v for v in row] for row in rows]


def titles(svg: str, tag: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(rf"<{tag}[^>]*><title>(.*?)</title>", svg)]


async def test_table_cards_and_charts_show_the_reports_own_cells(make_client, db):
    await history_with_handoffs(db)
    client, _ = await signed_in(make_client, db, "boss", "admin")
    assert "统计报表" in await (await client.get("/admin/")).text()
    resp = await client.get("/admin/reports", params={**WINDOW, "by": "unit", "measure": "on_time_rate"})
    page = await resp.text()
    assert resp.status == 200, page
    headers, rows = table(((await expected(db, "unit"))["unit"]))
    assert table_cells(page, "report-table") == (headers, [[shown(v) for v in row] for row in rows])
    # Rows: 市政府 (both units' cases), 夜间热线 (a hand-off only), 城管局, 住建局, then 合计.
    assert [row[0] for row in rows] == ["市政府", "夜间热线", "城管局", "住建局", "合计"]

    # One bar per row of the cut, with the table's value (无数据 where it has none); red below the
    # 95 % target, which is drawn as a dashed line (城管局 100 %, 住建局 50 %, 市政府 75 %).
    i = column(headers, "on_time_rate")
    bars = section(page, "chart-bars")
    assert [row[i] for row in rows[:-1]] == [75, None, 100, 50]
    assert titles(bars, "rect") == [f"{row[0]}：{row[i]}" for row in rows[:-1] if row[i] is not None]
    assert bars.count("无数据") == 1
    assert re.findall(r'<rect[^>]*fill="([^"]+)"', bars) == ["#cf222e", "#1f6feb", "#cf222e"]
    assert "<title>目标 95.0</title>" in bars

    # The cards read the 合计 row: on time 75 (3 of 4 replies), one case overdue now.
    total = rows[-1]
    card = re.search(r'data-measure="on_time_rate">.*?stat-value">(.*?)<.*?上期 (.*?)[ <]', page, re.S)
    assert card.groups() == (shown(total[i]), shown(total[i + 1]))
    overdue = re.search(r'data-measure="overdue_now">.*?stat-value">(.*?)<.*?muted">(.*?)<', page, re.S)
    assert overdue.groups() == ("1", "当前数")

    # The trend: one point per month and series, the month cut's cells.
    month_headers, month_rows = table((await expected(db, "month"))["month"])
    trend = titles(section(page, "chart-trend"), "circle")
    want = [f"{HEADERS[k]} {row[0]}：{row[column(month_headers, k)]}"
            for k in ("on_time_rate", "satisfaction_rate") for row in month_rows[:-1]
            if row[column(month_headers, k)] is not None]
    assert trend == want and len(want) == 3           # on time in Oct and Nov, satisfaction in Nov
    # Hand-off waits: 60 and 600 working minutes.
    waits = titles(section(page, "chart-waits"), "rect")
    assert "30–60分钟：1" in waits and "4小时以上：1" in waits and "1分钟内：0" in waits


async def test_a_period_cut_charts_every_period_and_a_measure_without_data_says_so(make_client, db):
    await history_with_handoffs(db)
    client, _ = await signed_in(make_client, db, "fen", "dispatcher")
    page = await (await client.get("/admin/reports", params={**WINDOW, "by": "month",
                                                             "measure": "satisfaction_rate"})).text()
    headers, rows = table((await expected(db, "month"))["month"])
    assert table_cells(page, "report-table")[1] == [[shown(v) for v in row] for row in rows]
    i = column(headers, "satisfaction_rate")
    bars = section(page, "chart-bars")
    assert titles(bars, "rect") == ["2026-11：50"] and bars.count("无数据") == 1     # October
    assert "目标" not in bars                    # targets are drawn on the unit cut only


async def test_exports_are_the_cli_files(make_client, db):
    await history_with_handoffs(db)
    client, _ = await signed_in(make_client, db, "shen", "reviewer")
    page = await (await client.get("/admin/reports", params={**WINDOW, "by": "category"})).text()
    csv_url = html.unescape(re.search(r'href="([^"]+)" id="export-csv"', page).group(1))
    resp = await client.get(csv_url)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    reports = await expected(db, "category")
    assert (await resp.read()).decode("utf-8") == BOM + report_files.to_csv(reports["category"])
    disposition = resp.headers["Content-Disposition"]
    assert 'filename="timeliness-2026-10-01-2026-11-30-category.csv"' in disposition
    assert "filename*=UTF-8''" + quote("时效报表_2026-10-01至2026-11-30_按类别.csv") in disposition

    resp = await client.get("/admin/reports/export", params={**WINDOW, "by": "unit", "format": "xlsx"})
    book = load_workbook(io.BytesIO(await resp.read()))
    headers, rows = table((await expected(db, "unit"))["unit"])
    assert book.sheetnames == ["按单位"]
    assert sheet_rows(book["按单位"]) == [headers, *as_written(rows)]
    assert (await client.get("/admin/reports/export", params={"format": "pdf"})).status == 400


async def test_bad_queries_are_refused_in_chinese_on_the_page(make_client, db):
    client, _ = await signed_in(make_client, db, "boss", "admin")
    for params, message in (({"from": "2026-13-01"}, "日期格式应为 年-月-日"),
                            ({"from": "2026-11-30", "to": "2026-10-01"}, "结束日期 2026-10-01 早于开始日期 2026-11-30"),
                            ({"from": "2023-01-01", "to": "2026-01-01"}, "时间跨度不能超过两年"),
                            ({"by": "planet"}, "分组方式无效"),
                            ({"measure": "x"}, "图表指标无效")):
        resp = await client.get("/admin/reports", params=params)
        page = await resp.text()
        assert resp.status == 400 and message in page, (params, page)
        assert 'id="report-form"' in page and 'id="report-table"' not in page
        export = await client.get("/admin/reports/export", params=params)
        assert export.status == 400 and message in await export.text()
    # No parameters: this quarter to today, by unit, even with nothing to report.
    page = await (await client.get("/admin/reports")).text()
    assert 'id="report-table"' in page and "<td>合计</td>" in page


async def test_assessment_page_and_files_match_the_assessment_table(make_client, db):
    await history_with_handoffs(db)
    client, _ = await signed_in(make_client, db, "fen", "dispatcher")
    resp = await client.get("/admin/reports/assessment", params={"year": "2026"})
    page = await resp.text()
    assert resp.status == 200, page
    async with db.session() as session:
        header, rows = assessment_table(await assess(session, 2026, now=utcnow()))
    assert table_cells(page, "assessment-table") == (header, [["—" if v is None else str(v) for v in r]
                                                              for r in rows])
    _, listed = table_cells(page, "indicator-table")
    assert [r[0] for r in listed] == [i.label for i in DEFAULT_INDICATORS]
    assert listed[0] == ["按期答复率", "按期答复率（%）", "35", "95.0", "越高越好"]
    assert "修改</a>" not in page                          # only admins edit the indicators
    resp = await client.get("/admin/reports/assessment/export", params={"year": "2026", "format": "csv"})
    assert (await resp.read()).decode() == BOM + report_files.csv_text(header, rows)
    assert quote("2026年度考核.csv") in resp.headers["Content-Disposition"]
    resp = await client.get("/admin/reports/assessment/export", params={"year": "2026", "format": "xlsx"})
    book = load_workbook(io.BytesIO(await resp.read()))
    assert book.sheetnames == ["年度考核", "考核指标"]
    assert sheet_rows(book["年度考核"]) == [header, *as_written(rows)]
    resp = await client.get("/admin/reports/assessment", params={"year": "20x6"})
    assert resp.status == 400 and "年份应为" in await resp.text()


def indicator_form(csrf: str, *rows, remove=()) -> dict:
    data = {"_csrf": csrf}
    for n, (measure, label, weight, target, higher) in enumerate(rows):
        data.update({f"measure_{n}": measure, f"label_{n}": label, f"weight_{n}": weight,
                     f"target_{n}": target, f"higher_{n}": higher})
        if n in remove:
            data[f"remove_{n}"] = "1"
    return data


async def test_an_admin_edits_the_indicators_whole_and_bad_tables_are_refused(make_client, db):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    page = await (await client.get("/admin/reports/indicators")).text()
    assert page.count('name="measure_') == len(DEFAULT_INDICATORS) + 1      # and one blank row

    bad = indicator_form(csrf, ("on_time_rate", "按期", "50", "95", "1"),
                         ("on_time_rate", "又一个", "0", "90", "1"), ("", "", "", "", "1"))
    resp = await client.post("/admin/reports/indicators", data=bad)
    page = await resp.text()
    assert resp.status == 400 and "度量 on_time_rate 重复" in page and "又一个：权重必须大于0" in page
    assert 'value="又一个"' in page                        # kept as typed
    resp = await client.post("/admin/reports/indicators",
                             data=indicator_form(csrf, ("on_time_rate", "按期", "五十", "95", "1")))
    assert resp.status == 400 and "按期：权重和目标值须为数字" in await resp.text()

    good = indicator_form(csrf, ("on_time_rate", "按期答复率", "60", "90", "1"),
                          ("satisfaction_rate", "满意率", "40", "85", "1"),
                          ("first_reply_wd", "首次答复", "10", "3", "0"),
                          ("", "", "", "", "1"), remove=(2,))
    resp = await client.post("/admin/reports/indicators", data=good, allow_redirects=False)
    assert resp.status == 303
    assert "考核指标已保存（2 项）" in await (await client.get(resp.headers["Location"])).text()
    async with db.session() as session:
        saved = await indicators(session)
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "assessment.indicators"))
    assert [(i.measure, i.weight, i.target) for i in saved] == [("on_time_rate", 60, 90),
                                                                 ("satisfaction_rate", 40, 85)]
    assert audit.actor == "boss" and len(audit.detail["before"]) == len(DEFAULT_INDICATORS)
    assert [i["measure"] for i in audit.detail["after"]] == ["on_time_rate", "satisfaction_rate"]
    page = await (await client.get("/admin/reports/assessment")).text()
    assert "按期答复率（目标≥90）" in page


async def test_who_may_open_the_reports(make_client, db):
    # (timeliness report and its files, assessment and its files, indicator table)
    for username, role, reports, assessed, indicators_ in (
            ("r1", "reviewer", 200, 200, 403), ("d1", "dispatcher", 200, 200, 403),
            ("a1", "agent", 403, 403, 403), ("u1", "unit_handler", 200, 403, 403)):
        client, csrf = await signed_in(make_client, db, username, role)
        for path, status in (("/admin/reports", reports), ("/admin/reports/export", reports),
                             ("/admin/reports/assessment", assessed),
                             ("/admin/reports/assessment/export", assessed)):
            assert (await client.get(path)).status == status, (role, path)
        assert (await client.get("/admin/reports/indicators")).status == indicators_
        resp = await client.post("/admin/reports/indicators", data=indicator_form(
            csrf, ("on_time_rate", "按期", "1", "1", "1")))
        assert resp.status == 403, role


async def test_a_unit_handler_sees_only_their_unit_and_those_below(make_client, db):
    await history_with_handoffs(db)
    client, _ = await signed_in(make_client, db, "cgj", "unit_handler", unit_id="JH-CGJ")
    page = await (await client.get("/admin/reports", params={**WINDOW, "by": "unit"})).text()
    assert 'id="report-scope"' in page
    headers, rows = table_cells(page, "report-table")
    assert [row[0] for row in rows] == ["城管局", "合计"]          # not 住建局, not the parent 市政府
    async with db.session() as session:
        own = (await all_cuts(session, date(2026, 10, 1), date(2026, 11, 30), ["unit"], now=utcnow(),
                              units={"JH-CGJ"}))["unit"]
        everyone = (await expected(db, "unit"))["unit"]
    assert rows[0][2:] == rows[1][2:]          # the total is their unit's row (after its parent)
    cgj = next(r for r in everyone.rows if r.key == "JH-CGJ")
    assert own.rows[0].values["replies"] == cgj.values["replies"] < everyone.total.values["replies"]
    csv = await (await client.get("/admin/reports/export", params={**WINDOW, "by": "unit",
                                                                    "format": "csv"})).text()
    assert "住建局" not in csv and "城管局" in csv
