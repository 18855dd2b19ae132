"""Timeliness reports as files for inspectors: CSV, JSON and formatted XLSX (one sheet per cut),
all from casework.report.table, so every format shows the same cells. `csv_text` and
`write_tables` take any (header, rows) table: the annual assessment is written with them too."""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path
from typing import BinaryIO

from casework.report import CUT_NAMES, Report, table

HEADER_FILL = "DDEBF7"      # a light blue, as government spreadsheets usually have


def sheet_name(by: str | None) -> str:
    return CUT_NAMES.get(by, "合计") if by else "合计"


def to_csv(report: Report) -> str:
    return csv_text(*table(report))


def csv_text(headers: list[str], rows: list[list]) -> str:
    """One table as CSV, an empty cell for None (the assessment uses it too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


def to_json(reports: dict[str | None, Report]) -> str:
    return json.dumps({sheet_name(by): r.as_dict() for by, r in reports.items()},
                      ensure_ascii=False, indent=2, default=str)


def to_text(report: Report) -> str:
    return text_table(*table(report))


def text_table(headers: list[str], rows: list[list]) -> str:
    """A plain table for the terminal: one line per row, cells without a value as "-";
    columns empty in every row are left out (the files keep them all)."""
    keep = [i for i in range(len(headers)) if i == 0 or any(r[i] not in (None, "") for r in rows)]
    headers, rows = [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]
    shown = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in shown]) for i, h in enumerate(headers)]
    lines = ["  ".join(_pad(h, w) for h, w in zip(headers, widths))]
    lines += ["  ".join(_pad(v, w) for v, w in zip(r, widths)) for r in shown]
    return "\n".join(lines)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def write_xlsx(path: Path | str | BinaryIO, reports: dict[str | None, Report]) -> None:
    """One sheet per cut (see write_tables)."""
    write_tables(path, {sheet_name(by): table(report) for by, report in reports.items()})


def write_tables(path: Path | str | BinaryIO, sheets: dict[str, tuple[list[str], list[list]]]) -> None:
    """A workbook of (header, rows) tables, one sheet each: bold header on a fill, frozen under
    the header, columns sized to fit. `path` is a file name or a binary file object."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, (headers, rows) in sheets.items():
        sheet = workbook.create_sheet(name)
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", start_color=HEADER_FILL)
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.freeze_panes = "A2"
        for i, header in enumerate(headers, start=1):
            longest = max([_width(str(r[i - 1])) for r in rows if r[i - 1] is not None] + [8])
            sheet.column_dimensions[get_column_letter(i)].width = min(max(longest, _width(header) // 2), 40) + 2
    workbook.save(path)
