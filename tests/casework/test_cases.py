"""Submitting cases: numbers, the intake fields, evidence, and "tell us once" linking."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from bot import api as bot_api
from casework import api as casework
from casework.models import Case, CaseAttachment, Event

NOW = datetime(2026, 11, 26, 2, 30, tzinfo=timezone.utc)      # 10:30 in China


async def conversation(db, sender="o-citizen"):
    return (await bot_api.open_conversation(db, "wechat", "default", sender)).id


async def test_a_case_keeps_what_the_form_collected_with_its_evidence(db):
    conv = await conversation(db)
    done = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="人民路菜场门口每天早上占道经营", conversation_id=conv,
        place="南湖区人民路88号", occurred="每天早上", phone="13812345678", latitude=30.75,
        longitude=120.76, evidence=[casework.Evidence(kind="image", media_id="m1", url="http://p/1"),
                                    casework.Evidence(kind="image", media_id="m2")]), now=NOW)
    assert not done.linked and done.case.number == "ZJ20261126-0001"
    async with db.session() as session:
        case = await session.get(Case, done.case.id)
        files = await casework.attachments(session, case.id)
        event = await session.scalar(select(Event).where(Event.case_id == case.id))
    assert (case.address, case.occurred, case.phone, case.anonymous) == (
        "南湖区人民路88号", "每天早上", "13812345678", False)
    assert [f.media_id for f in files] == ["m1", "m2"]
    assert event.name == "case_submitted" and event.detail["evidence"] == 2


async def test_the_same_complaint_again_within_a_day_is_linked_not_duplicated(db):
    conv = await conversation(db)
    first = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="楼下饭店油烟太大，熏得没法开窗", conversation_id=conv), now=NOW)
    again = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="楼下饭店油烟太大，熏得没法开窗！！", conversation_id=conv,
        evidence=[casework.Evidence(kind="image", media_id="m3")]), now=NOW + timedelta(hours=3))
    assert again.linked and again.case.number == first.case.number
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 1
        assert await session.scalar(select(func.count()).select_from(CaseAttachment)) == 1
        linked = await session.scalar(select(Event).where(Event.name == "case_linked"))
    assert "！！" in linked.detail["description"]      # nothing the citizen said is lost


async def test_a_different_complaint_or_a_later_one_is_a_new_case(db):
    conv = await conversation(db)
    text = "楼下饭店油烟太大，熏得没法开窗"
    await casework.submit_case(db, casework.Intake(case_type="complaint", description=text,
                                                   conversation_id=conv), now=NOW)
    other = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="小区门口的路灯坏了一个月", conversation_id=conv), now=NOW)
    later = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description=text, conversation_id=conv), now=NOW + timedelta(hours=25))
    someone_else = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description=text, conversation_id=await conversation(db, "o-2")), now=NOW)
    assert not (other.linked or later.linked or someone_else.linked)
    assert [other.case.seq, someone_else.case.seq] == [2, 3] and later.case.number.startswith("ZJ20261127")
