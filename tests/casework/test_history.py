"""Past cases imported from a message board's export: closed cases with their historical times."""
import csv
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text

from casework import api as casework
from casework import history, lifecycle
from casework.models import CLOSED, Case, Event, Unit
from server.db import CHINA

GOVCHAT = str(Path(sys.executable).parent / "govchat")
REAL = Path("/work/shared/data/teddycup2020/messages_with_replies.csv")
HEADER = ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "答复意见", "答复时间", "reply_days_derived"]
ROWS = [
    # row 2: Wednesday before National Day 2026 (holiday 1–7 Oct, Sat 10 Oct worked): due Tue 13 Oct
    ["101", "U-SECRET-101", "饭店油烟", "2026/9/30 10:00:00", "楼下饭店油烟太大", "已责令整改。", "2026/10/12 16:00:00", "8.2"],
    # row 3: the same China day, answered a day late
    ["102", "U-SECRET-102", "夜间施工", "2026/9/30 21:30:05", "工地夜里施工", "已处罚。", "2026/10/14 9:00:00", "13.5"],
    # row 4: 00:30 China time on 1 Oct is still 30 Sep in UTC; answered on the make-up Saturday
    ["103", "U-SECRET-103", "", "2026-10-01 00:30:00", "路灯不亮", "已修复。", "2026/10/10", "9"],
    ["104", "U-SECRET-104", "坏日期", "2026/13/45 10:00:00", "某事", "答复", "2026/10/12 16:00:00", ""],
    ["105", "U-SECRET-105", "倒序", "2026/10/12 10:00:00", "某事", "答复", "2026/10/9 16:00:00", ""],
    ["106", "U-SECRET-106", "空详情", "2026/10/12 10:00:00", "  ", "答复", "2026/10/13 16:00:00", ""],
]


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


def write_csv(path: Path, rows=ROWS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


async def directory(db) -> None:
    async with db.session() as session, session.begin():
        session.add_all([Unit(id="DISPATCH", name="分派中心", is_dispatcher=True),
                         Unit(id="JH-CGJ", name="城管局")])


async def cases_by_ref(db) -> dict[str, Case]:
    async with db.session() as session:
        return {c.external_ref: c for c in await session.scalars(select(Case))}


async def counts(db) -> tuple[int, int]:
    async with db.session() as session:
        return (await session.scalar(select(func.count()).select_from(Case)),
                await session.scalar(select(func.count()).select_from(Event)))


async def test_rows_become_closed_cases_numbered_after_the_days_existing_ones(db, tmp_path):
    await directory(db)
    live = (await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="今天的投诉"), now=china(2026, 9, 30, 9, 0))).case
    summary = await history.import_history(db, write_csv(tmp_path / "h.csv"),
                                           now=china(2026, 11, 1, 0, 0))
    assert (summary.rows, summary.imported, summary.present) == (6, 3, 0)
    assert summary.rejected == [
        "row 5: unparsable 留言时间 '2026/13/45 10:00:00'",
        "row 6: reply before submission 2026/10/9 16:00:00 < 2026/10/12 10:00:00",
        "row 7: empty 留言详情"]
    assert summary.reasons == {"unparsable 留言时间": 1, "reply before submission": 1, "empty 留言详情": 1}

    cases = await cases_by_ref(db)
    assert set(cases) == {None, "teddycup:101", "teddycup:102", "teddycup:103"}
    assert cases[None].number == live.number == "ZJ20260930-0001"
    a, b, c = cases["teddycup:101"], cases["teddycup:102"], cases["teddycup:103"]
    assert (a.number, b.number, c.number) == ("ZJ20260930-0002", "ZJ20260930-0003", "ZJ20261001-0001")
    assert a.created_at == datetime(2026, 9, 30, 2, 0, tzinfo=timezone.utc)
    assert c.created_at == datetime(2026, 9, 30, 16, 30, tzinfo=timezone.utc)
    assert c.day == date(2026, 10, 1)
    assert a.replied_at == a.closed_at == datetime(2026, 10, 12, 8, 0, tzinfo=timezone.utc)
    assert c.replied_at == datetime(2026, 10, 9, 16, 0, tzinfo=timezone.utc)   # 10 Oct 00:00 China
    assert (a.deadline, b.deadline, c.deadline) == (date(2026, 10, 13),) * 3
    assert a.status == CLOSED and a.case_type == "complaint" and a.unit_id == "DISPATCH"
    assert a.conversation_id is None and a.phone is None
    assert a.description == "饭店油烟\n楼下饭店油烟太大" and c.description == "路灯不亮"
    assert a.reply_text == "已责令整改。"

    async with db.session() as session:
        trail = await lifecycle.trail(session, a.id)
        late = await lifecycle.trail(session, b.id)
    assert [(e.name, e.at, e.value_seconds, e.conversation_id) for e in trail] == [
        ("case_submitted", a.created_at, None, None),
        (lifecycle.CASE_REPLIED, a.replied_at, (a.replied_at - a.created_at).total_seconds(), None),
        (lifecycle.CASE_CLOSED, a.replied_at, None, None)]
    assert trail[1].detail["on_time"] is True and late[1].detail["on_time"] is False
    assert trail[1].value_seconds == 12 * 86400 + 6 * 3600


async def test_a_second_import_adds_nothing(db, tmp_path):
    await directory(db)
    path = write_csv(tmp_path / "h.csv")
    await history.import_history(db, path)
    before = await counts(db)
    again = await history.import_history(db, path)
    assert (again.imported, again.present, len(again.rejected)) == (0, 3, 3)
    assert await counts(db) == before == (3, 9)


async def test_strict_refuses_the_whole_file_on_a_bad_row(db, tmp_path):
    await directory(db)
    with pytest.raises(history.HistoryRejected) as refused:
        await history.import_history(db, write_csv(tmp_path / "h.csv"), strict=True)
    assert refused.value.problems[0] == "row 5: unparsable 留言时间 '2026/13/45 10:00:00'"
    assert len(refused.value.problems) == 3
    assert await counts(db) == (0, 0)
    ok = await history.import_history(db, write_csv(tmp_path / "ok.csv", ROWS[:3]), strict=True,
                                      case_type="report", unit_id="JH-CGJ")
    assert ok.imported == 3
    cases = await cases_by_ref(db)
    assert {(c.case_type, c.unit_id) for c in cases.values()} == {("report", "JH-CGJ")}


async def test_the_user_column_is_stored_nowhere(db, tmp_path):
    await directory(db)
    await history.import_history(db, write_csv(tmp_path / "h.csv"))
    async with db.session() as session:
        stored = [row for table in ("cases", "events")
                  for row in (await session.execute(text(f"SELECT * FROM {table}"))).all()]
    assert len(stored) == 12
    assert not [row for row in stored if "U-SECRET" in repr(tuple(row))]


async def test_an_xlsx_with_real_date_cells_imports_the_same(db, tmp_path):
    await directory(db)
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append([101, "U-SECRET-101", "饭店油烟", datetime(2026, 9, 30, 10, 0), "楼下饭店油烟太大",
                  "已责令整改。", datetime(2026, 10, 12, 16, 0), 8.2])
    book.save(tmp_path / "h.xlsx")
    summary = await history.import_history(db, tmp_path / "h.xlsx")
    assert summary.imported == 1
    case = (await cases_by_ref(db))["teddycup:101"]
    assert case.created_at == datetime(2026, 9, 30, 2, 0, tzinfo=timezone.utc)
    assert case.deadline == date(2026, 10, 13)


async def test_a_file_without_its_columns_or_dispatcher_is_refused_in_plain_words(db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("留言编号,留言主题\n1,x\n", encoding="utf-8")
    with pytest.raises(history.HistoryRejected, match="row 1: missing columns 留言时间, 留言详情"):
        await history.import_history(db, bad)
    with pytest.raises(history.HistoryRejected, match="尚未设置分派中心"):
        await history.import_history(db, write_csv(tmp_path / "h.csv"))
    await directory(db)
    with pytest.raises(history.HistoryRejected, match="there is no unit NOPE"):
        await history.import_history(db, write_csv(tmp_path / "h.csv"), unit_id="NOPE")
    assert await counts(db) == (0, 0)


async def test_the_command_prints_a_summary(db, tmp_path):
    await directory(db)
    path = write_csv(tmp_path / "h.csv")

    def govchat(*args):
        return subprocess.run([GOVCHAT, "cases", "import-history", str(path), *args],
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url})

    refused = govchat("--strict")
    assert refused.returncode == 2 and "nothing was imported" in refused.stderr
    assert "row 6: reply before submission" in refused.stderr
    done = govchat()
    assert done.returncode == 0, done.stderr
    assert "6 rows" in done.stdout and "3 imported, 0 skipped as already present, 3 rejected" in done.stdout
    assert "rejected row 7: empty 留言详情" in done.stderr
    assert "3 skipped as already present" in govchat().stdout


@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} is not here")
async def test_the_real_teddy_cup_file_imports_whole_and_fast(db, tmp_path):
    if not db.url.startswith("sqlite"):
        pytest.skip("the real file is imported on SQLite only (speed)")
    await directory(db)
    with open(REAL, newline="", encoding="utf-8-sig") as f:
        rows = sum(1 for row in csv.reader(f) if any(row)) - 1
    started = time.monotonic()
    summary = await history.import_history(db, REAL)
    elapsed = time.monotonic() - started
    assert summary.rows == rows
    assert summary.imported + len(summary.rejected) == rows
    assert summary.imported > 0.95 * rows
    assert elapsed < 30
    cases, events = await counts(db)
    assert (cases, events) == (summary.imported, 3 * summary.imported)
    async with db.session() as session:
        on_time = [e.detail["on_time"] for e in await session.scalars(
            select(Event).where(Event.name == lifecycle.CASE_REPLIED))]
    assert len(on_time) == cases and 0 < sum(on_time) < cases
