"""The unit directory and the category tree: importing them from CSV or XLSX files, and the
settings page's one-at-a-time changes, checked by the same rules (`unit_problems`).

Each file is checked whole before anything is written: a problem names its row (the header is
row 1) and nothing of the file is stored.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import time
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from casework.models import Case, Category, RoutingExample, RoutingKeyword, Unit
from server.tables import TableError, cell_text, read_records

UNIT_COLUMNS = ("unit_id", "unit_name", "parent", "categories", "regions")
DISPATCHER_ID = "DISPATCH"
TRUE = {"1", "yes", "true", "是", "y"}
_UNIT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


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


@dataclass
class UnitDraft:
    """A unit as a file row or the unit form gives it, before it is stored."""

    id: str
    name: str
    parent_id: str | None = None
    categories: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    is_dispatcher: bool = False
    duty_start: str | None = None
    duty_end: str | None = None

    @classmethod
    def of(cls, unit: Unit) -> UnitDraft:
        return cls(unit.id, unit.name, unit.parent_id, list(unit.categories or []),
                   list(unit.regions or []), bool(unit.is_dispatcher), unit.duty_start, unit.duty_end)


def parse_hhmm(value: str | None) -> time | None:
    """"08:30" → time(8, 30); None or "" → None; anything else raises ValueError."""
    if not value:
        return None
    if not _HHMM.match(value):
        raise ValueError(value)
    return time(int(value[:2]), int(value[3:]))


class Problem(NamedTuple):
    """One thing wrong with a unit: plain English for the CLI's import, Chinese for the page."""

    en: str
    zh: str


def _duty_problem(start: str | None, end: str | None) -> Problem | None:
    if not start and not end:
        return None
    if not (start and end):
        return Problem("duty hours need both duty_start and duty_end", "值班时间须同时填写开始和结束时间")
    try:
        begin, finish = parse_hhmm(start), parse_hhmm(end)
    except ValueError as exc:
        return Problem(f"duty time {exc} is not HH:MM", f"值班时间 {exc} 格式不正确，应为 HH:MM（如 08:30）")
    if begin == finish:
        return Problem("duty hours start and end at the same time", "值班开始和结束时间不能相同")
    return None


def unit_problems(drafts: list[UnitDraft], stored: list[UnitDraft],
                  categories: set[str] | None = None) -> dict[str, list[Problem]]:
    """What is wrong with each draft (by id), in Chinese, when the drafts are laid over the stored
    units (a draft with a stored id replaces it). Checked: id and name present and short enough,
    names unique, the parent exists and the parent chain does not loop, the duty hours, at most
    one dispatcher unit, and — when `categories` (the known names) is given — the categories."""
    merged = {u.id: u for u in stored}
    merged.update({d.id: d for d in drafts})
    problems: dict[str, list[str]] = {}
    for d in drafts:
        found = problems.setdefault(d.id, [])
        if not d.id:
            found.append(Problem("unit_id is empty", "单位编号不能为空"))
        elif len(d.id) > 32 or not _UNIT_ID.match(d.id):
            found.append(Problem(f"unit_id {d.id!r} is not 1-32 letters, digits, _ or -",
                                 f"单位编号 {d.id} 须为32个以内的字母、数字或 _ - 字符"))
        if not d.name:
            found.append(Problem("unit_name is empty", "单位名称不能为空"))
        elif len(d.name) > 128:
            found.append(Problem("unit_name is longer than 128 characters", "单位名称不能超过128个字符"))
        elif any(u.name == d.name and u.id != d.id for u in merged.values()):
            found.append(Problem(f"unit_name {d.name} is another unit's", f"单位名称“{d.name}”已被其他单位使用"))
        if d.parent_id:
            if d.parent_id not in merged:
                found.append(Problem(f"parent {d.parent_id} of {d.id} is neither in the file nor stored",
                                     f"上级单位 {d.parent_id} 不存在"))
            else:
                seen, at = {d.id}, d.parent_id
                while at in merged and at not in seen:
                    seen.add(at)
                    at = merged[at].parent_id
                if at in seen:
                    found.append(Problem(f"parent {d.parent_id} of {d.id} makes a loop",
                                         f"上级单位 {d.parent_id} 会造成循环（单位不能是自己的下级）"))
        if categories is not None:
            unknown = [c for c in d.categories if c not in categories]
            if unknown:
                found.append(Problem(f"unknown categories {', '.join(unknown)}",
                                     f"分类不存在：{'、'.join(unknown)}"))
        if (why := _duty_problem(d.duty_start, d.duty_end)) is not None:
            found.append(why)
        if d.is_dispatcher:
            others = [u.id for u in merged.values() if u.is_dispatcher and u.id != d.id]
            if others:
                found.append(Problem(f"only one dispatcher unit: {others[0]} is one already",
                                     f"只能有一个分派单位，{others[0]} 已是分派单位"))
    return {uid: found for uid, found in problems.items() if found}


def _parents_first(drafts: dict[str, UnitDraft]) -> list[str]:
    order, placed, pending = [], set(), dict(drafts)
    while pending:
        ready = [u for u, d in pending.items() if not d.parent_id or d.parent_id not in pending]
        if not ready:       # a loop, refused by unit_problems before this is used
            ready = list(pending)
        for u in ready:
            order.append(u)
            placed.add(u)
            del pending[u]
    return order


async def stored_units(session: AsyncSession) -> list[Unit]:
    return list(await session.scalars(select(Unit).order_by(Unit.id)))


async def find_unit(session: AsyncSession, unit_id: str) -> Unit | None:
    return await session.get(Unit, unit_id)


async def import_units(session: AsyncSession, path: Path) -> int:
    """Load units (`unit_id, unit_name, parent, categories, regions`; optional `is_dispatcher`,
    `duty_start`, `duty_end`), parents before children; an existing unit with the same id is
    updated. Checked as the unit form is (`unit_problems`), plus repeats within the file."""
    path = Path(path)
    records = _records(path, "units file")
    header = [h.strip().lower() for h in (records[0] if records else [])]
    missing = [c for c in UNIT_COLUMNS if c not in header]
    if missing:
        raise DirectoryRejected([f"row 1: missing column{'s' if len(missing) > 1 else ''} "
                                 f"{', '.join(missing)}; the columns are {', '.join(UNIT_COLUMNS)}"])
    col = {name: header.index(name) for name in header if name}
    problems: list[str] = []
    drafts: dict[str, UnitDraft] = {}
    numbers: dict[str, int] = {}
    names: dict[str, int] = {}
    for number, raw in enumerate(records[1:], start=2):
        if not any(raw):
            continue
        r = {c: raw[i] if i < len(raw) else "" for c, i in col.items()}
        uid, name = r["unit_id"], r["unit_name"]
        if not uid:
            problems.append(f"row {number}: unit_id is empty")
            continue
        if uid in drafts:
            problems.append(f"row {number}: unit_id {uid} repeats row {numbers[uid]}")
            continue
        if name and name in names:
            problems.append(f"row {number}: unit_name {name} repeats row {names[name]}")
        flag = r.get("is_dispatcher", "").lower()
        drafts[uid] = UnitDraft(uid, name, r["parent"] or None, split_list(r["categories"]),
                                split_list(r["regions"]),
                                flag in TRUE if flag else uid == DISPATCHER_ID,
                                r.get("duty_start") or None, r.get("duty_end") or None)
        numbers[uid] = number
        names.setdefault(name, number)
    stored = [UnitDraft.of(u) for u in await stored_units(session)]
    for uid, found in unit_problems(list(drafts.values()), stored).items():
        problems.extend(f"row {numbers[uid]}: {why.en}" for why in found)
    if problems:
        raise DirectoryRejected(sorted(problems, key=lambda p: int(p.split(":")[0][4:])))
    for uid in _parents_first(drafts):
        await _store(session, drafts[uid])
    return len(drafts)


async def _store(session: AsyncSession, d: UnitDraft) -> Unit:
    unit = await session.merge(Unit(
        id=d.id, name=d.name, parent_id=d.parent_id or None, categories=list(d.categories),
        regions=list(d.regions), is_dispatcher=d.is_dispatcher,
        duty_start=d.duty_start or None, duty_end=d.duty_end or None))
    await session.flush()
    return unit


async def save_unit(session: AsyncSession, draft: UnitDraft, *, new: bool) -> tuple[dict, dict]:
    """Create (`new`) or update one unit, checked as an import row is, with the categories that
    must exist. Returns (before, after) as plain dicts for the audit log; DirectoryRejected
    (Chinese problems) when refused."""
    current = await session.get(Unit, draft.id) if draft.id else None
    if new and current is not None:
        raise DirectoryRejected([f"单位编号 {draft.id} 已存在"])
    if not new and current is None:
        raise DirectoryRejected([f"单位 {draft.id} 不存在"])
    stored = [UnitDraft.of(u) for u in await stored_units(session)]
    known = set(await session.scalars(select(Category.name)))
    found = unit_problems([draft], stored, known).get(draft.id, [])
    if found:
        raise DirectoryRejected([why.zh for why in found])
    before = asdict(UnitDraft.of(current)) if current is not None else {}
    unit = await _store(session, draft)
    return before, asdict(UnitDraft.of(unit))


class UnitInUse(ValueError):
    """A unit that cases, accounts or other units still name; the message says which, in Chinese."""


async def delete_unit(session: AsyncSession, unit_id: str, *, accounts: int = 0) -> dict:
    """Delete a unit nothing refers to; `accounts` is how many staff accounts are bound to it
    (the admin package counts them). Returns the unit as it was, for the audit log."""
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise UnitInUse(f"单位 {unit_id} 不存在")
    cases = await session.scalar(select(func.count(Case.id)).where(Case.unit_id == unit_id)) or 0
    children = await session.scalar(select(func.count(Unit.id)).where(Unit.parent_id == unit_id)) or 0
    why = [f"{n}{what}" for n, what in ((cases, " 件办件"), (accounts, " 个账号"), (children, " 个下级单位"))
           if n]
    if why:
        raise UnitInUse(f"单位“{unit.name}”仍有{'、'.join(why)}，不能删除")
    before = asdict(UnitDraft.of(unit))
    await session.delete(unit)
    await session.flush()
    return before


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


# The category tree on the settings page ------------------------------------------------------

MAX_LEVEL = 3       # 一级/二级/三级分类


class CategoryRefused(ValueError):
    """A category change that cannot be made; the message says why, in Chinese."""


async def category_tree(session: AsyncSession) -> list[tuple[Category, int]]:
    """(category, depth from 0) in tree order: each parent before its children, by name."""
    cats = list(await session.scalars(select(Category).order_by(Category.name)))
    children: dict[int | None, list[Category]] = {}
    for c in cats:
        children.setdefault(c.parent_id, []).append(c)
    out: list[tuple[Category, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for c in children.get(parent, []):
            out.append((c, depth))
            walk(c.id, depth + 1)

    walk(None, 0)
    return out


async def _check_name(session: AsyncSession, name: str, parent_id: int | None,
                      except_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise CategoryRefused("分类名称不能为空")
    if len(name) > 64:
        raise CategoryRefused("分类名称不能超过64个字符")
    # Units, keyword rules and examples name categories by name: keep names unique in the tree.
    clash = await session.scalar(select(Category).where(Category.name == name))
    if clash is not None and clash.id != except_id:
        raise CategoryRefused(f"分类“{name}”已存在")
    return name


async def add_category(session: AsyncSession, name: str, parent_id: int | None) -> Category:
    level = 1
    if parent_id is not None:
        parent = await session.get(Category, parent_id)
        if parent is None:
            raise CategoryRefused("上级分类不存在")
        if parent.level >= MAX_LEVEL:
            raise CategoryRefused(f"分类最多{MAX_LEVEL}级")
        level = parent.level + 1
    name = await _check_name(session, name, parent_id)
    cat = Category(name=name, parent_id=parent_id, level=level)
    session.add(cat)
    await session.flush()
    return cat


async def rename_category(session: AsyncSession, category_id: int, name: str) -> tuple[str, str]:
    """Rename a category and every place that names it (units' lists, keyword rules, routing
    examples); returns (old, new). The routing model keeps the old label until retrained."""
    cat = await session.get(Category, category_id)
    if cat is None:
        raise CategoryRefused("分类不存在")
    old, new = cat.name, await _check_name(session, name, cat.parent_id, except_id=cat.id)
    if old == new:
        return old, new
    cat.name = new
    for unit in await stored_units(session):
        if old in (unit.categories or []):
            unit.categories = [new if c == old else c for c in unit.categories]
    await session.execute(update(RoutingKeyword).where(RoutingKeyword.category == old).values(category=new))
    await session.execute(update(RoutingExample).where(RoutingExample.category == old).values(category=new))
    await session.flush()
    return old, new


async def category_uses(session: AsyncSession, cat: Category) -> list[str]:
    """What still names the category, in Chinese ("3 件办件"); empty when it may be deleted."""
    counts = (
        (await session.scalar(select(func.count(Category.id)).where(Category.parent_id == cat.id)), " 个下级分类"),
        (await session.scalar(select(func.count(Case.id)).where(Case.category_id == cat.id)), " 件办件"),
        (sum(cat.name in (u.categories or []) for u in await stored_units(session)), " 个单位"),
        (await session.scalar(select(func.count(RoutingKeyword.id)).where(RoutingKeyword.category == cat.name)),
         " 条关键词规则"),
        (await session.scalar(select(func.count(RoutingExample.id)).where(RoutingExample.category == cat.name)),
         " 条示例"),
    )
    return [f"{n}{what}" for n, what in counts if n]


async def delete_category(session: AsyncSession, category_id: int) -> str:
    """Delete an unused category; returns its name. CategoryRefused says what uses it."""
    cat = await session.get(Category, category_id)
    if cat is None:
        raise CategoryRefused("分类不存在")
    uses = await category_uses(session, cat)
    if uses:
        raise CategoryRefused(f"分类“{cat.name}”仍被使用（{'、'.join(uses)}），不能删除")
    name = cat.name
    await session.delete(cat)
    await session.flush()
    return name
