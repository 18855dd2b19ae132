"""A spot check as the inspector takes it away: XLSX (two sheets) or one CSV table.

XLSX: "抽查清单" lists the items (group, kind, number, key times, finding) and "记录" holds every
trail line of every item. CSV, having one table only, repeats the item's columns on each of its
trail lines (an item without lines still gets one row). Times are China time; personal numbers
are masked as on the pages (casework/privacy.py). Cells that a spreadsheet would run as a
formula are kept as text.
"""
from __future__ import annotations

import csv
import io

from sqlalchemy.ext.asyncio import AsyncSession

from admin.api import audit
from casework.models import SpotCheck
from casework.spotcheck import (FINDING_NAMES, KIND_NAMES, ItemView, china_time, get_check,
                                items_of, trail)

ITEM_COLUMNS = ("序号", "单位/渠道", "类别", "编号", "状态", "开始时间", "结束时间", "检查结论",
                "问题说明", "检查人", "检查时间")
LINE_COLUMNS = ("时间（北京时间）", "记录类别", "人员", "内容")
FORMATS = ("xlsx", "csv")
_WIDEST = 60


def _item_row(n: int, view: ItemView) -> list[str]:
    item = view.item
    return [str(n), view.group, KIND_NAMES[item.kind], view.ref, view.status, china_time(view.start),
            china_time(view.end), FINDING_NAMES.get(item.finding, "未检查"), item.comment or "",
            item.checked_by or "", china_time(item.checked_at) if item.checked_at else ""]


async def tables(session: AsyncSession, check: SpotCheck) -> tuple[list[list[str]], list[list[str]]]:
    """(item rows, trail rows): each trail row starts with the item's 序号, group and number."""
    items, lines = [], []
    for n, view in enumerate(await items_of(session, check), start=1):
        items.append(_item_row(n, view))
        for line in (await trail(session, view.item)).lines:
            lines.append([str(n), view.group, view.ref, china_time(line.at), line.what, line.who,
                          line.text])
    return items, lines


def _safe(value: str) -> str:
    """No formula injection when the CSV is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(items: list[list[str]], lines: list[list[str]]) -> bytes:
    by_item: dict[str, list[list[str]]] = {}
    for line in lines:
        by_item.setdefault(line[0], []).append(line[3:])
    out = io.StringIO()
    out.write("\ufeff")                      # Excel reads UTF-8 with the BOM
    writer = csv.writer(out)
    writer.writerow([*ITEM_COLUMNS, *LINE_COLUMNS])
    for row in items:
        for line in by_item.get(row[0]) or [[""] * len(LINE_COLUMNS)]:
            writer.writerow([_safe(v) for v in (*row, *line)])
    return out.getvalue().encode("utf-8")


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def to_xlsx(check: SpotCheck, items: list[list[str]], lines: list[list[str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheets = ((workbook.active, "抽查清单", ITEM_COLUMNS, items),
              (workbook.create_sheet(), "记录", ("序号", "单位/渠道", "编号", *LINE_COLUMNS), lines))
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    for sheet, title, columns, rows in sheets:
        sheet.title = title
        sheet.append(list(columns))
        for row in rows:
            sheet.append(row)
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"        # text, never a formula
        for cell in sheet[1]:
            cell.font, cell.fill = Font(bold=True), header_fill
        sheet.freeze_panes = "A2"
        wrap = Alignment(wrap_text=True, vertical="top")
        for i, column in enumerate(columns):
            widest = max([_width(column)] + [_width(r[i]) for r in rows])
            sheet.column_dimensions[get_column_letter(i + 1)].width = min(widest, _WIDEST) + 2
            if widest > _WIDEST:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=i + 1, max_col=i + 1):
                    cell.alignment = wrap
    workbook.properties.title = f"{check.quarter} 季度抽查（种子 {check.seed}）"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def export(session: AsyncSession, check_id: int, fmt: str, *, actor: str) -> bytes:
    """The file's bytes, in the caller's transaction; audited `spotcheck.export`."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    check = await get_check(session, check_id)
    items, lines = await tables(session, check)
    audit(session, actor, "spotcheck.export", f"spotcheck:{check.id}", format=fmt,
          items=len(items), lines=len(lines))
    return to_xlsx(check, items, lines) if fmt == "xlsx" else to_csv(items, lines)
