"""系统设置 → 单位 and 分类: the unit directory as a tree (create, edit, delete when unused) and the
category tree (add, rename, delete when unused).

The checks are casework/directory.py's, the same an import runs; every change is one
transaction with its audit row, and a change routing reads refreshes the served router.
"""
from __future__ import annotations

import re

from aiohttp import web

from admin.api import audit, list_users
from admin.auth import flash, render
from admin.permissions import allow
from casework import directory
from casework.directory import CategoryRefused, DirectoryRejected, UnitDraft, UnitInUse
from server.appkeys import DB, ROUTER

_SPLIT = re.compile(r"[|,，、;；\s]+")


async def refresh_router(request: web.Request) -> None:
    """Routing reads units, categories and keyword rules: serve the change now, not in a minute."""
    router = request.app.get(ROUTER)
    if router is not None:
        await router.refresh()


def _words(value) -> list[str]:
    return [w for w in _SPLIT.split(str(value or "").strip()) if w]


def unit_tree(units: list) -> list[tuple[object, int]]:
    """(unit, depth) with each parent before its children, siblings by id."""
    children: dict[str | None, list] = {}
    ids = {u.id for u in units}
    for u in sorted(units, key=lambda u: u.id):
        children.setdefault(u.parent_id if u.parent_id in ids else None, []).append(u)
    out: list[tuple[object, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for u in children.get(parent, []):
            out.append((u, depth))
            walk(u.id, depth + 1)

    walk(None, 0)
    return out


# ---------------------------------------------------------------- units

def _draft(form, unit_id: str) -> UnitDraft:
    return UnitDraft(
        id=unit_id.strip(), name=str(form.get("name", "")).strip(),
        parent_id=str(form.get("parent_id", "")).strip() or None,
        categories=[str(c) for c in form.getall("categories", []) if str(c).strip()],
        regions=_words(form.get("regions")), is_dispatcher=form.get("is_dispatcher") == "1",
        duty_start=str(form.get("duty_start", "")).strip() or None,
        duty_end=str(form.get("duty_end", "")).strip() or None)


async def _units_page(request: web.Request, *, status: int = 200, errors: list[str] | None = None,
                      form: UnitDraft | None = None, editing: str | None = None) -> web.Response:
    async with request.app[DB].session() as session:
        units = await directory.stored_units(session)
        categories = await directory.category_tree(session)
    template = "settings_unit.html" if editing else "settings_units.html"
    return await render(request, template, {
        "tree": unit_tree(units), "units": units, "categories": categories,
        "errors": errors or [], "editing": editing,
        "form": form or UnitDraft(id="", name=""),
    }, status=status)


async def units_page(request: web.Request) -> web.Response:
    return await _units_page(request)


async def create_unit(request: web.Request) -> web.Response:
    form = await request.post()
    draft = _draft(form, str(form.get("id", "")))
    try:
        async with request.app[DB].session() as session, session.begin():
            _, after = await directory.save_unit(session, draft, new=True)
            audit(session, request["user"].username, "settings.unit.create", draft.id,
                  before={}, after=after)
    except DirectoryRejected as exc:
        return await _units_page(request, status=400, errors=exc.problems, form=draft)
    await refresh_router(request)
    await flash(request, f"已新建单位“{draft.name}”")
    raise web.HTTPSeeOther("/admin/settings/units")


async def unit_page(request: web.Request) -> web.Response:
    unit_id = request.match_info["unit_id"]
    async with request.app[DB].session() as session:
        unit = await directory.find_unit(session, unit_id)
    if unit is None:
        raise web.HTTPNotFound()
    return await _units_page(request, form=UnitDraft.of(unit), editing=unit_id)


async def edit_unit(request: web.Request) -> web.Response:
    unit_id = request.match_info["unit_id"]
    form = await request.post()
    draft = _draft(form, unit_id)
    try:
        async with request.app[DB].session() as session, session.begin():
            if await directory.find_unit(session, unit_id) is None:
                raise web.HTTPNotFound()
            before, after = await directory.save_unit(session, draft, new=False)
            audit(session, request["user"].username, "settings.unit.update", unit_id,
                  before=before, after=after)
    except DirectoryRejected as exc:
        return await _units_page(request, status=400, errors=exc.problems, form=draft, editing=unit_id)
    await refresh_router(request)
    await flash(request, f"已保存单位“{draft.name}”")
    raise web.HTTPSeeOther("/admin/settings/units")


async def delete_unit(request: web.Request) -> web.Response:
    unit_id = request.match_info["unit_id"]
    try:
        async with request.app[DB].session() as session, session.begin():
            accounts = sum(u.unit_id == unit_id for u in await list_users(session))
            before = await directory.delete_unit(session, unit_id, accounts=accounts)
            audit(session, request["user"].username, "settings.unit.delete", unit_id,
                  before=before, after={})
    except UnitInUse as exc:
        return await _units_page(request, status=400, errors=[str(exc)])
    await refresh_router(request)
    await flash(request, f"已删除单位“{before['name']}”")
    raise web.HTTPSeeOther("/admin/settings/units")


# ---------------------------------------------------------------- categories

async def _categories_page(request: web.Request, *, status: int = 200, error: str | None = None,
                           form: dict | None = None) -> web.Response:
    async with request.app[DB].session() as session:
        tree = await directory.category_tree(session)
    return await render(request, "settings_categories.html", {
        "tree": tree, "error": error, "max_level": directory.MAX_LEVEL,
        "form": form or {"name": "", "parent_id": ""}}, status=status)


async def categories_page(request: web.Request) -> web.Response:
    return await _categories_page(request)


def _id(value) -> int | None:
    value = str(value or "").strip()
    return int(value) if value.isdigit() else None


async def add_category(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {"name": str(form.get("name", "")), "parent_id": str(form.get("parent_id", ""))}
    try:
        async with request.app[DB].session() as session, session.begin():
            cat = await directory.add_category(session, fields["name"], _id(fields["parent_id"]))
            audit(session, request["user"].username, "settings.category.create", str(cat.id),
                  before={}, after={"name": cat.name, "parent_id": cat.parent_id, "level": cat.level})
    except CategoryRefused as exc:
        return await _categories_page(request, status=400, error=str(exc), form=fields)
    await refresh_router(request)
    await flash(request, f"已添加分类“{cat.name}”")
    raise web.HTTPSeeOther("/admin/settings/categories")


async def rename_category(request: web.Request) -> web.Response:
    form = await request.post()
    category_id = int(request.match_info["category_id"])
    try:
        async with request.app[DB].session() as session, session.begin():
            old, new = await directory.rename_category(session, category_id, str(form.get("name", "")))
            audit(session, request["user"].username, "settings.category.rename", str(category_id),
                  before={"name": old}, after={"name": new})
    except CategoryRefused as exc:
        return await _categories_page(request, status=400, error=str(exc))
    await refresh_router(request)
    await flash(request, f"已将分类“{old}”改名为“{new}”；如已训练分类模型，请到路由规则页重新训练")
    raise web.HTTPSeeOther("/admin/settings/categories")


async def delete_category(request: web.Request) -> web.Response:
    category_id = int(request.match_info["category_id"])
    try:
        async with request.app[DB].session() as session, session.begin():
            name = await directory.delete_category(session, category_id)
            audit(session, request["user"].username, "settings.category.delete", str(category_id),
                  before={"name": name}, after={})
    except CategoryRefused as exc:
        return await _categories_page(request, status=400, error=str(exc))
    await refresh_router(request)
    await flash(request, f"已删除分类“{name}”")
    raise web.HTTPSeeOther("/admin/settings/categories")


def setup_directory_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/settings/units", units_page, name="settings-units")
    r.add_post("/admin/settings/units", create_unit, name="settings-units")
    r.add_get("/admin/settings/units/{unit_id}", unit_page, name="settings-unit")
    r.add_post("/admin/settings/units/{unit_id}", edit_unit, name="settings-unit")
    r.add_post("/admin/settings/units/{unit_id}/delete", delete_unit, name="settings-unit-delete")
    r.add_get("/admin/settings/categories", categories_page, name="settings-categories")
    r.add_post("/admin/settings/categories", add_category, name="settings-categories")
    r.add_post("/admin/settings/categories/{category_id:\\d+}/rename", rename_category,
               name="settings-category-rename")
    r.add_post("/admin/settings/categories/{category_id:\\d+}/delete", delete_category,
               name="settings-category-delete")
    for name in ("settings-units", "settings-unit", "settings-unit-delete", "settings-categories",
                 "settings-category-rename", "settings-category-delete"):
        allow(name, "admin")
