"""审计日志: the audit log for admins — search, page through, export as CSV.

Filters (all optional, combined): actor (part of the username), action (a prefix: `inbox.`
finds every inbox action), target (part of it), from / to (dates in China time, both
inclusive). Newest first, 100 a page. The export gives the current filter as CSV and is
itself audited (`audit.export`).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import Select, select

from admin.api import audit
from admin.auth import render
from admin.models import AuditEntry
from admin.permissions import allow
from server.appkeys import DB
from server.db import CHINA, utcnow

PAGE = 100
MAX_EXPORT = 50_000


@dataclass
class Filter:
    actor: str = ""
    action: str = ""
    target: str = ""
    start: date | None = None
    end: date | None = None
    error: str = ""

    @classmethod
    def of(cls, query) -> "Filter":
        f = cls(**{k: " ".join(str(query.get(k, "")).split())[:128]
                   for k in ("actor", "action", "target")})
        for key, attr in (("from", "start"), ("to", "end")):
            value = str(query.get(key, "")).strip()
            if value:
                try:
                    setattr(f, attr, date.fromisoformat(value))
                except ValueError:
                    f.error = "日期格式应为 年-月-日，例如 2026-11-27"
        return f

    def params(self) -> dict[str, str]:
        out = {"actor": self.actor, "action": self.action, "target": self.target,
               "from": self.start.isoformat() if self.start else "",
               "to": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in out.items() if v}

    def apply(self, query: Select) -> Select:
        if self.actor:
            query = query.where(AuditEntry.actor.ilike(f"%{_like(self.actor)}%", escape="\\"))
        if self.action:
            query = query.where(AuditEntry.action.like(f"{_like(self.action)}%", escape="\\"))
        if self.target:
            query = query.where(AuditEntry.target.ilike(f"%{_like(self.target)}%", escape="\\"))
        if self.start:
            query = query.where(AuditEntry.at >= datetime.combine(self.start, time(), CHINA))
        if self.end:
            query = query.where(AuditEntry.at < datetime.combine(self.end + timedelta(days=1),
                                                                 time(), CHINA))
        return query


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def china_time(value: datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _show(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def detail_lines(detail: dict | None) -> list[dict]:
    """The detail readably: before → after per field, then the other keys; all as plain text."""
    detail = dict(detail or {})
    lines = []
    before, after = detail.pop("before", None), detail.pop("after", None)
    if isinstance(before, dict) or isinstance(after, dict):
        before, after = before if isinstance(before, dict) else {}, after if isinstance(after, dict) else {}
        for key in list(dict.fromkeys([*before, *after])):
            lines.append({"key": key, "before": _show(before.get(key, "—")) if key in before else "—",
                          "after": _show(after.get(key)) if key in after else "—", "change": True})
    else:
        if before is not None:
            detail["before"] = before
        if after is not None:
            detail["after"] = after
    for key, value in detail.items():
        lines.append({"key": key, "value": _show(value), "change": False})
    return lines


def _query(f: Filter) -> Select:
    return f.apply(select(AuditEntry)).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


async def audit_log(request: web.Request) -> web.Response:
    f = Filter.of(request.query)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    rows: list[AuditEntry] = []
    if not f.error:
        async with request.app[DB].session() as session:
            rows = list(await session.scalars(_query(f).offset((page - 1) * PAGE).limit(PAGE + 1)))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    params = f.params()
    return await render(request, "audit_log.html", {
        "rows": [{"when": china_time(r.at), "actor": r.actor, "action": r.action,
                  "target": r.target, "lines": detail_lines(r.detail)} for r in rows],
        "f": f, "form": {"actor": f.actor, "action": f.action, "target": f.target,
                         "from": params.get("from", ""), "to": params.get("to", "")},
        "page": page, "per_page": PAGE,
        "prev_url": f"?{urlencode({**params, 'page': page - 1})}" if page > 1 else None,
        "next_url": f"?{urlencode({**params, 'page': page + 1})}" if more else None,
        "export_url": "/admin/audit/export" + (f"?{urlencode(params)}" if params else ""),
    }, status=400 if f.error else 200)


def _cell(value: str) -> str:
    """No formula injection when the CSV is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def export(request: web.Request) -> web.Response:
    f = Filter.of(request.query)
    if f.error:
        raise web.HTTPBadRequest(text=f.error)
    async with request.app[DB].session() as session:
        rows = list(await session.scalars(_query(f).limit(MAX_EXPORT)))
    out = io.StringIO()
    out.write("\ufeff")                      # Excel reads UTF-8 with the BOM
    writer = csv.writer(out)
    writer.writerow(["时间（北京时间）", "操作人", "操作", "对象", "详情"])
    for r in rows:
        writer.writerow([china_time(r.at), _cell(r.actor), _cell(r.action), _cell(r.target),
                         _cell(json.dumps(r.detail or {}, ensure_ascii=False, default=str))])
    async with request.app[DB].session() as session, session.begin():
        audit(session, request["user"].username, "audit.export", "audit_log",
              filter=f.params(), rows=len(rows), truncated=len(rows) >= MAX_EXPORT)
    name = f"audit-{utcnow().astimezone(CHINA):%Y%m%d-%H%M}.csv"
    return web.Response(body=out.getvalue().encode("utf-8"), content_type="text/csv",
                        charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def setup_audit_pages(app: web.Application) -> None:
    app.router.add_get("/admin/audit", audit_log, name="audit-log")
    app.router.add_get("/admin/audit/export", export, name="audit-export")
    allow("audit-log", "admin")
    allow("audit-export", "admin")
