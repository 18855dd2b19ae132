"""Case facts: kept up to date by case, rebuilt when the calendar changes, never doubled."""
from datetime import date

from sqlalchemy import func, select

from casework import facts, lifecycle
from casework.calendar import load_calendar, set_override
from casework.models import CaseFact
from casework.report import timeliness_report
from tests.casework.test_timeliness import NOW, china, directory, dispatched


async def _facts(db) -> dict[str, list[float]]:
    async with db.session() as session:
        rows = await session.execute(select(CaseFact.measure, CaseFact.value).order_by(CaseFact.id))
    found: dict[str, list[float]] = {}
    for measure, value in rows:
        found.setdefault(measure, []).append(value)
    return found


async def _refresh(db, now=NOW) -> int:
    async with db.session() as session, session.begin():
        return await facts.refresh(session, await load_calendar(session), now=now)


async def test_new_events_recompute_only_their_case(db):
    await directory(db)
    a = await dispatched(db, "o-a", china(2026, 11, 2, 10), "JH-CGJ")      # Mon, due Mon 9 Nov
    b = await dispatched(db, "o-b", china(2026, 11, 2, 11), "JH-ZJJ")
    assert await _refresh(db) == 2                   # first time: both cases
    assert await _refresh(db) == 0                   # nothing new (events are older than RECENT)
    await lifecycle.accept(db, a, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 3, 9))
    await lifecycle.reply(db, a, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 11, 5, 9))
    assert await _refresh(db) == 1                   # only case a
    got = await _facts(db)
    # Accepted Tue 3 Nov after dispatch Mon 2 Nov 10:30: 1 working day; replied Thu 5 Nov:
    # 3 working days after Mon 2 Nov, on time (due Mon 9 Nov).
    assert got["acceptance_wd"] == [1.0] and got["first_reply_wd"] == [3.0]
    assert got["on_time"] == [1.0] and got["replies"] == [1.0]
    assert b  # b has no measured step yet: no facts of its own
    assert await _refresh(db) == 0
    assert len((await _facts(db))["replies"]) == 1   # refreshing again doubles nothing


async def test_a_calendar_override_recomputes_every_case(db):
    await directory(db)
    a = await dispatched(db, "o-a", china(2026, 11, 2, 10), "JH-CGJ")
    await lifecycle.accept(db, a, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 2, 11))
    await lifecycle.reply(db, a, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 11, 5, 9))
    await _refresh(db)
    assert (await _facts(db))["first_reply_wd"] == [3.0]
    async with db.session() as session, session.begin():
        await set_override(session, date(2026, 11, 4), False, "本地假日")     # Wed becomes a holiday
    assert await _refresh(db) == 1
    assert (await _facts(db))["first_reply_wd"] == [2.0]


async def test_the_report_reads_facts_it_brought_up_to_date(db):
    await directory(db)
    a = await dispatched(db, "o-a", china(2026, 11, 2, 10), "JH-CGJ")
    await lifecycle.accept(db, a, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 2, 11))
    await lifecycle.reply(db, a, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 11, 12, 9))
    async with db.session() as session:
        report = await timeliness_report(session, date(2026, 11, 1), date(2026, 11, 30), "unit", now=NOW)
    # Replied Thu 12 Nov, 8 working days after Mon 2 Nov: late against Mon 9 Nov.
    assert report.total.values["on_time_rate"] == 0 and report.total.values["replies"] == 1
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(CaseFact)) > 0
