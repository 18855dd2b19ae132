"""The Teddy Cup check: the report over the imported real file equals a count made straight
from the CSV, and the CLI writes the workbook inspectors get."""
import csv
import statistics
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from casework import history
from casework.models import Unit
from casework.report import timeliness_report
from server.db import CHINA

REAL = Path("/work/shared/data/teddycup2020/messages_with_replies.csv")
GOVCHAT = str(Path(sys.executable).parent / "govchat")
NOW = datetime(2026, 11, 30, 12, tzinfo=CHINA)
pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} is not here")


def reply_days_from_the_csv() -> list[float]:
    """Independently of the importer: rows with both texts and two readable times, the reply not
    before the message; days of 24 h between them (times are China time as written)."""
    def when(text: str) -> datetime | None:
        for pattern in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
            try:
                return datetime.strptime(" ".join(text.split()), pattern)
            except ValueError:
                pass
        return None

    days = []
    with open(REAL, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            asked, answered = when(row["留言时间"]), when(row["答复时间"])
            if (row["留言详情"].strip() and row["答复意见"].strip() and asked and answered
                    and answered >= asked):
                days.append((answered - asked).total_seconds() / 86400)
    return days


async def test_the_report_on_the_imported_file_matches_the_csv(db):
    async with db.session() as session, session.begin():
        session.add(Unit(id="DISPATCH", name="分派中心", is_dispatcher=True))
    summary = await history.import_history(db, REAL)
    days = reply_days_from_the_csv()
    assert summary.imported == len(days)
    async with db.session() as session:
        report = await timeliness_report(session, date(2000, 1, 1), date(2026, 11, 30), now=NOW)
    v = report.total.values
    assert v["replies"] == len(days)
    assert v["first_reply_median_days"] == pytest.approx(statistics.median(days))
    assert v["first_reply_p90_days"] == pytest.approx(
        statistics.quantiles(days, n=10, method="inclusive")[-1])
    # Working days too: at most the calendar days, rounded up, and never negative.
    assert 0 <= v["first_reply_median_wd"] <= statistics.median(days) + 1
    assert v["on_time_rate"] is not None and v["resolution_wd"] is not None


async def test_cli_writes_a_formatted_workbook_with_one_sheet_per_cut(db, tmp_path):
    async with db.session() as session, session.begin():
        session.add(Unit(id="DISPATCH", name="分派中心", is_dispatcher=True))
    sample = tmp_path / "sample.csv"
    with open(REAL, encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))[:21]
    with open(sample, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(lines)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url}
    done = subprocess.run([GOVCHAT, "cases", "import-history", str(sample)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "report.xlsx"
    done = subprocess.run([GOVCHAT, "report", "timeliness", "--from", "2017-01-01", "--to", "2020-12-31",
                           "--format", "xlsx", "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    book = load_workbook(out)
    assert book.sheetnames == ["合计", "按单位", "按类别", "按渠道", "按办件类型", "按日", "按周",
                               "按月", "按季度", "按年"]
    sheet = book["按单位"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["单位", "上级单位", "机器人首次回复平均用时（秒）", "机器人首次回复平均用时（上期）（秒）"]
    assert "按期答复率（%）" in header and "首次答复用时中位数（自然日）" in header
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.bold
    assert [sheet.cell(r, 1).value for r in range(2, sheet.max_row + 1)] == ["分派中心", "合计"]
    replies = header.index("答复件数（件）") + 1
    assert sheet.cell(2, replies).value == 20
    text = subprocess.run([GOVCHAT, "report", "timeliness", "--from", "2017-01-01", "--to", "2020-12-31",
                           "--by", "year", "--format", "csv"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert text.returncode == 0 and text.stdout.splitlines()[0].startswith("年,")
