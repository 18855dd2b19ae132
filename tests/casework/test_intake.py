"""Taking a case from the form: routed, given its working-day deadline, dispatched or left for
the dispatcher; the citizen is told where it went and when to expect the reply."""
from datetime import date, datetime, timezone

from sqlalchemy import select

from bot import api as bot_api
from casework import api as casework
from casework.directory import import_categories, import_units
from casework.intake import take_case
from casework.models import Case, Category, Event, RoutingKeyword
from casework.routing import Router

# 2026-09-30 10:00 in China: the day before the National Day holiday (1–7 Oct off, Sat 10 Oct a
# make-up workday). Five working days counted from the next working day: Thu 8 Oct (1),
# Fri 9 Oct (2), Sat 10 Oct make-up (3), Mon 12 Oct (4), Tue 13 Oct (5).
BEFORE_NATIONAL_DAY = datetime(2026, 9, 30, 2, 0, tzinfo=timezone.utc)


async def directory(db, keywords=(("拖欠工资", "劳动关系"),)):
    async with db.session() as session, session.begin():
        await import_units(session, casework.DEMO / "units.csv")
        await import_categories(session, casework.DEMO / "categories.csv")
        session.add_all(RoutingKeyword(keyword=k, category=c) for k, c in keywords)


async def router(db, tmp_path) -> Router:
    r = Router(db, tmp_path / "route")     # no trained model: keyword rules and the directory
    await r.refresh()
    return r


async def intake(db, text: str, sender="o-take") -> casework.Intake:
    conv = await bot_api.open_conversation(db, "webchat", "", sender)
    return casework.Intake(case_type="complaint", description=text, conversation_id=conv.id,
                           place="南湖区人民路88号")


async def test_a_confident_route_dispatches_with_a_working_day_deadline(db, tmp_path):
    await directory(db)
    taken = await take_case(db, await intake(db, "公司拖欠工资四个月了"), router=await router(db, tmp_path),
                            now=BEFORE_NATIONAL_DAY)
    assert taken.dispatched and taken.deadline == date(2026, 10, 13)
    assert taken.unit_name == "嘉禾市南湖区人民政府"      # the district named in the place
    async with db.session() as session:
        case = await session.get(Case, taken.case.id)
        category = await session.get(Category, case.category_id)
        names = [e.name for e in await session.scalars(
            select(Event).where(Event.case_id == case.id).order_by(Event.id))]
    assert (case.status, case.unit_id, case.deadline) == ("dispatched", "NH-GOV", date(2026, 10, 13))
    assert case.district == "南湖区"
    assert category.name == "劳动关系" and case.route_confidence == 1.0
    assert names == ["case_submitted", "case_dispatched"]


async def test_an_unclear_case_waits_on_the_dispatchers_desk_with_its_deadline(db, tmp_path):
    await directory(db)
    taken = await take_case(db, await intake(db, "这件事情我也不知道该找谁"), router=await router(db, tmp_path),
                            now=BEFORE_NATIONAL_DAY, deadline_days={"complaint": 3})
    assert not taken.dispatched and taken.unit_name.endswith("分派中心")
    # Three working days: 8, 9 and (make-up Saturday) 10 October.
    assert taken.deadline == date(2026, 10, 10)
    assert (taken.case.status, taken.case.unit_id) == ("submitted", "DISPATCH")


async def test_without_a_router_every_case_goes_to_the_dispatcher(db):
    await directory(db)
    taken = await take_case(db, await intake(db, "公司拖欠工资四个月了"), router=None, now=BEFORE_NATIONAL_DAY)
    assert not taken.dispatched and taken.case.unit_id == "DISPATCH"
