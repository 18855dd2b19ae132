"""Q&A curation (问答库, 问答审核): list, edit with versions and diffs, review, hit testing,
unanswered questions, import and export.

Every change goes through knowledge_base.workflow (which writes the audit row: kb.draft,
kb.submit, kb.approve, kb.reject, kb.retire) or knowledge_base.api (import, audited here);
reading goes through knowledge_base.listing — the pages never query the kb_* tables. After a
publish or a retirement the served index is rebuilt at once (KnowledgeBase.refresh), so the
next citizen's question sees the change without waiting for the watcher.
"""
from __future__ import annotations

import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from aiohttp import web

from admin.api import audit
from admin.auth import flash, render
from admin.permissions import allow
from knowledge_base import api as kb_api
from knowledge_base import curation, gaps, listing, workflow
from knowledge_base.consult import consult
from knowledge_base.search import ANSWER, CLARIFY, QAIndex
from server.appkeys import DB, KB
from server.db import CHINA, utcnow

PAGE_SIZE = 50
HIT_DAYS = 30
SOON_DAYS = 30                      # valid_to within this many days: amber
STATUS_NAMES = {"draft": "草稿", "in_review": "待审核", "published": "已发布", "retired": "已下线"}
DECISION_NAMES = {ANSWER: "直接回答", CLARIFY: "请群众确认（澄清）", "none": "无法回答（转人工或留言）"}
EDITORS = ("admin", "reviewer", "agent")
REVIEWERS = ("admin", "reviewer")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# workflow.py speaks English to logs and the CLI; staff read Chinese.
MESSAGES = (
    ("reviewer must be a different account", "审核人不能是作者本人，请由另一位审核员审核"),
    ("needs a comment", "退回须填写意见"),
    ("needs a question and an answer", "标准问题和答案不能为空"),
    ("not in review", "该版本已不在待审核状态（可能已被他人处理）"),
    ("only a draft can be submitted", "只有草稿可以提交审核"),
    ("is not published", "该条目当前没有已发布的版本"),
    ("no Q&A entry", "没有这个问答条目"),
    ("has no version", "没有这个版本"),
)


class Refused(Exception):
    """A form the page cannot act on, in Chinese."""


def zh(exc: Exception) -> str:
    text = str(exc)
    return next((words for key, words in MESSAGES if key in text), text)


def _kb(request: web.Request):
    return request.app.get(KB)


def _index(request: web.Request) -> QAIndex:
    kb = _kb(request)
    return kb.index if kb is not None else QAIndex([])


async def _refresh(request: web.Request) -> None:
    kb = _kb(request)
    if kb is not None:
        await kb.refresh()


def _entry_url(request: web.Request, entry_id: str) -> str:
    return str(request.app.router["kb-entry"].url_for(entry=entry_id))


def expiry(valid_to: date | None, today: date) -> str:
    if valid_to is None:
        return ""
    if valid_to < today:
        return "expired"
    return "expiring" if valid_to <= today + timedelta(days=SOON_DAYS) else ""


# ---------------------------------------------------------------- 问答库

async def kb_list(request: web.Request) -> web.Response:
    q = request.query
    filters = {"q": q.get("q", "").strip()[:200], "category": q.get("category", "").strip(),
               "unit": q.get("unit", "").strip(),
               "status": q.get("status", "") if q.get("status", "") in STATUS_NAMES else "",
               "expired": q.get("expired") == "1"}
    page = max(1, int(q["page"])) if q.get("page", "").isdigit() else 1
    today = date.today()
    async with request.app[DB].session() as session:
        rows, total = await listing.latest_versions(session, **filters, today=today,
                                                    offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        counts = await listing.hit_counts(session, utcnow() - timedelta(days=HIT_DAYS),
                                          [r.entry_id for r in rows])
        categories, units = await listing.facets(session)
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        query = {k: ("1" if v is True else v) for k, v in filters.items() if v}
        return str(request.app.router["kb-list"].url_for().with_query({**query, "page": n}))

    return await render(request, "kb_list.html", {
        "rows": [{"row": r, "hits": counts.get(r.entry_id, 0), "expiry": expiry(r.valid_to, today),
                  "status": STATUS_NAMES.get(r.status, r.status)} for r in rows],
        "total": total, "filters": filters, "statuses": STATUS_NAMES, "categories": categories,
        "units": units, "page": page, "pages": pages, "hit_days": HIT_DAYS,
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page < pages else None,
        "may_import": True})


FIELD_NAMES = {"question": "标准问题", "answer": "答案", "category": "类别", "unit": "责任单位",
               "valid_from": "生效日期", "valid_to": "失效日期"}


def _form_fields(form) -> dict:
    """The editable fields of an entry form, checked; raises Refused."""
    def text(name: str, limit: int) -> str:
        value = str(form.get(name, "")).strip()
        if len(value) > limit:      # refused, never cut: the reviewer must see what is published
            raise Refused(f"{FIELD_NAMES.get(name, name)}过长：最多 {limit} 个字，现有 {len(value)} 个字")
        return value

    def day(name: str) -> date | None:
        value = text(name, 10)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise Refused(f"日期格式应为 2026-12-01：{value}") from None

    fields = {
        "question": text("question", 500),
        "similar_questions": [s.strip() for s in str(form.get("similar_questions", "")).splitlines()
                              if s.strip()][:50],
        "answer": text("answer", 5000),
        "category": text("category", 64), "unit": text("unit", 128),
        "tags": [t.strip() for t in re.split(r"[|,，、]", str(form.get("tags", ""))) if t.strip()][:20],
        "valid_from": day("valid_from"), "valid_to": day("valid_to"),
    }
    if not fields["question"] or not fields["answer"]:
        raise Refused("标准问题和答案不能为空")
    if fields["valid_from"] and fields["valid_to"] and fields["valid_to"] < fields["valid_from"]:
        raise Refused("失效日期不能早于生效日期")
    return fields


def _notice(form, kept: datetime | None) -> datetime | None:
    """紧急通知有效至 (art. 15; Version.notice_until) as typed in Beijing time, "2026-12-01T18:00".
    A form without the field keeps `kept`; an empty one clears it; a new moment must be ahead."""
    if "notice_until" not in form:
        return kept
    text = str(form.get("notice_until", "")).strip()[:19]
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None:
        raise Refused(f"紧急通知截止时间格式应为 2026-12-01T18:00：{text}")
    moment = moment.replace(tzinfo=CHINA).astimezone(timezone.utc)
    if moment != kept and moment <= utcnow():
        raise Refused("紧急通知截止时间须晚于现在")
    return moment


def _form_of(version) -> dict:
    if version is None:
        return {"question": "", "similar_questions": "", "answer": "", "category": "", "unit": "",
                "tags": "", "valid_from": "", "valid_to": "", "notice_until": ""}
    notice = version.notice_until
    return {"question": version.question, "similar_questions": "\n".join(version.similar_questions),
            "answer": version.answer, "category": version.category, "unit": version.unit,
            "tags": "|".join(version.tags or ()), "valid_from": version.valid_from or "",
            "valid_to": version.valid_to or "",
            "notice_until": notice.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M") if notice else ""}


def _posted(form) -> dict:
    """The form as typed, to show it again with the reason it was refused."""
    return {**_form_of(None), **{k: str(form.get(k, "")) for k in _form_of(None)}}


async def kb_entry(request: web.Request, *, error: str | None = None, form: dict | None = None,
                   status: int = 200) -> web.Response:
    entry_id = request.match_info["entry"]
    async with request.app[DB].session() as session:
        try:
            versions = await workflow.versions(session, entry_id)
        except workflow.WorkflowError:
            raise web.HTTPNotFound(text="没有这个问答条目") from None
        hits = (await listing.hit_counts(session, utcnow() - timedelta(days=HIT_DAYS), [entry_id])
                ).get(entry_id, 0)
    latest = versions[-1]
    shown = [{"v": v, "status": STATUS_NAMES.get(v.status, v.status),
              "diff": listing.diff(versions[i - 1] if i else None, v)}
             for i, v in enumerate(versions)]
    return await render(request, "kb_entry.html", {
        "entry_id": entry_id, "versions": list(reversed(shown)), "latest": latest,
        "served": next((v.number for v in versions if v.status == "published"), None),
        "form": form or _form_of(latest), "error": error, "hits": hits, "hit_days": HIT_DAYS,
        "may_review": request["user"].role in REVIEWERS}, status=status)


async def kb_save(request: web.Request) -> web.Response:
    """Save the form as a new draft version of the entry (whatever the latest version was)."""
    entry_id, form = request.match_info["entry"], await request.post()
    user = request["user"].username
    try:
        fields = _form_fields(form)
        async with request.app[DB].session() as session, session.begin():
            versions = await workflow.versions(session, entry_id)
            base = str(form.get("base", ""))
            if base and base != str(versions[-1].number):
                raise Refused(f"保存前已有人保存了新的版本 v{versions[-1].number}，请在最新版本上修改")
            fields["notice_until"] = _notice(form, versions[-1].notice_until)
            version = await workflow.save_draft(session, entry_id, user, **fields)
            if form.get("submit") == "1":
                await workflow.submit(session, entry_id, version.number, user)
    except (Refused, workflow.WorkflowError) as exc:
        return await kb_entry(request, error=zh(exc), form=_posted(form), status=400)
    await flash(request, f"已保存为 v{version.number}" + ("，已提交审核" if form.get("submit") == "1"
                                                         else "（草稿）"))
    raise web.HTTPSeeOther(_entry_url(request, entry_id))


async def kb_new(request: web.Request) -> web.Response:
    if request.method == "GET":
        form = {**_form_of(None), "entry_id": "", "question": request.query.get("question", "")[:500]}
        return await render(request, "kb_new.html", {"form": form, "error": None})
    form = await request.post()
    entry_id = str(form.get("entry_id", "")).strip()
    user = request["user"].username
    try:
        if not _ID.match(entry_id):
            raise Refused("编号须为1至64个字母、数字或 _ . - 字符，如 SB-101")
        fields = {**_form_fields(form), "notice_until": _notice(form, None)}
        async with request.app[DB].session() as session, session.begin():
            if await listing.served_number(session, entry_id) is not None or await _exists(session, entry_id):
                raise Refused(f"编号 {entry_id} 已被使用")
            version = await workflow.save_draft(session, entry_id, user, **fields)
            if form.get("submit") == "1":
                await workflow.submit(session, entry_id, version.number, user)
    except (Refused, workflow.WorkflowError) as exc:
        return await render(request, "kb_new.html", {"form": {**_posted(form), "entry_id": entry_id},
                                                      "error": zh(exc)}, status=400)
    await flash(request, f"问答 {entry_id} 已创建" + ("并提交审核" if form.get("submit") == "1" else "（草稿）"))
    raise web.HTTPSeeOther(_entry_url(request, entry_id))


async def _exists(session, entry_id: str) -> bool:
    try:
        await workflow.versions(session, entry_id)
    except workflow.WorkflowError:
        return False
    return True


def _number(form) -> int:
    value = str(form.get("version", ""))
    if not value.isdigit():
        raise Refused("缺少版本号")
    return int(value)


def _action(step: str):
    """POST handlers for one workflow step on an entry; a refusal flashes the reason."""
    async def handler(request: web.Request) -> web.Response:
        entry_id, form = request.match_info["entry"], await request.post()
        user = request["user"].username
        back = _entry_url(request, entry_id)
        if form.get("back") == "review":
            back = str(request.app.router["kb-review"].url_for())
        try:
            async with request.app[DB].session() as session, session.begin():
                if step == "submit":
                    version = await workflow.submit(session, entry_id, _number(form), user)
                    done = f"v{version.number} 已提交审核"
                elif step == "approve":
                    version = await workflow.approve(session, entry_id, _number(form), user)
                    done = f"{entry_id} v{version.number} 已审核通过并发布"
                elif step == "reject":
                    comment = str(form.get("comment", "")).strip()[:1000]
                    if not comment:
                        raise Refused("退回须填写意见")
                    version = await workflow.reject(session, entry_id, _number(form), user, comment)
                    done = f"{entry_id} v{version.number} 已退回作者修改"
                elif step == "retire":
                    await workflow.retire(session, entry_id, user)
                    done = f"{entry_id} 已下线，不再回答群众"
                else:   # rollback: the old content becomes a new draft, reviewed again
                    old = next((v for v in await workflow.versions(session, entry_id)
                                if v.number == _number(form)), None)
                    if old is None:
                        raise Refused("没有这个版本")
                    version = await workflow.save_draft(
                        session, entry_id, user, **{f: getattr(old, f) for f in workflow.EDITABLE})
                    audit(session, user, "kb.rollback", f"{entry_id}@{version.number}",
                          restored=old.number)
                    done = f"已按 v{old.number} 的内容生成草稿 v{version.number}，提交审核后生效"
        except (Refused, workflow.WorkflowError) as exc:
            await flash(request, f"操作未完成：{zh(exc)}")
            raise web.HTTPSeeOther(back) from None
        if step in ("approve", "retire"):
            await _refresh(request)
        await flash(request, done)
        raise web.HTTPSeeOther(back)
    handler.__name__ = f"kb_{step}"
    return handler


# ---------------------------------------------------------------- 问答审核

async def kb_review(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        waiting = await listing.in_review(session)
    rows = [{"entry_id": ext, "v": v, "before": before, "diff": listing.diff(before, v),
             "own": v.author == request["user"].username} for ext, v, before in waiting]
    return await render(request, "kb_review.html", {"rows": rows})


# ---------------------------------------------------------------- 命中测试, 未解决问题

async def kb_try(request: web.Request) -> web.Response:
    query = request.query.get("q", "").strip()[:500]
    result = None
    if query:
        index = _index(request)
        decision = consult(index, query)
        _, hits = index.lookup(query, 5)
        answer = decision.best.qa if decision.kind == ANSWER and decision.best else None
        result = {"kind": decision.kind, "name": DECISION_NAMES.get(decision.kind, decision.kind),
                  "answer": answer, "candidates": [h.qa for h in decision.hits] if decision.kind == CLARIFY else [],
                  "hits": hits}
    return await render(request, "kb_try.html", {"query": query, "result": result,
                                                 "thresholds": _index(request).thresholds})


async def kb_gaps(request: web.Request) -> web.Response:
    async with request.app[DB].session() as session:
        queries = await curation.gap_queries(session, utcnow() - timedelta(days=HIT_DAYS))
    groups = gaps.cluster(queries, _index(request))
    return await render(request, "kb_gaps.html", {"groups": groups, "days": HIT_DAYS,
                                                  "total": len(queries)})


# ---------------------------------------------------------------- import, export

async def kb_export(request: web.Request) -> web.StreamResponse:
    async with request.app[DB].session() as session, session.begin():
        rows = await kb_api.export_rows(session)
        audit(session, request["user"].username, "kb.export", "", rows=len(rows))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qa.xlsx"
        kb_api.write_table(path, rows)
        body = path.read_bytes()
    name = f"qa-{datetime.now():%Y%m%d}.xlsx"
    return web.Response(body=body, headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="{name}"'})


_PROBLEM = re.compile(r"^row (\d+), column ([^:]+): ")


def problem_zh(text: str) -> str:
    """"row 3, column answer: empty" → "第 3 行，answer 列：empty"."""
    return _PROBLEM.sub(lambda m: f"第 {m[1]} 行，{m[2]} 列：", text)


async def kb_import(request: web.Request) -> web.Response:
    """A CSV or XLSX upload, stored as drafts (never published from here), whole or not at all."""
    form = await request.post()
    upload = form.get("file")
    user = request["user"].username
    problems: list[str] = []
    suffix = Path(getattr(upload, "filename", "") or "").suffix.lower()
    if upload is None or not hasattr(upload, "file"):
        problems = ["请选择要导入的文件"]
    elif suffix not in (".csv", ".xlsx"):
        problems = ["只能导入 .csv 或 .xlsx 文件"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(upload.file.read())
            try:
                rows = kb_api.read_table(path)
            except kb_api.ImportRejected as exc:
                problems = [problem_zh(p) for p in exc.problems]
        if not problems:
            try:
                async with request.app[DB].session() as session, session.begin():
                    count = await kb_api.import_rows(session, rows, user, publish=False)
                    audit(session, user, "kb.import", getattr(upload, "filename", ""),
                          rows=count, published=False)
            except workflow.WorkflowError as exc:
                problems = [zh(exc)]
    if problems:
        return await render(request, "kb_import.html", {"problems": problems}, status=400)
    await flash(request, f"已导入 {count} 条，均为草稿，提交审核并通过后才会对群众生效")
    raise web.HTTPSeeOther(str(request.app.router["kb-list"].url_for()))


# ---------------------------------------------------------------- routes and their rules

def setup_kb_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/kb", kb_list, name="kb-list")
    r.add_get("/admin/kb/new", kb_new, name="kb-new")
    r.add_post("/admin/kb/new", kb_new, name="kb-new")
    r.add_get("/admin/kb/review", kb_review, name="kb-review")
    r.add_get("/admin/kb/try", kb_try, name="kb-hittest")
    r.add_get("/admin/kb/gaps", kb_gaps, name="kb-gaps")
    r.add_get("/admin/kb/export.xlsx", kb_export, name="kb-export")
    r.add_post("/admin/kb/import", kb_import, name="kb-upload")
    r.add_get("/admin/kb/{entry}", kb_entry, name="kb-entry")
    r.add_post("/admin/kb/{entry}/save", kb_save, name="kb-save")
    for step in ("submit", "approve", "reject", "retire", "rollback"):
        r.add_post(f"/admin/kb/{{entry}}/{step}", _action(step), name=f"kb-{step}")
    for name in ("kb-list", "kb-new", "kb-hittest", "kb-gaps", "kb-export", "kb-upload", "kb-entry",
                 "kb-save", "kb-submit", "kb-rollback"):
        allow(name, *EDITORS)
    for name in ("kb-review", "kb-approve", "kb-reject", "kb-retire"):
        allow(name, *REVIEWERS)
