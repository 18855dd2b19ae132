"""Q&A files, CSV or XLSX: one row per entry, checked whole on reading, written to round-trip.

Required columns `id, question, similar_questions, answer, category, unit`; optional `tags`,
`valid_from`, `valid_to` (YYYY-MM-DD) and `notice_until` (YYYY-MM-DDTHH:MM, Beijing time unless
an offset is given). Lists are separated by `|`. Problems are reported as the user sees the
sheet: the header is row 1.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

from server.db import CHINA
from server.tables import TableError, cell_text, kind_of, read_records

COLUMNS = ("id", "question", "similar_questions", "answer", "category", "unit")
OPTIONAL_COLUMNS = ("tags", "valid_from", "valid_to", "notice_until")
KNOWN = COLUMNS + OPTIONAL_COLUMNS
MAX_CHARS = {"id": 64, "category": 64, "unit": 128}    # the database columns' limits
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


class ImportRejected(ValueError):
    """A Q&A file was rejected whole; `problems` lists every one by row and column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Row:
    id: str
    question: str
    similar_questions: tuple[str, ...]
    answer: str
    category: str
    unit: str
    tags: tuple[str, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None
    notice_until: datetime | None = None     # aware, UTC


def read_table(path: Path | str) -> list[Row]:
    """Read and check a Q&A file (.csv or .xlsx); any problem rejects the whole file."""
    try:
        records = read_records(path, "Q&A file")
    except TableError as exc:
        raise ImportRejected([str(exc)]) from None
    return _parse(records)


def write_table(path: Path | str, rows: list[Row]) -> None:
    """Write rows as import reads them; optional columns only when some row uses them."""
    path = Path(path)
    kind = _kind(path)
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(_cell(r, c) for r in rows))
    table = [[_cell(r, c) for c in columns] for r in rows]
    if kind == ".csv":
        # "\n" endings and no BOM: exporting an imported file gives back the same bytes.
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(table)
    else:
        _write_xlsx(path, columns, table)


def _kind(path: Path) -> str:
    try:
        return kind_of(path, "Q&A file")
    except TableError as exc:
        raise ImportRejected([str(exc)]) from None


# Reading ------------------------------------------------------------------------------------

def _text(value, column: str) -> str:
    """A cell as the text the user typed; dates as the Q&A file format writes them."""
    if isinstance(value, datetime):
        if column != "notice_until" and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return cell_text(value)


def _letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based index: 0 → A, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _parse(records: list[list]) -> list[Row]:
    header = [_text(v, "").lower() for v in (records[0] if records else [])]
    problems: list[str] = []
    where: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name:
            continue   # Excel often leaves formatted, nameless columns after the last one
        if name in where:
            problems.append(f"row 1, column {name}: appears twice (columns {_letter(where[name])} "
                            f"and {_letter(i)})")
        elif name not in KNOWN:
            problems.append(f"row 1, column {name}: unknown column; the columns are {', '.join(KNOWN)}")
        else:
            where[name] = i
    problems += [f"row 1, column {c}: missing from the header" for c in COLUMNS if c not in where]

    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(records[1:], start=2):
        cells = [_text(v, header[i] if i < len(header) else "") for i, v in enumerate(raw)]
        if not any(cells):
            continue   # blank rows, such as the empty ones Excel keeps after the data
        # An unknown column is reported once in the header; a value under no name, here.
        stray = [i for i, v in enumerate(cells) if v and (i >= len(header) or not header[i])]
        problems += [f"row {number}, column {_letter(i)}: a value in a column without a name"
                     for i in stray]
        values = {c: cells[i] if i < len(cells) else "" for c, i in where.items()}
        row, found = _row(number, values, seen)
        problems += found
        if row:
            rows.append(row)
    if problems:
        raise ImportRejected(problems)
    return rows


def _row(number: int, values: dict[str, str], seen: dict[str, int]) -> tuple[Row | None, list[str]]:
    """One data row checked; the problems are named by row and column."""
    problems = []

    def bad(column: str, what: str) -> None:
        problems.append(f"row {number}, column {column}: {what}")

    for column in ("id", "question", "answer"):
        if column in values and not values[column]:
            bad(column, "empty")
    for column, limit in MAX_CHARS.items():
        if len(values.get(column, "")) > limit:
            bad(column, f"{len(values[column])} characters, at most {limit} allowed")
    ext_id = values.get("id", "")
    if ext_id and ext_id in seen:
        bad("id", f"{ext_id} repeats row {seen[ext_id]}")
    seen.setdefault(ext_id, number)

    dates: dict[str, date | None] = {}
    for column in ("valid_from", "valid_to"):
        text = values.get(column, "")
        dates[column] = _date(text)
        if text and dates[column] is None:
            bad(column, f"{text!r} is not a date like 2026-12-01")
    if dates["valid_from"] and dates["valid_to"] and dates["valid_to"] < dates["valid_from"]:
        bad("valid_to", f"{dates['valid_to']} is before valid_from {dates['valid_from']}")
    text = values.get("notice_until", "")
    notice = _datetime(text)
    if text and notice is None:
        bad("notice_until", f"{text!r} is not a date and time like 2026-12-01T18:00")

    if problems:
        return None, problems
    get = values.get   # a column missing from the header is reported there
    return Row(ext_id, get("question", ""), _list(get("similar_questions", "")), get("answer", ""),
               get("category", ""), get("unit", ""), _list(get("tags", "")),
               dates["valid_from"], dates["valid_to"], notice), []


def _list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


def _date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:   # 2026-02-30
        return None


def _datetime(text: str) -> datetime | None:
    if not _DATETIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA)
    return moment.astimezone(timezone.utc)


# Writing ------------------------------------------------------------------------------------

def _cell(row: Row, column: str) -> str:
    value = getattr(row, column)
    if column in ("similar_questions", "tags"):
        return "|".join(value)
    if value is None:
        return ""
    if column == "notice_until":
        local = value.astimezone(CHINA)   # written as read: Beijing time, no offset
        return local.strftime("%Y-%m-%dT%H:%M" if local.second == 0 else "%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


# Column widths in characters, a CJK character counting two; long text wraps instead.
_MAX_WIDTH = {"answer": 80, "question": 40, "similar_questions": 50}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _write_xlsx(path: Path, columns: tuple[str, ...], table: list[list[str]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Q&A"
    sheet.append(columns)
    for values in table:
        sheet.append(values)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"   # text, not a formula: an answer may begin with "="
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    wrap = Alignment(wrap_text=True, vertical="top")
    for i, column in enumerate(columns):
        longest = max([_width(column)] + [_width(values[i]) for values in table])
        width = min(max(longest, 8), _MAX_WIDTH.get(column, 30)) + 2
        sheet.column_dimensions[get_column_letter(i + 1)].width = width
        if column == "answer":
            for (cell,) in sheet.iter_rows(min_row=2, min_col=i + 1, max_col=i + 1):
                cell.alignment = wrap
    workbook.save(path)
