"""年度考核 (issue 7, art. 31): the ranked units of a year with their breakdown, its files, and the
indicator table admins edit (casework/assessment.py scores; the table is checked there whole).

Admins, dispatchers and reviewers read the assessment and download it; only admins change the
indicators, each change audited with the table before and after.
"""
from __future__ import annotations

import io
from dataclasses import asdict

from aiohttp import web

from admin.api import audit
from admin.auth import flash, render
from admin.permissions import allow
from admin.report_pages import READERS, download, export_format
from casework import report_files
from casework.assessment import (MEASURE_HEADERS, Indicator, IndicatorRejected, assess,
                                 assessment_table, indicators, save_indicators)
from casework.report import MEASURES
from server.appkeys import DB
from server.db import CHINA, utcnow

DIRECTIONS = {True: "越高越好", False: "越低越好"}
BLANK_ROWS = 1                      # empty rows under the table, to add an indicator without script


def indicator_table(table: tuple[Indicator, ...]) -> tuple[list[str], list[list]]:
    """The indicators in use, for the page, the workbook's second sheet and the CLI."""
    header = ["指标", "度量", "权重", "目标值", "方向"]
    return header, [[i.label, MEASURE_HEADERS.get(i.measure, i.measure), i.weight, i.target,
                     DIRECTIONS[i.higher_is_better]] for i in table]


def parse_year(request: web.Request) -> int:
    this_year = utcnow().astimezone(CHINA).year
    raw = request.query.get("year") or str(this_year)
    if not raw.isdigit() or not 2000 <= int(raw) <= this_year:
        raise ValueError(f"年份应为 2000 至 {this_year} 之间的四位数字")
    return int(raw)


async def assessment_page(request: web.Request) -> web.Response:
    try:
        year = parse_year(request)
    except ValueError as exc:
        return await render(request, "report_assessment.html", {
            "error": str(exc), "year": request.query.get("year", ""), "result": None}, status=400)
    async with request.app[DB].session() as session:
        result = await assess(session, year, now=utcnow())
    header, rows = assessment_table(result)
    export = request.app.router["assessment-export"].url_for()
    return await render(request, "report_assessment.html", {
        "error": None, "year": year, "result": result, "header": header,
        "rows": rows,
        "indicators": indicator_table(result.indicators),
        "may_edit": request["user"].role == "admin",
        "csv_url": export.with_query(year=year, format="csv"),
        "xlsx_url": export.with_query(year=year, format="xlsx"),
    })


async def assessment_export(request: web.Request) -> web.Response:
    fmt = export_format(request)
    try:
        year = parse_year(request)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    async with request.app[DB].session() as session:
        result = await assess(session, year, now=utcnow())
    names = (f"assessment-{year}", f"{year}年度考核")
    if fmt == "csv":
        return download(fmt, report_files.csv_text(*assessment_table(result)), *names)
    out = io.BytesIO()
    report_files.write_tables(out, {"年度考核": assessment_table(result),
                                    "考核指标": indicator_table(result.indicators)})
    return download(fmt, out.getvalue(), *names)


# ---------------------------------------------------------------- the indicator table (admins)

def _rows(table) -> list[dict]:
    rows = [{"measure": i.measure, "label": i.label, "weight": f"{i.weight:g}",
             "target": f"{i.target:g}", "higher": "1" if i.higher_is_better else "0"} for i in table]
    return rows + [{"measure": "", "label": "", "weight": "", "target": "", "higher": "1"}] * BLANK_ROWS


async def _indicators_page(request: web.Request, rows: list[dict], *, problems=(),
                           status: int = 200) -> web.Response:
    return await render(request, "report_indicators.html", {
        "rows": rows, "problems": list(problems), "measures": MEASURES, "directions": DIRECTIONS},
        status=status)


async def indicators_form(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        table = await indicators(session)
    return await _indicators_page(request, _rows(table))


def read_form(form) -> tuple[list[dict], list[Indicator], list[str]]:
    """The rows as typed (to show again), the indicators they make, and the numbers that are not.
    A row with neither measure nor name is an unused blank; a ticked 删除 drops its row."""
    typed, table, problems = [], [], []
    n = 0
    while f"measure_{n}" in form:
        row = {k: str(form.get(f"{k}_{n}", "")).strip() for k in ("measure", "label", "weight", "target", "higher")}
        n += 1
        if form.get(f"remove_{n - 1}") or not (row["measure"] or row["label"]):
            continue
        typed.append(row)
        name = row["label"] or row["measure"]
        try:
            weight, target = float(row["weight"]), float(row["target"])
        except ValueError:
            problems.append(f"{name}：权重和目标值须为数字")
            continue
        table.append(Indicator(row["measure"], row["label"], weight, target, row["higher"] != "0"))
    return typed, table, problems


async def indicators_save(request: web.Request) -> web.Response:
    typed, table, problems = read_form(await request.post())
    blank = [{"measure": "", "label": "", "weight": "", "target": "", "higher": "1"}] * BLANK_ROWS
    if problems:
        return await _indicators_page(request, typed + blank, problems=problems, status=400)
    try:
        async with request.app[DB].session() as session, session.begin():
            before = await indicators(session)
            await save_indicators(session, table)
            audit(session, request["user"].username, "assessment.indicators", "assessment_indicators",
                  before=[asdict(i) for i in before], after=[asdict(i) for i in table])
    except IndicatorRejected as exc:
        return await _indicators_page(request, typed + blank, problems=exc.problems, status=400)
    await flash(request, f"考核指标已保存（{len(table)} 项）")
    raise web.HTTPSeeOther(str(request.app.router["assessment-indicators"].url_for()))


def setup_assessment_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/reports/assessment", assessment_page, name="report-assessment")
    r.add_get("/admin/reports/assessment/export", assessment_export, name="assessment-export")
    r.add_get("/admin/reports/indicators", indicators_form, name="assessment-indicators")
    r.add_post("/admin/reports/indicators", indicators_save, name="assessment-indicators")
    for name in ("report-assessment", "assessment-export"):
        allow(name, *READERS)
    allow("assessment-indicators", "admin")
