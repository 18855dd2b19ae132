"""Spreadsheet files as staff make them: CSV (UTF-8) or XLSX, read into rows of cells.

What a file means is the reader's business (knowledge_base/files.py for Q&A, casework/api.py
for units and categories); here only the reading, with problems in plain words.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

KINDS = (".csv", ".xlsx")


class TableError(ValueError):
    """A file that cannot be read as a table at all (wrong kind, encoding, damaged)."""


def kind_of(path: Path, what: str = "file") -> str:
    kind = path.suffix.lower()
    if kind not in KINDS:
        raise TableError(f"{path.name}: a {what} must be .csv or .xlsx, not "
                         f"{kind or 'a file without an extension'}")
    return kind


def read_records(path: Path | str, what: str = "file") -> list[list]:
    """Every row of the file (the header is the first), cells as stored: text, numbers, dates.

    Blank rows are kept, so that a row's index + 1 is the row number the user sees.
    """
    path = Path(path)
    kind = kind_of(path, what)
    try:
        return list(csv_records(path) if kind == ".csv" else xlsx_records(path))
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise TableError(f"{path.name}: not UTF-8 text; in Excel save it as \"CSV UTF-8\", "
                         "or import the .xlsx itself") from None


def csv_records(path: Path) -> Iterator[list]:
    # csv.reader, not DictReader: a blank line is still a row the user sees, so it is counted.
    with open(path, newline="", encoding="utf-8-sig") as f:
        yield from csv.reader(f)


def xlsx_records(path: Path) -> Iterator[list]:
    from openpyxl import load_workbook   # imported here: only XLSX files need it

    try:
        # Not read-only mode: it trusts the sheet's stated size, which some tools get wrong.
        # data_only: a formula cell gives the value Excel last computed.
        workbook = load_workbook(path, data_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:   # openpyxl raises many kinds for a damaged or non-XLSX file
        raise TableError(f"{path.name}: not a readable XLSX workbook ({exc})") from None
    try:
        yield from (list(r) for r in workbook.worksheets[0].iter_rows(min_row=1, values_only=True))
    finally:
        workbook.close()


def cell_text(value) -> str:
    """A cell as the text the user typed: Excel stores 101 as a number."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
