"""The annual assessment (art. 31): an indicator table scored per unit from the timeliness report.

Each indicator is a timeliness measure (casework.report.MEASURES) with a weight, a target and a
direction. Scoring rule, per indicator and unit (docs/timeliness.md):
- higher is better (rates): full weight at or above the target, else weight × value / target;
- lower is better (days, minutes, counts): full weight at or below the target, else
  weight × target / value (a target of 0 gives nothing once the value is above it).
An indicator a unit has no data for (no rated cases, say) is left out and the unit's score is
scaled to the weights it was measured on, so a unit is neither rewarded nor punished for work it
did not get; the breakdown says which were left out. The score is out of 100.

The table lives in `assessment_indicators` (settings page, `govchat report assessment`); while
it is empty the DEFAULT_INDICATORS below apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import AssessmentIndicator
from casework.report import MEASURES, Report, timeliness_report

MEASURE_HEADERS = {m.key: m.header for m in MEASURES}


@dataclass(frozen=True)
class Indicator:
    measure: str
    label: str
    weight: float
    target: float
    higher_is_better: bool = True


DEFAULT_INDICATORS = (
    Indicator("on_time_rate", "按期答复率", 35, 95.0, True),
    Indicator("satisfaction_rate", "满意率", 25, 90.0, True),
    Indicator("first_reply_wd", "首次答复平均用时", 15, 3.0, False),
    Indicator("acceptance_wd", "签收平均用时", 10, 1.0, False),
    Indicator("rating_coverage", "评价覆盖率", 15, 60.0, True),
)


class IndicatorRejected(ValueError):
    """An indicator table that cannot be used, with the reasons in Chinese for the admin."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("；".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Line:
    indicator: Indicator
    value: float | None
    points: float | None            # None: no data, left out


@dataclass
class UnitScore:
    unit_id: str
    name: str
    parent: str | None
    score: float | None             # out of 100; None when nothing could be measured
    lines: list[Line] = field(default_factory=list)

    @property
    def left_out(self) -> list[str]:
        return [line.indicator.label for line in self.lines if line.points is None]


@dataclass
class Assessment:
    year: int
    first: date
    last: date
    indicators: tuple[Indicator, ...]
    units: list[UnitScore]
    generated_at: datetime


def points(indicator: Indicator, value: float | None) -> float | None:
    if value is None:
        return None
    w, target = indicator.weight, indicator.target
    if indicator.higher_is_better:
        return w if value >= target else (w * value / target if target > 0 else w)
    if value <= target:
        return w
    return w * target / value if target > 0 else 0.0


def score_unit(indicators: tuple[Indicator, ...], values: dict[str, float | None]) -> tuple[float | None, list[Line]]:
    lines = [Line(i, values.get(i.measure), points(i, values.get(i.measure))) for i in indicators]
    measured = [line for line in lines if line.points is not None]
    weight = sum(line.indicator.weight for line in measured)
    if not weight:
        return None, lines
    return 100 * sum(line.points for line in measured) / weight, lines


def check(indicators: list[Indicator]) -> None:
    problems = []
    if not indicators:
        problems.append("至少需要一项指标")
    seen = set()
    for i in indicators:
        name = i.label or i.measure
        if i.measure not in MEASURE_HEADERS:
            problems.append(f"{name}：未知的度量 {i.measure}")
        if i.measure in seen:
            problems.append(f"{name}：度量 {i.measure} 重复")
        seen.add(i.measure)
        if not i.label.strip():
            problems.append(f"{i.measure}：请填写指标名称")
        if not i.weight > 0:
            problems.append(f"{name}：权重必须大于0")
        if i.target < 0:
            problems.append(f"{name}：目标值不能为负数")
    if problems:
        raise IndicatorRejected(problems)


async def indicators(session: AsyncSession) -> tuple[Indicator, ...]:
    rows = await session.scalars(select(AssessmentIndicator)
                                 .order_by(AssessmentIndicator.position, AssessmentIndicator.id))
    found = tuple(Indicator(r.measure, r.label, r.weight, r.target, r.higher_is_better) for r in rows)
    return found or DEFAULT_INDICATORS


async def save_indicators(session: AsyncSession, table: list[Indicator]) -> None:
    """Replace the indicator table (checked whole first) in the caller's transaction."""
    check(table)
    await session.execute(delete(AssessmentIndicator))
    for position, i in enumerate(table):
        session.add(AssessmentIndicator(measure=i.measure, label=i.label.strip(), weight=i.weight,
                                        target=i.target, higher_is_better=i.higher_is_better,
                                        position=position))
    await session.flush()


def assess_report(report: Report, table: tuple[Indicator, ...], year: int) -> Assessment:
    """Score every unit row of a unit-cut report (parents include their units' work)."""
    names = {row.key: row.label for row in report.rows}
    units = []
    for row in report.rows:
        score, lines = score_unit(table, row.values)
        parent = names.get(row.parent, row.parent) if row.parent else None
        units.append(UnitScore(row.key, row.label, parent, score, lines))
    units.sort(key=lambda u: (u.score is None, -(u.score or 0), u.unit_id))
    return Assessment(year, report.first, report.last, table, units, report.generated_at)


async def assess(session: AsyncSession, year: int, *, now: datetime) -> Assessment:
    """The assessment of a calendar year (to today when the year is not over)."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    report = await timeliness_report(session, first, last, "unit", now=now)
    return assess_report(report, await indicators(session), year)


def assessment_table(a: Assessment) -> tuple[list[str], list[list]]:
    """Header and rows for a page, CSV or XLSX: rank, unit, score, then value and points per
    indicator."""
    header = ["名次", "单位", "上级单位", "得分（百分制）"]
    for i in a.indicators:
        direction = "≥" if i.higher_is_better else "≤"
        header += [f"{i.label}（目标{direction}{i.target:g}）", f"{i.label}得分（满分{i.weight:g}）"]
    header.append("未计入的指标")
    rows = []
    for rank, u in enumerate(a.units, 1):
        row = [rank if u.score is not None else None, u.name, u.parent or "",
               round(u.score, 1) if u.score is not None else None]
        for line in u.lines:
            row += [round(line.value, 2) if line.value is not None else None,
                    round(line.points, 2) if line.points is not None else None]
        row.append("、".join(u.left_out))
        rows.append(row)
    return header, rows
