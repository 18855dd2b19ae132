"""Read-side views of the Q&A base for the curation console (admin/kb_pages.py).

The pages never query the kb_* tables themselves: the list of entries (the latest version of
each, filtered and paged), the versions waiting for review, hit counts and the diff between two
versions all come from here. Writes go through workflow.py and api.py.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge_base.models import ANSWERED, CHOSEN, IN_REVIEW, PUBLISHED, Entry, Query, Version

STATUSES = ("draft", "in_review", "published", "retired")
# Fields a diff shows, in order, with their Chinese labels.
DIFF_FIELDS = (("question", "标准问题"), ("similar_questions", "相似问法"), ("answer", "答案"),
               ("category", "分类"), ("unit", "主管单位"), ("valid_from", "生效日期"),
               ("valid_to", "失效日期"), ("tags", "标签"))


@dataclass(frozen=True)
class Listed:
    entry_id: str
    number: int
    question: str
    category: str
    unit: str
    status: str
    valid_to: date | None


def _latest():
    return (select(Version.entry_id, func.max(Version.number).label("number"))
            .group_by(Version.entry_id).subquery())


async def latest_versions(session: AsyncSession, *, q: str = "", category: str = "", unit: str = "",
                          status: str = "", expired: bool = False, today: date | None = None,
                          offset: int = 0, limit: int = 50) -> tuple[list[Listed], int]:
    """One row per entry (its latest version), filtered; returns the page and the total."""
    today = today or date.today()
    latest = _latest()
    stmt = (select(Entry.external_id, Version)
            .join(Version, Version.entry_id == Entry.id)
            .join(latest, (latest.c.entry_id == Version.entry_id) & (latest.c.number == Version.number)))
    if q:
        stmt = stmt.where(Version.question.icontains(q, autoescape=True)
                          | Entry.external_id.icontains(q, autoescape=True))
    if category:
        stmt = stmt.where(Version.category == category)
    if unit:
        stmt = stmt.where(Version.unit == unit)
    if status in STATUSES:
        stmt = stmt.where(Version.status == status)
    if expired:
        stmt = stmt.where(Version.valid_to < today)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = await session.execute(stmt.order_by(Entry.external_id).offset(offset).limit(limit))
    rows = [Listed(ext, v.number, v.question, v.category, v.unit, v.status, v.valid_to)
            for ext, v in page.all()]
    return rows, total


async def facets(session: AsyncSession) -> tuple[list[str], list[str]]:
    """The categories and units the latest versions use, for the filters."""
    latest = _latest()
    base = select(Version).join(latest, (latest.c.entry_id == Version.entry_id)
                                & (latest.c.number == Version.number)).subquery()
    categories = await session.scalars(select(base.c.category).distinct().order_by(base.c.category))
    units = await session.scalars(select(base.c.unit).distinct().order_by(base.c.unit))
    return [c for c in categories if c], [u for u in units if u]


async def hit_counts(session: AsyncSession, since: datetime, entry_ids: list[str] | None = None) -> dict[str, int]:
    """How often each entry answered (outright or chosen after a clarification) since then."""
    stmt = (select(Query.entry_id, func.count())
            .where(Query.outcome.in_((ANSWERED, CHOSEN)), Query.entry_id.is_not(None), Query.at >= since)
            .group_by(Query.entry_id))
    if entry_ids is not None:
        stmt = stmt.where(Query.entry_id.in_(entry_ids))
    return {entry_id: n for entry_id, n in await session.execute(stmt)}


async def in_review(session: AsyncSession) -> list[tuple[str, Version, Version | None]]:
    """Versions waiting for a reviewer, oldest first, each with the version before it."""
    found = []
    for ext, version in (await session.execute(
            select(Entry.external_id, Version).join(Version, Version.entry_id == Entry.id)
            .where(Version.status == IN_REVIEW).order_by(Version.created_at, Version.id))).all():
        before = await session.scalar(select(Version).where(
            Version.entry_id == version.entry_id, Version.number < version.number)
            .order_by(Version.number.desc()).limit(1))
        found.append((ext, version, before))
    return found


async def served_number(session: AsyncSession, external_id: str) -> int | None:
    """The number of the version citizens are served, if any."""
    return await session.scalar(select(Version.number).join(Entry, Entry.id == Version.entry_id)
                                .where(Entry.external_id == external_id, Version.status == PUBLISHED))


def _lines(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value).splitlines() or [""]


def diff(old: Version | None, new: Version) -> list[dict]:
    """What changed from `old` to `new`, field by field: only changed fields, each as lines
    marked "+" (added), "-" (removed) or " " (unchanged context). Plain text: the template
    escapes it."""
    changes = []
    for field, label in DIFF_FIELDS:
        before = _lines(getattr(old, field)) if old is not None else []
        after = _lines(getattr(new, field))
        if before == after:
            continue
        lines = [{"mark": line[0], "text": line[2:]}
                 for line in difflib.ndiff(before, after) if line[:1] in "+- "]
        changes.append({"field": field, "label": label, "lines": lines})
    return changes
