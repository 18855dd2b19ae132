"""Working-time arithmetic of the timeliness measures, with hand-computed expectations."""
from datetime import date, datetime, time

import pytest

from casework.calendar import DutyHours, WorkCalendar
from casework.measures import (calendar_days, duty_hours, paused_workdays, percentile, period_of,
                               previous_window, working_days, working_seconds)
from server.db import CHINA

CAL = WorkCalendar()


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


def test_the_2026_national_day_calendar_as_chinesecalendar_has_it():
    # Holiday Thu 1 – Wed 7 Oct; Thu 8 Oct back at work; Sat 10 Oct a make-up workday.
    assert [CAL.is_workday(date(2026, 10, d)) for d in range(1, 12)] == [
        False, False, False, False, False, False, False, True, True, True, False]


def test_a_case_across_national_day_counts_the_make_up_saturday():
    # Submitted Wed 30 Sep, replied Sat 10 Oct: Thu 8 (1), Fri 9 (2), Sat 10 make-up (3) = 3.
    assert working_days(CAL, china(2026, 9, 30, 10), china(2026, 10, 10, 15)) == 3
    # In calendar days: 10 days and 5 hours = 10 + 5/24.
    assert calendar_days(china(2026, 9, 30, 10), china(2026, 10, 10, 15)) == pytest.approx(10 + 5 / 24)


def test_a_handoff_at_17_00_answered_next_working_day_at_9_00_waited_one_working_hour():
    day = duty_hours("08:30", "17:30")
    # Thu 26 Nov 17:00–17:30 (30 min) + Fri 27 Nov 08:30–09:00 (30 min) = 3600 s.
    assert working_seconds(CAL, china(2026, 11, 26, 17), china(2026, 11, 27, 9), day) == 3600


def test_a_night_shift_crossing_midnight_and_a_weekend():
    night = DutyHours(time(20), time(8))
    # Requested Fri 27 Nov 23:00, answered Mon 30 Nov 21:00. Shifts start on working days only:
    # Fri 20:00–Sat 08:00 counts 23:00–08:00 = 9 h; Sat and Sun start none; Mon 20:00–21:00 = 1 h.
    # 10 h = 36000 s.
    assert working_seconds(CAL, china(2026, 11, 27, 23), china(2026, 11, 30, 21), night) == 36000


def test_waiting_for_the_citizen_stops_the_clock():
    waited = [(china(2026, 11, 3, 10), china(2026, 11, 5, 10))]        # Tue → Thu: 2 working days
    # Mon 2 Nov → Fri 13 Nov: 3,4,5,6,9,10,11,12,13 = 9 working days, less 2 waited = 7.
    assert working_days(CAL, china(2026, 11, 2, 10), china(2026, 11, 13, 10), waited) == 7
    assert paused_workdays(CAL, waited) == 2
    # In duty time: Tue 10:00–17:30 (7.5 h) + Wed 9 h + Thu 08:30–10:00 (1.5 h) = 18 h paused.
    full = working_seconds(CAL, china(2026, 11, 2, 10), china(2026, 11, 13, 10))
    assert full - working_seconds(CAL, china(2026, 11, 2, 10), china(2026, 11, 13, 10),
                                  pauses=waited) == 18 * 3600
    # Overlapping waits count once.
    assert paused_workdays(CAL, waited + [(china(2026, 11, 4, 9), china(2026, 11, 5, 9))]) == 2


def test_percentile_interpolates_between_ranks():
    # [1, 2, 3, 4]: rank (4-1)*0.9 = 2.7 → 3 + 0.7*(4-3) = 3.7; median rank 1.5 → 2.5.
    assert percentile([4, 1, 3, 2], 90) == pytest.approx(3.7)
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([], 50) is None


@pytest.mark.parametrize("grain, label, first, last", [
    ("day", "2026-10-10", date(2026, 10, 10), date(2026, 10, 10)),
    ("week", "2026-W41", date(2026, 10, 5), date(2026, 10, 11)),
    ("month", "2026-10", date(2026, 10, 1), date(2026, 10, 31)),
    ("quarter", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ("year", "2026", date(2026, 1, 1), date(2026, 12, 31)),
])
def test_periods(grain, label, first, last):
    period = period_of(date(2026, 10, 10), grain)
    assert (period.label, period.first, period.last) == (label, first, last)


def test_the_previous_window_is_the_previous_whole_period_or_as_many_days_before():
    assert previous_window(date(2026, 10, 1), date(2026, 12, 31)) == (date(2026, 7, 1), date(2026, 9, 30))
    assert previous_window(date(2026, 3, 1), date(2026, 3, 31)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous_window(date(2026, 11, 10), date(2026, 11, 19)) == (date(2026, 10, 31), date(2026, 11, 9))
