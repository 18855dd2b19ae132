"""Case-type deadlines set on the settings page: stored in case_deadlines, loaded with the
calendar, and preferred by deadline_for over CASE_DEADLINE_DAYS and the defaults."""
from datetime import date

import pytest

from casework import calendar as cal
from casework.calendar import WorkCalendar, deadline_days, deadline_for

# Submitted on Wed 30 Sep 2026: 1–7 Oct off, Sat 10 Oct a make-up day. Working days after it:
# Thu 8 (1), Fri 9 (2), Sat 10 (3), Mon 12 (4), Tue 13 (5), Wed 14 (6), Thu 15 (7).
SUBMITTED = date(2026, 9, 30)


def test_the_page_beats_the_environment_which_beats_the_default():
    plain, page = WorkCalendar(), WorkCalendar(deadline_days={"complaint": 2})
    env = {"complaint": 7, "report": 6}
    assert deadline_days("complaint", plain) == (5, cal.DEFAULT)
    assert deadline_days("complaint", plain, env) == (7, cal.ENV)
    assert deadline_days("complaint", page, env) == (2, cal.PAGE)
    assert deadline_days("report", page, env) == (6, cal.ENV)          # not set on the page
    assert deadline_days("consultation", page, env) == (3, cal.DEFAULT)
    assert deadline_for("complaint", SUBMITTED, plain, env) == date(2026, 10, 15)
    assert deadline_for("complaint", SUBMITTED, page, env) == date(2026, 10, 9)
    with pytest.raises(ValueError, match="no deadline for case type 'petition'"):
        deadline_for("petition", SUBMITTED, page, env)


async def test_deadlines_are_stored_loaded_with_the_calendar_and_removed(db):
    async with db.session() as session, session.begin():
        await cal.set_case_deadline(session, "complaint", 4, "boss")
        await cal.set_override(session, date(2026, 10, 12), False, "local")
    async with db.session() as session:
        loaded = await cal.load_calendar(session)
        rows = await cal.case_deadlines(session)
    assert loaded.deadline_days == {"complaint": 4}
    assert rows["complaint"].updated_by == "boss" and rows["complaint"].updated_at is not None
    # 4 working days with Mon 12 Oct off: Thu 8, Fri 9, Sat 10, Tue 13.
    assert deadline_for("complaint", SUBMITTED, loaded, {"complaint": 9}) == date(2026, 10, 13)
    async with db.session() as session, session.begin():
        await cal.set_case_deadline(session, "complaint", 6, "boss2")
    async with db.session() as session:
        assert (await cal.load_calendar(session)).deadline_days == {"complaint": 6}
    for bad in (("petition", 5), ("complaint", 0), ("complaint", cal.MAX_DEADLINE_DAYS + 1)):
        async with db.session() as session, session.begin():
            with pytest.raises(ValueError):
                await cal.set_case_deadline(session, *bad, "boss")
    async with db.session() as session, session.begin():
        assert await cal.remove_case_deadline(session, "complaint")
        assert not await cal.remove_case_deadline(session, "complaint")
    async with db.session() as session:
        assert (await cal.load_calendar(session)).deadline_days == {}
