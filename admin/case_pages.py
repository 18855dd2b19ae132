"""The case desks: 本单位办件 (a unit's cases, each case's page and its actions) and 分派中心.

Every case route loads the case, then `require_unit(request, case.unit_id)` before anything is
shown or done: a unit handler reaches only their unit's cases, also by URL. Actions call
casework.lifecycle with the signed-in user as actor; a refusal shows the page again with the
reason and nothing changed, a success redirects (POST-redirect-GET) with a flash. Each change and
each view of a full phone number writes an audit row (admin.api.audit, art. 27).
"""
from __future__ import annotations

from datetime import date

from aiohttp import web

from admin import api, live
from admin.auth import flash, render
from admin.permissions import allow, require_unit
from casework import api as casework
from casework import lifecycle
from casework.api import CASE_TYPE_NAMES, OPEN, STATUS_NAMES, CaseNotFound, attachments, find_case
from casework.calendar import WorkCalendar, china_date, load_calendar
from casework.events import EVENT_NAMES
from casework.models import DISPATCHED, IN_PROGRESS, RATED, REPLIED, RETURNED, SUBMITTED, Case, Event
from casework.privacy import mask_phone, mask_text
from casework.route_model import load_settings
from server.appkeys import CONFIG, DB, ROUTER
from server.db import utcnow

PAGE_SIZE = 50
SHORT = 60                                   # characters of a description in a list
CASE_ROLES = ("unit_handler", "dispatcher", "admin")
DESK_ROLES = ("dispatcher", "admin")
ATTACHMENT_KINDS = {"image": "图片", "video": "视频", "link": "链接", "location": "位置"}


class Refused(Exception):
    """A form the page cannot act on, in Chinese for the staff."""


# ---------------------------------------------------------------- loading and presenting

async def _load_case(request: web.Request, session) -> Case:
    """The case of the URL, 404 when unknown, 403 when it is another unit's — before anything."""
    try:
        case = await find_case(session, request.match_info["number"])
    except CaseNotFound:
        raise web.HTTPNotFound(text="没有这个办件") from None
    require_unit(request, case.unit_id)
    return case


def urgency(case: Case, today: date, calendar: WorkCalendar) -> str:
    """"overdue" (red), "due-soon" (amber: due within 1 working day) or "" for a case."""
    if case.status not in OPEN or case.deadline is None:
        return ""
    if today > case.deadline:
        return "overdue"
    return "due-soon" if calendar.workdays_between(today, case.deadline) <= 1 else ""


def shorten(text: str, limit: int = SHORT) -> str:
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "…"


def _row(case: Case, category: str | None, unit: str | None, today, calendar) -> dict:
    return {"number": case.number, "type": CASE_TYPE_NAMES.get(case.case_type, case.case_type),
            "category": category or "—", "unit": unit or case.unit_id or "—",
            "created_at": case.created_at, "deadline": case.deadline,
            "status": STATUS_NAMES.get(case.status, case.status), "status_code": case.status,
            "urgency": urgency(case, today, calendar), "summary": shorten(case.description),
            "confidence": case.route_confidence}


async def _rows(session, listed: list[casework.Listed]) -> list[dict]:
    calendar, today = await load_calendar(session), china_date(utcnow())
    return [_row(case, category, unit, today, calendar) for case, category, unit in listed]


# ---------------------------------------------------------------- 本单位办件

async def unit_cases(request: web.Request) -> web.Response:
    user, q = request["user"], request.query
    status = q.get("status", "") if q.get("status", "") in STATUS_NAMES else ""
    overdue = q.get("overdue") == "1"
    unit_id = user.unit_id if user.role == "unit_handler" else q.get("unit", "").strip() or None
    page = max(1, int(q["page"])) if q.get("page", "").isdigit() else 1
    scope = (user.unit_id or "") if user.role == "unit_handler" else unit_id
    async with request.app[DB].session() as session:
        total, listed = await casework.unit_desk_cases(
            session, scope, status=status, overdue_on=china_date(utcnow()) if overdue else None,
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        rows = await _rows(session, listed)
        units = [] if user.role == "unit_handler" else await casework.units(session)
        own_unit = await casework.unit_name(session, user.unit_id)
    pages = max(1, -(-total // PAGE_SIZE))
    base = request.app.router["unit-cases"].url_for()
    kept = {k: v for k, v in {"status": status, "overdue": "1" if overdue else "",
                              "unit": "" if user.role == "unit_handler" else unit_id or ""}.items() if v}
    return await render(request, "cases_list.html", {
        "rows": rows, "total": total, "page": page, "pages": pages, "units": units,
        "prev_url": str(base.with_query({**kept, "page": page - 1})) if page > 1 else None,
        "next_url": str(base.with_query({**kept, "page": page + 1})) if page < pages else None,
        "statuses": STATUS_NAMES, "filters": {"status": status, "overdue": overdue,
                                              "unit": unit_id or ""},
        "own_unit": own_unit, "live": "unit-cases-live"})


# ---------------------------------------------------------------- one case

def _actions(user, case: Case, pending) -> set[str]:
    """Which forms this role sees on this case now (the lifecycle still has the last word)."""
    own, desk = user.role == "unit_handler" and user.unit_id == case.unit_id, user.role in DESK_ROLES
    shown = {"accept": own and case.status == DISPATCHED,
             "return": own and case.status in (DISPATCHED, IN_PROGRESS),
             "reply": own and case.status in lifecycle.WORKING,
             "extend": own and case.status in lifecycle.WORKING and pending is None,
             "close": (own or user.role == "dispatcher") and case.status in (REPLIED, RATED),
             "reassign": desk and case.status in (SUBMITTED, RETURNED),
             "decide": desk and pending is not None,
             "unmask": (user.role in ("dispatcher", "unit_handler") and bool(case.phone)
                        and not case.anonymous)}
    return {name for name, ok in shown.items() if ok}


def _what(event: Event) -> str:
    """"派单，至 JH-ZJJ，期限 2026-12-17": the event's name and the details staff ask about."""
    detail = event.detail or {}
    shown = [f.format(detail[key]) for key, f in (("unit_id", "至 {}"), ("days", "{}个工作日"),
                                                  ("deadline", "期限 {}"), ("score", "评分 {}"))
             if detail.get(key) and (key != "unit_id" or event.name == "case_dispatched")]
    return "，".join([EVENT_NAMES.get(event.name, event.name), *shown])


async def _detail(request: web.Request, *, status: int = 200, error: str | None = None,
                  form: dict | None = None, full_phone: str | None = None) -> web.Response:
    user = request["user"]
    async with request.app[DB].session() as session:
        case = await _load_case(request, session)
        category, unit = await casework.case_names(session, case)
        files = await attachments(session, case.id)
        trail = await lifecycle.trail(session, case.id)
        pending = await casework.pending_extension(session, case.id)
        calendar = await load_calendar(session)
        units = await casework.units(session, handling=True) if user.role in DESK_ROLES else []
    events = [{"at": e.at, "actor": e.actor or "系统", "what": _what(e),
               "reason": mask_text(str((e.detail or {}).get("reason") or ""))} for e in trail]
    return await render(request, "cases_detail.html", {
        "case": case, "type": CASE_TYPE_NAMES.get(case.case_type, case.case_type),
        "status_name": STATUS_NAMES.get(case.status, case.status),
        "urgency": urgency(case, china_date(utcnow()), calendar),
        "category": category or "—", "unit": unit or "—",
        "description": mask_text(case.description),
        "reply_text": mask_text(case.reply_text) if case.reply_text else None,
        "phone": None if case.anonymous else (full_phone or mask_phone(case.phone)),
        "unmasked": full_phone is not None, "evidence": files, "kinds": ATTACHMENT_KINDS,
        "events": events, "pending": pending, "actions": _actions(user, case, pending),
        "units": units, "error": error, "form": form or {}}, status=status)


async def case_detail(request: web.Request) -> web.Response:
    return await _detail(request)


async def evidence(request: web.Request) -> web.StreamResponse:
    """A kept evidence file, after the case's unit is checked; never a path outside var/media.
    Each view is audited (`case.evidence_view`: who, which case, which attachment)."""
    async with request.app[DB].session() as session:
        case = await _load_case(request, session)
        try:
            wanted = int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        found = [a for a in await attachments(session, case.id) if a.id == wanted]
    if not found or not found[0].stored_path:
        raise web.HTTPNotFound(text="文件未保存")
    # channels/wechat/media.py keeps files under <var_dir>/media.
    root = (request.app[CONFIG].var_dir / "media").resolve()
    path = (root / found[0].stored_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound(text="文件已丢失")
    async with request.app[DB].session() as session, session.begin():
        api.audit(session, request["user"].username, "case.evidence_view", case.number,
                  attachment_id=wanted, kind=found[0].kind, unit_id=case.unit_id)
    kind = found[0].content_type or ""
    response = web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff"})
    if kind.startswith(("image/", "video/")):
        response.content_type = kind
    else:
        response.content_type = "application/octet-stream"
        response.headers["Content-Disposition"] = "attachment"
    return response


async def unmask(request: web.Request) -> web.Response:
    """显示完整号码: the contact number in full, once, for this response; audited (art. 27)."""
    user = request["user"]
    async with request.app[DB].session() as session, session.begin():
        case = await _load_case(request, session)
        if case.anonymous or not case.phone:
            raise web.HTTPForbidden(reason="anonymous")
        api.audit(session, user.username, "case.unmask", case.number, field="phone",
                  unit_id=case.unit_id)
        phone = case.phone
    return await _detail(request, full_phone=phone)


# ---------------------------------------------------------------- actions

# Each action: its audit row's action and the flash after success.
ACTIONS = {
    "accept": ("case.accept", "已签收"),
    "return": ("case.return", "已退回分派中心"),
    "extend": ("case.extension_request", "延期申请已提交，等待分派中心审批"),
    "reply": ("case.reply", "答复已发送给群众"),
    "close": ("case.close", "已办结"),
    "reassign": ("case.dispatch", "已派单"),
    "approve": ("case.extension_approve", "已批准延期"),
    "refuse": ("case.extension_refuse", "已不予延期"),
}


def _text(form, name: str, missing: str | None = None, limit: int = 4000) -> str:
    value = str(form.get(name, "")).strip()
    if missing and not value:
        raise Refused(missing)
    if len(value) > limit:          # refused, never cut: staff must know what the citizen gets
        raise Refused(f"内容过长：最多 {limit} 个字，现有 {len(value)} 个字")
    return value


async def _do(name: str, request: web.Request, number: str, form) -> dict:
    """Run one lifecycle step; returns what the audit row should add."""
    db, user, now = request.app[DB], request["user"], utcnow()
    mine = {"unit_id": user.unit_id, "actor": user.username, "now": now}
    if name == "accept":
        await lifecycle.accept(db, number, **mine)
    elif name == "return":
        reason = _text(form, "reason", "请填写退回理由")
        await lifecycle.return_misrouted(db, number, reason=reason, **mine)
        return {"reason": reason}
    elif name == "extend":
        try:
            days = int(str(form.get("days", "")))
        except ValueError:
            raise Refused("请填写延期天数（工作日）") from None
        reason = _text(form, "reason", "请填写延期理由")
        await lifecycle.request_extension(db, number, days=days, reason=reason, **mine)
        return {"days": days, "reason": reason}
    elif name == "reply":
        await lifecycle.reply(db, number, text=_text(form, "text", "请填写答复内容"), **mine)
    elif name == "close":
        await lifecycle.close(db, number, actor=user.username, now=now)
    elif name == "reassign":
        unit_id, reason = _text(form, "unit_id", "请选择承办单位"), _text(form, "reason") or None
        await lifecycle.dispatch(db, number, unit_id, actor=user.username, now=now, reason=reason)
        return {"unit_id": unit_id, "reason": reason}
    elif name == "approve":
        reason = _text(form, "reason") or None
        await lifecycle.approve_extension(db, number, actor=user.username, now=now, reason=reason)
        return {"reason": reason}
    elif name == "refuse":
        reason = _text(form, "reason", "请填写不予延期的理由")
        await lifecycle.refuse_extension(db, number, actor=user.username, now=now, reason=reason)
        return {"reason": reason}
    return {}


def _action_handler(name: str):
    async def handler(request: web.Request) -> web.Response:
        form = await request.post()
        async with request.app[DB].session() as session:
            case = await _load_case(request, session)          # 403 before anything is done
            number, before = case.number, case.status
        back = str(form.get("back", ""))
        try:
            detail = await _do(name, request, number, form)
        except (Refused, lifecycle.TransitionRefused) as exc:
            message = str(exc) if isinstance(exc, Refused) else f"操作未完成：{exc.reason}"
            if back == "dispatch":
                await flash(request, f"{number} {message}")
                raise web.HTTPSeeOther(str(request.app.router["dispatch-desk"].url_for()))
            return await _detail(request, status=400 if isinstance(exc, Refused) else 409,
                                 error=message,
                                 form={k: str(v) for k, v in form.items() if k != "_csrf"})
        user = request["user"]
        async with request.app[DB].session() as session, session.begin():
            after = await find_case(session, number)
            api.audit(session, user.username, ACTIONS[name][0], number,
                      before={"status": before}, after={"status": after.status}, **detail)
        await flash(request, f"{number} {ACTIONS[name][1]}")
        router = request.app.router
        if back == "dispatch":
            raise web.HTTPSeeOther(str(router["dispatch-desk"].url_for()))
        if user.role == "unit_handler" and after.unit_id != user.unit_id:      # returned: not ours now
            raise web.HTTPSeeOther(str(router["unit-cases"].url_for()))
        raise web.HTTPSeeOther(str(router["case-detail"].url_for(number=number)))
    handler.__name__ = f"case_{name}"
    return handler


# ---------------------------------------------------------------- 分派中心

async def dispatch_desk(request: web.Request) -> web.Response:
    router = request.app.get(ROUTER)
    threshold = (router.settings if router is not None else load_settings()).threshold
    async with request.app[DB].session() as session:
        queue = await casework.dispatch_queue(session, threshold)
        queues = {"submitted": await _rows(session, queue.submitted),
                  "low": await _rows(session, queue.low),
                  "escalated": await _rows(session, queue.escalated),
                  "returned": await _rows(session, [r.listed for r in queue.returned])}
        for row, returned in zip(queues["returned"], queue.returned):
            row["returned_by"] = returned.by
            row["return_reason"] = mask_text(returned.reason)
        units = await casework.units(session, handling=True)
    pending = [{"number": case.number, "unit": case.unit_id, "days": asked.days,
                "reason": mask_text(asked.reason), "by": asked.requested_by,
                "at": asked.requested_at, "deadline": case.deadline}
               for asked, case in queue.extensions]
    return await render(request, "cases_dispatch.html", {
        "queues": queues, "pending": pending, "units": units, "threshold": threshold,
        "live": "dispatch-live"})


# ---------------------------------------------------------------- live queues (admin/live.py)

async def unit_cases_live(request: web.Request) -> web.StreamResponse:
    """`changed` when the viewer's desk changes: a unit handler's own unit only; dispatchers and
    admins every unit's (the list's unit filter is applied when the page fetches again)."""
    user = request["user"]
    unit_id = (user.unit_id or "") if user.role == "unit_handler" else None
    return await live.stream(request, lambda: _desk_state(request, unit_id))


async def dispatch_live(request: web.Request) -> web.StreamResponse:
    return await live.stream(request, lambda: _desk_state(request, None))


async def _desk_state(request: web.Request, unit_id: str | None):
    async with request.app[DB].session() as session:
        return await casework.desk_state(session, unit_id)


# ---------------------------------------------------------------- routes and their rules

def _route(action: str) -> str:
    """The route name of an action ("case-send-back" for return: aiohttp refuses Python keywords)."""
    return "case-send-back" if action == "return" else f"case-{action}"


def setup_case_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/cases", unit_cases, name="unit-cases")
    r.add_get("/admin/cases/live", unit_cases_live, name="unit-cases-live")   # before {number}
    r.add_get("/admin/cases/{number}", case_detail, name="case-detail")
    r.add_get("/admin/cases/{number}/evidence/{id}", evidence, name="case-evidence")
    r.add_post("/admin/cases/{number}/unmask", unmask, name="case-unmask")
    for name in ACTIONS:
        r.add_post(f"/admin/cases/{{number}}/{name}", _action_handler(name), name=_route(name))
    r.add_get("/admin/dispatch", dispatch_desk, name="dispatch-desk")
    r.add_get("/admin/dispatch/live", dispatch_live, name="dispatch-live")
    allow("unit-cases", *CASE_ROLES)
    allow("unit-cases-live", *CASE_ROLES)
    allow("case-detail", *CASE_ROLES)
    allow("case-evidence", *CASE_ROLES)
    allow("case-unmask", "dispatcher", "unit_handler")
    for name in ("accept", "return", "extend", "reply"):      # the unit's own steps
        allow(_route(name), "unit_handler")
    allow(_route("close"), "unit_handler", "dispatcher")
    for name in ("reassign", "approve", "refuse"):           # the dispatcher's decisions
        allow(_route(name), *DESK_ROLES)
    allow("dispatch-desk", *DESK_ROLES)
    allow("dispatch-live", *DESK_ROLES)

