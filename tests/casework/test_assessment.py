"""The annual assessment: scoring rules computed by hand, the indicator table saved and checked."""
from datetime import date, datetime, timezone

import pytest

from casework import assessment
from casework.assessment import DEFAULT_INDICATORS, Indicator, IndicatorRejected
from casework.report import Report, Row

RATE = Indicator("on_time_rate", "按期答复率", 40, 95.0, True)
DAYS = Indicator("first_reply_wd", "首次答复平均用时", 20, 3.0, False)
SAT = Indicator("satisfaction_rate", "满意率", 40, 90.0, True)


def test_points_follow_the_rule_in_both_directions():
    assert assessment.points(RATE, 98.0) == 40                 # above target: full weight
    assert assessment.points(RATE, 76.0) == pytest.approx(32)  # 40 × 76 / 95
    assert assessment.points(DAYS, 2.5) == 20                  # under target: full weight
    assert assessment.points(DAYS, 4.0) == pytest.approx(15)   # 20 × 3 / 4
    assert assessment.points(DAYS, None) is None
    zero = Indicator("overdue_now", "超期", 10, 0.0, False)
    assert assessment.points(zero, 0) == 10 and assessment.points(zero, 2) == 0


def test_a_unit_is_scored_on_the_indicators_it_has_data_for():
    table = (RATE, DAYS, SAT)
    score, lines = assessment.score_unit(table, {"on_time_rate": 76.0, "first_reply_wd": 4.0,
                                                 "satisfaction_rate": None})
    # 32 + 15 points out of the 60 measured weight → 78.33 of 100; satisfaction left out.
    assert score == pytest.approx(100 * 47 / 60)
    assert [line.points for line in lines] == [pytest.approx(32), pytest.approx(15), None]
    assert assessment.score_unit(table, {})[0] is None


def test_units_are_ranked_and_the_table_has_one_column_pair_per_indicator():
    report = Report(date(2026, 1, 1), date(2026, 12, 31), date(2025, 1, 1), date(2025, 12, 31), "unit",
                    generated_at=datetime(2026, 11, 27, tzinfo=timezone.utc))
    report.rows = [
        Row("G00", "上城区人民政府", {"on_time_rate": 90.0, "first_reply_wd": 3.0}, {}),
        Row("G00-001", "上城区住建局", {"on_time_rate": 95.0, "first_reply_wd": 2.0}, {}, parent="G00"),
        Row("X1", "直属单位", {}, {}),
    ]
    result = assessment.assess_report(report, (RATE, DAYS), 2026)
    assert [u.unit_id for u in result.units] == ["G00-001", "G00", "X1"]
    assert result.units[0].score == 100
    assert result.units[1].score == pytest.approx(100 * (40 * 90 / 95 + 20) / 60)
    header, rows = assessment.assessment_table(result)
    assert header[:4] == ["名次", "单位", "上级单位", "得分（百分制）"]
    assert "按期答复率（目标≥95）" in header and "首次答复平均用时（目标≤3）" in header
    assert rows[0][:4] == [1, "上城区住建局", "上城区人民政府", 100.0]
    assert rows[2][0] is None and rows[2][-1] == "按期答复率、首次答复平均用时"


async def test_the_indicator_table_is_saved_whole_or_not_at_all(db):
    async with db.session() as session:
        assert await assessment.indicators(session) == DEFAULT_INDICATORS
    async with db.session() as session, session.begin():
        await assessment.save_indicators(session, [SAT, RATE])
    async with db.session() as session:
        assert await assessment.indicators(session) == (SAT, RATE)
    with pytest.raises(IndicatorRejected) as refused:
        async with db.session() as session, session.begin():
            await assessment.save_indicators(session, [Indicator("no_such", "乱填", 0, -1)])
    assert any("未知的度量" in p for p in refused.value.problems)
    assert any("权重必须大于0" in p for p in refused.value.problems)
    async with db.session() as session:
        assert await assessment.indicators(session) == (SAT, RATE)
