"""Home-page alerts from the Q&A base and the calendar, with hand-set dates."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import update

from casework import alerts
from casework.calendar import set_override
from knowledge_base import workflow
from knowledge_base.models import Version
from server.db import CHINA

TODAY = date(2026, 11, 27)        # 2027 is not in chinesecalendar


async def publish(db, entry: str, *, valid_to: date | None = None, published: date = TODAY) -> None:
    async with db.session() as session, session.begin():
        version = await workflow.new_version(session, entry, "author", question=f"{entry}怎么办",
                                             answer="请携带身份证办理。", valid_to=valid_to)
        await workflow.publish(session, version, "reviewer")
        at = datetime(published.year, published.month, published.day, 9, tzinfo=CHINA)
        await session.execute(update(Version).where(Version.id == version.id).values(published_at=at))


async def kinds(db, today: date = TODAY) -> dict[str, alerts.Alert]:
    async with db.session() as session:
        found = await alerts.alerts(session, today)
    assert len({a.kind for a in found}) == len(found)
    return {a.kind: a for a in found}


async def test_an_expired_entry_and_one_due_for_review(db):
    await publish(db, "SB-001", valid_to=TODAY - timedelta(days=1))
    await publish(db, "SB-002", valid_to=TODAY + timedelta(days=10))
    await publish(db, "SB-003", valid_to=TODAY + timedelta(days=31))
    await publish(db, "SB-004")
    found = await kinds(db)
    expired, due = found["kb_expired"], found["kb_review_due"]
    assert expired.level == "danger" and "1 条问答已过期" in expired.message and "SB-001" in expired.message
    assert (expired.route, expired.query) == ("kb-list", {"expired": "1"})
    assert due.level == "warning" and "SB-002" in due.message and "SB-003" not in due.message
    assert "kb_stale" not in found
    # On the entry's last valid day it is due for review, not expired.
    assert "kb_expired" not in await kinds(db, TODAY - timedelta(days=1))


async def test_no_new_published_content_for_two_weeks(db):
    found = await kinds(db)
    assert found["kb_stale"].message == "问答库尚无已发布的内容。"
    await publish(db, "SB-001", published=TODAY - timedelta(days=13))
    assert "kb_stale" not in await kinds(db)
    stale = (await kinds(db, TODAY + timedelta(days=1)))["kb_stale"]
    assert stale.level == "warning" and "已 14 天没有发布新内容" in stale.message
    assert "2026-11-14" in stale.message


async def test_the_calendar_missing_next_year_from_october_and_this_year_always(db):
    await publish(db, "SB-001")
    assert "calendar_missing" not in await kinds(db, date(2026, 9, 30))
    missing = (await kinds(db, date(2026, 10, 1)))["calendar_missing"]
    assert missing.level == "warning" and "2027 年" in missing.message and "已手工设置 0 天" in missing.message
    async with db.session() as session, session.begin():
        await set_override(session, date(2027, 1, 1), False, "元旦")
    assert "已手工设置 1 天" in (await kinds(db))["calendar_missing"].message
    this_year = (await kinds(db, date(2027, 3, 1)))
    assert this_year["calendar_missing"].level == "danger"
    assert list(this_year)[0] == "calendar_missing"          # dangers first


async def test_another_source_of_the_same_shape_can_be_added(db, monkeypatch):
    async def low_rates(session, today):
        return [alerts.Alert("unit_on_time", "danger", "人社局按期办结率低于90%", "unit-cases")]

    monkeypatch.setattr(alerts, "SOURCES", [*alerts.SOURCES, low_rates])
    await publish(db, "SB-001")
    assert list(await kinds(db)) == ["unit_on_time", "calendar_missing"]


async def test_units_below_the_on_time_threshold_this_quarter(db):
    from casework import lifecycle
    from tests.casework.test_timeliness import china, directory, dispatched

    await directory(db)
    # JH-CGJ: 5 replies this quarter, 4 of them late (due 5 working days after Mon 2 Nov).
    for i in range(5):
        number = await dispatched(db, f"o-{i}", china(2026, 11, 2, 10), "JH-CGJ")
        await lifecycle.accept(db, number, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 2, 11))
        replied = china(2026, 11, 4 if i == 0 else 20, 10)
        await lifecycle.reply(db, number, unit_id="JH-CGJ", text="已处理", actor="cgj", now=replied)
    # JH-ZJJ: one late reply only — too few to judge.
    number = await dispatched(db, "o-z", china(2026, 11, 2, 10), "JH-ZJJ")
    await lifecycle.accept(db, number, unit_id="JH-ZJJ", actor="zjj", now=china(2026, 11, 2, 11))
    await lifecycle.reply(db, number, unit_id="JH-ZJJ", text="已处理", actor="zjj", now=china(2026, 11, 20, 10))
    alerts._unit_alerts_cache.clear()
    async with db.session() as session:
        found = await alerts.unit_alerts(session, date(2026, 11, 30))
    assert [a.kind for a in found] == ["unit_on_time_rate"]
    # The threshold is the assessment's target (95 % by default). 城管局: 1 of 5 on time; the
    # parent 市政府 rolls up those 5 and 住建局's one: 1 of 6; 住建局 alone is not judged.
    assert found[0].message == "本季度 2 个单位按期答复率低于 95%：市政府（16.7%）、城管局（20.0%）。"
    assert found[0].route == "report-timeliness" and found[0].query["from"] == "2026-10-01"
