"""Every console route has a rule, and every role is refused what its rule does not give it.

Table-driven over the real app's router: a page added under /admin without a rule in
admin/permissions.py fails here, and so does a rule that lets the wrong role in.
"""
from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from admin.models import ROLES
from admin.permissions import PUBLIC, RULES, may_open, nav_for, require_unit
from server.app import create_app
from server.config import Config
from tests.admin.conftest import add_user, console_app, csrf_of, login

DUMMY = "999999"


def console_routes(app: web.Application) -> list[tuple[str, str, str | None]]:
    """(method, path with parameters filled in, route name) for every route under /admin."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        info = resource.get_info()
        template = info.get("formatter") or info.get("path") or info.get("prefix") or ""
        if not (template == "/admin" or template.startswith("/admin/")):
            continue
        path = re.sub(r"\{[^}]+\}", DUMMY, template)
        if "prefix" in info:                        # the static files
            path = path.rstrip("/") + "/admin.css"
        found.append((route.method, path, resource.name))
    return found


def without_rule(app: web.Application) -> list[str]:
    return [f"{method} {path} (name {name!r})" for method, path, name in console_routes(app)
            if name is None or name not in RULES]


@pytest.fixture
async def real_app(db, tmp_path):
    config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                    rasa_url="http://127.0.0.1:9")
    app = create_app(config)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield app, client
    await client.close()


async def test_every_console_route_has_a_rule_and_each_role_is_refused_the_rest(real_app, db):
    app, client = real_app
    routes = console_routes(app)
    assert {"/admin/", "/admin/login", "/admin/users"} <= {path for _, path, _ in routes}
    assert without_rule(app) == [], "add a rule in admin/permissions.py for each of these"

    checked = 0
    for role in ROLES:
        username = f"perm.{role}"
        await add_user(db, username, role)
        client.session.cookie_jar.clear()
        assert (await login(client, username)).status == 303
        csrf = await csrf_of(client)
        for method, path, name in routes:
            if RULES[name] is PUBLIC:
                continue
            allowed = may_open(role, name)
            if allowed and (method != "GET" or DUMMY in path):
                continue                  # would change something, or needs a real object
            resp = await client.request(method, path, headers={"X-CSRF-Token": csrf},
                                        allow_redirects=False)
            if allowed:
                assert resp.status == 200, (role, method, path, resp.status)
            else:
                assert resp.status == 403, (role, method, path, resp.status)
                assert "您没有权限访问此页面" in await resp.text()
                checked += 1
    assert checked >= 4 * 4          # four roles are refused at least the four account routes


async def test_anonymous_requests_are_sent_to_login_or_refused(real_app):
    app, client = real_app
    for method, path, name in console_routes(app):
        resp = await client.request(method, path, allow_redirects=False)
        if RULES[name] is PUBLIC:
            assert resp.status in (200, 302, 401), (method, path)   # 401: an empty login form
        elif method == "GET":
            assert resp.status == 302 and resp.headers["Location"].startswith("/admin/login"), path
        else:
            assert resp.status == 401, (method, path)


async def page(request):
    return web.Response(text="should never be seen")


async def test_a_page_added_without_a_rule_is_found_and_refused(db, make_client):
    app = console_app(db)
    app.router.add_get("/admin/new-page", page, name="new-page")
    app.router.add_get("/admin/unnamed", page)
    assert without_rule(app) == ["GET /admin/new-page (name 'new-page')",
                                 "GET /admin/unnamed (name None)"]
    await add_user(db, "boss", "admin")
    async with TestClient(TestServer(app)) as client:
        await login(client, "boss")
        for path in ("/admin/new-page", "/admin/unnamed"):
            resp = await client.get(path)
            assert resp.status == 403 and "should never be seen" not in await resp.text()


class _Request(dict):
    def __init__(self, user):
        super().__init__(user=user)


class _User:
    def __init__(self, role, unit_id=None):
        self.role, self.unit_id = role, unit_id


def test_require_unit_refuses_another_units_object_to_a_unit_handler():
    handler = _Request(_User("unit_handler", "JH-RSJ"))
    require_unit(handler, "JH-RSJ")
    for other in ("JH-GAJ", None):
        with pytest.raises(web.HTTPForbidden):
            require_unit(handler, other)
    require_unit(_Request(_User("dispatcher")), "JH-GAJ")     # other roles see every unit's


def test_the_nav_links_what_the_role_may_open_and_names_pages_still_to_come():
    app = web.Application()
    for path, name in (("/admin/", "admin-home"), ("/admin/users", "admin-users"),
                       ("/admin/password", "admin-password")):
        app.router.add_get(path, page, name=name)
    nav = {item["name"]: (item["url"], item["soon"]) for item in nav_for(app, "admin")}
    assert nav["admin-users"] == ("/admin/users", False)
    assert nav["audit-log"] == (None, True)            # planned for admins, not built here
    assert "unit-cases" not in nav                      # planned, but for unit handlers
    agent = {item["name"] for item in nav_for(app, "agent")}
    assert agent == {"admin-home", "staff-inbox", "kb-list", "admin-password"}
