"""Q&A files on their own: CSV and XLSX read alike, every problem is named, exports look right."""
import csv
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font

from knowledge_base.files import ImportRejected, Row, read_table, write_table

HEADER = ["id", "question", "similar_questions", "answer", "category", "unit"]


def sheet(tmp_path: Path, kind: str, rows: list[list]) -> Path:
    """A file as a user would make it: CSV text, or an XLSX whose cells keep their types."""
    path = tmp_path / f"qa.{kind}"
    if kind == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["" if v is None else str(v) for v in r] for r in rows])
    else:
        workbook = Workbook()
        for r in rows:
            workbook.active.append(r)
        workbook.save(path)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ImportRejected) as err:
        read_table(path)
    return err.value.problems


BOTH = pytest.mark.parametrize("kind", ["csv", "xlsx"])


@BOTH
def test_a_good_file_reads_with_optional_columns(tmp_path, kind):
    path = sheet(tmp_path, kind, [
        HEADER + ["tags", "valid_from", "valid_to", "notice_until"],
        ["A-1", "问题一", "说法一| 说法二 ", "答案一", "社保", "人社局", "社保卡|补办", "2026-01-01",
         "2026-12-31", "2026-12-01T18:00"],
        ["A-2", "问题二", "", "答案二", "", "", "", "", "", "2026-12-01T18:00+00:00"],
    ])
    assert read_table(path) == [
        Row("A-1", "问题一", ("说法一", "说法二"), "答案一", "社保", "人社局", ("社保卡", "补办"),
            date(2026, 1, 1), date(2026, 12, 31), datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)),
        Row("A-2", "问题二", (), "答案二", "", "", (), None, None,
            datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc)),
    ]


@BOTH
def test_a_bad_file_names_every_problem_by_row_and_column(tmp_path, kind):
    path = sheet(tmp_path, kind, [
        HEADER + ["valid_from", "valid_to", "notice_until"],
        ["A-1", "问题一", "", "答案一", "社保", "人社局", "", "", ""],
        ["A-2", "", "", "答案二", "社保", "人社局", "2026-13-01", "next week", ""],
        [None] * 9,                  # a blank row still counts: the next one is row 5
        ["A-1", "问题三", "", "", "社保", "人社局", "2026-03-01", "2026-02-28", "2026-12-01"],
        ["X" * 65, "问题四", "", "答案四", "类" * 65, "单" * 129, "", "", "12/01/2026 18:00"],
    ])
    assert problems(path) == [
        "row 3, column question: empty",
        "row 3, column valid_from: '2026-13-01' is not a date like 2026-12-01",
        "row 3, column valid_to: 'next week' is not a date like 2026-12-01",
        "row 5, column answer: empty",
        "row 5, column id: A-1 repeats row 2",
        "row 5, column valid_to: 2026-02-28 is before valid_from 2026-03-01",
        "row 5, column notice_until: '2026-12-01' is not a date and time like 2026-12-01T18:00",
        "row 6, column id: 65 characters, at most 64 allowed",
        "row 6, column category: 65 characters, at most 64 allowed",
        "row 6, column unit: 129 characters, at most 128 allowed",
        "row 6, column notice_until: '12/01/2026 18:00' is not a date and time like 2026-12-01T18:00",
    ]


@BOTH
def test_header_problems_are_reported_with_the_rows_problems(tmp_path, kind):
    path = sheet(tmp_path, kind, [
        ["id", "question", "answer", "answer", "valid_form"],
        ["A-1", "", "答案", "", "2026-01-01"],
        ["A-2", "问题", "答案", "", "", "多出来的"],
    ])
    assert problems(path) == [
        "row 1, column answer: appears twice (columns C and D)",
        "row 1, column valid_form: unknown column; the columns are id, question, similar_questions, "
        "answer, category, unit, tags, valid_from, valid_to, notice_until",
        "row 1, column similar_questions: missing from the header",
        "row 1, column category: missing from the header",
        "row 1, column unit: missing from the header",
        "row 2, column question: empty",
        "row 3, column F: a value in a column without a name",
    ]


@BOTH
def test_an_empty_file_has_no_header(tmp_path, kind):
    assert problems(sheet(tmp_path, kind, []))[0] == "row 1, column id: missing from the header"


def test_xlsx_cells_read_as_the_text_the_user_typed(tmp_path):
    """Excel keeps 101 as a number and 2026-01-01 as a date; the first sheet is the one read."""
    path = tmp_path / "qa.xlsx"
    workbook = Workbook()
    first = workbook.active
    first.append(HEADER + ["valid_from", "notice_until"])
    first.append([101, "问题", "", "答案", 12.0, 3.5, datetime(2026, 1, 1), datetime(2026, 12, 1, 18, 0)])
    first.append([None] * 8)
    first["A10"].font = Font(bold=True)   # a formatted but empty cell far below the data
    workbook.create_sheet("notes").append(["not", "read"])
    workbook.active = 1
    workbook.save(path)
    assert read_table(path) == [Row("101", "问题", (), "答案", "12", "3.5", (), date(2026, 1, 1), None,
                                    datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc))]


def test_a_csv_saved_by_excel_with_a_bom_reads(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes("\ufeff".encode() + ",".join(HEADER).encode() + "\r\nA-1,问,,答,,\r\n".encode())
    assert [r.id for r in read_table(path)] == ["A-1"]


def test_files_that_cannot_be_read_are_rejected_in_plain_words(tmp_path):
    gbk = tmp_path / "qa.csv"
    gbk.write_bytes(",".join(HEADER).encode() + "\nA-1,问题,,答案,,\n".encode("gbk"))
    broken = tmp_path / "qa.xlsx"
    broken.write_text("not a workbook")
    assert problems(gbk) == ['qa.csv: not UTF-8 text; in Excel save it as "CSV UTF-8", or import the .xlsx itself']
    assert problems(broken)[0].startswith("qa.xlsx: not a readable XLSX workbook")
    assert problems(tmp_path / "none.csv") == [f"{tmp_path / 'none.csv'}: no such file"]


@pytest.mark.parametrize("name", ["qa.xls", "qa.txt", "qa"])
def test_only_csv_and_xlsx_are_accepted(tmp_path, name):
    (tmp_path / name).write_text("id\n")
    what = name.partition(".")[2]
    expected = [f"{name}: a Q&A file must be .csv or .xlsx, not " + (f".{what}" if what else "a file without an extension")]
    assert problems(tmp_path / name) == expected
    with pytest.raises(ImportRejected) as err:
        write_table(tmp_path / name, [])
    assert err.value.problems == expected


ROWS = [Row("A-1", "问题一", ("说法一", "说法二"), "答案一" * 100, "社保", "人社局"),
        Row("A-2", "问题二", (), "=1+1 不是公式", "", "")]


def test_optional_columns_are_written_only_when_used(tmp_path):
    write_table(tmp_path / "plain.csv", ROWS)
    dated = ROWS[:1] + [Row("A-2", "问题二", (), "答案二", "", "", valid_to=date(2026, 6, 30),
                            notice_until=datetime(2026, 6, 1, 1, 30, 15, tzinfo=timezone.utc))]
    write_table(tmp_path / "dated.csv", dated)
    assert (tmp_path / "plain.csv").read_text(encoding="utf-8").splitlines()[0] == ",".join(HEADER)
    assert (tmp_path / "dated.csv").read_text(encoding="utf-8").splitlines() == [
        ",".join(HEADER + ["valid_to", "notice_until"]),
        "A-1,问题一,说法一|说法二," + "答案一" * 100 + ",社保,人社局,,",
        "A-2,问题二,,答案二,,,2026-06-30,2026-06-01T09:30:15",   # Beijing time
    ]
    assert read_table(tmp_path / "dated.csv") == dated


def test_the_xlsx_export_is_laid_out_for_reading(tmp_path):
    write_table(tmp_path / "qa.xlsx", ROWS)
    sheet = load_workbook(tmp_path / "qa.xlsx").worksheets[0]
    assert [c.value for c in sheet[1]] == HEADER
    assert all(c.font.bold for c in sheet[1]) and sheet.freeze_panes == "A2"
    widths = {k: d.width for k, d in sheet.column_dimensions.items()}
    assert widths["D"] == 82 and widths["B"] == 10 and widths["A"] == 10   # answer capped; short ones not narrower than 8
    assert sheet["D2"].alignment.wrap_text and sheet["D3"].alignment.wrap_text
    assert sheet["D3"].data_type == "s" and sheet["D3"].value == "=1+1 不是公式"
    assert read_table(tmp_path / "qa.xlsx") == ROWS
