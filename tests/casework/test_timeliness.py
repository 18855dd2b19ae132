"""Timeliness reports over a real event log, with hand-computed expectations."""
from datetime import date, datetime

import pytest

from admin.models import User
from bot import api as bot_api
from casework import api as casework
from casework import events, lifecycle
from casework.lifecycle import TransitionRefused
from casework.models import Case, Unit
from casework.report import all_cuts, timeliness_report
from server.db import CHINA

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=CHINA)        # Monday


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


async def directory(db) -> None:
    async with db.session() as session, session.begin():
        session.add_all([
            Unit(id="DISPATCH", name="分派中心", is_dispatcher=True),
            Unit(id="CITY", name="市政府"),
            Unit(id="JH-CGJ", name="城管局", parent_id="CITY"),
            Unit(id="JH-ZJJ", name="住建局", parent_id="CITY", duty_start="08:30", duty_end="17:30"),
            Unit(id="NIGHT", name="夜间热线", duty_start="20:00", duty_end="08:00")])
        await session.flush()
        session.add_all([User(username="zjj-agent", role="agent", unit_id="JH-ZJJ", password_hash="x"),
                         User(username="night-agent", role="agent", unit_id="NIGHT", password_hash="x")])


async def submit(db, sender: str, at: datetime) -> str:
    conv = await bot_api.open_conversation(db, "wechat", "default", sender)
    done = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description=f"{sender} 反映的问题", conversation_id=conv.id), now=at)
    return done.case.number


async def dispatched(db, sender, at, unit) -> str:
    number = await submit(db, sender, at)
    await lifecycle.dispatch(db, number, unit, actor="disp", now=at.replace(minute=30))
    return number


async def build_history(db) -> None:
    """Cases A–E of the tests below (all complaints: 5 working days)."""
    await directory(db)
    # A: National Day. Submitted Wed 30 Sep 10:00, dispatched 10:30 (due Tue 13 Oct), accepted
    # Thu 8 Oct, replied on the make-up Saturday 10 Oct 15:00, closed Mon 12 Oct.
    a = await dispatched(db, "o-a", china(2026, 9, 30, 10), "JH-CGJ")
    await lifecycle.accept(db, a, unit_id="JH-CGJ", actor="cgj", now=china(2026, 10, 8, 9))
    await lifecycle.reply(db, a, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 10, 10, 15))
    await lifecycle.close(db, a, actor="disp", now=china(2026, 10, 12, 9))
    # B: waited 2 days for the citizen, and an extension. Mon 2 Nov 10:00, due Mon 9 Nov;
    # waits Tue 3 → Thu 5 Nov 10:00; 2 more days approved → Wed 11 Nov; replied Fri 13 Nov.
    b = await dispatched(db, "o-b", china(2026, 11, 2, 10), "JH-CGJ")
    await lifecycle.accept(db, b, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 2, 11))
    await lifecycle.await_citizen(db, b, "cgj", "请提供具体门牌号", china(2026, 11, 3, 10))
    with pytest.raises(TransitionRefused, match="已在等待"):
        await lifecycle.await_citizen(db, b, "cgj", "再问一次", china(2026, 11, 3, 11))
    await lifecycle.citizen_answered(db, b, china(2026, 11, 5, 10))
    await lifecycle.request_extension(db, b, unit_id="JH-CGJ", days=2, reason="需检测", actor="cgj",
                                      now=china(2026, 11, 6, 9))
    await lifecycle.approve_extension(db, b, actor="disp", now=china(2026, 11, 6, 10))
    await lifecycle.reply(db, b, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 11, 13, 10))
    # C: reopened. Mon 16 Nov 09:00, due Mon 23 Nov; accepted 10:00; replied Wed 18 Nov; rated 1
    # on Thu 19 Nov → reopened, due 5 working days after Thu 19: 20, 23, 24, 25, 26 = Thu 26 Nov;
    # replied again Fri 27 Nov (late), rated 5 on Sat 28 Nov.
    c = await dispatched(db, "o-c", china(2026, 11, 16, 9), "JH-ZJJ")
    await lifecycle.accept(db, c, unit_id="JH-ZJJ", actor="zjj", now=china(2026, 11, 16, 10))
    await lifecycle.reply(db, c, unit_id="JH-ZJJ", text="已处理", actor="zjj", now=china(2026, 11, 18, 10))
    reopened = await lifecycle.rate(db, c, 1, actor="citizen", now=china(2026, 11, 19, 10))
    assert (reopened.status, reopened.deadline) == ("reopened", date(2026, 11, 26))
    await lifecycle.reply(db, c, unit_id="JH-ZJJ", text="再处理", actor="zjj", now=china(2026, 11, 27, 10))
    await lifecycle.rate(db, c, 5, actor="citizen", now=china(2026, 11, 28, 10))
    # D: due Mon 23 Nov, still in progress on Mon 30 Nov: overdue now.
    d = await dispatched(db, "o-d", china(2026, 11, 16, 9), "JH-ZJJ")
    await lifecycle.accept(db, d, unit_id="JH-ZJJ", actor="zjj", now=china(2026, 11, 16, 11))
    # E: also due Mon 23 Nov, but waiting for the citizen since Fri 20 Nov: not overdue.
    e = await dispatched(db, "o-e", china(2026, 11, 16, 9), "JH-ZJJ")
    await lifecycle.await_citizen(db, e, "zjj", "请补充照片", china(2026, 11, 20, 10))


async def test_case_measures_over_the_fourth_quarter(db):
    await build_history(db)
    async with db.session() as session:
        report = await timeliness_report(session, date(2026, 10, 1), date(2026, 12, 31), now=NOW)
    v = report.total.values
    # Replies: A 1, B 1, C 2 = 4.
    assert v["replies"] == 4
    # On time: A (10 Oct ≤ 13 Oct); B (13 Nov ≤ 11 Nov moved by the 2 waited days = Fri 13 Nov);
    # C's first (18 ≤ 23 Nov); not C's second (27 > 26 Nov). 3 of 4 = 75 %.
    assert v["on_time_rate"] == pytest.approx(75.0)
    # First reply in working days: A 3 (8, 9, 10 Oct); B 9 (3–13 Nov) − 2 waited = 7; C 2 (17, 18).
    assert v["first_reply_wd"] == pytest.approx((3 + 7 + 2) / 3)
    assert v["first_reply_median_wd"] == 3
    # Acceptance: A dispatched Wed 30 Sep → accepted Thu 8 Oct = 1; B, C, D the same day = 0.
    assert v["acceptance_wd"] == pytest.approx(1 / 4)
    # Resolution: A only, 30 Sep → Mon 12 Oct: 8, 9, 10, 12 = 4.
    assert v["resolution_wd"] == 4
    # Ratings 1 and 5: one of two satisfied; C's two replies rated, A's and B's not: 2 of 4.
    assert (v["satisfaction_rate"], v["ratings"], v["rating_coverage"]) == (50.0, 2, 50.0)
    # D is overdue; E waits for the citizen.
    assert v["overdue_now"] == 1
    # Calendar days to the first reply: C 2 d 1 h, A 10 d 5 h, B 11 d; the median is A's.
    assert v["first_reply_median_days"] == pytest.approx(10 + 5 / 24)
    assert report.previous_first == date(2026, 7, 1)


async def test_unit_cut_rolls_up_and_month_cut_compares_with_the_month_before(db):
    await build_history(db)
    async with db.session() as session:
        reports = await all_cuts(session, date(2026, 10, 1), date(2026, 11, 30),
                                 ["unit", "month"], now=NOW)
    units = {r.key: r for r in reports["unit"].rows}
    # A, B at 城管局 (2 replies), C at 住建局 (2 replies); 市政府 is the parent of both: 4.
    assert {k: r.values["replies"] for k, r in units.items()} == {"CITY": 4, "JH-CGJ": 2, "JH-ZJJ": 2}
    assert units["JH-ZJJ"].parent == "CITY" and units["JH-ZJJ"].label == "住建局"
    assert units["JH-ZJJ"].values["overdue_now"] == 1 and units["JH-CGJ"].values["overdue_now"] == 0
    assert units["JH-CGJ"].values["on_time_rate"] == 100.0     # A and B
    assert units["JH-ZJJ"].values["on_time_rate"] == 50.0      # C: one of two
    months = {r.key: r for r in reports["month"].rows}
    # October: A's reply; its previous period (September) had none. November: B, C, C; previous 1.
    assert (months["2026-10"].values["replies"], months["2026-10"].previous["replies"]) == (1, 0)
    assert (months["2026-11"].values["replies"], months["2026-11"].previous["replies"]) == (3, 1)
    # The whole window (61 days) against the 61 days before it (1 Aug – 30 Sep): nothing replied.
    assert reports["month"].total.previous["replies"] == 0


async def test_handoff_waits_in_the_duty_hours_of_the_answering_unit(db):
    await directory(db)
    day_conv = await bot_api.open_conversation(db, "webchat", "", "c-day")
    night_conv = await bot_api.open_conversation(db, "wechat", "default", "c-night")
    async with db.session() as session, session.begin():
        # 住建局 08:30–17:30: Thu 26 Nov 17:00 → Fri 27 Nov 09:00 = 30 + 30 min = 60 working min.
        events.record(session, events.STAFF_FIRST_REPLY, at=china(2026, 11, 27, 9),
                      since=china(2026, 11, 26, 17), conversation_id=day_conv.id, actor="zjj-agent")
        # 夜间热线 20:00–08:00: Fri 27 Nov 23:00 → Mon 30 Nov 21:00 = 9 h (Fri night shift) +
        # no weekend shifts + 1 h (Mon 20:00–21:00) = 600 working min.
        events.record(session, events.STAFF_FIRST_REPLY, at=china(2026, 11, 30, 21),
                      since=china(2026, 11, 27, 23), conversation_id=night_conv.id, actor="night-agent")
    async with db.session() as session:
        reports = await all_cuts(session, date(2026, 11, 1), date(2026, 11, 30), ["unit", "channel"],
                                 now=NOW)
    units = {r.key: r.values["handoff_wait_min"] for r in reports["unit"].rows}
    assert units == {"CITY": 60.0, "JH-ZJJ": 60.0, "NIGHT": 600.0}
    channels = {r.key: r.values["handoff_wait_min"] for r in reports["channel"].rows}
    assert channels == {"webchat": 60.0, "wechat/default": 600.0}
    assert reports["unit"].total.values["handoff_wait_min"] == 330.0      # (60 + 600) / 2


async def test_consultations_bot_latency_and_delivery_failures(db):
    from knowledge_base.models import ANSWERED, UNANSWERED, Query

    await directory(db)
    convs = [await bot_api.open_conversation(db, "wechat", "default", f"o-{i}") for i in range(4)]
    day = china(2026, 11, 10, 10)
    async with db.session() as session, session.begin():
        for conv in convs:
            events.record(session, events.MESSAGE_RECEIVED, at=day, conversation_id=conv.id)
        # 0: answered by the base (bot reply in 2 s); 1: no answer and no hand-off (4 s);
        # 2: no answer, then handed off; 3: only chatted (no search), bot resolved.
        session.add_all([Query(conversation_id=convs[0].id, text="q", outcome=ANSWERED, at=day),
                         Query(conversation_id=convs[1].id, text="q", outcome=UNANSWERED, at=day),
                         Query(conversation_id=convs[2].id, text="q", outcome=UNANSWERED, at=day)])
        events.record(session, events.BOT_REPLIED, at=day, since=china(2026, 11, 10, 9, 59, 58),
                      conversation_id=convs[0].id)
        events.record(session, events.BOT_REPLIED, at=day, since=china(2026, 11, 10, 9, 59, 56),
                      conversation_id=convs[1].id)
        events.record(session, events.HANDOFF_REQUESTED, at=day, conversation_id=convs[2].id)
        events.record(session, events.DELIVERY_FAILED, at=day, conversation_id=convs[2].id,
                      reason="window closed")
    async with db.session() as session:
        v = (await timeliness_report(session, date(2026, 11, 1), date(2026, 11, 30), now=NOW)).total.values
    # 4 consultations: 1 handed off (25 %), 1 unanswered, 2 resolved by the bot (50 %);
    # unanswered among the 3 searched: 1/3.
    assert (v["consultations"], v["handed_off_share"], v["bot_resolved_share"]) == (4, 25.0, 50.0)
    assert v["unanswered_rate"] == pytest.approx(100 / 3)
    assert v["bot_reply_s"] == 3.0                   # (2 + 4) / 2
    assert v["delivery_failures"] == 1
