"""The Q&A edit form's 紧急通知有效至 (Version.notice_until, art. 15): set, kept, cleared, checked."""
from __future__ import annotations

from datetime import timedelta

from knowledge_base import workflow
from server.db import CHINA, utcnow
from tests.admin.test_kb_pages import as_user, page_after, post, row, seed, site  # noqa: F401

FORM = {"similar_questions": "", "category": "社保", "unit": "社保中心", "tags": "",
        "valid_from": "", "valid_to": "", "submit": "0"}


async def notices(db, ext: str) -> list:
    async with db.session() as session:
        return [v.notice_until for v in await workflow.versions(session, ext)]


async def test_the_notice_time_is_set_in_beijing_time_kept_and_cleared(site, db):
    await seed(site, db, [row("TZ-001", "停水通知", "明日停水。")])
    csrf = await as_user(site, db, "agent.li", "agent")
    until = (utcnow() + timedelta(days=2)).astimezone(CHINA).replace(second=0, microsecond=0)
    typed = until.strftime("%Y-%m-%dT%H:%M")
    html = await page_after(site, await post(site, "/admin/kb/TZ-001/save", csrf, base="1",
                                             question="停水通知", answer="明日8点至18点停水。",
                                             notice_until=typed, **FORM))
    assert (await notices(db, "TZ-001")) == [None, until]
    assert f'name="notice_until" value="{typed}"' in html          # the form shows it again
    assert "紧急通知，有效至 " + until.strftime("%Y-%m-%d %H:%M") in html
    # A form without the field (an older page) keeps it; an empty field clears it.
    await page_after(site, await post(site, "/admin/kb/TZ-001/save", csrf, base="2",
                                      question="停水通知", answer="明日停水。", **FORM))
    await page_after(site, await post(site, "/admin/kb/TZ-001/save", csrf, base="3",
                                      question="停水通知", answer="明日停水。", notice_until="",
                                      **FORM))
    assert (await notices(db, "TZ-001")) == [None, until, until, None]


async def test_a_bad_or_past_notice_time_is_refused_and_nothing_saved(site, db):
    await seed(site, db, [row("TZ-002", "停电通知", "明日停电。")])
    csrf = await as_user(site, db, "agent.li", "agent")
    for typed, message in (("2026/12/01 18:00", "紧急通知截止时间格式应为 2026-12-01T18:00"),
                           ("2026-12-01T18:00+08:00", "紧急通知截止时间格式应为"),
                           ("2020-01-01T08:00", "紧急通知截止时间须晚于现在")):
        resp = await post(site, "/admin/kb/TZ-002/save", csrf, base="1", question="停电通知",
                          answer="明日停电。", notice_until=typed, **FORM)
        assert resp.status == 400 and message in await resp.text(), typed
    resp = await post(site, "/admin/kb/new", csrf, entry_id="TZ-003", question="暴雨预警",
                      answer="请减少外出。", notice_until="2020-01-01T08:00", **FORM)
    assert resp.status == 400 and "紧急通知截止时间须晚于现在" in await resp.text()
    assert await notices(db, "TZ-002") == [None]
    later = (utcnow() + timedelta(hours=6)).astimezone(CHINA).strftime("%Y-%m-%dT%H:%M")
    await page_after(site, await post(site, "/admin/kb/new", csrf, entry_id="TZ-003",
                                      question="暴雨预警", answer="请减少外出。",
                                      notice_until=later, **FORM))
    [until] = await notices(db, "TZ-003")
    assert until.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M") == later
