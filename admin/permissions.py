"""Who may open which console page: one table, route name → roles, checked on every request.

admin/auth.py's middleware looks up the name of the route a request matched (every route under
/admin must be named) in RULES before the handler runs: a name missing from the table is
refused (403) like a role that is not listed, so a page added without a rule is never open.
Another package adds its pages' rules with `allow("kb-list", "admin", "reviewer")` where it
registers the routes. Object-level checks (whose case is it?) are the handler's job:
`require_unit(request, unit_id)`.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin.models import ROLES

ROLE_NAMES = {
    "admin": "管理员",
    "reviewer": "审核员",
    "agent": "客服",
    "dispatcher": "分派员",
    "unit_handler": "承办人",
}
assert set(ROLE_NAMES) == set(ROLES)

ALL_STAFF = frozenset(ROLES)
ADMIN = frozenset({"admin"})
# Open without a session: the login form and the console's own CSS and JS.
PUBLIC = frozenset({"*public*"})

RULES: dict[str, frozenset[str]] = {
    "admin-login": PUBLIC,
    "admin-static": PUBLIC,
    "admin-root": PUBLIC,              # /admin → /admin/ (a redirect, nothing else)
    "admin-home": ALL_STAFF,
    "admin-logout": ALL_STAFF,
    "admin-password": ALL_STAFF,
    "admin-users": ADMIN,
    "admin-user-activate": ADMIN,
    "admin-user-deactivate": ADMIN,
    "admin-user-reset": ADMIN,
}

# Pages a session with must_change_password may still open.
BEFORE_PASSWORD_CHANGE = frozenset({"admin-password", "admin-logout"})


def allow(name: str, *roles: str) -> None:
    """The rule for one route name (another package's page): these roles may open it."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"allow({name!r}): roles must be some of {', '.join(ROLES)}, got {roles}")
    RULES[name] = frozenset(roles)


def is_public(name: str | None) -> bool:
    return RULES.get(name or "") is PUBLIC


def may_open(role: str, name: str) -> bool:
    roles = RULES.get(name)
    return roles is not None and roles is not PUBLIC and role in roles


def require_unit(request: web.Request, unit_id: str | None) -> None:
    """Refuse (403) a unit handler looking at another unit's object; other roles pass.

    Pages call this after loading the object: `require_unit(request, case.unit_id)`.
    """
    user = request["user"]
    if user.role == "unit_handler" and (unit_id is None or unit_id != user.unit_id):
        raise web.HTTPForbidden(reason="not this unit's")


@dataclass(frozen=True)
class NavItem:
    name: str          # route name; a link once that route exists and the role may open it
    label: str
    hint: str          # what the role does there, on the home page
    planned: frozenset[str] = frozenset()   # roles it will be for, while the page is still to come


NAV = [
    NavItem("admin-home", "首页", "查看待办事项"),
    NavItem("staff-inbox", "会话接管", "接管机器人无法处理的会话，回复群众",
            frozenset({"admin", "agent"})),
    NavItem("unit-cases", "本单位办件", "签收、办理、答复本单位的投诉举报",
            frozenset({"unit_handler"})),
    NavItem("dispatch-desk", "分派中心", "处理未分派、低置信度和被退回的办件，审批延期",
            frozenset({"admin", "dispatcher"})),
    NavItem("kb-list", "问答库", "编辑问答条目并提交审核",
            frozenset({"admin", "reviewer", "agent"})),
    NavItem("kb-review", "问答审核", "审核待发布的问答（先审后发）",
            frozenset({"admin", "reviewer"})),
    NavItem("spotcheck-list", "季度抽查", "按季度随机抽取办件和会话，查看全程记录并记录检查结论",
            frozenset({"admin", "reviewer"})),
    NavItem("report-timeliness", "统计报表", "按单位、类别、渠道或时段查看时效和满意率，年度考核，导出报表",
            frozenset({"admin", "dispatcher", "reviewer"})),
    NavItem("admin-users", "账号管理", "创建账号、停用或启用账号、重置密码"),
    NavItem("audit-log", "审计日志", "查询谁在何时做了什么", frozenset({"admin"})),
    NavItem("admin-password", "修改密码", "修改自己的登录密码"),
]


def nav_for(app: web.Application, role: str) -> list[dict]:
    """The nav as this role sees it: links it may open, then pages still to come as plain text."""
    names = {r.name for r in app.router.resources() if r.name}
    items = []
    for item in NAV:
        if item.name in names:
            if may_open(role, item.name):
                items.append({"name": item.name, "label": item.label, "hint": item.hint,
                              "url": str(app.router[item.name].url_for()), "soon": False})
        elif role in item.planned:
            items.append({"name": item.name, "label": item.label, "hint": item.hint,
                          "url": None, "soon": True})
    return items
