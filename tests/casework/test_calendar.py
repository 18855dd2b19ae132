"""Working days on the 2026 statutory calendar, case deadlines and working time.

What chinesecalendar 1.11.0 says about 2026 (printed from the package, not assumed):
  New Year       Jan 1–3 off (Thu–Sat), Sun Jan 4 worked
  Spring Fest.   Feb 15–23 off (Sun–Mon), Sat Feb 14 and Sat Feb 28 worked
  Qingming       Apr 4–6 off (Sat–Mon)
  Labour Day     May 1–5 off (Fri–Tue), Sat May 9 worked
  Dragon Boat    Jun 19–21 off (Fri–Sun)
  Mid-Autumn     Sep 25–27 off (Fri–Sun)
  National Day   Oct 1–7 off (Thu–Wed), Sun Sep 20 and Sat Oct 10 worked
It knows 2004–2026; 2027 is not in it.
"""
import asyncio
from datetime import date, datetime, time, timedelta, timezone

import pytest

from casework import calendar as cal
from casework.calendar import DutyHours, WorkCalendar, deadline_for
from server.config import ConfigError, load_config
from server.db import CHINA

STATUTORY = WorkCalendar()
HOUR = 3600


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


def test_the_package_knows_2026_and_not_2027():
    assert STATUTORY.covers(2026) and STATUTORY.covers(2004)
    assert not STATUTORY.covers(2027) and not STATUTORY.covers(2003)
    holidays = [d for d, workday, name in STATUTORY.special_days(2026)
                if not workday and name == "National Day"]
    assert holidays == [date(2026, 10, d) for d in range(1, 8)]
    makeup = [d for d, workday, _ in STATUTORY.special_days(2026) if workday]
    assert makeup == [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                      date(2026, 9, 20), date(2026, 10, 10)]


def test_a_complaint_on_the_wednesday_before_national_day():
    # Wed Sep 30 submitted. Oct 1–7 holiday. Thu Oct 8 = 1, Fri Oct 9 = 2, Sat Oct 10 (make-up) = 3,
    # Sun Oct 11 off, Mon Oct 12 = 4, Tue Oct 13 = 5.
    assert deadline_for("complaint", date(2026, 9, 30), STATUTORY) == date(2026, 10, 13)
    # Any hour of that day gives the same deadline.
    assert deadline_for("complaint", china(2026, 9, 30, 23, 59), STATUTORY) == date(2026, 10, 13)


def test_an_aware_datetime_counts_from_its_china_date():
    # 16:30 UTC on Tue Sep 29 is 00:30 on Wed Sep 30 in China: the deadline is Wednesday's.
    submitted = datetime(2026, 9, 29, 16, 30, tzinfo=timezone.utc)
    assert deadline_for("complaint", submitted, STATUTORY) == date(2026, 10, 13)
    # Counted from Tuesday it would be one working day earlier: Sep 30 = 1, Oct 8, 9, 10, Oct 12 = 5.
    assert deadline_for("complaint", date(2026, 9, 29), STATUTORY) == date(2026, 10, 12)
    with pytest.raises(ValueError, match="naive"):
        STATUTORY.add_workdays(datetime(2026, 9, 29, 16, 30), 5)


def test_a_complaint_during_the_holiday_counts_from_the_first_working_day_after_it():
    # Sat Oct 3 (holiday): Thu Oct 8 = 1 … Tue Oct 13 = 5, as from Sep 30.
    assert deadline_for("complaint", china(2026, 10, 3, 10, 0), STATUTORY) == date(2026, 10, 13)
    # Wed Oct 7, the last holiday: the same.
    assert deadline_for("complaint", date(2026, 10, 7), STATUTORY) == date(2026, 10, 13)


def test_a_make_up_saturday_is_a_working_day_and_counting_starts_the_next_one():
    # Sat Oct 10 is worked; submitted that day, Mon Oct 12 = 1, Tue 13 = 2, Wed 14 = 3,
    # Thu 15 = 4, Fri Oct 16 = 5.
    assert STATUTORY.is_workday(date(2026, 10, 10))
    assert deadline_for("complaint", date(2026, 10, 10), STATUTORY) == date(2026, 10, 16)
    assert deadline_for("consultation", date(2026, 10, 10), STATUTORY) == date(2026, 10, 14)


def test_spring_festival_2026():
    # Fri Feb 13 submitted. Sat Feb 14 (make-up) = 1, Feb 15–23 holiday, Tue Feb 24 = 2,
    # Wed 25 = 3, Thu 26 = 4, Fri Feb 27 = 5.
    assert deadline_for("report", date(2026, 2, 13), STATUTORY) == date(2026, 2, 27)
    # Sat Feb 14 submitted (a working day): Tue Feb 24 = 1, 25, 26, Fri 27 = 4,
    # Sat Feb 28 (make-up) = 5.
    assert deadline_for("report", date(2026, 2, 14), STATUTORY) == date(2026, 2, 28)
    # Mon Feb 23 (holiday): Tue Feb 24 = 1, 25, 26 = 3.
    assert deadline_for("consultation", date(2026, 2, 23), STATUTORY) == date(2026, 2, 26)


def test_an_override_turning_a_weekday_into_a_holiday_moves_the_deadline():
    # Fri Oct 9 made a local holiday. From Wed Sep 30: Thu Oct 8 = 1, Sat Oct 10 = 2,
    # Mon Oct 12 = 3, Tue 13 = 4, Wed Oct 14 = 5.
    local = WorkCalendar({date(2026, 10, 9): False})
    assert not local.is_workday(date(2026, 10, 9))
    assert deadline_for("complaint", date(2026, 9, 30), local) == date(2026, 10, 14)
    # And a statutory holiday made a working day: Thu Oct 1 worked gives Oct 1 = 1, Oct 8 = 2, …
    # Oct 12 = 5.
    worked = WorkCalendar({date(2026, 10, 1): True})
    assert deadline_for("complaint", date(2026, 9, 30), worked) == date(2026, 10, 12)


def test_a_year_the_package_does_not_cover_falls_back_to_monday_to_friday():
    assert not STATUTORY.covers(2027)
    # Fri Jan 1 2027 is New Year's Day in reality; without the notice it counts as worked.
    assert STATUTORY.is_workday(date(2027, 1, 1)) and not STATUTORY.is_workday(date(2027, 1, 2))
    # Fri Jan 8: Mon Jan 11 = 1 … Fri Jan 15 = 5.
    assert deadline_for("complaint", date(2027, 1, 8), STATUTORY) == date(2027, 1, 15)
    # Across the year's end: Wed Dec 30 2026: Thu Dec 31 = 1, Fri Jan 1 2027 = 2 (fallback),
    # Mon Jan 4 = 3, Tue 5 = 4, Wed Jan 6 = 5.
    assert deadline_for("complaint", date(2026, 12, 30), STATUTORY) == date(2027, 1, 6)
    # An admin override fixes the missing holiday.
    fixed = WorkCalendar({date(2027, 1, 1): False})
    assert deadline_for("complaint", date(2026, 12, 30), fixed) == date(2027, 1, 7)
    assert not fixed.covers(2027)   # still reported missing: the package has no 2027


def test_deadline_days_can_be_configured_per_case_type():
    assert deadline_for("complaint", date(2026, 9, 30), STATUTORY, {"complaint": 2}) == date(2026, 10, 9)
    # Types not named keep their default: consultation 3 = Oct 8, 9, Oct 10.
    assert deadline_for("consultation", date(2026, 9, 30), STATUTORY,
                        {"complaint": 2}) == date(2026, 10, 10)
    with pytest.raises(ValueError, match="no deadline for case type 'petition'"):
        deadline_for("petition", date(2026, 9, 30), STATUTORY)


def test_case_deadline_days_setting():
    assert load_config({}).case_deadline_days == {}
    config = load_config({"CASE_DEADLINE_DAYS": "complaint=7, report=4,consultation=2"})
    assert config.case_deadline_days == {"complaint": 7, "report": 4, "consultation": 2}


@pytest.mark.parametrize("raw, message", [
    ("complant=5", "CASE_DEADLINE_DAYS: unknown case type 'complant'"),
    ("complaint", "complaint must be a whole number of working days of at least 1, got ''"),
    ("complaint=0", "got '0'"),
    ("complaint=five", "got 'five'"),
])
def test_case_deadline_days_setting_refuses_bad_values_in_plain_words(raw, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"CASE_DEADLINE_DAYS": raw})


def test_workdays_between():
    assert STATUTORY.workdays_between(date(2026, 10, 9), date(2026, 10, 9)) == 0
    # Fri Nov 20 → Mon Nov 23: the weekend does not count, Monday does.
    assert STATUTORY.workdays_between(date(2026, 11, 20), date(2026, 11, 23)) == 1
    # Fri Oct 9 → Mon Oct 12: Sat Oct 10 is a make-up workday.
    assert STATUTORY.workdays_between(date(2026, 10, 9), date(2026, 10, 12)) == 2
    # Dispatched Wed Sep 30 23:00, returned Thu Oct 8 09:00 (China): one working day, in time
    # for "returned within 2 working days".
    assert STATUTORY.workdays_between(china(2026, 9, 30, 23), china(2026, 10, 8, 9)) == 1
    assert STATUTORY.workdays_between(date(2026, 10, 12), date(2026, 10, 9)) == -2


@pytest.mark.parametrize("calendar", [STATUTORY, WorkCalendar({date(2026, 10, 9): False,
                                                               date(2026, 3, 7): True})])
def test_workdays_between_undoes_add_workdays_on_every_day_of_2026(calendar):
    day = date(2026, 1, 1)
    while day.year == 2026:
        for n in range(0, 16):
            due = calendar.add_workdays(day, n)
            assert calendar.workdays_between(day, due) == n, (day, n)
            if n:
                assert calendar.is_workday(due), (day, n)
                # The deadline is the first day on which n working days have passed.
                assert calendar.workdays_between(day, due - timedelta(days=1)) == n - 1, (day, n)
        day += timedelta(days=1)


def test_working_seconds_across_a_weekend():
    # Fri Nov 20 16:00 → Mon Nov 23 10:00: Fri 16:00–17:30 + Mon 08:30–10:00 = 3 hours.
    assert STATUTORY.working_seconds(china(2026, 11, 20, 16), china(2026, 11, 23, 10)) == 3 * HOUR
    # Aware UTC times are read in China time: 00:30–01:30 UTC is 08:30–09:30 in China.
    assert STATUTORY.working_seconds(datetime(2026, 11, 23, 0, 30, tzinfo=timezone.utc),
                                     datetime(2026, 11, 23, 1, 30, tzinfo=timezone.utc)) == HOUR
    # Outside duty hours on a working day: nothing.
    assert STATUTORY.working_seconds(china(2026, 11, 23, 18), china(2026, 11, 24, 8)) == 0


def test_working_seconds_across_the_national_day_holiday():
    # Wed Sep 30 17:00 → Thu Oct 8 09:00: Sep 30 17:00–17:30 + Oct 8 08:30–09:00 = 1 hour.
    assert STATUTORY.working_seconds(china(2026, 9, 30, 17), china(2026, 10, 8, 9)) == HOUR
    # Fri Oct 9 17:00 → Mon Oct 12 08:30: Fri half an hour + the make-up Sat Oct 10, 9 hours.
    assert STATUTORY.working_seconds(china(2026, 10, 9, 17), china(2026, 10, 12, 8, 30)) == 9.5 * HOUR
    # An overridden holiday has no duty hours.
    local = WorkCalendar({date(2026, 10, 9): False})
    assert local.working_seconds(china(2026, 10, 9, 8), china(2026, 10, 9, 20)) == 0


def test_working_seconds_with_a_shift_crossing_midnight():
    night = DutyHours(time(20, 0), time(8, 0))
    # Fri Oct 9 22:00 → Mon Oct 12 09:00. Shifts start on working days' evenings:
    # Fri Oct 9 20:00–Sat 08:00 (from 22:00: 10 h), Sat Oct 10 (make-up) 20:00–Sun 08:00 (12 h);
    # Sun Oct 11 is off; Mon Oct 12's shift starts after the end. 22 hours.
    assert STATUTORY.working_seconds(china(2026, 10, 9, 22), china(2026, 10, 12, 9), night) == 22 * HOUR
    # Wed Sep 30 is worked, so its night shift runs into the holiday; Oct 1's does not exist.
    assert STATUTORY.working_seconds(china(2026, 9, 30, 19), china(2026, 10, 2, 12), night) == 12 * HOUR
    # Early morning belongs to the previous evening's shift: Oct 8 06:00 is in Oct 7's (a holiday),
    # Oct 9 06:00 is in Oct 8's (worked).
    assert STATUTORY.working_seconds(china(2026, 10, 8, 6), china(2026, 10, 8, 7), night) == 0
    assert STATUTORY.working_seconds(china(2026, 10, 9, 6), china(2026, 10, 9, 7), night) == HOUR


def test_working_seconds_is_zero_when_the_end_is_not_after_the_start():
    assert STATUTORY.working_seconds(china(2026, 11, 24, 12), china(2026, 11, 23, 10)) == 0
    assert STATUTORY.working_seconds(china(2026, 11, 24, 12), china(2026, 11, 24, 12)) == 0


def test_duty_hours_must_not_be_empty():
    assert DutyHours() == DutyHours(time(8, 30), time(17, 30))
    with pytest.raises(ValueError, match="different times"):
        DutyHours(time(9), time(9))


async def test_overrides_are_stored_loaded_changed_and_removed(db):
    async with db.session() as session, session.begin():
        await cal.set_override(session, date(2026, 10, 9), False, "local festival")
        await cal.set_override(session, date(2027, 1, 1), False)
    async with db.session() as session, session.begin():
        await cal.set_override(session, date(2027, 1, 1), False, "New Year (notice not in package)")
    async with db.session() as session:
        loaded = await cal.load_calendar(session)
        rows = await cal.overrides(session, 2027)
    assert loaded.overrides == {date(2026, 10, 9): False, date(2027, 1, 1): False}
    assert deadline_for("complaint", date(2026, 9, 30), loaded) == date(2026, 10, 14)
    assert [(r.day, r.is_workday, r.note) for r in rows] == [
        (date(2027, 1, 1), False, "New Year (notice not in package)")]
    async with db.session() as session, session.begin():
        assert await cal.remove_override(session, date(2026, 10, 9))
        assert not await cal.remove_override(session, date(2026, 10, 9))
    async with db.session() as session:
        assert (await cal.load_calendar(session)).overrides == {date(2027, 1, 1): False}


async def test_calendar_command_line(db, monkeypatch, capsys):
    from server.cli import main

    monkeypatch.setenv("DATABASE_URL", db.url)

    async def govchat(*args) -> int:   # main() runs its own event loop
        return await asyncio.to_thread(main, list(args))

    assert await govchat("calendar", "override", "2026-10-09", "--holiday", "--note", "local festival") == 0
    assert await govchat("calendar", "override", "2026-10-11", "--workday") == 0
    assert await govchat("calendar", "show", "2026") == 0
    out = capsys.readouterr().out
    assert "2026-10-09 is now a holiday." in out and "2026-10-11 is now a working day." in out
    lines = out.splitlines()
    assert "2026-10-01 Thu  holiday  National Day" in lines
    assert "2026-10-10 Sat  workday  National Day" in lines
    assert "2026-10-09 Fri  holiday    [override: local festival]" in lines
    assert "2026-10-11 Sun  workday    [override]" in lines
    assert "NOT covered" not in out

    assert await govchat("calendar", "show", "2027") == 0
    out = capsys.readouterr().out
    assert out.startswith("2027 is NOT covered by the statutory calendar (chinesecalendar knows 2004–2026)")

    assert await govchat("calendar", "override", "2026-10-09", "--remove") == 0
    assert await govchat("calendar", "override", "2026-10-09", "--remove") == 2
    assert await govchat("calendar", "override", "2026-10-32", "--holiday") == 2
    captured = capsys.readouterr()
    assert "2026-10-09 follows the statutory calendar again." in captured.out
    assert "2026-10-09 has no override" in captured.err
    assert "'2026-10-32' is not a date like" in captured.err
    async with db.session() as session:
        assert (await cal.load_calendar(session)).overrides == {date(2026, 10, 11): True}
