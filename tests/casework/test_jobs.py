"""The case job: remind once, escalate once, close unrated replies, once across instances."""
import asyncio
from datetime import date, timedelta

from sqlalchemy import func, select

from bot.models import Message
from casework import jobs, lifecycle
from casework.models import Case, Event
from server.db import Database
from tests.casework.test_lifecycle import SUBMITTED, china, submit

# Complaints submitted on Wed 30 Sep 2026 are due on Tue 13 Oct (see test_lifecycle).
DUE = date(2026, 10, 13)


async def dispatched(db, sender="o-citizen") -> Case:
    case = await submit(db, sender=sender)
    case = await lifecycle.dispatch(db, case.number, "JH-CGJ", actor="disp", now=SUBMITTED)
    assert case.deadline == DUE
    return case


async def replied(db, at, sender="o-citizen") -> Case:
    case = await dispatched(db, sender)
    await lifecycle.accept(db, case.number, unit_id="JH-CGJ", actor="cgj", now=at)
    return await lifecycle.reply(db, case.number, unit_id="JH-CGJ", text="已处理。", actor="cgj", now=at)


async def named(db, name: str) -> list[Event]:
    async with db.session() as session:
        return list(await session.scalars(select(Event).where(Event.name == name).order_by(Event.id)))


async def test_a_reminder_the_working_day_before_the_deadline_once(db):
    case = await dispatched(db)
    # Fri 9 Oct: the next working day is the make-up Saturday, not the deadline.
    assert (await jobs.run_once(db, china(2026, 10, 9, 9))).reminded == []
    # Mon 12 Oct: the deadline is the next working day.
    assert (await jobs.run_once(db, china(2026, 10, 12, 9))).reminded == [case.number]
    assert (await jobs.run_once(db, china(2026, 10, 12, 9, 1))).reminded == []
    [event] = await named(db, jobs.CASE_DUE_SOON)
    assert (event.case_id, event.actor, event.detail) == (
        case.id, "system", {"unit_id": "JH-CGJ", "deadline": "2026-10-13"})


async def test_an_overdue_case_is_escalated_once_and_flagged(db):
    case = await dispatched(db)
    assert (await jobs.run_once(db, china(2026, 10, 13, 17))).escalated == []   # due today: not yet
    assert (await jobs.run_once(db, china(2026, 10, 14, 0, 5))).escalated == [case.number]
    assert (await jobs.run_once(db, china(2026, 10, 15, 9))).escalated == []
    [event] = await named(db, jobs.CASE_OVERDUE)
    assert event.detail == {"unit_id": "JH-CGJ", "deadline": "2026-10-13", "workdays_overdue": 1}
    async with db.session() as session:
        assert (await session.get(Case, case.id)).escalated_at is not None


async def test_an_approved_extension_gets_its_own_reminder(db):
    case = await dispatched(db)
    await lifecycle.accept(db, case.number, unit_id="JH-CGJ", actor="cgj", now=SUBMITTED)
    await jobs.run_once(db, china(2026, 10, 12, 9))
    await lifecycle.request_extension(db, case.number, unit_id="JH-CGJ", days=3, reason="检测",
                                      actor="cgj", now=china(2026, 10, 12, 10))
    await lifecycle.approve_extension(db, case.number, actor="disp", now=china(2026, 10, 12, 11))
    # Due Fri 16 Oct now: reminded again on Thu 15, not escalated on Wed 14.
    assert (await jobs.run_once(db, china(2026, 10, 14, 9))).escalated == []
    assert (await jobs.run_once(db, china(2026, 10, 15, 9))).reminded == [case.number]
    assert [e.detail["deadline"] for e in await named(db, jobs.CASE_DUE_SOON)] == [
        "2026-10-13", "2026-10-16"]


async def test_an_unrated_reply_is_closed_after_n_working_days(db):
    case = await replied(db, china(2026, 10, 14, 15))    # Wednesday
    # Three working days to rate it: Thu 15, Fri 16, Mon 19 Oct.
    assert (await jobs.run_once(db, china(2026, 10, 19, 23), autoclose_days=3)).closed == []
    done = await jobs.run_once(db, china(2026, 10, 20, 0, 1), autoclose_days=3)
    assert done.closed == [case.number]
    async with db.session() as session:
        case = await session.get(Case, case.id)
        last = await session.scalar(select(Message).where(Message.conversation_id == case.conversation_id)
                                    .order_by(Message.id.desc()).limit(1))
    assert case.status == "closed"
    [event] = await named(db, lifecycle.CASE_CLOSED)
    assert (event.actor, event.detail) == ("system", {"reason": "auto", "rating": None})
    assert last.text == f"您的办件 {case.number} 已办结，感谢您的支持。"
    assert (await jobs.run_once(db, china(2026, 10, 21, 9), autoclose_days=3)).closed == []


async def test_a_rated_reply_is_not_auto_closed(db):
    case = await replied(db, china(2026, 10, 14, 15))
    await lifecycle.rate(db, case.number, 5, actor="citizen", now=china(2026, 10, 14, 16))
    assert (await jobs.run_once(db, china(2026, 10, 30, 9))).closed == []


async def test_the_lease_is_held_by_one_instance_at_a_time(db):
    now = china(2026, 10, 12, 9)
    assert await jobs.claim(db, "t", "a", now)
    assert not await jobs.claim(db, "t", "b", now + timedelta(minutes=1))
    assert await jobs.claim(db, "t", "a", now + timedelta(minutes=1))          # renewed by its holder
    assert await jobs.claim(db, "t", "b", now + timedelta(minutes=7))          # lapsed: a died
    await jobs.release(db, "t", "b", now + timedelta(minutes=8))
    assert await jobs.claim(db, "t", "a", now + timedelta(minutes=8))


async def test_two_instances_racing_record_each_event_once(db):
    due_soon = await dispatched(db)
    async with db.session() as session, session.begin():      # one more case, long overdue
        late = Case(number="ZJ20260901-0001", day=date(2026, 9, 1), seq=1, case_type="complaint",
                    description="路灯不亮", status="in_progress", unit_id="JH-CGJ",
                    created_at=china(2026, 9, 1, 9), deadline=date(2026, 9, 8))
        session.add(late)
    old = await replied(db, china(2026, 10, 2, 9), "o-other")     # replied in the holiday
    now = china(2026, 10, 12, 9)
    other = Database(db.url)                           # a second server instance
    try:
        for _ in range(3):
            await asyncio.gather(jobs.run_once(db, now), jobs.run_once(other, now))
        # Without the lease, the actions alone are still once each.
        await asyncio.gather(jobs.sweep(db, now), jobs.sweep(other, now))
    finally:
        await other.dispose()
    async with db.session() as session:
        counts = dict((await session.execute(
            select(Event.name, func.count()).where(Event.actor == "system").group_by(Event.name))).all())
        statuses = {c.number: c.status for c in await session.scalars(select(Case))}
    assert counts == {"case_due_soon": 1, "case_overdue": 1, "case_closed": 1}
    assert statuses[old.number] == "closed" and statuses[due_soon.number] == "dispatched"
