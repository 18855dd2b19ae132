"""Importing the unit directory and the category tree from CSV or XLSX files.

Each file is checked whole before anything is written: a problem names its row (the header is
row 1) and nothing of the file is stored.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import Category, Unit
from server.tables import TableError, cell_text, read_records

UNIT_COLUMNS = ("unit_id", "unit_name", "parent", "categories", "regions")
DISPATCHER_ID = "DISPATCH"
TRUE = {"1", "yes", "true", "是", "y"}


class DirectoryRejected(ValueError):
    """A units or categories file was refused whole; `problems` names each by row."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _records(path: Path, what: str) -> list[list[str]]:
    try:
        return [[cell_text(v) for v in row] for row in read_records(path, what)]
    except TableError as exc:
        raise DirectoryRejected([str(exc)]) from None


def split_list(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split("|") if v.strip()]


async def import_units(session: AsyncSession, path: Path) -> int:
    """Load units (`unit_id, unit_name, parent, categories, regions`; optional `is_dispatcher`),
    parents before children; an existing unit with the same id is updated."""
    path = Path(path)
    records = _records(path, "units file")
    header = [h.strip().lower() for h in (records[0] if records else [])]
    missing = [c for c in UNIT_COLUMNS if c not in header]
    if missing:
        raise DirectoryRejected([f"row 1: missing column{'s' if len(missing) > 1 else ''} "
                                 f"{', '.join(missing)}; the columns are {', '.join(UNIT_COLUMNS)}"])
    col = {name: header.index(name) for name in header if name}
    problems: list[str] = []
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    names: dict[str, int] = {}
    for number, raw in enumerate(records[1:], start=2):
        if not any(raw):
            continue
        r = {c: raw[i] if i < len(raw) else "" for c, i in col.items()}
        uid, name = r["unit_id"], r["unit_name"]
        if not uid:
            problems.append(f"row {number}: unit_id is empty")
            continue
        if len(uid) > 32:
            problems.append(f"row {number}: unit_id {uid!r} is longer than 32 characters")
        if not name or len(name) > 128:
            problems.append(f"row {number}: unit_name is {'empty' if not name else 'longer than 128 characters'}")
        if uid in rows:
            problems.append(f"row {number}: unit_id {uid} repeats row {rows[uid][0]}")
        if name and name in names:
            problems.append(f"row {number}: unit_name {name} repeats row {names[name]}")
        rows.setdefault(uid, (number, r))
        names.setdefault(name, number)
    known = set(await session.scalars(select(Unit.id)))
    # Parents: each must be in the file or already stored, and the chain must not loop.
    placed = set(known)
    pending = dict(rows)
    order = []
    while pending:
        ready = [u for u, (_, r) in pending.items() if not r["parent"] or r["parent"] in placed]
        if not ready:
            break
        for u in ready:
            order.append(u)
            placed.add(u)
            del pending[u]
    for uid, (number, r) in sorted(pending.items(), key=lambda x: x[1][0]):
        why = "is neither in the file nor stored" if r["parent"] not in rows else "makes a loop"
        problems.append(f"row {number}: parent {r['parent']} of {uid} {why}")
    if problems:
        raise DirectoryRejected(problems)
    for uid in order:
        r = rows[uid][1]
        flag = r.get("is_dispatcher", "").lower()
        await session.merge(Unit(
            id=uid, name=r["unit_name"], parent_id=r["parent"] or None,
            categories=split_list(r["categories"]), regions=split_list(r["regions"]),
            is_dispatcher=flag in TRUE if flag else uid == DISPATCHER_ID))
        await session.flush()
    return len(rows)


async def import_categories(session: AsyncSession, path: Path) -> int:
    """Load a 一级/二级/三级分类 tree (rows may repeat upper levels); categories already stored
    are kept and reused. Returns how many categories the file names."""
    path = Path(path)
    records = _records(path, "categories file")
    problems: list[str] = []
    paths: list[tuple[str, ...]] = []
    for number, row in enumerate(records[1:], start=2):
        cells = [c.strip() for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if "" in cells:
            problems.append(f"row {number}: level {cells.index('') + 1} is empty but a lower level is given")
        elif any(len(c) > 64 for c in cells):
            problems.append(f"row {number}: a category name is longer than 64 characters")
        else:
            paths.append(tuple(cells))
    if problems:
        raise DirectoryRejected(problems)
    stored = list(await session.scalars(select(Category)))
    by_id = {c.id: c for c in stored}

    def key(c: Category) -> tuple[str, ...]:
        chain = [c.name]
        while c.parent_id in by_id:
            c = by_id[c.parent_id]
            chain.append(c.name)
        return tuple(reversed(chain))

    ids = {key(c): c.id for c in stored}
    named = set()
    for full in paths:
        for level in range(1, len(full) + 1):
            k = full[:level]
            named.add(k)
            if k not in ids:
                cat = Category(name=k[-1], parent_id=ids.get(k[:-1]), level=level)
                session.add(cat)
                await session.flush()
                ids[k] = cat.id
    return len(named)
