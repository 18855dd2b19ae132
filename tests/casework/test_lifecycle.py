"""The 12345 closed loop as a dispatcher, a unit handler and a citizen see it."""
import asyncio
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from bot import api as bot_api
from bot.actions.service import ActionRate
from bot.models import Message
from casework import api as casework
from casework import lifecycle
from casework.lifecycle import TransitionRefused
from casework.models import Case, Event, ExtensionRequest, Unit
from channels.wechat.models import Delivery
from server.db import CHINA


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


SUBMITTED = china(2026, 9, 30, 10, 0)          # Wednesday, the day before National Day


async def directory(db) -> None:
    async with db.session() as session, session.begin():
        for unit in (Unit(id="DISPATCH", name="分派中心", is_dispatcher=True),
                     Unit(id="JH-ZJJ", name="住建局"), Unit(id="JH-CGJ", name="城管局")):
            await session.merge(unit)


async def submit(db, channel="wechat", sender="o-citizen", at=SUBMITTED) -> Case:
    await directory(db)
    conv = await bot_api.open_conversation(db, channel, "default" if channel == "wechat" else "", sender)
    done = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="楼下饭店油烟太大，熏得没法开窗", conversation_id=conv.id,
        phone="13812345678"), now=at)
    return done.case


async def trail(db, case: Case) -> list[tuple[str, str | None]]:
    async with db.session() as session:
        rows = await session.scalars(select(Event).where(Event.case_id == case.id).order_by(Event.id))
        return [(e.name, e.actor) for e in rows]


async def outbound(db, case: Case) -> list[Message]:
    async with db.session() as session:
        return list(await session.scalars(select(Message).where(
            Message.conversation_id == case.conversation_id, Message.direction == "out")
            .order_by(Message.id)))


async def test_the_whole_loop_from_submission_to_closing(db):
    case = await submit(db)
    n = case.number
    # National Day 2026: 1–7 Oct off, Sat 10 Oct worked. Counting from Wed 30 Sep: Thu 8 Oct is
    # day 1, Fri 9 day 2, Sat 10 day 3, Mon 12 day 4, Tue 13 Oct day 5 = the complaint deadline.
    case = await lifecycle.dispatch(db, n, "JH-ZJJ", actor="disp", now=china(2026, 9, 30, 11))
    assert (case.status, case.unit_id, case.deadline) == ("dispatched", "JH-ZJJ", date(2026, 10, 13))

    # Fri 9 Oct is the 2nd working day after the dispatch: still time to return it.
    case = await lifecycle.return_misrouted(db, n, unit_id="JH-ZJJ", reason="油烟归城管管",
                                            actor="zjj", now=china(2026, 10, 9, 9))
    assert (case.status, case.unit_id) == ("returned", "DISPATCH")
    with pytest.raises(TransitionRefused, match="请派给其他单位"):
        await lifecycle.dispatch(db, n, "JH-ZJJ", reason="再看看", actor="disp", now=china(2026, 10, 9, 10))
    with pytest.raises(TransitionRefused, match="需要填写理由"):
        await lifecycle.dispatch(db, n, "JH-CGJ", actor="disp", now=china(2026, 10, 9, 10))
    case = await lifecycle.dispatch(db, n, "JH-CGJ", reason="餐饮油烟属城管", actor="disp",
                                    now=china(2026, 10, 9, 10))
    assert (case.status, case.unit_id, case.deadline) == ("dispatched", "JH-CGJ", date(2026, 10, 13))

    case = await lifecycle.accept(db, n, unit_id="JH-CGJ", actor="cgj", now=china(2026, 10, 9, 11))
    assert case.status == "in_progress"
    request = await lifecycle.request_extension(db, n, unit_id="JH-CGJ", days=2, reason="需现场检测",
                                                actor="cgj", now=china(2026, 10, 10, 9))
    assert request.status == "pending"
    case = await lifecycle.approve_extension(db, n, actor="disp", now=china(2026, 10, 10, 10))
    # Two working days after Tue 13 Oct: Wed 14, Thu 15.
    assert case.deadline == date(2026, 10, 15)
    async with db.session() as session:
        request = await session.get(ExtensionRequest, request.id)
    assert (request.status, request.decided_by) == ("approved", "disp")

    case = await lifecycle.reply(db, n, unit_id="JH-CGJ", text="已责令饭店加装油烟净化器并复查。",
                                 actor="cgj", now=china(2026, 10, 14, 15))
    assert (case.status, case.reply_text) == ("replied", "已责令饭店加装油烟净化器并复查。")
    told = await outbound(db, case)
    assert [m.text for m in told][-2:] == [
        f"您的办件 {n} 已由城管局答复：\n已责令饭店加装油烟净化器并复查。", lifecycle.RATING_QUESTION]
    assert {(m.source, m.kind, m.source_ref) for m in told} == {("unit", "case", f"case:{n}")}
    async with db.session() as session:        # WeChat: queued for the customer-service API
        queued = list(await session.scalars(select(Delivery.message_id).order_by(Delivery.id)))
    assert queued == [m.id for m in told]

    case = await lifecycle.rate(db, n, 5, actor="citizen", now=china(2026, 10, 14, 16))
    assert (case.status, case.rating) == ("rated", 5)
    case = await lifecycle.close(db, n, actor="disp", now=china(2026, 10, 15, 9))
    assert case.status == "closed" and casework.STATUS_NAMES[case.status] == "已办结"
    assert await trail(db, case) == [
        ("case_submitted", None), ("case_dispatched", "disp"), ("case_returned", "zjj"),
        ("case_dispatched", "disp"), ("case_accepted", "cgj"), ("case_extension_requested", "cgj"),
        ("case_extension_approved", "disp"), ("case_replied", "cgj"), ("rating_given", "citizen"),
        ("case_closed", "disp")]
    async with db.session() as session:
        returned = await session.scalar(select(Event).where(Event.name == "case_returned"))
    assert returned.detail == {"unit_id": "JH-ZJJ", "reason": "油烟归城管管", "workdays_after_dispatch": 2}


async def test_a_web_chat_reply_is_stored_in_the_conversation_and_not_queued(db):
    case = await submit(db, channel="web", sender="web-0123456789abcdef")
    await lifecycle.dispatch(db, case.number, "JH-CGJ", actor="disp", now=SUBMITTED)
    await lifecycle.accept(db, case.number, unit_id="JH-CGJ", actor="cgj", now=SUBMITTED)
    await lifecycle.reply(db, case.number, unit_id="JH-CGJ", text="已处理。", actor="cgj", now=SUBMITTED)
    assert [m.text for m in await outbound(db, case)][-1] == lifecycle.RATING_QUESTION
    async with db.session() as session:
        assert list(await session.scalars(select(Delivery))) == []


async def test_return_is_refused_after_two_working_days(db):
    case = await submit(db)
    await lifecycle.dispatch(db, case.number, "JH-ZJJ", actor="disp", now=china(2026, 9, 30, 11))
    # Sat 10 Oct (a make-up workday) is the 3rd working day after Wed 30 Sep.
    with pytest.raises(TransitionRefused, match="派单已 3 个工作日，只能在派单后 2 个工作日内"):
        await lifecycle.return_misrouted(db, case.number, unit_id="JH-ZJJ", reason="不归我们管",
                                         actor="zjj", now=china(2026, 10, 10, 9))
    assert [name for name, _ in await trail(db, case)] == ["case_submitted", "case_dispatched"]


async def test_a_unit_cannot_act_on_another_units_case(db):
    case = await submit(db)
    await lifecycle.dispatch(db, case.number, "JH-ZJJ", actor="disp", now=SUBMITTED)
    n = case.number
    for attempt in (
        lifecycle.accept(db, n, unit_id="JH-CGJ", actor="cgj", now=SUBMITTED),
        lifecycle.return_misrouted(db, n, unit_id="JH-CGJ", reason="x", actor="cgj", now=SUBMITTED),
        lifecycle.reply(db, n, unit_id="JH-CGJ", text="x", actor="cgj", now=SUBMITTED),
        lifecycle.request_extension(db, n, unit_id="JH-CGJ", days=1, reason="x", actor="cgj",
                                    now=SUBMITTED),
    ):
        with pytest.raises(TransitionRefused, match="由 JH-ZJJ 承办，不是 JH-CGJ"):
            await attempt
    # Nor may the right unit skip a step: a reply needs the case accepted first.
    with pytest.raises(TransitionRefused, match="当前为“已派单”，只有.*时才能答复"):
        await lifecycle.reply(db, n, unit_id="JH-ZJJ", text="x", actor="zjj", now=SUBMITTED)
    async with db.session() as session:
        assert (await session.get(Case, case.id)).status == "dispatched"


async def test_a_refused_extension_keeps_the_deadline(db):
    case = await submit(db)
    await lifecycle.dispatch(db, case.number, "JH-CGJ", actor="disp", now=SUBMITTED)
    await lifecycle.accept(db, case.number, unit_id="JH-CGJ", actor="cgj", now=SUBMITTED)
    await lifecycle.request_extension(db, case.number, unit_id="JH-CGJ", days=3, reason="人手不足",
                                      actor="cgj", now=SUBMITTED)
    with pytest.raises(TransitionRefused, match="已有一个延期申请"):
        await lifecycle.request_extension(db, case.number, unit_id="JH-CGJ", days=1, reason="再延",
                                          actor="cgj", now=SUBMITTED)
    case = await lifecycle.refuse_extension(db, case.number, actor="disp", reason="可按期办结",
                                            now=SUBMITTED)
    assert case.deadline == date(2026, 10, 13)
    with pytest.raises(TransitionRefused, match="没有待审批的延期申请"):
        await lifecycle.approve_extension(db, case.number, actor="disp", now=SUBMITTED)


async def test_a_dissatisfied_rating_through_the_bot_reopens_the_case(db):
    case = await submit(db)
    n = case.number
    await lifecycle.dispatch(db, n, "JH-CGJ", actor="disp", now=SUBMITTED)
    await lifecycle.accept(db, n, unit_id="JH-CGJ", actor="cgj", now=SUBMITTED)
    await lifecycle.reply(db, n, unit_id="JH-CGJ", text="已处理。", actor="cgj",
                          now=china(2026, 10, 12, 15))
    # The citizen answers the rating question in the chat.
    dispatcher = CollectingDispatcher()
    tracker = Tracker(str(case.conversation_id), {"rating": None},
                      {"text": "不满意，油烟还是很大", "intent": {"name": "rate"}}, [], False, None, None,
                      "action_listen")
    await ActionRate(SimpleNamespace(db=db, deadline_days=None)).run(dispatcher, tracker, {})
    async with db.session() as session:
        case = await session.get(Case, case.id)
        rating = await session.scalar(select(Event).where(Event.name == "rating_given"))
    assert (case.status, case.unit_id, case.rating) == ("reopened", "JH-CGJ", 2)
    assert (rating.case_id, rating.conversation_id, rating.detail) == (
        case.id, case.conversation_id, {"score": 2})
    [said] = [m["custom"]["text"] for m in dispatcher.messages]
    assert f"{n} 已重新交由承办单位办理" in said and f"{case.deadline:%Y-%m-%d}" in said
    # A new deadline of 5 working days from the rating, and the unit works it again.
    assert case.deadline > date(2026, 10, 15)
    case = await lifecycle.reply(db, n, unit_id="JH-CGJ", text="已复查，净化器已安装。", actor="cgj",
                                 now=china(2026, 10, 15, 10))
    assert (case.status, case.rating) == ("replied", None)
    case = await lifecycle.rate(db, n, 4, actor="citizen", now=china(2026, 10, 15, 11))
    assert case.status == "rated"
    with pytest.raises(TransitionRefused, match="当前为“已评价”，只有“已答复”时才能评价"):
        await lifecycle.rate(db, n, 1, actor="citizen", now=china(2026, 10, 15, 12))


async def test_a_rating_without_a_replied_case_stays_on_the_conversation(db):
    case = await submit(db)
    dispatcher = CollectingDispatcher()
    tracker = Tracker(str(case.conversation_id), {"rating": None}, {"text": "满意"}, [], False,
                      None, None, "action_listen")
    await ActionRate(SimpleNamespace(db=db, deadline_days=None)).run(dispatcher, tracker, {})
    async with db.session() as session:
        rating = await session.scalar(select(Event).where(Event.name == "rating_given"))
    assert (rating.case_id, rating.conversation_id) == (None, case.conversation_id)
    assert dispatcher.messages[0]["custom"]["text"] == "感谢您的评价，我们会继续努力！"


async def test_a_deadline_set_at_intake_is_kept_at_dispatch(db):
    case = await submit(db, at=SUBMITTED + timedelta(days=60))
    async with db.session() as session, session.begin():
        (await session.get(Case, case.id)).deadline = date(2026, 12, 4)
    case = await lifecycle.dispatch(db, case.number, "JH-CGJ", actor="disp", now=SUBMITTED)
    assert case.deadline == date(2026, 12, 4)


async def test_staff_work_a_case_from_the_command_line(db):
    from tests.server.test_cli import govchat

    case = await submit(db)
    n = case.number
    ok = govchat(db.url, "cases", "dispatch", n, "--unit", "JH-CGJ", "--as", "disp")
    assert ok.returncode == 0 and f"{n}: dispatched, unit JH-CGJ, deadline 2026-10-13" in ok.stdout
    refused = govchat(db.url, "cases", "accept", n, "--unit", "JH-ZJJ", "--as", "zjj")
    assert refused.returncode == 2 and "由 JH-CGJ 承办，不是 JH-ZJJ" in refused.stderr
    assert govchat(db.url, "cases", "accept", n, "--unit", "JH-CGJ", "--as", "cgj").returncode == 0
    no_text = govchat(db.url, "cases", "reply", n, "--unit", "JH-CGJ", "--as", "cgj")
    assert no_text.returncode == 2 and "答复内容不能为空" in no_text.stderr
    assert govchat(db.url, "cases", "reply", n, "--unit", "JH-CGJ", "--text", "已处理。",
                   "--as", "cgj").returncode == 0
    listed = govchat(db.url, "cases", "list", "--status", "replied").stdout
    assert n in listed and "138****5678" in listed and "13812345678" not in listed
    shown = govchat(db.url, "cases", "show", n).stdout
    assert "replied (已答复)" in shown and "reply: 已处理。" in shown
    assert [line.split()[2] for line in shown.splitlines() if line.startswith("  2026")] == [
        "case_submitted", "case_dispatched", "case_accepted", "case_replied"]


async def test_two_staff_acting_on_one_case_at_once_are_queued_not_failed(db):
    """Accept and return clicked at the same moment: one wins, the other is refused in words."""
    case = await submit(db)
    await lifecycle.dispatch(db, case.number, "JH-ZJJ", actor="d1", now=SUBMITTED)
    later = SUBMITTED + timedelta(hours=1)
    results = await asyncio.gather(
        lifecycle.accept(db, case.number, unit_id="JH-ZJJ", actor="h1", now=later),
        lifecycle.accept(db, case.number, unit_id="JH-ZJJ", actor="h2", now=later),
        return_exceptions=True)
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], TransitionRefused), results
    assert [name for name, _ in await trail(db, case)].count("case_accepted") == 1
