"""系统设置 → 路由规则与示例 (admins and dispatchers): keyword rules (add, enable/disable, delete),
the routing examples (filter by category, add, delete, import a file) and 重新训练.

Retraining runs in the background (casework.training.Retraining over routing.train, whose fitting
runs in worker threads), so the page answers at once and shows 训练中 until it is done. A keyword
change is served at once (Router.refresh); examples count only after retraining.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from aiohttp import web

from admin.api import audit
from admin.auth import flash, render
from admin.directory_pages import refresh_router
from admin.permissions import allow
from casework import directory, training
from casework.directory import DirectoryRejected
from server.appkeys import DB, ROUTER

RETRAINING = web.AppKey("route_retraining", training.Retraining)
ROLES = ("admin", "dispatcher")
BACK = "/admin/settings/routing"
CLI_TRAIN = "govchat route train 示例文件.csv"

_ROW = re.compile(r"^row (\d+): (.*)$")
_PLAIN = {"the message is empty": "message 列为空", "the category is empty": "category 列为空"}


def problem_zh(problem: str) -> str:
    """read_examples' plain-English problems as the page shows them."""
    m = _ROW.match(problem)
    if m:
        what = m.group(2)
        if what.startswith("missing column"):
            return "第 1 行：缺少列，须有 message 和 category 两列"
        if "longer than" in what:
            return f"第 {m.group(1)} 行：category 超过{training.MAX_CATEGORY}个字符"
        return f"第 {m.group(1)} 行：{_PLAIN.get(what, what)}"
    if "at least two categories" in problem:
        return "至少需要两个分类的示例"
    return problem


def _category(value) -> str:
    return str(value or "").strip()[:training.MAX_CATEGORY]


async def _page(request: web.Request, *, status: int = 200, errors: list[str] | None = None,
                form: dict | None = None) -> web.Response:
    shown = _category(request.query.get("category"))
    async with request.app[DB].session() as session:
        keywords = await training.list_keywords(session)
        examples = await training.list_examples(session, shown or None)
        counts = await training.example_counts(session)
        categories = await directory.category_tree(session)
    router = request.app.get(ROUTER)
    return await render(request, "settings_routing.html", {
        "keywords": keywords, "examples": examples, "counts": counts, "shown": shown,
        "total": sum(counts.values()), "categories": categories, "errors": errors or [],
        "form": form or {"keyword": "", "category": "", "note": "", "text": ""},
        "retraining": request.app.get(RETRAINING), "can_train": router is not None,
        "model": router.model if router is not None else None, "cli_train": CLI_TRAIN,
        "page_size": training.PAGE_SIZE}, status=status)


async def routing_page(request: web.Request) -> web.Response:
    return await _page(request)


def _rule(rule) -> dict:
    return {"keyword": rule.keyword, "category": rule.category, "enabled": rule.enabled, "note": rule.note}


async def add_keyword(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(form.get(k, "")).strip() for k in ("keyword", "category", "note")}
    fields["text"] = ""
    if len(fields["note"]) > 200:
        return await _page(request, status=400, errors=["说明不能超过200个字"], form=fields)
    if not fields["keyword"] or not fields["category"]:
        return await _page(request, status=400, errors=["请填写关键词并选择分类"], form=fields)
    try:
        async with request.app[DB].session() as session, session.begin():
            rule = await training.add_keyword(session, fields["keyword"], fields["category"], fields["note"])
            audit(session, request["user"].username, "settings.keyword.add", f"keyword:{rule.id}",
                  before={}, after=_rule(rule))
    except ValueError:
        return await _page(request, status=400, form=fields,
                           errors=[f"关键词和分类均不能超过{training.MAX_KEYWORD}个字符"])
    await refresh_router(request)
    await flash(request, f"已添加规则：含“{rule.keyword}”→{rule.category}")
    raise web.HTTPSeeOther(BACK)


def _rule_id(request: web.Request) -> int:
    return int(request.match_info["rule_id"])


async def toggle_keyword(request: web.Request) -> web.Response:
    form = await request.post()
    enabled = form.get("enabled") == "1"
    async with request.app[DB].session() as session, session.begin():
        rules = {r.id: r for r in await training.list_keywords(session)}
        if _rule_id(request) not in rules:
            raise web.HTTPNotFound()
        before = _rule(rules[_rule_id(request)])
        rule = await training.set_keyword_enabled(session, _rule_id(request), enabled)
        audit(session, request["user"].username, "settings.keyword.enable" if enabled else
              "settings.keyword.disable", f"keyword:{rule.id}", before=before, after=_rule(rule))
    await refresh_router(request)
    await flash(request, f"已{'启用' if enabled else '停用'}规则：含“{rule.keyword}”→{rule.category}")
    raise web.HTTPSeeOther(BACK)


async def delete_keyword(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session, session.begin():
        rule = await training.remove_keyword_rule(session, _rule_id(request))
        if rule is None:
            raise web.HTTPNotFound()
        audit(session, request["user"].username, "settings.keyword.remove", f"keyword:{rule.id}",
              before=_rule(rule), after={})
    await refresh_router(request)
    await flash(request, f"已删除规则：含“{rule.keyword}”→{rule.category}")
    raise web.HTTPSeeOther(BACK)


async def add_example(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {"keyword": "", "note": "", "text": str(form.get("text", "")).strip(),
              "category": _category(form.get("category"))}
    if not fields["text"] or not fields["category"]:
        return await _page(request, status=400, errors=["请填写示例内容并选择分类"], form=fields)
    async with request.app[DB].session() as session, session.begin():
        example = await training.add_example(session, fields["text"], fields["category"])
        audit(session, request["user"].username, "settings.example.add", f"example:{example.id}",
              before={}, after={"text": example.text, "category": example.category})
    await flash(request, f"已添加“{example.category}”的示例；重新训练后生效")
    raise web.HTTPSeeOther(f"{BACK}?category={example.category}")


async def delete_example(request: web.Request) -> web.Response:
    example_id = int(request.match_info["example_id"])
    async with request.app[DB].session() as session, session.begin():
        example = await training.remove_example(session, example_id)
        if example is None:
            raise web.HTTPNotFound()
        audit(session, request["user"].username, "settings.example.remove", f"example:{example_id}",
              before={"text": example.text, "category": example.category, "source": example.source},
              after={})
    await flash(request, "已删除示例；重新训练后生效")
    raise web.HTTPSeeOther(BACK)


async def upload_examples(request: web.Request) -> web.Response:
    """A CSV or XLSX file (message, category) replaces the imported examples, whole or not at all;
    examples typed here or by dispatchers stay."""
    form = await request.post()
    upload = form.get("file")
    suffix = Path(getattr(upload, "filename", "") or "").suffix.lower()
    if upload is None or not hasattr(upload, "file"):
        return await _page(request, status=400, errors=["请选择要导入的文件"])
    if suffix not in (".csv", ".xlsx"):
        return await _page(request, status=400, errors=["只能导入 .csv 或 .xlsx 文件"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"examples{suffix}"
        path.write_bytes(upload.file.read())
        try:
            rows = training.read_examples(path)
        except DirectoryRejected as exc:
            return await _page(request, status=400,
                               errors=["文件未导入："] + [problem_zh(p) for p in exc.problems])
    async with request.app[DB].session() as session, session.begin():
        before = await training.count_examples(session, training.IMPORT)
        count = await training.replace_examples(session, rows)
        audit(session, request["user"].username, "settings.example.import", upload.filename or "",
              before={"imported_examples": before}, after={"imported_examples": count})
    await flash(request, f"已导入 {count} 条示例（替换此前导入的示例）；重新训练后生效")
    raise web.HTTPSeeOther(BACK)


async def retrain(request: web.Request) -> web.Response:
    router, state = request.app.get(ROUTER), request.app.get(RETRAINING)
    if router is None or state is None:
        await flash(request, f"此服务器不能在页面上训练，请在服务器上运行：{CLI_TRAIN}")
        raise web.HTTPSeeOther(BACK)
    started = state.start(router, request.app[DB])
    async with request.app[DB].session() as session, session.begin():
        audit(session, request["user"].username, "settings.routing.retrain", "routing-model",
              started=started)
    await flash(request, "已开始重新训练，完成后自动生效" if started else "正在训练中，请稍候")
    raise web.HTTPSeeOther(BACK)


def setup_routing_pages(app: web.Application) -> None:
    app[RETRAINING] = training.Retraining()
    r = app.router
    r.add_get(BACK, routing_page, name="settings-routing")
    r.add_post(f"{BACK}/keywords", add_keyword, name="settings-keyword-add")
    r.add_post(f"{BACK}/keywords/{{rule_id:\\d+}}/toggle", toggle_keyword, name="settings-keyword-toggle")
    r.add_post(f"{BACK}/keywords/{{rule_id:\\d+}}/delete", delete_keyword, name="settings-keyword-delete")
    r.add_post(f"{BACK}/examples", add_example, name="settings-example-add")
    r.add_post(f"{BACK}/examples/{{example_id:\\d+}}/delete", delete_example, name="settings-example-delete")
    r.add_post(f"{BACK}/examples/upload", upload_examples, name="settings-example-upload")
    r.add_post(f"{BACK}/retrain", retrain, name="settings-retrain")
    for name in ("settings-routing", "settings-keyword-add", "settings-keyword-toggle",
                 "settings-keyword-delete", "settings-example-add", "settings-example-delete",
                 "settings-example-upload", "settings-retrain"):
        allow(name, *ROLES)
