"""季度抽查 (art. 32): draw a quarter's sample, read each item's trail, record findings, export.

Admins draw, record findings and export; reviewers may read the spot checks and the trails
(personal numbers masked) but change nothing. The work is in casework/spotcheck.py (draw,
trail, findings, each audited there) and casework/spotcheck_export.py (the files).
"""
from __future__ import annotations

from datetime import date

from aiohttp import web

from admin.auth import flash, render
from admin.permissions import allow
from casework import spotcheck
from casework.spotcheck import FINDING_NAMES, KIND_NAMES, SpotCheckError
from casework.spotcheck_export import FORMATS, export
from server.appkeys import DB
from server.db import CHINA, utcnow

READERS = ("admin", "reviewer")
DEFAULT_PER_UNIT = 5
CONTENT_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "csv": "text/csv"}


def last_quarter(today: date) -> str:
    """The quarter a spot check is usually drawn for: the one before today's."""
    q = (today.month - 1) // 3
    return f"{today.year - 1}Q4" if q == 0 else f"{today.year}Q{q}"


def _id(request: web.Request, key: str) -> int:
    try:
        return int(request.match_info[key])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _check(session, request: web.Request):
    try:
        return await spotcheck.get_check(session, _id(request, "check_id"))
    except SpotCheckError:
        raise web.HTTPNotFound(text="没有这次抽查") from None


async def _list_page(request: web.Request, *, status: int = 200, error: str | None = None,
                     form: dict | None = None) -> web.Response:
    async with request.app[DB].session() as session:
        checks = await spotcheck.list_checks(session)
    today = utcnow().astimezone(CHINA).date()
    return await render(request, "spotcheck_list.html", {
        "checks": checks, "error": error, "may_draw": request["user"].role == "admin",
        "form": form or {"quarter": last_quarter(today), "per_unit": str(DEFAULT_PER_UNIT), "seed": ""},
    }, status=status)


async def spotcheck_list(request: web.Request) -> web.Response:
    return await _list_page(request)


async def draw(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form.get(k, "")).strip() for k in ("quarter", "per_unit", "seed")}
    try:
        if not fields["per_unit"].isdigit():
            raise SpotCheckError("per unit must be a number", "每单位抽取数量应为正整数")
        if fields["seed"] and not fields["seed"].isdigit():
            raise SpotCheckError("the seed must be a number", "随机种子应为0至2147483647之间的整数")
        async with request.app[DB].session() as session, session.begin():
            check = await spotcheck.draw(session, fields["quarter"], int(fields["per_unit"]),
                                         int(fields["seed"]) if fields["seed"] else None,
                                         actor=request["user"].username)
            check_id, seed, quarter = check.id, check.seed, check.quarter
    except SpotCheckError as exc:
        return await _list_page(request, status=400, error=exc.zh, form=fields)
    await flash(request, f"已抽取 {quarter} 季度样本，随机种子 {seed}（用同一种子可重现同一样本）")
    raise web.HTTPSeeOther(str(request.app.router["spotcheck-detail"].url_for(check_id=str(check_id))))


def _groups(views) -> list[dict]:
    groups: list[dict] = []
    for view in views:
        if not groups or groups[-1]["name"] != view.group:
            groups.append({"name": view.group, "kind": KIND_NAMES[view.item.kind], "items": []})
        groups[-1]["items"].append(view)
    return groups


async def detail(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        check = await _check(session, request)
        views = await spotcheck.items_of(session, check)
    checked = sum(1 for v in views if v.item.finding)
    return await render(request, "spotcheck_detail.html", {
        "check": check, "groups": _groups(views), "checked": checked, "total": len(views),
        "problems": sum(1 for v in views if v.item.finding == spotcheck.PROBLEM),
        "findings": FINDING_NAMES, "may_export": request["user"].role == "admin", "formats": FORMATS,
    })


async def _item_page(request: web.Request, *, status: int = 200, error: str | None = None,
                     form: dict | None = None) -> web.Response:
    item_id = _id(request, "item_id")
    async with request.app[DB].session() as session:
        check = await _check(session, request)
        views = await spotcheck.items_of(session, check)
        found = [i for i, v in enumerate(views) if v.item.id == item_id]
        if not found:
            raise web.HTTPNotFound(text="没有这个抽查项")
        view = views[found[0]]
        trail = await spotcheck.trail(session, view.item)
    following = views[found[0] + 1:] + views[:found[0]]
    next_open = next((v for v in following if not v.item.finding), None)
    return await render(request, "spotcheck_item.html", {
        "check": check, "view": view, "trail": trail, "kind": KIND_NAMES[view.item.kind],
        "findings": FINDING_NAMES, "error": error, "next_open": next_open,
        "position": found[0] + 1, "total": len(views),
        "may_record": request["user"].role == "admin",
        "form": form or {"finding": view.item.finding or "", "comment": view.item.comment or ""},
    }, status=status)


async def item(request: web.Request) -> web.Response:
    return await _item_page(request)


async def _item_of(session, check_id: int, item_id: int):
    try:
        return await spotcheck.get_item(session, check_id, item_id)
    except SpotCheckError:
        raise web.HTTPNotFound(text="没有这个抽查项") from None


async def finding(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {"finding": str(form.get("finding", "")), "comment": str(form.get("comment", ""))}
    check_id, item_id = _id(request, "check_id"), _id(request, "item_id")
    try:
        async with request.app[DB].session() as session, session.begin():
            await _item_of(session, check_id, item_id)
            await spotcheck.record_finding(session, item_id, fields["finding"], fields["comment"],
                                           actor=request["user"].username)
    except SpotCheckError as exc:
        return await _item_page(request, status=400, error=exc.zh, form=fields)
    await flash(request, f"已记录检查结论：{FINDING_NAMES[fields['finding']]}")
    raise web.HTTPSeeOther(str(request.app.router["spotcheck-item"].url_for(
        check_id=str(check_id), item_id=str(item_id))))


async def download(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "xlsx")
    if fmt not in FORMATS:
        raise web.HTTPBadRequest(text="格式应为 xlsx 或 csv")
    async with request.app[DB].session() as session, session.begin():
        check = await _check(session, request)
        data = await export(session, check.id, fmt, actor=request["user"].username)
        name = f"spotcheck-{check.quarter}-{check.id}.{fmt}"
    return web.Response(body=data, content_type=CONTENT_TYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def setup_spotcheck_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/spotchecks", spotcheck_list, name="spotcheck-list")
    r.add_post("/admin/spotchecks/draw", draw, name="spotcheck-draw")
    r.add_get("/admin/spotchecks/{check_id}", detail, name="spotcheck-detail")
    r.add_get("/admin/spotchecks/{check_id}/export", download, name="spotcheck-export")
    r.add_get("/admin/spotchecks/{check_id}/items/{item_id}", item, name="spotcheck-item")
    r.add_post("/admin/spotchecks/{check_id}/items/{item_id}/finding", finding,
               name="spotcheck-finding")
    for name in ("spotcheck-list", "spotcheck-detail", "spotcheck-item"):
        allow(name, *READERS)
    for name in ("spotcheck-draw", "spotcheck-finding", "spotcheck-export"):
        allow(name, "admin")
