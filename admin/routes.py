"""The console's own pages: login, logout, own password, home, and the accounts page for admins.

Every route is named, and every name has a rule in admin/permissions.py. Other packages mount
their console pages under /admin the same way (see docs/consoles.md).
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from admin import api, inbox_pages
from admin.auth import (LOGIN_NOTICES, LoginRefused, clear_session_cookie, end_other_sessions,
                        flash, log_in, log_out, render, safe_next, set_session_cookie,
                        setup_templates)
from admin.assessment_pages import setup_assessment_pages
from admin.audit_pages import setup_audit_pages
from admin.case_pages import setup_case_pages
from admin.kb_pages import setup_kb_pages
from admin.models import ROLES, User
from admin.permissions import NAV, may_open
from admin.report_pages import setup_report_pages
from admin.settings_pages import setup_settings_pages
from admin.spotcheck_pages import setup_spotcheck_pages
from admin.word_pages import setup_word_pages
from casework import alerts
from casework.api import unit_name
from server.appkeys import DB
from server.db import CHINA, utcnow

STATIC_DIR = Path(__file__).resolve().parent / "static"


# ---------------------------------------------------------------- sign-in

async def login_form(request: web.Request) -> web.Response:
    notice = LOGIN_NOTICES.get(request.query.get("m", ""))
    return await render(request, "login.html", {"notice": notice, "error": None, "username": "",
                                                "next": safe_next(request.query.get("next"))})


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "")))
    try:
        user, token = await log_in(request, username, password)
    except LoginRefused as exc:
        return await render(request, "login.html", {"notice": None, "error": exc.message,
                                                    "username": username.strip()[:64],
                                                    "next": next_url}, status=exc.status)
    response = web.HTTPSeeOther("/admin/password" if user.must_change_password else next_url)
    set_session_cookie(request, response, token)
    raise response


async def logout(request: web.Request) -> web.Response:
    await log_out(request)
    response = web.HTTPSeeOther("/admin/login?m=logout")
    clear_session_cookie(response)
    raise response


async def password_form(request: web.Request) -> web.Response:
    return await render(request, "password.html", {"error": None})


async def change_password(request: web.Request) -> web.Response:
    form = await request.post()
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    user = request["user"]
    try:
        if new != again:
            raise api.AccountError("the new passwords differ", "两次输入的新密码不一致")
        async with request.app[DB].session() as session, session.begin():
            row = await session.get(User, user.id)
            await api.change_password(session, row, current, new)
    except api.AccountError as exc:
        return await render(request, "password.html", {"error": exc.zh}, status=400)
    user.must_change_password = False
    await end_other_sessions(request)
    await flash(request, "密码已修改")
    raise web.HTTPSeeOther("/admin/")


# ---------------------------------------------------------------- home

async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/admin/")


# Who sees the alerts (casework/alerts.py) on the home page: those who can act on them.
ALERT_ROLES = ("admin", "reviewer")


async def home(request: web.Request) -> web.Response:
    role = request["user"].role
    names = {r.name for r in request.app.router.resources() if r.name}
    tasks = []
    for item in NAV[1:]:
        if item.name in names and may_open(role, item.name):
            tasks.append({"label": item.label, "hint": item.hint,
                          "url": str(request.app.router[item.name].url_for())})
        elif item.name not in names and role in item.planned:
            tasks.append({"label": item.label, "hint": item.hint, "url": None})
    shown = []
    if role in ALERT_ROLES:
        async with request.app[DB].session() as session:
            found = await alerts.alerts(session, utcnow().astimezone(CHINA).date())
        for alert in found:
            url = None
            if alert.route in names and may_open(role, alert.route):
                url = str(request.app.router[alert.route].url_for().with_query(alert.query))
            shown.append({"level": alert.level, "kind": alert.kind, "message": alert.message, "url": url})
    return await render(request, "home.html", {"tasks": tasks, "alerts": shown})


# ---------------------------------------------------------------- accounts (admins)

async def _users_page(request: web.Request, *, status: int = 200, error: str | None = None,
                      created: dict | None = None, form: dict | None = None) -> web.Response:
    async with request.app[DB].session() as session:
        users = await api.list_users(session)
        logins = await api.last_logins(session)
        units = {u.unit_id: await unit_name(session, u.unit_id) for u in users if u.unit_id}
    rows = [{"user": u, "last_login": logins.get(u.username),
             "unit": f"{units.get(u.unit_id) or u.unit_id}" if u.unit_id else ""} for u in users]
    return await render(request, "users.html", {
        "rows": rows, "roles": ROLES, "error": error, "created": created,
        "form": form or {"username": "", "display_name": "", "role": "agent", "unit_id": ""},
    }, status=status)


async def users(request: web.Request) -> web.Response:
    return await _users_page(request)


async def create_user(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form.get(k, "")).strip() for k in ("username", "display_name", "role", "unit_id")}
    actor = request["user"].username
    try:
        async with request.app[DB].session() as session, session.begin():
            unit_id = fields["unit_id"] or None
            if fields["role"] != "unit_handler":
                unit_id = None
            elif unit_id and await unit_name(session, unit_id) is None:
                raise api.AccountError("no such unit", f"没有编号为 {unit_id} 的单位")
            user, password = await api.create_user(
                session, username=fields["username"], role=fields["role"], actor=actor,
                unit_id=unit_id, display_name=fields["display_name"][:64])
    except api.AccountError as exc:
        return await _users_page(request, status=400, error=exc.zh, form=fields)
    # The one-time password is shown on this response only; it is stored nowhere in clear.
    return await _users_page(request, created={"username": user.username, "password": password,
                                               "what": "账号已创建"})


async def _target(request: web.Request, session) -> User:
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    user = await session.get(User, user_id)
    if user is None:
        raise web.HTTPNotFound()
    return user


async def _set_active(request: web.Request, active: bool) -> web.Response:
    try:
        async with request.app[DB].session() as session, session.begin():
            user = await _target(request, session)
            await api.set_active(session, user, active, actor=request["user"].username)
    except api.AccountError as exc:
        return await _users_page(request, status=400, error=exc.zh)
    await flash(request, f"账号 {user.username} 已{'启用' if active else '停用'}")
    raise web.HTTPSeeOther("/admin/users")


async def deactivate(request: web.Request) -> web.Response:
    return await _set_active(request, False)


async def activate(request: web.Request) -> web.Response:
    return await _set_active(request, True)


async def reset_password(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session, session.begin():
        user = await _target(request, session)
        password = await api.reset_password(session, user, actor=request["user"].username)
    return await _users_page(request, created={"username": user.username, "password": password,
                                               "what": "密码已重置"})


def setup_routes(app: web.Application) -> None:
    setup_templates(app)
    r = app.router
    r.add_get("/admin", root, name="admin-root")
    r.add_get("/admin/login", login_form, name="admin-login")
    r.add_post("/admin/login", login, name="admin-login")
    r.add_post("/admin/logout", logout, name="admin-logout")
    r.add_get("/admin/password", password_form, name="admin-password")
    r.add_post("/admin/password", change_password, name="admin-password")
    r.add_get("/admin/", home, name="admin-home")
    r.add_get("/admin/users", users, name="admin-users")
    r.add_post("/admin/users", create_user, name="admin-users")
    r.add_post("/admin/users/{user_id}/deactivate", deactivate, name="admin-user-deactivate")
    r.add_post("/admin/users/{user_id}/activate", activate, name="admin-user-activate")
    r.add_post("/admin/users/{user_id}/reset-password", reset_password, name="admin-user-reset")
    r.add_static("/admin/static/", STATIC_DIR, name="admin-static")
    inbox_pages.setup_routes(app)        # the staff hand-off inbox (会话接管)
    setup_case_pages(app)
    setup_audit_pages(app)               # 审计日志
    setup_word_pages(app)                # 词表管理 (content checks, art. 20–21, 24)
    setup_kb_pages(app)                  # Q&A curation (问答库, 问答审核)
    setup_settings_pages(app)            # 系统设置 (directory, routing, calendar, deadlines, WeChat)
    setup_spotcheck_pages(app)           # 季度抽查 (art. 32)
    setup_report_pages(app)              # 统计报表 (issue 7)
    setup_assessment_pages(app)          # 年度考核 and its indicators (art. 31)
