"""词表管理: the admin-managed word lists (staff_caution, harmful) — add, remove, bulk import.

Every change is one transaction with its audit row (admin/wordlists.py); the matchers are
rebuilt on the next use.
"""
from __future__ import annotations

from aiohttp import web

from admin import wordlists
from admin.auth import flash, render
from admin.models import WORD_KINDS
from admin.permissions import NAV, NavItem, allow
from server.appkeys import DB


def _kind(value) -> str:
    value = str(value or "")
    return value if value in WORD_KINDS else ""


async def _page(request: web.Request, *, status: int = 200, error: str | None = None,
                form: dict | None = None) -> web.Response:
    shown = _kind(request.query.get("kind"))
    async with request.app[DB].session() as session:
        rows = await wordlists.entries(session, shown or None)
        counts = await wordlists.counts(session)
    return await render(request, "words_list.html", {
        "rows": rows, "counts": counts, "shown": shown, "kinds": WORD_KINDS,
        "kind_names": wordlists.KIND_NAMES, "kind_hints": wordlists.KIND_HINTS,
        "error": error, "form": form or {"kind": shown or wordlists.STAFF_CAUTION, "word": "",
                                         "note": "", "lines": ""},
        "max_word": wordlists.MAX_WORD, "max_note": wordlists.MAX_NOTE,
    }, status=status)


async def word_lists(request: web.Request) -> web.Response:
    return await _page(request)


def _back(kind: str) -> str:
    return f"/admin/words?kind={kind}" if kind else "/admin/words"


async def add_word(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {"kind": _kind(form.get("kind")), "word": str(form.get("word", "")),
              "note": str(form.get("note", "")), "lines": ""}
    try:
        async with request.app[DB].session() as session, session.begin():
            entry = await wordlists.add(session, fields["kind"], fields["word"],
                                        note=fields["note"], actor=request["user"].username)
    except wordlists.WordError as exc:
        return await _page(request, status=400, error=str(exc), form=fields)
    wordlists.invalidate(entry.kind)
    await flash(request, f"已添加“{entry.word}”到{wordlists.KIND_NAMES[entry.kind]}")
    raise web.HTTPSeeOther(_back(entry.kind))


async def import_words(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {"kind": _kind(form.get("kind")), "word": "", "note": str(form.get("note", "")),
              "lines": str(form.get("lines", ""))}
    try:
        async with request.app[DB].session() as session, session.begin():
            added, skipped = await wordlists.add_many(session, fields["kind"], fields["lines"],
                                                      note=fields["note"],
                                                      actor=request["user"].username)
    except wordlists.WordError as exc:
        return await _page(request, status=400, error=str(exc), form=fields)
    wordlists.invalidate(fields["kind"])
    message = f"已导入 {len(added)} 个词语"
    if skipped:
        message += f"，{len(skipped)} 个已存在未重复添加"
    await flash(request, message)
    raise web.HTTPSeeOther(_back(fields["kind"]))


async def remove_word(request: web.Request) -> web.Response:
    try:
        entry_id = int(request.match_info["entry_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with request.app[DB].session() as session, session.begin():
        entry = await wordlists.remove(session, entry_id, actor=request["user"].username)
    if entry is None:
        raise web.HTTPNotFound()
    wordlists.invalidate(entry.kind)
    await flash(request, f"已从{wordlists.KIND_NAMES[entry.kind]}删除“{entry.word}”")
    raise web.HTTPSeeOther(_back(entry.kind))


def setup_word_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/words", word_lists, name="word-lists")
    r.add_post("/admin/words", add_word, name="word-lists")
    r.add_post("/admin/words/import", import_words, name="word-bulk")
    r.add_post("/admin/words/{entry_id:\\d+}/remove", remove_word, name="word-remove")
    for name in ("word-lists", "word-bulk", "word-remove"):
        allow(name, "admin")
    # The nav entry (admins), before the audit log; added once however many apps are built.
    if not any(item.name == "word-lists" for item in NAV):
        at = next((i for i, item in enumerate(NAV) if item.name == "audit-log"), len(NAV))
        NAV.insert(at, NavItem("word-lists", "词表管理",
                               "维护客服回复提示词和有害信息词（内容审核）"))
