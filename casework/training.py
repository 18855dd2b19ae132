"""What routing learns from: example messages (files or dispatchers' corrections) and keyword rules.

An examples file is CSV or XLSX with the columns `message, category` (the header is row 1); it
is checked whole, and importing it replaces the earlier imported examples, keeping the ones
other sources (dispatcher corrections, closed cases) added.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.directory import DirectoryRejected
from casework.models import RoutingExample, RoutingKeyword
from server.tables import TableError, cell_text, read_records

DEMO_EXAMPLES = Path(__file__).resolve().parent / "demo" / "routing_examples.csv"
IMPORT = "import"
MAX_CATEGORY = 64
MAX_KEYWORD = 64


def read_examples(path: Path | str) -> list[tuple[str, str]]:
    """(message, category) rows of an examples file; any problem rejects the whole file."""
    path = Path(path)
    try:
        records = [[cell_text(v) for v in row] for row in read_records(path, "routing examples file")]
    except TableError as exc:
        raise DirectoryRejected([str(exc)]) from None
    header = [h.strip().lower() for h in (records[0] if records else [])]
    missing = [c for c in ("message", "category") if c not in header]
    if missing:
        raise DirectoryRejected([f"row 1: missing column {', '.join(missing)}; "
                                 "the columns are message, category"])
    m, c = header.index("message"), header.index("category")
    rows, problems = [], []
    for number, raw in enumerate(records[1:], start=2):
        if not any(raw):
            continue
        message = raw[m] if m < len(raw) else ""
        category = raw[c] if c < len(raw) else ""
        if not message:
            problems.append(f"row {number}: the message is empty")
        if not category:
            problems.append(f"row {number}: the category is empty")
        elif len(category) > MAX_CATEGORY:
            problems.append(f"row {number}: the category is longer than {MAX_CATEGORY} characters")
        if message and category:
            rows.append((message, category))
    if not problems and len({c for _, c in rows}) < 2:
        problems.append(f"{path.name}: examples of at least two categories are needed, "
                        f"found {len({c for _, c in rows})}")
    if problems:
        raise DirectoryRejected(problems)
    return rows


async def replace_examples(session: AsyncSession, rows: list[tuple[str, str]], source: str = IMPORT) -> int:
    """The `source` examples become `rows`; examples from other sources stay."""
    await session.execute(delete(RoutingExample).where(RoutingExample.source == source))
    session.add_all(RoutingExample(text=t, category=c, source=source) for t, c in rows)
    await session.flush()
    return len(rows)


async def count_examples(session: AsyncSession) -> int:
    from sqlalchemy import func
    return await session.scalar(select(func.count()).select_from(RoutingExample)) or 0


# Keyword rules -------------------------------------------------------------------------------

async def add_keyword(session: AsyncSession, keyword: str, category: str, note: str = "") -> RoutingKeyword:
    keyword, category = keyword.strip(), category.strip()
    if not keyword or not category:
        raise ValueError("a keyword rule needs a keyword and a category")
    if len(keyword) > MAX_KEYWORD or len(category) > MAX_CATEGORY:
        raise ValueError(f"keyword and category are at most {MAX_KEYWORD} characters")
    rule = await session.scalar(select(RoutingKeyword).where(
        RoutingKeyword.keyword == keyword, RoutingKeyword.category == category))
    if rule is None:
        rule = RoutingKeyword(keyword=keyword, category=category, note=note, enabled=True)
        session.add(rule)
    else:
        rule.enabled, rule.note = True, note or rule.note
    await session.flush()
    return rule


async def list_keywords(session: AsyncSession) -> list[RoutingKeyword]:
    return list(await session.scalars(select(RoutingKeyword).order_by(RoutingKeyword.keyword)))


async def remove_keyword(session: AsyncSession, keyword: str, category: str | None = None) -> int:
    """Delete the rules for `keyword` (only the one to `category` when given); how many went."""
    query = delete(RoutingKeyword).where(RoutingKeyword.keyword == keyword.strip())
    if category:
        query = query.where(RoutingKeyword.category == category.strip())
    return (await session.execute(query)).rowcount or 0
