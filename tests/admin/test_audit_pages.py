"""审计日志: admins search the audit log, page through it and export it; nobody else may."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select

from admin.audit_pages import detail_lines
from admin.models import AuditEntry
from tests.admin.conftest import signed_in

UTC = timezone.utc


async def seed(db, *rows: tuple) -> None:
    async with db.session() as session, session.begin():
        await session.execute(delete(AuditEntry))        # the sign-in's own rows
        for at, actor, action, target, detail in rows:
            session.add(AuditEntry(at=at, actor=actor, action=action, target=target, detail=detail))


def row_actions(html: str) -> list[str]:
    return re.findall(r'<td class="action"><code>([^<]*)</code></td>', html)


async def test_the_log_filters_newest_first_and_shows_china_time(make_client, db):
    client, _ = await signed_in(make_client, db, "root", "admin")
    day = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)      # 23:30 in China
    await seed(db,
               (day, "li.na", "inbox.claim", "conversation:1", {}),
               (day + timedelta(hours=1), "li.na", "inbox.reply", "conversation:1", {"message_id": 5}),
               (day + timedelta(days=2), "root", "user.deactivate", "li.na",
                {"before": {"active": True}, "after": {"active": False}, "sessions_ended": 2}),
               (day + timedelta(days=3), "zhang", "inboxes.other", "x_y", {}))
    html = await (await client.get("/admin/audit")).text()
    assert row_actions(html) == ["inboxes.other", "user.deactivate", "inbox.reply", "inbox.claim"]
    assert "2026-11-20 23:30:00" in html
    # The before/after shown readably.
    assert "<dt>active</dt>" in html and "<del>true</del> → <ins>false</ins>" in html
    assert "<dt>sessions_ended</dt>" in html
    # action is a prefix; actor and target a part; LIKE wildcards are taken literally.
    assert row_actions(await (await client.get("/admin/audit?action=inbox.")).text()) == [
        "inbox.reply", "inbox.claim"]
    assert row_actions(await (await client.get("/admin/audit?actor=LI.")).text()) == [
        "inbox.reply", "inbox.claim"]
    assert row_actions(await (await client.get("/admin/audit?target=x_y")).text()) == ["inboxes.other"]
    assert row_actions(await (await client.get("/admin/audit?target=x%25")).text()) == []
    # Dates are China days, both ends inclusive: 23:30 on the 20th belongs to the 20th.
    assert row_actions(await (await client.get("/admin/audit?from=2026-11-21&to=2026-11-22")
                              ).text()) == ["user.deactivate", "inbox.reply"]
    assert row_actions(await (await client.get("/admin/audit?to=2026-11-20")).text()) == ["inbox.claim"]
    resp = await client.get("/admin/audit?from=yesterday")
    assert resp.status == 400 and "日期格式" in await resp.text()


async def test_the_log_escapes_what_it_shows(make_client, db):
    client, _ = await signed_in(make_client, db, "root", "admin")
    payload = "<script>alert(1)</script>"
    await seed(db, (datetime.now(UTC), "<b>x</b>", "login.failed", payload,
                    {"reason": payload, "before": {"name": payload}, "after": {"name": "<i>"}}))
    html = await (await client.get("/admin/audit")).text()
    assert "<script>alert(1)" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<ins>&lt;i&gt;</ins>" in html


def test_detail_lines_show_changes_then_the_rest():
    lines = detail_lines({"before": {"a": 1}, "after": {"a": 2, "b": [1, "二"]}, "ip": "1.2.3.4"})
    assert lines == [
        {"key": "a", "before": "1", "after": "2", "change": True},
        {"key": "b", "before": "—", "after": '[1, "二"]', "change": True},
        {"key": "ip", "value": "1.2.3.4", "change": False}]
    assert detail_lines({"before": "x"}) == [{"key": "before", "value": "x", "change": False}]
    assert detail_lines(None) == []


async def test_a_hundred_a_page(make_client, db):
    client, _ = await signed_in(make_client, db, "root", "admin")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    await seed(db, *[(start + timedelta(minutes=i), "bot", f"test.{i:03d}", "", {})
                     for i in range(105)])
    html = await (await client.get("/admin/audit?action=test.")).text()
    actions = row_actions(html)
    assert len(actions) == 100 and actions[0] == "test.104" and actions[-1] == "test.005"
    assert 'href="?action=test.&amp;page=2"' in html and 'id="audit-prev"' not in html
    html = await (await client.get("/admin/audit?action=test.&page=2")).text()
    assert row_actions(html) == [f"test.{i:03d}" for i in range(4, -1, -1)]
    assert 'id="audit-next"' not in html and 'id="audit-prev"' in html


async def test_the_export_is_the_current_filter_as_csv_and_is_audited(make_client, db):
    client, _ = await signed_in(make_client, db, "root", "admin")
    now = datetime.now(UTC)
    await seed(db, (now - timedelta(minutes=2), "li.na", "inbox.reply", "conversation:1",
                    {"message_id": 5}),
               (now - timedelta(minutes=1), "=cmd|' /C calc'!A0", "inbox.claim", "-2+3", {}),
               (now, "root", "user.create", "wang", {}))
    html = await (await client.get("/admin/audit?action=inbox.")).text()
    assert 'href="/admin/audit/export?action=inbox."' in html
    resp = await client.get("/admin/audit/export?action=inbox.")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    body = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["时间（北京时间）", "操作人", "操作", "对象", "详情"]
    assert [r[1:4] for r in rows[1:]] == [["'=cmd|' /C calc'!A0", "inbox.claim", "'-2+3"],
                                          ["li.na", "inbox.reply", "conversation:1"]]
    assert rows[2][4] == '{"message_id": 5}'
    async with db.session() as session:
        exports = list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "audit.export")))
    assert [(e.actor, e.detail["filter"], e.detail["rows"]) for e in exports] == [
        ("root", {"action": "inbox."}, 2)]


@pytest.mark.parametrize("role", ["agent", "reviewer", "dispatcher", "unit_handler"])
async def test_only_admins_read_the_log(make_client, db, role):
    client, _ = await signed_in(make_client, db, f"u-{role}", role)
    assert (await client.get("/admin/audit")).status == 403
    assert (await client.get("/admin/audit/export")).status == 403
