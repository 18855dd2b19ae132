"""系统设置: the settings index, working-day overrides, case-type deadlines and WeChat accounts;
mounts the directory (admin/directory_pages.py) and routing (admin/routing_pages.py) pages.

Admins only, except the routing rules and examples, which dispatchers keep too. Every change is
one transaction with an audit row (before/after). WeChat secrets are write-only: a page shows at
most their last 4 characters, an empty field keeps the stored value, and the audit log records
only that a secret changed.
"""
from __future__ import annotations

from datetime import date

from aiohttp import web

from admin.api import audit
from admin.auth import flash, render
from admin.directory_pages import setup_directory_pages
from admin.permissions import NAV, NavItem, allow
from admin.routing_pages import setup_routing_pages
from casework import calendar as cal
from casework.api import CASE_TYPE_NAMES as _TYPES
from channels.wechat import accounts
from channels.wechat.models import MODES
from server.appkeys import CONFIG, DB
from server.db import utcnow

CASE_TYPE_NAMES = {**_TYPES, "consultation": "咨询"}
SECTIONS = [
    ("settings-units", "单位管理", "单位的上下级、承办分类、辖区、值班时间和分派单位"),
    ("settings-categories", "分类管理", "投诉举报的一级、二级、三级分类"),
    ("settings-routing", "路由规则与示例", "关键词规则、分类示例、重新训练分类模型"),
    ("settings-calendar", "工作日调整", "法定节假日、调休和本地调整"),
    ("settings-deadlines", "办理时限", "各类办件的答复时限（工作日）"),
    ("settings-wechat", "微信公众号", "公众号接入参数（密钥只写不显示）"),
    ("word-lists", "词表管理", "客服回复提示词和有害信息词"),
]


async def index(request: web.Request) -> web.Response:
    names = {r.name for r in request.app.router.resources() if r.name}
    sections = [{"url": str(request.app.router[name].url_for()), "label": label, "hint": hint}
                for name, label, hint in SECTIONS if name in names]
    return await render(request, "settings_index.html", {"sections": sections})


# ---------------------------------------------------------------- working-day overrides

KIND_NAMES = {True: "上班", False: "休息"}
# chinesecalendar names holidays in English.
HOLIDAY_NAMES = {"New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
                 "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "National Day": "国庆节",
                 "Mid-autumn Festival": "中秋节", "Anti-Fascist 70th Day": "抗战胜利纪念日"}


def _year(value, default: int) -> int:
    value = str(value or "")
    return int(value) if value.isdigit() and 2000 <= int(value) <= 2100 else default


async def _calendar_page(request: web.Request, year: int, *, status: int = 200,
                         error: str | None = None, form: dict | None = None) -> web.Response:
    async with request.app[DB].session() as session:
        calendar = await cal.load_calendar(session)
        notes = {row.day: row.note for row in await cal.overrides(session, year)}
    this_year = cal.china_date(utcnow()).year
    uncovered = [y for y in (year, this_year + 1) if not calendar.covers(y)]
    rows = [{"day": day, "workday": workday, "name": HOLIDAY_NAMES.get(name, name), "weekday": "一二三四五六日"[day.weekday()],
             "overridden": day in notes, "note": notes.get(day, "")}
            for day, workday, name in calendar.special_days(year)]
    return await render(request, "settings_calendar.html", {
        "year": year, "years": range(this_year - 1, this_year + 3), "rows": rows,
        "uncovered": sorted(set(uncovered)), "error": error, "kind_names": KIND_NAMES,
        "form": form or {"day": "", "kind": "0", "note": ""}}, status=status)


async def calendar_page(request: web.Request) -> web.Response:
    return await _calendar_page(request, _year(request.query.get("year"), cal.china_date(utcnow()).year))


async def set_override(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form.get(k, "")).strip() for k in ("day", "kind", "note")}
    try:
        day = date.fromisoformat(fields["day"])
    except ValueError:
        year = _year(form.get("year"), cal.china_date(utcnow()).year)
        return await _calendar_page(request, year, status=400, error="请选择日期", form=fields)
    if len(fields["note"]) > 100:
        return await _calendar_page(request, day.year, status=400, error="说明不能超过100个字", form=fields)
    workday = fields["kind"] == "1"
    async with request.app[DB].session() as session, session.begin():
        before = {o.day: o for o in await cal.overrides(session, day.year)}.get(day)
        was = {"is_workday": before.is_workday, "note": before.note} if before else {}
        await cal.set_override(session, day, workday, fields["note"])
        audit(session, request["user"].username, "settings.calendar.set", day.isoformat(),
              before=was, after={"is_workday": workday, "note": fields["note"]})
    await flash(request, f"已将 {day.isoformat()} 设为{KIND_NAMES[workday]}")
    raise web.HTTPSeeOther(f"/admin/settings/calendar?year={day.year}")


async def remove_override(request: web.Request) -> web.Response:
    try:
        day = date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with request.app[DB].session() as session, session.begin():
        before = {o.day: o for o in await cal.overrides(session, day.year)}.get(day)
        if before is None:
            raise web.HTTPNotFound()
        was = {"is_workday": before.is_workday, "note": before.note}
        await cal.remove_override(session, day)
        audit(session, request["user"].username, "settings.calendar.remove", day.isoformat(),
              before=was, after={})
    await flash(request, f"已取消 {day.isoformat()} 的调整，恢复法定安排")
    raise web.HTTPSeeOther(f"/admin/settings/calendar?year={day.year}")


# ---------------------------------------------------------------- case-type deadlines

async def _deadlines_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    env = request.app[CONFIG].case_deadline_days
    async with request.app[DB].session() as session:
        calendar = await cal.load_calendar(session)
        stored = await cal.case_deadlines(session)
    rows = []
    for case_type in cal.DEFAULT_DEADLINE_DAYS:
        days, source = cal.deadline_days(case_type, calendar, env)
        row = stored.get(case_type)
        rows.append({"type": case_type, "name": CASE_TYPE_NAMES.get(case_type, case_type),
                     "days": days, "source": cal.SOURCE_NAMES[source], "set": row is not None,
                     "updated_by": row.updated_by if row else "", "updated_at": row.updated_at if row else None,
                     "fallback": env.get(case_type, cal.DEFAULT_DEADLINE_DAYS[case_type])})
    return await render(request, "settings_deadlines.html", {
        "rows": rows, "error": error, "max_days": cal.MAX_DEADLINE_DAYS}, status=status)


async def deadlines_page(request: web.Request) -> web.Response:
    return await _deadlines_page(request)


async def set_deadline(request: web.Request) -> web.Response:
    form = await request.post()
    case_type, raw = str(form.get("case_type", "")), str(form.get("days", "")).strip()
    if case_type not in cal.DEFAULT_DEADLINE_DAYS:
        return await _deadlines_page(request, status=400, error="未知的办件类型")
    clear = form.get("clear") == "1"
    if not clear and not (raw.isdigit() and 1 <= int(raw) <= cal.MAX_DEADLINE_DAYS):
        return await _deadlines_page(request, status=400,
                                     error=f"时限须为1至{cal.MAX_DEADLINE_DAYS}之间的整数（工作日）")
    actor = request["user"].username
    async with request.app[DB].session() as session, session.begin():
        row = (await cal.case_deadlines(session)).get(case_type)
        before = {"working_days": row.working_days} if row else {}
        if clear:
            await cal.remove_case_deadline(session, case_type)
            after = {}
        else:
            await cal.set_case_deadline(session, case_type, int(raw), actor)
            after = {"working_days": int(raw)}
        audit(session, actor, "settings.deadline", case_type, before=before, after=after)
    name = CASE_TYPE_NAMES.get(case_type, case_type)
    await flash(request, f"已恢复{name}的默认时限" if clear else f"{name}的答复时限已设为 {raw} 个工作日，新办件起生效")
    raise web.HTTPSeeOther("/admin/settings/deadlines")


# ---------------------------------------------------------------- WeChat accounts

def _callback(request: web.Request, name: str) -> str:
    return f"{request.scheme}://{request.host}{'/wechat' if name == accounts.DEFAULT else '/wechat/' + name}"


async def _wechat_page(request: web.Request, *, status: int = 200, error: str | None = None,
                       form: dict | None = None, editing=None) -> web.Response:
    async with request.app[DB].session() as session:
        rows = await accounts.all_rows(session)
    shown = [{"id": r.id, "name": r.name, "app_id": r.app_id, "mode": r.mode,
              "mode_name": accounts.MODE_NAMES.get(r.mode, r.mode), "callback": _callback(request, r.name),
              **{key: accounts.secret_hint(getattr(r, key)) for key in accounts.SECRETS}} for r in rows]
    context = {"rows": shown, "error": error, "modes": MODES, "mode_names": accounts.MODE_NAMES,
               "form": form or {"name": "", "app_id": "", "mode": "safe"},
               "env_default": accounts.from_config(request.app[CONFIG]) is not None, "account": None}
    if editing is not None:
        context["account"] = next(row for row in shown if row["id"] == editing)
        return await render(request, "settings_wechat_edit.html", context, status=status)
    return await render(request, "settings_wechat.html", context, status=status)


def _wechat_fields(form) -> tuple[dict, dict]:
    """(the fields a page may show again, the secrets — never put back into a page)."""
    shown = {k: str(form.get(k, "")).strip() for k in ("name", "app_id", "mode")}
    secrets = {k: str(form.get(k, "")).strip() for k in accounts.SECRETS}
    return shown, secrets


async def wechat_page(request: web.Request) -> web.Response:
    return await _wechat_page(request)


async def add_wechat(request: web.Request) -> web.Response:
    shown, secrets = _wechat_fields(await request.post())
    try:
        async with request.app[DB].session() as session, session.begin():
            await accounts.add(session, shown["name"], app_id=shown["app_id"], mode=shown["mode"],
                               app_secret=secrets["app_secret"], token=secrets["token"],
                               encoding_aes_key=secrets["encoding_aes_key"] or None)
            row = next(r for r in await accounts.all_rows(session) if r.name == shown["name"])
            audit(session, request["user"].username, "settings.wechat.create", row.name,
                  before={}, after=accounts.describe(row))
    except accounts.AccountError as exc:
        return await _wechat_page(request, status=400, error=exc.zh, form=shown)
    await flash(request, f"已添加公众号 {shown['name']}，请在微信公众平台填写服务器地址 {_callback(request, shown['name'])}")
    raise web.HTTPSeeOther("/admin/settings/wechat")


def _account_id(request: web.Request) -> int:
    return int(request.match_info["account_id"])


async def wechat_edit_page(request: web.Request) -> web.Response:
    account_id = _account_id(request)
    async with request.app[DB].session() as session:
        if account_id not in {r.id for r in await accounts.all_rows(session)}:
            raise web.HTTPNotFound()
    return await _wechat_page(request, editing=account_id)


async def edit_wechat(request: web.Request) -> web.Response:
    account_id = _account_id(request)
    shown, secrets = _wechat_fields(await request.post())
    try:
        async with request.app[DB].session() as session, session.begin():
            current = next((r for r in await accounts.all_rows(session) if r.id == account_id), None)
            if current is None:
                raise web.HTTPNotFound()
            before = accounts.describe(current)
            row, changed = await accounts.update(session, account_id, app_id=shown["app_id"],
                                                 mode=shown["mode"], **secrets)
            audit(session, request["user"].username, "settings.wechat.update", row.name,
                  before=before, after=accounts.describe(row), secrets_changed=changed)
    except accounts.AccountError as exc:
        return await _wechat_page(request, status=400, error=exc.zh, editing=account_id)
    await flash(request, f"已保存公众号 {row.name}" + ("（已更新密钥）" if changed else ""))
    raise web.HTTPSeeOther("/admin/settings/wechat")


def setup_settings_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/settings", index, name="settings-index")
    r.add_get("/admin/settings/calendar", calendar_page, name="settings-calendar")
    r.add_post("/admin/settings/calendar", set_override, name="settings-calendar")
    r.add_post("/admin/settings/calendar/{day}/remove", remove_override, name="settings-calendar-remove")
    r.add_get("/admin/settings/deadlines", deadlines_page, name="settings-deadlines")
    r.add_post("/admin/settings/deadlines", set_deadline, name="settings-deadlines")
    r.add_get("/admin/settings/wechat", wechat_page, name="settings-wechat")
    r.add_post("/admin/settings/wechat", add_wechat, name="settings-wechat")
    r.add_get("/admin/settings/wechat/{account_id:\\d+}", wechat_edit_page, name="settings-wechat-edit")
    r.add_post("/admin/settings/wechat/{account_id:\\d+}", edit_wechat, name="settings-wechat-edit")
    for name in ("settings-index", "settings-calendar", "settings-calendar-remove",
                 "settings-deadlines", "settings-wechat", "settings-wechat-edit"):
        allow(name, "admin")
    setup_directory_pages(app)
    setup_routing_pages(app)
    # Nav entries, once however many apps are built: 系统设置 (admins) before the audit log, and
    # the routing page for dispatchers, who may not open the index.
    for item in (NavItem("settings-index", "系统设置", "单位、分类、路由规则、工作日、办理时限、公众号、词表"),
                 NavItem("settings-routing", "路由规则", "维护关键词规则和分类示例，重新训练分类模型")):
        if not any(existing.name == item.name for existing in NAV):
            at = next((i for i, existing in enumerate(NAV) if existing.name == "audit-log"), len(NAV))
            NAV.insert(at, item)
