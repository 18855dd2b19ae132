"""What the rest of govchat may ask of casework: directory, cases, events."""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from casework import events
from casework.models import COMPLAINT, REPORT, Case, Category, Unit
from server.db import CHINA, Database

DEMO = Path(__file__).resolve().parent / "demo"
CASE_TYPE_NAMES = {COMPLAINT: "投诉", REPORT: "举报"}
STATUS_NAMES = {"submitted": "已受理，等待派单"}


class CaseNotFound(LookupError):
    pass


def case_number(day, seq: int) -> str:
    return f"ZJ{day:%Y%m%d}-{seq:04d}"


async def submit_case(
    db: Database, *, case_type: str, description: str, conversation_id: int | None,
    now: datetime,
) -> Case:
    """Register a new case with the next number of its China-time day, in its own transaction.

    Two intakes racing for a number: the unique (day, seq) makes the loser start again.
    """
    if case_type not in CASE_TYPE_NAMES:
        raise ValueError(f"unknown case type {case_type!r}")
    day = now.astimezone(CHINA).date()
    for _ in range(5):
        try:
            async with db.session() as session, session.begin():
                seq = (await session.scalar(select(func.max(Case.seq)).where(Case.day == day)) or 0) + 1
                case = Case(number=case_number(day, seq), day=day, seq=seq, case_type=case_type,
                            description=description, conversation_id=conversation_id,
                            created_at=now)
                session.add(case)
                await session.flush()
                events.record(session, events.CASE_SUBMITTED, at=now, case_id=case.id,
                              conversation_id=conversation_id, case_type=case_type)
            return case
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a case number after 5 tries")


async def find_case(session: AsyncSession, number: str) -> Case:
    case = await session.scalar(select(Case).where(Case.number == number.strip().upper()))
    if case is None:
        raise CaseNotFound(number)
    return case


async def count_units(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Unit)) or 0


def _split(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split("|") if v.strip()]


async def import_units(session: AsyncSession, path: Path) -> int:
    """Load units (`unit_id, unit_name, parent, categories, regions`), parents before children."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    pending = {r["unit_id"].strip(): r for r in rows}
    known = set(await session.scalars(select(Unit.id)))
    while pending:
        ready = [uid for uid, r in pending.items() if not r["parent"].strip() or r["parent"].strip() in known]
        if not ready:
            raise ValueError(f"units with unknown or circular parents: {', '.join(sorted(pending))}")
        for uid in ready:
            r = pending.pop(uid)
            await session.merge(Unit(
                id=uid, name=r["unit_name"].strip(), parent_id=r["parent"].strip() or None,
                categories=_split(r["categories"]), regions=_split(r["regions"]),
                is_dispatcher=uid == "DISPATCH",
            ))
            known.add(uid)
        await session.flush()
    return len(rows)


async def import_categories(session: AsyncSession, path: Path) -> int:
    """Load a 一级/二级/三级分类 tree; rows may repeat upper levels."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))[1:]
    ids: dict[tuple[str, ...], int] = {}
    for row in rows:
        path_so_far: tuple[str, ...] = ()
        for level, name in enumerate((c.strip() for c in row), start=1):
            if not name:
                break
            key = path_so_far + (name,)
            if key not in ids:
                cat = Category(name=name, parent_id=ids.get(path_so_far), level=level)
                session.add(cat)
                await session.flush()
                ids[key] = cat.id
            path_so_far = key
    return len(ids)
