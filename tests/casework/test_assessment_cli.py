"""govchat report assessment: the same table as the page and its files, in every format."""
import json
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook

from casework import report_files
from casework.assessment import DEFAULT_INDICATORS, assess, assessment_table
from server.db import utcnow
from tests.casework.test_timeliness import build_history

GOVCHAT = str(Path(sys.executable).parent / "govchat")


def govchat(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GOVCHAT, "report", "assessment", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url}, timeout=300)


async def test_the_cli_writes_the_assessment_table_as_csv_xlsx_json_and_text(db, tmp_path):
    await build_history(db)
    async with db.session() as session:
        result = await assess(session, 2026, now=utcnow())
    header, rows = assessment_table(result)
    ranked = [r[1] for r in rows]           # the scoring itself: tests/casework/test_assessment.py
    assert sorted(ranked) == sorted(["城管局", "市政府", "住建局"])

    done = govchat(db, "--year", "2026", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == report_files.csv_text(header, rows) + "\n"

    out = tmp_path / "assessment.xlsx"
    done = govchat(db, "--year", "2026", "--format", "xlsx", "--out", str(out))
    assert done.returncode == 0 and "3 units ranked for 2026" in done.stdout, done.stderr
    book = load_workbook(out)
    assert book.sheetnames == ["年度考核", "考核指标"]
    sheet = book["年度考核"]
    assert [c.value for c in sheet[1]] == header and sheet.freeze_panes == "A2"
    assert [[c.value for c in r] for r in sheet.iter_rows(min_row=2)] == [
        [None if v == "" else v for v in row] for row in rows]
    assert [c.value for c in book["考核指标"]["A"]][1:] == [i.label for i in DEFAULT_INDICATORS]

    done = govchat(db, "--year", "2026", "--format", "json")
    data = json.loads(done.stdout)
    assert [u["name"] for u in data["units"]] == ranked
    assert data["units"][0]["score"] == result.units[0].score

    done = govchat(db, "--year", "2026")
    assert done.stdout.splitlines()[0].startswith("名次  单位") and ranked[0] in done.stdout
    assert govchat(db, "--year", "2026", "--format", "xlsx").returncode == 2
